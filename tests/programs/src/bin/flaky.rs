//! Shows the behaviours the retry, resume, deadline and configuration tests need from a scorer that misbehaves on cue:
//! - file input: one row per file with what `init(config)` received (`task.config`, `program_arguments`,
//!   `environment_variables`), so a test can see each reach the guest;
//! - `task.config.partial_on_call = N`: an instance's N-th `run()` returns rows for the first half of its files only
//!   (a try that produced rows and then failed, as `INVALID_OUTPUT`);
//! - `task.config.init_sleep_s = S`: `init()` blocks in a host call (a WASI sleep) for S seconds, where fuel cannot
//!   stop it;
//! - a file named `deep-N.txt`: recurses N frames deep on the wasm stack (`limits.max_wasm_stack_kb`);
//! - a file named `net-PORT.txt`: tries to connect to 127.0.0.1:PORT and fails the mini-batch with the error (its
//!   kind too) if it cannot;
//! - a file named `wait.txt`, with `task.config.wait_for = PATH` (in a granted folder): the mini-batch waits until
//!   PATH exists, so a test decides when it finishes (e.g. after all the others);
//! - a file named `count.txt`: counts forever, logging `counted N` every 10,000, so the last line says exactly where
//!   fuel stopped it;
//! - tabular input: returns every row as it came; with `task.config.stall_on = PATH` (a granted file) a mini-batch
//!   holding a row whose `id` is the number in that file blocks (sleeps) until the process is killed.

use sluice_sdk::{BatchResult, Config, Error, MiniBatch, ResultBuilder, Scorer, export_scorer, info};

struct Flaky {
    calls: u32,
    partial_on_call: u32,
    stall_on: Option<String>,
    wait_for: Option<String>,
    /// What init received, rendered once.
    settings: String,
    arguments: String,
    environment: String,
}

impl Scorer for Flaky {
    fn init(config: Config) -> Result<Self, Error> {
        let sleep_s: u64 = config.parse_or("init_sleep_s", 0)?;
        if sleep_s > 0 {
            std::thread::sleep(std::time::Duration::from_secs(sleep_s));
        }
        let pairs = |v: &[(String, String)]| v.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";");
        Ok(Flaky {
            calls: 0,
            partial_on_call: config.parse_or("partial_on_call", 0)?,
            stall_on: config.get("stall_on").map(str::to_string),
            wait_for: config.get("wait_for").map(str::to_string),
            settings: pairs(&config.settings),
            // `|` keeps the split visible: `--mode 'a b'` is two arguments.
            arguments: config.arguments.join("|"),
            environment: pairs(&config.environment),
        })
    }

    fn run(&mut self, batch: MiniBatch) -> Result<BatchResult, Error> {
        self.calls += 1;
        if let Some(rows) = batch.rows() {
            if let Some(path) = &self.stall_on
                && let Ok(text) = std::fs::read_to_string(path)
                && let Ok(stall_id) = text.trim().parse::<i64>()
                && let Some(ids) = rows.rows.column("id").and_then(|c| c.s64s())
                && ids.contains(&stall_id)
            {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
            let all: Vec<u32> = (0..rows.rows.num_rows).collect();
            return Ok(BatchResult::from_columns(all, rows.rows.columns.clone(), Vec::new()));
        }
        let files = batch.files();
        // The partial try: rows for the first half, nothing for the rest.
        let answered = if self.calls == self.partial_on_call { files.len() / 2 } else { files.len() };
        let mut out = ResultBuilder::new();
        for (i, file) in files.iter().enumerate().take(answered) {
            let stem = file.name.rsplit('/').next().unwrap_or("").split('.').next().unwrap_or("");
            if stem == "count" {
                count();
            }
            if stem == "wait"
                && let Some(path) = &self.wait_for
            {
                while std::fs::metadata(path).is_err() {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
            if let Some(port) = stem.strip_prefix("net-") {
                let addr = format!("127.0.0.1:{port}");
                if let Err(e) = std::net::TcpStream::connect(&addr) {
                    return Err(Error::msg(format!("cannot connect to {addr}: {e} (kind {:?})", e.kind())));
                }
            }
            let depth = match stem.strip_prefix("deep-") {
                Some(n) => recurse(n.parse().map_err(|e| Error::msg(format!("{}: {e}", file.name)))?),
                None => 0,
            };
            out.row(i)
                .string("name", &file.name)
                .s64("depth", depth)
                .string("settings", &self.settings)
                .string("arguments", &self.arguments)
                .string("environment", &self.environment);
        }
        Ok(out.finish())
    }
}

fn count() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n + 1);
        if n.is_multiple_of(10_000) {
            info!("counted {n}");
        }
    }
}

/// Recursion `n` frames deep with small frames on the wasm stack (nothing in linear memory).
#[inline(never)]
fn recurse(n: i64) -> i64 {
    if std::hint::black_box(n) <= 0 { 0 } else { std::hint::black_box(recurse(n - 1)) + 1 }
}

export_scorer!(Flaky);

fn main() {}
