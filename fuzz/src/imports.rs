//! The guest-driven fuzzer of the host imports: a job of the `import_fuzz`
//! guest (tests/programs/src/bin/import_fuzz.rs) over a small CSV, one
//! mini-batch per seed, run by the real CLI in a child process, and the
//! checks on what the job reports.
//!
//! A child process, so that a host panic or abort is seen as such and its
//! peak memory (`VmHWM`) is the job's alone, not that of other tests
//! sharing the test binary.
//!
//! Checks ([`check`]): the host never panics (no "panicked at" on stderr,
//! exit code 0 or 1); every mini-batch ran and ended `succeeded` or
//! `failed` with a reason code and a message under [`MAX_MESSAGE`] bytes;
//! `job_result.json` agrees with `processed_mini_batches.csv` (never
//! `completed` with a failed or unrun mini-batch); the child's peak RSS is
//! under [`MAX_RSS`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Rows per mini-batch (and per seed). Enough for row lists to matter.
pub const ROWS_PER_SEED: u64 = 4;
/// Longest failure message accepted in reports: the host cuts panic text
/// at 4 KiB; 8 KiB leaves room for its prefix and location.
pub const MAX_MESSAGE: usize = 8 << 10;
/// Peak RSS of the whole job process. A job of two 512 MiB-capped
/// instances over a few kB of input, with `limits.max_tensor_mb = 4`,
/// needs a few hundred MiB; far more means a request made the host
/// allocate without a bound (e.g. 200 column-source inputs of 4 MiB).
pub const MAX_RSS: u64 = 1536 << 20;

/// Writes `DIR/in/data.csv`: columns `seed`, `f0`..`f29` (f64, a null in
/// some rows), `t` (text) and `b` (bool), [`ROWS_PER_SEED`] rows per seed,
/// seeds `first..first + count`.
pub fn prepare(dir: &Path, first: u64, count: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("in"))?;
    let mut s = String::from("seed");
    for i in 0..30 {
        s.push_str(&format!(",f{i}"));
    }
    s.push_str(",t,b\n");
    for seed in first..first + count {
        for r in 0..ROWS_PER_SEED {
            s.push_str(&seed.to_string());
            for i in 0..30 {
                if seed % 5 == 0 && r == 1 && i == 3 {
                    s.push(',');
                } else {
                    s.push_str(&format!(",{}.{}", i + r as usize, seed % 10));
                }
            }
            s.push_str(&format!(",row {r} of {seed},{}\n", r % 2 == 0));
        }
    }
    std::fs::write(dir.join("in/data.csv"), s)
}

/// `run` arguments for the job in `dir`: `base` is `task.config.seed`;
/// models are granted from the repository at `repo`; `instances` sandboxed
/// instances run at once (1 makes the job deterministic: an instance keeps
/// handles and `deliver-columns` from one mini-batch to the next).
pub fn args(dir: &Path, guest: &Path, base: u64, repo: &Path, instances: u32) -> Vec<String> {
    let d = |p: &str| dir.join(p).display().to_string();
    let r = |p: &str| repo.join(p).display().to_string();
    let sets = [
        ("inputs.data.type", "mltable".to_string()),
        ("inputs.data.path", d("in")),
        ("input_data", "${{inputs.data}}".to_string()),
        ("task.code", guest.display().to_string()),
        ("task.config.seed", base.to_string()),
        ("task.append_row_to", d("out.jsonl")),
        ("inputs.model.type", "mlflow_model".to_string()),
        ("inputs.model.path", r("examples/tabular/model")),
        ("inputs.pairs.type", "custom_model".to_string()),
        ("inputs.pairs.path", r("host/onnx/tests/fixtures/pairs.onnx")),
        ("inputs.int_plus.type", "custom_model".to_string()),
        ("inputs.int_plus.path", r("host/onnx/tests/fixtures/int_plus.onnx")),
        ("inputs.double_sum.type", "custom_model".to_string()),
        ("inputs.double_sum.path", r("host/onnx/tests/fixtures/double_sum.onnx")),
        ("mini_batch_size", format!("{ROWS_PER_SEED} rows")),
        ("max_concurrency_per_instance", instances.to_string()),
        ("retry_settings.max_retries", "0".to_string()),
        ("retry_settings.timeout", "60".to_string()),
        ("error_threshold", "-1".to_string()),
        ("mini_batch_error_threshold", "-1".to_string()),
        ("limits.max_tensor_mb", "4".to_string()),
        ("limits.max_log_kb", "64".to_string()),
    ];
    let mut a = vec!["run".to_string(), "-q".to_string(), "--job-dir".to_string(), d("job")];
    for (k, v) in sets {
        a.push("--set".into());
        a.push(format!("{k}={v}"));
    }
    a
}

/// How the child process ended.
#[derive(Debug)]
pub struct Outcome {
    pub code: Option<i32>,
    pub stderr: String,
    /// Peak resident memory, when /proc could be read.
    pub peak_rss: Option<u64>,
}

/// Runs `cmd` to the end, sampling its peak RSS (`VmHWM`, which only
/// grows, so the last sample before exit is close to the true peak).
pub fn run_child(mut cmd: Command) -> std::io::Result<Outcome> {
    // Panic messages without backtraces: the test's environment may ask
    // for them, and they would bury the messages.
    let mut child = cmd.env("RUST_BACKTRACE", "0").stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    let status_file = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = std::io::Read::read_to_end(&mut stderr, &mut s);
        s
    });
    let mut peak = None;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break st;
        }
        if let Ok(s) = std::fs::read_to_string(&status_file)
            && let Some(kb) = s.lines().find_map(|l| l.strip_prefix("VmHWM:"))
            && let Ok(kb) = kb.trim().trim_end_matches("kB").trim().parse::<u64>()
        {
            peak = Some(peak.unwrap_or(0).max(kb * 1024));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = String::from_utf8_lossy(&reader.join().unwrap_or_default()).into_owned();
    Ok(Outcome { code: status.code(), stderr, peak_rss: peak })
}

/// Everything wrong with the job in `dir` of `seeds` seeds, as sentences.
pub fn check(dir: &Path, seeds: u64, o: &Outcome) -> Vec<String> {
    let mut bad = Vec::new();
    // Rust's panic line: "thread 'NAME' (ID) panicked at FILE:LINE:COL:",
    // then the message on the next line.
    let lines: Vec<&str> = o.stderr.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.starts_with("thread '") && l.contains(" panicked at ") {
            let msg = lines.get(i + 1).copied().unwrap_or("");
            bad.push(format!("the host panicked: {l} {}", msg.chars().take(300).collect::<String>()));
        }
    }
    match o.code {
        Some(0 | 1) => {}
        other => bad.push(format!("the CLI exited with {other:?} (killed or usage error)")),
    }
    if let Some(rss) = o.peak_rss
        && rss > MAX_RSS
    {
        bad.push(format!("peak RSS {} MiB, over {} MiB", rss >> 20, MAX_RSS >> 20));
    }
    let job = dir.join("job");
    let records = match csv::Reader::from_path(job.join("processed_mini_batches.csv")) {
        Ok(mut r) => {
            let h = r.headers().cloned().unwrap_or_default();
            let col = |name: &str| h.iter().position(|x| x == name);
            let (Some(status), Some(reason), Some(message), Some(index)) =
                (col("status"), col("reason"), col("message"), col("index"))
            else {
                bad.push(format!("processed_mini_batches.csv has header {h:?}"));
                return bad;
            };
            r.records()
                .filter_map(Result::ok)
                .map(|rec| {
                    (rec[index].to_string(), rec[status].to_string(), rec[reason].to_string(), rec[message].to_string())
                })
                .collect::<Vec<_>>()
        }
        Err(e) => {
            bad.push(format!("no processed_mini_batches.csv: {e}; stderr: {}", tail(&o.stderr)));
            return bad;
        }
    };
    if records.len() as u64 != seeds {
        bad.push(format!("{} mini-batches reported for {seeds} seeds", records.len()));
    }
    let codes = ["TIMEOUT", "OOM", "TRAP", "USER_ERROR", "INVALID_OUTPUT"];
    let (mut failed, mut not_run) = (0u64, 0u64);
    for (index, status, reason, message) in &records {
        match status.as_str() {
            "succeeded" => {}
            "failed" => {
                failed += 1;
                if !codes.contains(&reason.as_str()) {
                    bad.push(format!("mini-batch {index} failed with reason `{reason}`"));
                }
                // Empty only when it is the scorer's own (empty) error text.
                if (message.is_empty() && reason != "USER_ERROR") || message.len() > MAX_MESSAGE {
                    bad.push(format!("mini-batch {index} failed ({reason}) with a message of {} bytes", message.len()));
                }
            }
            "not_run" => {
                not_run += 1;
                bad.push(format!("mini-batch {index} was not run (no threshold can stop this job)"));
            }
            other => bad.push(format!("mini-batch {index} has status `{other}`")),
        }
    }
    match std::fs::read(job.join("job_result.json")).map(|b| serde_json::from_slice::<serde_json::Value>(&b)) {
        Ok(Ok(j)) => {
            let status = j["status"].as_str().unwrap_or("?");
            let n = |k: &str| j["mini_batches"][k].as_u64().unwrap_or(u64::MAX);
            if status == "completed" && failed > 0 {
                bad.push(format!("job status `completed` with {failed} failed mini-batches"));
            }
            if status.starts_with("completed") && not_run > 0 {
                bad.push(format!("job status `{status}` with {not_run} mini-batches never run"));
            }
            if status == "failed" {
                bad.push(format!("job status `failed` ({}) though no threshold applies", j["reason"]));
            }
            if n("failed") != failed || n("not_run") != not_run || n("total") != records.len() as u64 {
                bad.push(format!(
                    "job_result.json counts {} failed, {} not run of {}; processed_mini_batches.csv {failed}, {not_run} of {}",
                    n("failed"),
                    n("not_run"),
                    n("total"),
                    records.len()
                ));
            }
        }
        other => bad.push(format!("job_result.json unreadable: {other:?}")),
    }
    bad
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// The built guest: `SLUICE_GUEST_IMPORT_FUZZ`, else where tests/build.rs
/// puts it.
pub fn guest_path(repo: &Path) -> PathBuf {
    std::env::var_os("SLUICE_GUEST_IMPORT_FUZZ")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target/guests/wasm32-wasip2/release/import_fuzz.wasm"))
}
