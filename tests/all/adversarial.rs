//! Hostile scorers: each attack fails its own mini-batch with the right
//! reason code, the others complete, and the host lives on.

use sluice_job::result::JobStatus;

use crate::helpers::*;

#[test]
fn every_attack_fails_only_its_own_mini_batch() {
    let mut job = Job::new(ADVERSARY);
    for name in
        ["loop", "oom", "recurse", "panic", "trap", "huge", "escape", "fewer", "sleep", "usererror", "chatty", "ok"]
    {
        job = job.file(&format!("{name}.txt"), name);
    }
    let job = job
        .output("csv")
        .set("mini_batch_size", "1")
        .set("retry_settings.max_retries", "0")
        .set("retry_settings.timeout", "2")
        .set("limits.fuel", "300000000")
        .set("limits.max_output_mb", "1")
        .set("limits.memory_mb", "64")
        .set("limits.max_log_kb", "16");
    let result = job.run();
    let records = job.records();
    let expect = [
        ("loop.txt", "TIMEOUT", "fuel"),
        ("oom.txt", "OOM", "limits.memory_mb"),
        ("recurse.txt", "TRAP", "stack overflow"),
        ("panic.txt", "TRAP", "panicked: scorer bug on panic.txt"),
        ("trap.txt", "TRAP", "unreachable"),
        ("huge.txt", "INVALID_OUTPUT", "limits.max_output_mb"),
        ("escape.txt", "USER_ERROR", "cannot read /etc/passwd"),
        ("fewer.txt", "INVALID_OUTPUT", "unaccounted"),
        ("sleep.txt", "TIMEOUT", "wall clock"),
        ("usererror.txt", "USER_ERROR", "cannot score usererror.txt"),
    ];
    for (file, code, detail) in expect {
        let r = &records[file];
        assert_eq!(r["status"], "failed", "{file}: {r:?}");
        assert_eq!(r["reason"], code, "{file}: {r:?}");
        assert!(r["message"].contains(detail), "{file}: `{}` lacks `{detail}`", r["message"]);
    }
    for file in ["ok.txt", "chatty.txt"] {
        assert_eq!(records[file]["status"], "succeeded", "{file}: {:?}", records[file]);
    }
    assert_eq!(result.status, JobStatus::CompletedWithErrors);
    assert_eq!((result.mini_batches.failed, result.mini_batches.succeeded), (10, 2));
    let (_, rows) = job.csv_rows();
    assert_eq!(rows, vec![vec!["chatty.txt".to_string()], vec!["ok.txt".to_string()]]);

    // The chatty guest was cut off at the log cap, with one notice.
    let chatty = format!("instance-{}.log", records["chatty.txt"]["instance"]);
    let log = std::fs::read_to_string(job.job_dir().join("logs").join(chatty)).unwrap();
    assert!(log.contains("chatter line 0"));
    assert!(log.contains("limits.max_log_kb = 16 KiB"));
    // The cap counts each line's text plus LINE_COST bytes for the tags
    // the host adds (16 KiB of 14-19-byte lines: ~200 lines), so a flood
    // of short lines is capped as surely as a few long ones.
    let kept = log.matches("chatter line").count();
    let cost = sluice_engine::LINE_COST as usize;
    assert!((16 * 1024 / (19 + cost)..=16 * 1024 / (14 + cost)).contains(&kept), "{kept} of 20000 chatty lines kept");

    // The host is fine: the same process runs a clean job afterwards.
    let again = Job::new(ADVERSARY).file("ok.txt", "ok").output("csv").run();
    assert_eq!(again.status, JobStatus::Completed);
}

#[test]
fn a_trap_in_init_fails_each_try_with_its_reason() {
    let job = Job::new(ADVERSARY)
        .file("a.txt", "a")
        .file("b.txt", "b")
        .set("task.config.init", "panic")
        .set("mini_batch_size", "1")
        .set("retry_settings.max_retries", "1");
    let result = job.run();
    assert_eq!(result.mini_batches.failed, 2);
    assert_eq!(result.mini_batches.tries, 4, "each mini-batch gets max_retries + 1 tries");
    let r = &job.records()["a.txt"];
    assert_eq!(r["reason"], "TRAP");
    assert!(r["message"].starts_with("init: panicked: init refuses to start"), "{}", r["message"]);

    let job =
        Job::new(ADVERSARY).file("a.txt", "a").set("task.config.init", "trap").set("retry_settings.max_retries", "0");
    job.run();
    assert!(job.records()["a.txt"]["message"].contains("init: wasm trap"), "{:?}", job.records());

    let job =
        Job::new(ADVERSARY).file("a.txt", "a").set("task.config.init", "error").set("retry_settings.max_retries", "0");
    job.run();
    let r = &job.records()["a.txt"];
    assert_eq!((r["reason"].as_str(), r["message"].as_str()), ("USER_ERROR", "init: bad configuration: init says no"));
}
