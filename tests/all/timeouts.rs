//! Fuel and wall-clock deadlines, in the guest and in host calls.

use std::time::Instant;

use crate::helpers::*;

#[test]
fn fuel_stops_a_computing_guest_deterministically() {
    for _ in 0..2 {
        let job = Job::new(ADVERSARY)
            .file("loop.txt", "")
            .set("limits.fuel", "10000000")
            .set("retry_settings.max_retries", "0");
        job.run();
        let r = &job.records()["loop.txt"];
        assert_eq!(r["reason"], "TIMEOUT");
        assert!(r["message"].contains("ran out of fuel (limits.fuel)"), "{}", r["message"]);
    }
}

#[test]
fn wall_clock_deadline_stops_a_computing_guest() {
    let start = Instant::now();
    let job = Job::new(ADVERSARY)
        .file("loop.txt", "")
        .set("limits.fuel", "9000000000000000000")
        .set("retry_settings.timeout", "1")
        .set("retry_settings.max_retries", "0");
    job.run();
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
    let result = job.run();
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
    let job = Job::new(ADVERSARY)
        .file("a.txt", "")
        .set("task.config.init", "loop")
        .set("limits.fuel", "10000000")
        .set("retry_settings.max_retries", "0");
    job.run();
    let r = &job.records()["a.txt"];
    assert_eq!(r["reason"], "TIMEOUT");
    assert!(r["message"].starts_with("init: "), "{}", r["message"]);
}
