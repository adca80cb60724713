//! Fuel and wall-clock deadlines, in the guest and in host calls, in
//! `run()` and in `init()`. Every job here ends only because a deadline
//! works, so each runs under a watchdog: a broken deadline fails the test
//! instead of hanging it.

use std::collections::BTreeMap;
use std::time::Instant;

use crate::helpers::*;

/// The last `counted N` each mini-batch logged before fuel stopped it.
fn last_counts(job: &Job) -> Vec<u64> {
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for e in std::fs::read_dir(job.job_dir().join("logs")).unwrap() {
        for line in std::fs::read_to_string(e.unwrap().path()).unwrap().lines() {
            let Some(n) = line.split("counted ").nth(1) else { continue };
            let mb = line.split("mini_batch=").nth(1).unwrap().split_whitespace().next().unwrap().to_string();
            let n: u64 = n.trim().parse().unwrap();
            let e = last.entry(mb).or_default();
            *e = (*e).max(n);
        }
    }
    last.into_values().collect()
}

#[test]
fn fuel_stops_a_computing_guest_deterministically() {
    // The guest counts, logging every 10,000, until fuel stops it: the last
    // count is where it stopped. Same fuel, same point, whether it ran
    // alone or beside another instance doing the same (a wall-clock budget
    // would give different counts); twice the fuel counts about twice as
    // far, so it is fuel, not something else, that stops it.
    let count = |files: &[&str], fuel: &str| {
        let mut job = Job::new(FLAKY)
            .set("limits.fuel", fuel)
            .set("mini_batch_size", "1")
            .set("retry_settings.max_retries", "0")
            .set("retry_settings.timeout", "60");
        for f in files {
            job = job.file(f, "");
        }
        let r = job.run_within(60);
        assert_eq!(r.mini_batches.failed, files.len() as u64);
        for rec in job.records().values() {
            assert_eq!(rec["reason"], "TIMEOUT");
            assert!(rec["message"].contains("ran out of fuel (limits.fuel)"), "{}", rec["message"]);
        }
        last_counts(&job)
    };
    let alone = count(&["count.txt"], "20000000");
    assert_eq!(alone.len(), 1);
    assert!(alone[0] >= 100_000, "fuel 2e7 counted only {alone:?}");
    let side_by_side = count(&["count.txt", "count2/count.txt"], "20000000");
    assert_eq!(side_by_side, [alone[0], alone[0]], "same fuel, same stopping point");
    let double = count(&["count.txt"], "40000000")[0];
    let ratio = double as f64 / alone[0] as f64;
    assert!((1.8..2.2).contains(&ratio), "twice the fuel counted {double} against {}", alone[0]);
}

#[test]
fn wall_clock_deadline_stops_a_computing_guest() {
    let start = Instant::now();
    let job = Job::new(ADVERSARY)
        .file("loop.txt", "")
        .set("limits.fuel", "9000000000000000000")
        .set("retry_settings.timeout", "1")
        .set("retry_settings.max_retries", "0");
    job.run_within(30);
    let r = &job.records()["loop.txt"];
    assert_eq!(r["reason"], "TIMEOUT");
    assert!(r["message"].contains("wall clock"), "{}", r["message"]);
    assert!(start.elapsed().as_secs() < 30);
}

#[test]
fn wall_clock_deadline_stops_a_guest_blocked_in_a_host_call() {
    let job = Job::new(ADVERSARY)
        .file("sleep.txt", "")
        .set("retry_settings.timeout", "1")
        .set("retry_settings.max_retries", "1");
    let result = job.run_within(30);
    let r = &job.records()["sleep.txt"];
    assert_eq!(r["reason"], "TIMEOUT");
    assert_eq!(r["tries"], "2");
    assert!(r["message"].contains("exceeded retry_settings.timeout = 1s"), "{}", r["message"]);
    let secs: f64 = r["duration_s"].parse().unwrap();
    assert!(secs < 10.0, "two 1s tries took {secs}s");
    assert_eq!(result.items.failed, 1);
}

#[test]
fn init_has_a_deadline_too() {
    // With fuel out of reach, only the wall-clock deadline can stop init():
    // once computing (epoch interruption), once blocked in a host call.
    for (guest, key, value) in [(ADVERSARY, "task.config.init", "loop"), (FLAKY, "task.config.init_sleep_s", "3600")] {
        let job = Job::new(guest)
            .file("a.txt", "")
            .set(key, value)
            .set("limits.fuel", "9000000000000000000")
            .set("retry_settings.timeout", "1")
            .set("retry_settings.max_retries", "0");
        let started = Instant::now();
        job.run_within(30);
        let r = &job.records()["a.txt"];
        assert_eq!(r["reason"], "TIMEOUT", "{value}: {r:?}");
        assert!(r["message"].starts_with("init: "), "{}", r["message"]);
        assert!(r["message"].contains("wall clock"), "{value}: {}", r["message"]);
        assert!(started.elapsed().as_secs() < 15, "{value}: a 1s init deadline took {:?}", started.elapsed());
    }
}
