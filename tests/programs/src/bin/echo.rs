//! Shows a well-behaved scorer for the contract tests: one row per file (name, size, first line); files whose text contains "bad" are item errors, "fail" fails the mini-batch, `task.config.crash_on_call = N` panics on an instance's N-th run() call, and `task.config.sleep_ms = N` makes every run() take N ms longer (a WASI sleep: slow mini-batches for the cluster tests).

use sluice_sdk::{BatchResult, Config, Error, MiniBatch, ResultBuilder, Scorer, export_scorer};

struct Echo {
    calls: u32,
    crash_on_call: u32,
    sleep_ms: u64,
    greeting: String,
}

impl Scorer for Echo {
    fn init(config: Config) -> Result<Self, Error> {
        Ok(Echo {
            calls: 0,
            crash_on_call: config.parse_or("crash_on_call", 0)?,
            sleep_ms: config.parse_or("sleep_ms", 0)?,
            greeting: config.get("greeting").unwrap_or("").to_string(),
        })
    }

    fn run(&mut self, batch: MiniBatch) -> Result<BatchResult, Error> {
        self.calls += 1;
        if self.calls == self.crash_on_call {
            panic!("crash on call {} (mini-batch {})", self.calls, batch.id);
        }
        if self.sleep_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(self.sleep_ms));
        }
        let mut out = ResultBuilder::new();
        for (i, file) in batch.files().iter().enumerate() {
            let text = String::from_utf8_lossy(&file.data);
            if text.contains("fail") {
                return Err(Error::msg(format!("{} asked to fail", file.name)));
            }
            if text.contains("bad") {
                out.error(i, format!("{} is bad", file.name));
                continue;
            }
            let mut row = out.row(i).string("name", &file.name).s64("size", file.data.len() as i64);
            row = row.string("first_line", text.lines().next().unwrap_or(""));
            if !self.greeting.is_empty() {
                row.string("greeting", &self.greeting);
            }
        }
        Ok(out.finish())
    }
}

export_scorer!(Echo);

fn main() {}
