//! The host imports under a guest that calls them with arbitrary arguments: one tabular job, a mini-batch per seed, checked for host panics, unreported or unbounded failures, an inconsistent job status and unbounded host memory.
//!
//! The guest is tests/programs/src/bin/import_fuzz.rs; the job and the
//! checks are in fuzz/src/imports.rs (shared with `sluice-fuzz imports`,
//! which runs more seeds for a set time). The job runs in a child process
//! (the test CLI) so a host panic shows as one and the peak RSS is the
//! job's own.
//!
//! It found the host panics of `log.panicked` on long non-ASCII text and
//! of zero-row column sources, the `completed` status after them, and
//! duplicate inputs stacked before any check (fuzz/crashes/imports/); all
//! are fixed, and every seed here must now pass.

use std::process::Command;

use sluice_fuzz::imports;

use crate::helpers::*;

/// Mini-batches (seeds) in the job: enough to reach every import many
/// times, few enough for seconds of run time.
const SEEDS: u64 = 48;

#[test]
fn arbitrary_import_calls_never_break_the_host() {
    let dir = tempfile::tempdir().unwrap();
    imports::prepare(dir.path(), 0, SEEDS).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"));
    cmd.env("SLUICE_CACHE_DIR", cache_dir());
    // One instance: the same mini-batches meet the same instance state on
    // every run, so a failure reproduces.
    cmd.args(imports::args(dir.path(), std::path::Path::new(IMPORT_FUZZ), 1, &repo(""), 1));
    let outcome = imports::run_child(cmd).unwrap();
    let bad = imports::check(dir.path(), SEEDS, &outcome);
    assert!(bad.is_empty(), "{} problem(s):\n{}", bad.len(), bad.join("\n"));
    // The guest reached both ends: mini-batches that succeeded and ones
    // that failed (its errors, panics and broken results).
    let mut r = csv::Reader::from_path(dir.path().join("job/processed_mini_batches.csv")).unwrap();
    let status = r.headers().unwrap().iter().position(|h| h == "status").unwrap();
    let statuses: Vec<String> = r.records().map(|x| x.unwrap()[status].to_string()).collect();
    let ok = statuses.iter().filter(|s| *s == "succeeded").count();
    assert!(ok >= 10 && statuses.len() - ok >= 5, "{ok} of {} succeeded", statuses.len());
}
