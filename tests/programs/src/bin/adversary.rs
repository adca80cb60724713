//! Shows what a hostile scorer can try, one attack per input file (chosen by the file's name) or in `init` (chosen by `task.config.init`); every attack must fail only its own mini-batch.

use sluice_sdk::{BatchResult, Config, Error, MiniBatch, ResultBuilder, Scorer, export_scorer, info};

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
                // Floods the log past its cap, then succeeds.
                "chatty" => {
                    for n in 0..100_000 {
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
