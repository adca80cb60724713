//! Shows what a hostile scorer can try, one attack per input file (chosen by the file's name) or in `init` (chosen by `task.config.init`); every attack must fail only its own mini-batch.

use sluice_sdk::{BatchResult, Config, Error, MiniBatch, ResultBuilder, Scorer, Table, export_scorer, info};

/// How many `run()` calls this instance has served (for `stale`).
static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct Adversary;

impl Scorer for Adversary {
    fn init(config: Config) -> Result<Self, Error> {
        match config.get("init").unwrap_or("ok") {
            "trap" => core::arch::wasm32::unreachable(),
            "panic" => panic!("init refuses to start"),
            "error" => Err(Error::msg("bad configuration: init says no")),
            "loop" => spin(),
            _ => Ok(Adversary),
        }
    }

    fn run(&mut self, batch: MiniBatch) -> Result<BatchResult, Error> {
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut out = ResultBuilder::new();
        for (i, file) in batch.files().iter().enumerate() {
            let stem = file.name.rsplit('/').next().unwrap_or("").split('.').next().unwrap_or("");
            match stem {
                // Computes forever: stopped by fuel or the epoch deadline.
                "loop" => spin(),
                // Allocates until the memory cap refuses to grow.
                "oom" => {
                    let mut hoard: Vec<Vec<u8>> = Vec::new();
                    loop {
                        hoard.push(vec![1u8; 16 << 20]);
                        info!("holding {} MiB", hoard.len() * 16);
                    }
                }
                "recurse" => {
                    out.row(i).s64("depth", recurse(1));
                }
                "panic" => panic!("scorer bug on {}", file.name),
                "trap" => core::arch::wasm32::unreachable(),
                // Returns far more than the output cap.
                "huge" => {
                    for n in 0..20_000 {
                        out.row(i).string("blob", &format!("{n:0>100}"));
                    }
                }
                // Tries to read outside the grant: WASI has no preopen for it.
                "escape" => match std::fs::read_to_string("/etc/passwd") {
                    Ok(s) => {
                        out.row(i).string("leak", &s);
                    }
                    Err(e) => return Err(Error::msg(format!("cannot read /etc/passwd: {e}"))),
                },
                // Says nothing about its item.
                "fewer" => {}
                // Blocks in a host call (a WASI sleep) past the deadline.
                "sleep" => {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                    out.row(i).s64("slept", 1);
                }
                // Reads a file the job granted read-only at /grant.
                "readgrant" => match std::fs::read_to_string("/grant/hello.txt") {
                    Ok(s) => {
                        out.row(i).string("grant", s.trim());
                    }
                    Err(e) => return Err(Error::msg(format!("cannot read /grant/hello.txt: {e}"))),
                },
                // Tries to write into the read-only grant.
                "writegrant" => match std::fs::write("/grant/hello.txt", "overwritten") {
                    Ok(()) => {
                        out.row(i).string("grant", "written");
                    }
                    Err(e) => {
                        return Err(Error::msg(format!("cannot write /grant/hello.txt: {e}")));
                    }
                },
                // Looks for the host's environment: the guest must see none.
                "env" => {
                    out.row(i).s64("env_vars", std::env::vars().count() as i64);
                }
                // Tries the network (loopback only; nothing is listening).
                "net" => match std::net::TcpStream::connect("127.0.0.1:9") {
                    Ok(_) => {
                        out.row(i).string("net", "connected");
                    }
                    Err(e) => return Err(Error::msg(format!("cannot connect: {e}"))),
                },
                "usererror" => return Err(Error::msg(format!("cannot score {}", file.name))),
                // A panic message of 10,000 bytes of two-byte characters:
                // the host cuts it on a character boundary.
                "bigpanic" => panic!("{}", "é".repeat(5000)),
                // Reports a panic directly (no trap), 10 KB of it, and succeeds.
                "panictext" => {
                    sluice_sdk::bindings::sluice::scorer::log::panicked(&"ü".repeat(5000));
                    out.row(i).string("file", &file.name);
                }
                // First call: leaves panic text behind and succeeds; any later
                // call on the same instance traps with no panic of its own.
                "stale" => {
                    if call == 0 {
                        sluice_sdk::bindings::sluice::scorer::log::panicked("stale text from an earlier call");
                        out.row(i).string("file", &file.name);
                    } else {
                        core::arch::wasm32::unreachable()
                    }
                }
                // An allocation the guest survives (a refused memory growth),
                // then a plain panic: a panic, not an OOM.
                "handledoom" => {
                    let mut v: Vec<u8> = Vec::new();
                    let refused = v.try_reserve(1 << 30).is_err();
                    panic!("after a handled allocation failure (refused: {refused})");
                }
                "exit" => std::process::exit(3),
                // A 20 MB error message.
                "hugeerror" => return Err(Error::msg("x".repeat(20 << 20))),
                // A 1 MB item error.
                "hugeitem" => {
                    out.error(i, "y".repeat(1 << 20));
                }
                // Tries to forge log lines and redraw the terminal.
                "inject" => {
                    info!("line one\n2026-01-01T00:00:00.000Z INFO  job=x mini_batch=forged instance=99 forged line");
                    return Err(Error::msg("\x1b[2J\x1b]0;owned\x07\njob x: completed\n  mini-batches: all fine"));
                }
                // Floods the log, then fails: every retry floods again.
                "chattyfail" => {
                    for n in 0..100_000 {
                        println!("chatter before failing {n}");
                    }
                    return Err(Error::msg("failed after chattering"));
                }
                // Two million empty lines: the log cap counts lines too.
                "emptylines" => {
                    use std::io::Write;
                    let mut so = std::io::stdout().lock();
                    for _ in 0..2_000_000 {
                        let _ = so.write_all(b"\n");
                    }
                    drop(so);
                    out.row(i).string("file", &file.name);
                }
                // Rows with no columns at all.
                "zerocols" => {
                    return Ok(BatchResult {
                        rows: Table { num_rows: 1, columns: Vec::new() },
                        row_items: vec![i as u32],
                        errors: Vec::new(),
                    });
                }
                // One 150 MB value: fine under limits.max_output_mb = 200
                // (above wasmtime's default 128 MiB host-call copy budget).
                "bigok" => {
                    out.row(i).string("blob", &"b".repeat(150 << 20));
                }
                // Floods the log past its cap, then succeeds.
                "chatty" => {
                    // 20,000 lines: far past any cap, quick even on a loaded machine.
                    for n in 0..20_000 {
                        println!("chatter line {n}");
                    }
                    out.row(i).string("file", &file.name);
                }
                _ => {
                    out.row(i).string("file", &file.name);
                }
            }
        }
        Ok(out.finish())
    }
}

fn spin() -> ! {
    let mut x: u64 = 1;
    loop {
        x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
    }
}

/// Unbounded recursion with small frames: overflows the wasm stack (not
/// the shadow stack in linear memory).
#[inline(never)]
fn recurse(n: i64) -> i64 {
    if std::hint::black_box(n) < 0 { 0 } else { std::hint::black_box(recurse(n + 1)) + 1 }
}

export_scorer!(Adversary);

fn main() {}
