//! Hardening: hostile scorers aimed at the host's own code (guest text,
//! diagnostics, the `onnx`/`batch`/`log` imports, the log cap, result
//! shapes, host-call copies) and hostile job set-ups (output over input,
//! `--restart` with an output, a FIFO in the input). Each attack fails only
//! its own mini-batch with a named reason or is a typed error; the host
//! never panics, never allocates past its limits, and the job's status
//! tells the truth.

use std::collections::HashMap;
use std::process::Command;

use sluice_job::result::JobStatus;

use crate::helpers::*;

/// A file-mode job of the adversary with one mini-batch per attack file.
fn adversary(files: &[&str]) -> Job {
    let mut job = Job::new(ADVERSARY)
        .set("mini_batch_size", "1")
        .set("retry_settings.max_retries", "0")
        .set("retry_settings.timeout", "30")
        .set("limits.memory_mb", "128");
    for f in files {
        job = job.file(f, "x");
    }
    job
}

/// Every line of every guest log of a job.
fn log_lines(job: &Job) -> Vec<String> {
    let mut lines = Vec::new();
    for e in std::fs::read_dir(job.job_dir().join("logs")).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        lines.extend(text.lines().map(str::to_string));
    }
    lines
}

/// Runs `f` on a thread and fails the test if it does not finish within
/// `secs` (so a host that hangs fails the suite instead of stalling CI).
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs)).unwrap_or_else(|_| panic!("did not finish within {secs} s"))
}

fn file_size(p: std::path::PathBuf) -> u64 {
    std::fs::metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).len()
}

#[test]
fn guest_text_is_cut_on_character_boundaries_and_escaped() {
    let job = adversary(&["bigpanic.txt", "panictext.txt", "hugeerror.txt", "hugeitem.txt", "inject.txt", "ok.txt"])
        .output("csv");
    let result = within(120, move || {
        let r = job.run();
        (job, r)
    });
    let (job, result) = result;
    let records = job.records();

    // A 10,000-byte panic of two-byte characters: no host panic, the text
    // kept up to the bound and a note of how much was cut.
    let r = &records["bigpanic.txt"];
    assert_eq!((r["status"].as_str(), r["reason"].as_str()), ("failed", "TRAP"), "{r:?}");
    assert!(r["message"].starts_with("panicked: éé"), "{}", &r["message"][..40]);
    assert!(r["message"].contains("more bytes cut by the host"));
    assert!(r["message"].len() <= 4096 + 100, "{} bytes", r["message"].len());
    // Panic text reported without a trap, then success.
    assert_eq!(records["panictext.txt"]["status"], "succeeded");
    // A 20 MB run() error and a 1 MB item error are bounded.
    let r = &records["hugeerror.txt"];
    assert_eq!(r["reason"], "USER_ERROR");
    assert!(r["message"].len() <= 4096 + 100, "{} bytes", r["message"].len());
    let errors = std::fs::read_to_string(job.job_dir().join("errors.jsonl")).unwrap();
    let item = errors.lines().find(|l| l.contains("hugeitem.txt")).expect("the item error");
    assert!(item.len() < 1024 + 400, "{} bytes", item.len());
    assert!(item.contains("yyyy") && item.contains("more bytes cut"), "{item}");
    // No file of the job directory carries the floods.
    for f in ["processed_mini_batches.csv", "errors.jsonl", "job_result.json"] {
        assert!(file_size(job.job_dir().join(f)) < 64 * 1024, "{f}");
    }

    // Control characters are escaped: no ESC reaches a file, no newline
    // forges a line.
    let r = &records["inject.txt"];
    assert_eq!(r["reason"], "USER_ERROR");
    assert!(!r["message"].contains('\x1b') && !r["message"].contains('\n'), "{:?}", r["message"]);
    assert!(r["message"].contains("\\u{1b}]0;owned\\u{7}\\njob x: completed"), "{}", r["message"]);
    let lines = log_lines(&job);
    let forged: Vec<&String> = lines.iter().filter(|l| l.contains("forged line")).collect();
    assert_eq!(forged.len(), 1, "{forged:?}");
    assert!(forged[0].contains("line one\\n2026-01-01"), "the guest's newline is escaped: {}", forged[0]);
    assert!(!lines.iter().any(|l| l.starts_with("2026-01-01T00:00:00.000Z")), "a forged line");
    assert!(!lines.iter().any(|l| l.contains('\x1b')));

    assert_eq!(result.status, JobStatus::CompletedWithErrors);
    assert_eq!((result.mini_batches.failed, result.mini_batches.succeeded), (3, 3));
}

#[test]
fn the_run_summary_cannot_be_forged() {
    let job = adversary(&["inject.txt"]);
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"))
        .args(["run", "--quiet", "--scorer", ADVERSARY, "--input"])
        .arg(job.input())
        .arg("--job-dir")
        .arg(job.job_dir())
        .arg("--cache-dir")
        .arg(cache_dir())
        .args(["--max-retries", "0"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stdout.contains('\x1b') && !stderr.contains('\x1b'), "{stdout}{stderr}");
    // The guest's "job x: completed" stays inside the escaped error line.
    assert!(!stdout.lines().any(|l| l.starts_with("job x")), "{stdout}");
    assert!(stdout.contains("\\njob x: completed"), "{stdout}");
}

#[test]
fn a_diagnostic_belongs_to_its_own_call() {
    // One instance for both mini-batches: the first leaves panic text
    // behind and succeeds, the second traps without a panic.
    let job = adversary(&["stale.1.txt", "stale.2.txt", "handledoom.txt"])
        .set("max_concurrency_per_instance", "1")
        .set("limits.memory_mb", "64");
    job.run();
    let records = job.records();
    let (a, b) = (&records["stale.1.txt"], &records["stale.2.txt"]);
    assert_eq!((a["status"].as_str(), b["status"].as_str()), ("succeeded", "failed"), "{a:?} {b:?}");
    assert_eq!(b["reason"], "TRAP");
    assert!(b["message"].contains("unreachable"), "{}", b["message"]);
    assert!(!b["message"].contains("stale text"), "an earlier call's panic text: {}", b["message"]);
    // A refused allocation the guest survived, then a panic: a panic.
    let r = &records["handledoom.txt"];
    assert_eq!(r["reason"], "TRAP", "{r:?}");
    assert!(r["message"].contains("panicked: after a handled allocation failure (refused: true)"), "{r:?}");
}

#[test]
fn root_causes_are_named() {
    let job = adversary(&["exit.txt"]);
    job.run();
    let r = &job.records()["exit.txt"];
    assert_eq!(r["reason"], "TRAP");
    // WASI 0.2 carries only success or failure: exit(3) arrives as 1.
    assert!(r["message"].contains("the scorer exited (exit status 1)"), "{}", r["message"]);
    assert!(!r["message"].contains("error while executing"), "{}", r["message"]);

    let got = attack("handles", |j| j);
    assert_eq!(got.0, "too-large", "{got:?}");
    assert!(got.1.contains("host handles"), "{got:?}");

    let job = attack_job("forge", |j| j);
    let r = job.run();
    assert_eq!(r.mini_batches.failed, 1);
    let e = &r.first_errors[0];
    assert_eq!(e.code.to_string(), "TRAP");
    assert!(e.message.contains("unknown handle index 12345"), "{}", e.message);
}

#[test]
fn the_log_cap_counts_lines_and_is_shared_by_retries() {
    // 2,000,000 log writes take ~20 s in a debug build: a deadline well
    // past that, so a loaded machine does not turn the cap test into a
    // timeout.
    let job = adversary(&["emptylines.txt", "chattyfail.txt"])
        .set("retry_settings.timeout", "300")
        .set("limits.max_log_kb", "16")
        .set("retry_settings.max_retries", "2");
    let result = job.run();
    let records = job.records();
    assert_eq!(records["emptylines.txt"]["status"], "succeeded");
    assert_eq!(records["chattyfail.txt"]["tries"], "3");
    assert_eq!(result.mini_batches.failed, 1);
    let lines = log_lines(&job);
    let cap_lines = 16 * 1024 / sluice_engine::LINE_COST as usize;
    // 2,000,000 empty lines: at most cap / LINE_COST are kept.
    // An empty guest line ends with the space after its tags.
    let empty = lines.iter().filter(|l| l.ends_with(' ')).count();
    let total_bytes: usize = lines.iter().map(String::len).sum();
    assert!(empty <= cap_lines + 1, "{empty} empty lines kept");
    // Three tries of 100,000 lines each share one cap.
    let chatter = lines.iter().filter(|l| l.contains("chatter before failing")).count();
    assert!(chatter > 0 && chatter <= cap_lines, "{chatter} chatter lines kept over 3 tries");
    let notices = lines.iter().filter(|l| l.contains("limits.max_log_kb = 16 KiB")).count();
    assert_eq!(notices, 2, "one notice per mini-batch");
    assert!(total_bytes < 200 * 1024, "{total_bytes} bytes of logs for a 16 KiB cap per mini-batch");
}

#[test]
fn a_result_with_rows_but_no_columns_is_invalid_output() {
    let job = adversary(&["zerocols.txt", "zok.txt"]).output("csv").set("max_concurrency_per_instance", "1");
    let result = job.run();
    let records = job.records();
    let r = &records["zerocols.txt"];
    assert_eq!(r["reason"], "INVALID_OUTPUT");
    assert!(r["message"].contains("1 rows but no columns"), "{}", r["message"]);
    assert_eq!(records["zok.txt"]["status"], "succeeded", "the job's schema was not fixed to no columns");
    assert_eq!(result.mini_batches.succeeded, 1);
    assert_eq!(job.csv_rows(), (vec!["file".to_string()], vec![vec!["zok.txt".to_string()]]));
}

#[test]
fn results_up_to_max_output_mb_pass_above_wasmtime_s_default_copy_budget() {
    // 150 MB back from run(): over wasmtime's default 128 MiB host-call
    // copy budget, under limits.max_output_mb = 200.
    let job = adversary(&["bigok.txt"])
        .set("limits.memory_mb", "512")
        .set("limits.max_output_mb", "200")
        .set("limits.max_tensor_mb", "1");
    let r = job.run();
    assert_eq!(r.mini_batches.succeeded, 1, "{:?}", r.first_errors);

    // Over a small cap, the copy itself is refused and names the limit.
    let job = adversary(&["huge.txt"]).set("limits.max_output_mb", "1").set("limits.max_tensor_mb", "1");
    job.run();
    let r = &job.records()["huge.txt"];
    assert_eq!(r["reason"], "INVALID_OUTPUT", "{r:?}");
    assert!(r["message"].contains("limits.max_output_mb = 1 MiB"), "{}", r["message"]);
}

/// A tabular job of the host-attack guest over the example data and model.
fn attack_job(name: &str, extra: impl FnOnce(Job) -> Job) -> Job {
    let job = Job::tabular(HOST_ATTACK)
        .files_from("examples/tabular/data")
        .model("model", "examples/tabular/model")
        .set("mini_batch_size", "1000 rows")
        .set("retry_settings.max_retries", "0")
        .set("task.config.attack", name);
    extra(job)
}

/// What the host answered one attack: (code, message).
fn attack(name: &str, extra: impl FnOnce(Job) -> Job) -> (String, String) {
    let job = attack_job(name, extra).output("csv");
    let r = job.run();
    assert_eq!(r.mini_batches.failed, 0, "{name}: {:?}", r.first_errors);
    assert_ne!(r.status, JobStatus::Failed, "{name}");
    let (_, rows) = job.csv_rows();
    (rows[0][0].clone(), rows[0][1].clone())
}

#[test]
fn onnx_and_batch_attacks_are_typed_errors_checked_before_allocation() {
    let mut got: HashMap<&str, (String, String)> = HashMap::new();
    for a in ["zero-rows", "dup-inputs", "unknown-inputs", "big-rows", "to-columns-flood", "null-flood"] {
        let started = std::time::Instant::now();
        got.insert(a, attack(a, |j| j));
        // Checks come before work: none of these copies hundreds of MB.
        assert!(started.elapsed().as_secs() < 30, "{a} took {:?}", started.elapsed());
    }
    let expect = |a: &str, code: &str, words: &[&str]| {
        let (c, m) = &got[a];
        assert_eq!(c, code, "{a}: {m}");
        for w in words {
            assert!(m.contains(w), "{a}: `{m}` lacks `{w}`");
        }
    };
    // Zero rows of 30 columns: an empty tensor, never an index panic.
    let (c, _) = &got["zero-rows"];
    assert!(c == "ok" || c == "runtime-failure", "zero-rows: {:?}", got["zero-rows"]);
    expect("dup-inputs", "invalid-input", &["input `input` is given twice"]);
    expect("unknown-inputs", "unknown-name", &["no input `x0`"]);
    expect("big-rows", "too-large", &["limits.max_tensor_mb = 256 MiB"]);
    expect("to-columns-flood", "too-large", &["limits.max_output_mb = 64 MiB"]);
    expect("null-flood", "ok", &["0 null rows"]);
}

#[test]
fn host_memory_under_onnx_attacks_stays_within_its_bound() {
    // Through the CLI, so the peak RSS is the host's own: 8 inputs of 240
    // MB each (from one 8 MB row list) used to be stacked before their
    // names were checked.
    for a in ["dup-inputs", "unknown-inputs", "to-columns-flood", "big-rows"] {
        let job = attack_job(a, |j| j);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"));
        cmd.args(["run", "--quiet", "--tabular", "--scorer", HOST_ATTACK, "--input"])
            .arg(job.input())
            .arg("--model")
            .arg(format!("model={}", repo("examples/tabular/model").display()))
            .args(["--mini-batch-size", "1000 rows", "--config", &format!("attack={a}"), "--job-dir"])
            .arg(job.job_dir())
            .arg("--cache-dir")
            .arg(cache_dir());
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{a}: {}", String::from_utf8_lossy(&out.stderr));
        let peak = job.result_json()["timings"]["peak_rss_mb"].as_f64().unwrap();
        // The documented bound per instance is memory_mb (512) of guest
        // memory + max_tensor_mb (256) + max_output_mb (64) held by the
        // host; these attacks are refused before any of that.
        assert!(peak > 1.0 && peak < 400.0, "{a}: peak RSS {peak:.0} MiB");
    }
}

#[test]
fn a_panic_in_host_code_fails_only_its_mini_batch_as_host_fault() {
    use sluice_io::{LocalOutput, OutputStore};
    /// A store with a bug: staging mini-batch 1 panics.
    struct Buggy(LocalOutput);
    impl OutputStore for Buggy {
        fn stage(&self, index: usize, part: &[u8]) -> std::io::Result<()> {
            assert_ne!(index, 1, "a bug in the output store");
            self.0.stage(index, part)
        }
        fn has_part(&self, part: sluice_io::PartRef<'_>) -> bool {
            self.0.has_part(part)
        }
        fn discard_parts(&self) -> std::io::Result<()> {
            self.0.discard_parts()
        }
        fn assemble(&self, parts: &[sluice_io::PartRef<'_>], header: &[u8]) -> std::io::Result<std::path::PathBuf> {
            self.0.assemble(parts, header)
        }
    }
    let job = adversary(&["a.txt", "b.txt", "c.txt"]).output("csv").set("retry_settings.max_retries", "1");
    let store = Buggy(LocalOutput::new(&job.out_path("csv"), &job.job_dir().join("staged")).unwrap());
    let opts = job.options();
    let r = sluice_runtime::run_job_with_output(&job.spec(), &opts, Some(Box::new(store))).unwrap();
    let records = job.records();
    let b = &records["b.txt"];
    assert_eq!((b["status"].as_str(), b["reason"].as_str(), b["tries"].as_str()), ("failed", "HOST_FAULT", "2"));
    assert!(b["message"].contains("a bug in the output store"), "{}", b["message"]);
    assert!(b["message"].contains("tests/all/hostile.rs:"), "the panic's location: {}", b["message"]);
    assert_eq!((r.mini_batches.succeeded, r.mini_batches.failed, r.mini_batches.not_run), (2, 1, 0));
    assert_eq!(r.status, JobStatus::CompletedWithErrors);

    // With a threshold of 0 the same fault fails the job.
    let job = adversary(&["a.txt", "b.txt", "c.txt"]).output("csv").set("mini_batch_error_threshold", "0");
    let store = Buggy(LocalOutput::new(&job.out_path("csv"), &job.job_dir().join("staged")).unwrap());
    let opts = job.options();
    let r = sluice_runtime::run_job_with_output(&job.spec(), &opts, Some(Box::new(store))).unwrap();
    assert_eq!(r.status, JobStatus::Failed);
}

#[test]
fn the_output_may_not_overwrite_what_the_job_reads() {
    let job = adversary(&["a.csv", "b.txt"]);
    let input_file = job.input().join("a.csv");
    let spec = job.spec();
    for (out, words) in [
        (input_file.clone(), "inside the input"),
        (job.input().join("new.csv"), "inside the input"),
        (std::path::PathBuf::from(ADVERSARY), "the same file as the scorer (task.code)"),
    ] {
        let mut s = spec.clone();
        s.append_row_to = Some(sluice_job::spec::OutputSpec {
            path: out.clone().into(),
            format: sluice_job::spec::OutputFormat::Csv,
        });
        let opts = job.options();
        let e = sluice_runtime::run_job(&s, &opts).unwrap_err().to_string();
        assert!(e.contains(words) && e.contains("task.append_row_to"), "{}: {e}", out.display());
    }
    assert_eq!(std::fs::read_to_string(&input_file).unwrap(), "x", "the input is untouched");
    assert!(!job.job_dir().exists(), "nothing was written");
    // A job directory inside the input folder.
    let opts = sluice_runtime::RunOptions { job_dir: job.input().join("job"), ..job.options() };
    let e = sluice_runtime::run_job(&spec, &opts).unwrap_err().to_string();
    assert!(e.contains("inside the input folder"), "{e}");

    // The CLI says so and exits 1.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"))
        .args(["run", "--quiet", "--scorer", ADVERSARY, "--input"])
        .arg(job.input())
        .arg("--output")
        .arg(&input_file)
        .arg("--job-dir")
        .arg(job.dir.path().join("cli-job"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("inside the input"), "{out:?}");
    assert_eq!(std::fs::read_to_string(&input_file).unwrap(), "x");
}

#[test]
fn restart_with_an_output_starts_over_and_writes_it() {
    let job = adversary(&["a.txt", "b.txt"]).output("csv");
    assert_eq!(job.run().status, JobStatus::Completed);
    let opts = sluice_runtime::RunOptions { restart: true, ..job.options() };
    let r = sluice_runtime::run_job(&job.spec(), &opts).unwrap();
    assert_eq!(r.status, JobStatus::Completed, "{:?}", r.first_errors);
    assert_eq!((r.mini_batches.succeeded, r.mini_batches.resumed), (2, 0), "everything ran again");
    assert_eq!(job.csv_rows().1, vec![vec!["a.txt".to_string()], vec!["b.txt".to_string()]]);
}

#[test]
fn a_fifo_in_the_input_is_an_item_error_and_never_blocks() {
    let job = adversary(&["a.txt"]);
    let fifo = job.input().join("pipe");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    std::os::unix::fs::symlink(&fifo, job.input().join("link-to-pipe")).unwrap();
    let job = within(60, move || {
        job.run();
        job
    });
    let errors = std::fs::read_to_string(job.job_dir().join("errors.jsonl")).unwrap();
    for name in ["\"pipe\"", "\"link-to-pipe\""] {
        let line = errors.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{name}: {errors}"));
        assert!(line.contains("a FIFO") && line.contains("INPUT_ERROR"), "{line}");
    }
}
