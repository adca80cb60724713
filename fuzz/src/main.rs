//! Runs sluice's fuzz targets for a set time on a stable toolchain and reports executions and findings.
//!
//! ```text
//! sluice-fuzz list
//! sluice-fuzz TARGET [--seconds N] [--seed S]     spec | tabular | result
//! sluice-fuzz imports [--seconds N] [--seed S]    the guest-driven import fuzzer
//! sluice-fuzz imports --seed S --isolate N         seeds 0..N of base S, one job each
//! sluice-fuzz replay TARGET FILE...               one saved input at a time
//! ```
//!
//! Findings are saved to `fuzz/crashes/TARGET/` (not replayed by CI; move
//! an input into `fuzz/corpus/TARGET/` once its bug is fixed, so CI keeps
//! it fixed). Exit status: 0 without findings, 1 with, 2 on usage errors,
//! 3 on a hang.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use sluice_fuzz::{fuzz, fuzz_dir, imports, run_one, targets};

/// Set in the environment of a child this binary starts as the sluice CLI
/// (the import fuzzer runs each job in its own process).
const AS_CLI: &str = "SLUICE_FUZZ_AS_CLI";

fn main() -> ExitCode {
    if std::env::var_os(AS_CLI).is_some() {
        return sluice_cli::main();
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str, default: u64| -> Result<u64, String> {
        match args.iter().position(|a| a == name) {
            None => Ok(default),
            Some(i) => args.get(i + 1).and_then(|v| v.parse().ok()).ok_or(format!("{name} needs a number")),
        }
    };
    let (seconds, seed) = match (flag("--seconds", 60), flag("--seed", now_seed())) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return usage(&e),
    };
    let crashes = fuzz_dir().join("crashes");
    match args.first().map(String::as_str) {
        Some("list") => {
            for t in targets() {
                println!("{}", t.name);
            }
            println!("imports");
            ExitCode::SUCCESS
        }
        Some("replay") => {
            let Some(t) = args.get(1).and_then(|n| targets().into_iter().find(|t| t.name == n)) else {
                return usage("replay needs a target name");
            };
            let mut found = false;
            for f in &args[2..] {
                let data = std::fs::read(f).unwrap_or_default();
                match run_one(&t, &data, t.budget) {
                    Ok(d) => println!("{f}: ok in {:.3}s", d.as_secs_f64()),
                    Err(e) => {
                        found = true;
                        println!("{f}: {e}");
                    }
                }
            }
            if found { ExitCode::from(1) } else { ExitCode::SUCCESS }
        }
        Some("imports") => match flag("--isolate", 0) {
            Ok(n) => run_imports(seconds, seed, n, &crashes),
            Err(e) => usage(&e),
        },
        Some(name) => {
            let Some(t) = targets().into_iter().find(|t| t.name == name) else {
                return usage(&format!("unknown target `{name}`"));
            };
            println!("{}: fuzzing for {seconds}s, seed {seed}", t.name);
            let r = fuzz(&t, seconds, seed, &crashes);
            println!(
                "{}: {} executions in {:.1}s ({:.0}/s), slowest input {:.3}s, {} finding(s)",
                t.name,
                r.executions,
                r.elapsed.as_secs_f64(),
                r.executions as f64 / r.elapsed.as_secs_f64().max(1e-9),
                r.slowest.as_secs_f64(),
                r.findings.len()
            );
            for (f, p) in &r.findings {
                println!("  {}: {}", p.display(), first_line(&f.to_string()));
            }
            if r.findings.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        None => usage("no target"),
    }
}

/// Jobs of `SEEDS_PER_JOB` seeds with base seeds `seed, seed + 1, ...`
/// until `seconds` are up; problems are saved per base seed. With
/// `isolate` = N, instead one job per seed `0..N` of base `seed` (fresh
/// instance each: tells which seeds hit a defect on their own).
fn run_imports(seconds: u64, seed: u64, isolate: u64, crashes: &std::path::Path) -> ExitCode {
    const SEEDS_PER_JOB: u64 = 32;
    let repo = fuzz_dir().parent().expect("fuzz/ is in the repository").to_path_buf();
    let guest = imports::guest_path(&repo);
    if !guest.is_file() {
        return usage(&format!(
            "{} is not built: run `cargo build --release --target wasm32-wasip2 -p sluice-test-programs --target-dir target/guests` (scripts/fuzz.sh does)",
            guest.display()
        ));
    }
    let exe = std::env::current_exe().expect("own path");
    let job = |base: u64, first: u64, count: u64, instances: u32| {
        let dir = tempfile::tempdir().expect("temp dir");
        imports::prepare(dir.path(), first, count).expect("input");
        let mut cmd = Command::new(&exe);
        cmd.env(AS_CLI, "1").env("SLUICE_CACHE_DIR", repo.join("target/sluice-test-cache"));
        cmd.args(imports::args(dir.path(), &guest, base, &repo, instances));
        let o = imports::run_child(cmd).expect("run the job");
        imports::check(dir.path(), count, &o)
    };
    if isolate > 0 {
        let mut failing = Vec::new();
        for k in 0..isolate {
            let bad = job(seed, k, 1, 1);
            if !bad.is_empty() {
                println!("  seed {k}: {}", bad.iter().map(|b| first_line(b)).collect::<Vec<_>>().join(" | "));
                failing.push(k);
            }
        }
        println!("imports: base seed {seed}, {isolate} seeds one job each: failing seeds {failing:?}");
        return if failing.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) };
    }
    let start = Instant::now();
    let (mut jobs, mut batches, mut findings) = (0u64, 0u64, 0u64);
    let mut base = seed;
    println!("imports: fuzzing for {seconds}s, base seed {seed}, {SEEDS_PER_JOB} seeds per job");
    while start.elapsed() < Duration::from_secs(seconds) {
        let bad = job(base, 0, SEEDS_PER_JOB, 2);
        jobs += 1;
        batches += SEEDS_PER_JOB;
        if !bad.is_empty() {
            findings += 1;
            let d = crashes.join("imports");
            let _ = std::fs::create_dir_all(&d);
            let p = d.join(format!("base-seed-{base}.txt"));
            let text = format!("task.config.seed={base}, seeds 0..{SEEDS_PER_JOB}\n{}\n", bad.join("\n"));
            let _ = std::fs::write(&p, &text);
            println!("  base seed {base}: {} problem(s), saved to {}", bad.len(), p.display());
            for b in bad.iter().take(3) {
                println!("    {}", first_line(b));
            }
        }
        base = base.wrapping_add(1);
    }
    println!(
        "imports: {jobs} jobs, {batches} mini-batches (seeds) in {:.1}s, {findings} job(s) with findings",
        start.elapsed().as_secs_f64()
    );
    if findings == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(300).collect()
}

fn now_seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64)
}

fn usage(msg: &str) -> ExitCode {
    eprintln!(
        "sluice-fuzz: {msg}\nusage: sluice-fuzz list | TARGET [--seconds N] [--seed S] | imports [--seconds N] [--seed S] [--isolate N] | replay TARGET FILE..."
    );
    ExitCode::from(2)
}
