//! Fuzz targets for sluice's parsers and checkers, and a stable-toolchain
//! runner for them.
//!
//! A target is a plain function over bytes ([`Target::run`]): it decodes
//! the bytes into an input (with [`arbitrary`] where structure helps),
//! drives the code under test and returns `Err` when a property fails; a
//! panic is a finding too. The runner ([`fuzz`]) feeds it random bytes and
//! mutations of the saved corpus (`fuzz/corpus/TARGET/`) for a set time,
//! counting executions and saving each failing input to `fuzz/crashes/`.
//! `tests/replay.rs` replays the corpus under `cargo test`.
//!
//! cargo-fuzz is not used: it needs a nightly toolchain, and this project's
//! machines have one stable toolchain and cannot fetch another. Without
//! coverage feedback the runner finds less than libFuzzer would, so the
//! targets build structured inputs from the bytes (valid-looking specs,
//! tables, results) rather than rely on mutation to discover formats.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub mod imports;
pub mod targets;

/// One fuzz target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    /// Runs one input: `Err` names the property that failed.
    pub run: fn(&[u8]) -> Result<(), String>,
    /// An input slower than this is a finding (`slow`): the code under test
    /// must refuse bad input quickly, not just eventually.
    pub budget: Duration,
    /// Longest random input the runner generates.
    pub max_len: usize,
}

/// Every target the runner knows, by name.
pub fn targets() -> Vec<Target> {
    vec![
        Target { name: "spec", run: targets::spec::run, budget: Duration::from_secs(1), max_len: 4096 },
        Target { name: "tabular", run: targets::tabular::run, budget: Duration::from_secs(2), max_len: 8192 },
        Target { name: "result", run: targets::result::run, budget: Duration::from_secs(1), max_len: 4096 },
    ]
}

/// The repository's `fuzz/` folder.
pub fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// splitmix64: small, seedable and the same everywhere, so a run can be
/// repeated from its seed.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next_u64() % n as u64) as usize }
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// What went wrong with one input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Panic(String),
    Property(String),
    Slow(Duration),
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Panic(m) => write!(f, "panic: {m}"),
            Finding::Property(m) => write!(f, "property failed: {m}"),
            Finding::Slow(d) => write!(f, "slow: {:.2}s", d.as_secs_f64()),
        }
    }
}

/// Runs one input, catching panics and timing it against `budget`.
pub fn run_one(target: &Target, input: &[u8], budget: Duration) -> Result<Duration, Finding> {
    let start = Instant::now();
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    let took = start.elapsed();
    match r {
        Err(p) => {
            let m = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            Err(Finding::Panic(m))
        }
        Ok(Err(m)) => Err(Finding::Property(m)),
        Ok(Ok(())) if took > budget => Err(Finding::Slow(took)),
        Ok(Ok(())) => Ok(took),
    }
}

/// The files of `fuzz/corpus/TARGET/`, sorted.
pub fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// A random change to `data`, libFuzzer-style: flip, insert, delete,
/// duplicate or repeat a slice (repetition is what reaches deep nesting and
/// huge inputs), or splice in another corpus entry.
pub fn mutate(rng: &mut Rng, data: &[u8], other: Option<&[u8]>, max_len: usize) -> Vec<u8> {
    let mut d = data.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = d.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let b = rng.bytes(n);
                d.splice(i..i, b);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(16));
                d.drain(i..i + n);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                let chunk = d[i..i + n].to_vec();
                let at = rng.below(len + 1);
                d.splice(at..at, chunk);
            }
            4 if len > 0 => {
                // A slice repeated many times.
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(4));
                // Now and then tens of thousands: deep nesting is slow to
                // refuse only past ~10,000 levels.
                let most = if rng.below(10) == 0 { 50_000 } else { 2000 };
                let times = 1 + rng.below(most);
                let chunk = d[i..i + n].repeat(times);
                d.splice(i..i, chunk);
            }
            5 if len > 0 => {
                let i = rng.below(len);
                d[i] = [b'\n', b'"', b',', b'{', b'[', b':', b'-', b'0', b'\r', 0][rng.below(10)];
            }
            6 => {
                if let Some(o) = other.filter(|o| !o.is_empty()) {
                    let i = rng.below(o.len());
                    let n = 1 + rng.below(o.len() - i);
                    let at = rng.below(len + 1);
                    d.splice(at..at, o[i..i + n].iter().copied());
                }
            }
            _ => {
                if len > 1 {
                    d.truncate(rng.below(len));
                }
            }
        }
    }
    // Repetition may grow past the usual cap: keep up to 64x it.
    d.truncate((max_len * 64).max(256 << 10));
    d
}

/// What [`fuzz`] did.
#[derive(Debug, Default)]
pub struct Report {
    pub executions: u64,
    pub elapsed: Duration,
    /// The slowest input, and how long it took.
    pub slowest: Duration,
    /// Each distinct finding, with the file its input was saved to.
    pub findings: Vec<(Finding, PathBuf)>,
}

/// Feeds `target` for `seconds`: first every corpus file, then (half and
/// half) random bytes and mutations of corpus entries. Each failing input
/// is saved under `out/TARGET/` (at most one per distinct message kind, so
/// one bug does not fill the disk).
///
/// An input still running after [`hang_limit`] is saved as a hang and the
/// process exits with status 3: a thread cannot be stopped from outside,
/// and a hang would otherwise eat the rest of the run.
pub fn fuzz(target: &Target, seconds: u64, seed: u64, out: &Path) -> Report {
    type Current = std::sync::Mutex<Option<(Instant, Vec<u8>)>>;
    let current: std::sync::Arc<Current> = std::sync::Arc::default();
    let watched = current.clone();
    let (name, hang, out_dir) = (target.name, hang_limit(target), out.to_path_buf());
    let executions = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = executions.clone();
    let started = Instant::now();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let guard = watched.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((start, input)) = guard.as_ref()
                && start.elapsed() > hang
            {
                let p = save(&out_dir, name, input);
                eprintln!("{name}: hang: an input ran over {}s; saved to {}", hang.as_secs(), p.display());
                println!(
                    "{name}: {} executions in {:.1}s, stopped by a hang (1 finding at least)",
                    counted.load(std::sync::atomic::Ordering::Relaxed),
                    started.elapsed().as_secs_f64()
                );
                std::process::exit(3);
            }
        }
    });
    let mut rng = Rng(seed);
    // `known-*` files reproduce reported defects: replayed by the test, not
    // fuzzed from (their mutations would only find the same defect again).
    let corpus: Vec<Vec<u8>> = corpus(target.name)
        .iter()
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("known-")))
        .filter_map(|p| std::fs::read(p).ok())
        .collect();
    let start = Instant::now();
    let deadline = Duration::from_secs(seconds);
    let mut report = Report::default();
    let mut seen = std::collections::HashSet::new();
    // The panic hook would print every caught panic: say it once per kind.
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut i = 0usize;
    while start.elapsed() < deadline {
        let input = if i < corpus.len() {
            corpus[i].clone()
        } else if corpus.is_empty() || rng.below(2) == 0 {
            let n = rng.below(target.max_len + 1);
            rng.bytes(n)
        } else {
            let a = &corpus[rng.below(corpus.len())];
            let b = &corpus[rng.below(corpus.len())];
            mutate(&mut rng, a, Some(b), target.max_len)
        };
        i += 1;
        report.executions += 1;
        executions.store(report.executions, std::sync::atomic::Ordering::Relaxed);
        *current.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), input.clone()));
        let r = run_one(target, &input, target.budget);
        *current.lock().unwrap_or_else(|e| e.into_inner()) = None;
        match r {
            Ok(took) => report.slowest = report.slowest.max(took),
            Err(f) => {
                if let Finding::Slow(d) = &f {
                    report.slowest = report.slowest.max(*d);
                }
                // One saved input per kind of finding: a panic by its first
                // line, a property by its first four words (the rest names
                // the input), numbers left out.
                let kind: String = match &f {
                    Finding::Slow(_) => "slow".to_string(),
                    Finding::Panic(m) => m.lines().next().unwrap_or("").chars().take(120).collect(),
                    Finding::Property(m) => m.split_whitespace().take(4).collect::<Vec<_>>().join(" "),
                };
                let kind: String = kind.chars().filter(|c| !c.is_ascii_digit()).collect();
                if seen.insert(kind) {
                    let path = save(out, target.name, &input);
                    eprintln!("{}: {f}\n  input saved to {}", target.name, path.display());
                    report.findings.push((f, path));
                }
            }
        }
    }
    std::panic::set_hook(quiet);
    report.elapsed = start.elapsed();
    report
}

/// How long one input may run before the runner calls it a hang: thirty
/// budgets, at least 30 s (long enough for a slow input to be timed and
/// saved as `slow` instead).
pub fn hang_limit(target: &Target) -> Duration {
    (target.budget * 30).max(Duration::from_secs(30))
}

/// Saves `input` as `DIR/TARGET/<sha256 prefix>`.
pub fn save(dir: &Path, target: &str, input: &[u8]) -> PathBuf {
    use sha2::Digest;
    let name = hex::encode(&sha2::Sha256::digest(input)[..8]);
    let d = dir.join(target);
    let _ = std::fs::create_dir_all(&d);
    let p = d.join(name);
    let _ = std::fs::write(&p, input);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panics(_: &[u8]) -> Result<(), String> {
        panic!("boom")
    }

    fn fails_on_x(d: &[u8]) -> Result<(), String> {
        if d.contains(&b'x') { Err("saw x".into()) } else { Ok(()) }
    }

    fn sleeps(_: &[u8]) -> Result<(), String> {
        std::thread::sleep(Duration::from_millis(30));
        Ok(())
    }

    fn target(run: fn(&[u8]) -> Result<(), String>) -> Target {
        Target { name: "selftest", run, budget: Duration::from_millis(10), max_len: 64 }
    }

    /// The runner reports each kind of finding: a panic, a failed property
    /// and a slow input.
    #[test]
    fn run_one_reports_panics_properties_and_slow_inputs() {
        assert!(matches!(run_one(&target(panics), b"", Duration::from_secs(1)), Err(Finding::Panic(m)) if m == "boom"));
        assert!(matches!(run_one(&target(fails_on_x), b"axb", Duration::from_secs(1)), Err(Finding::Property(_))));
        assert!(run_one(&target(fails_on_x), b"ab", Duration::from_secs(1)).is_ok());
        assert!(matches!(run_one(&target(sleeps), b"", Duration::from_millis(10)), Err(Finding::Slow(_))));
    }

    /// Random inputs find a one-byte trigger within a second and the input
    /// is saved where the report says.
    #[test]
    fn fuzz_finds_and_saves_a_failing_input() {
        let out = tempfile::tempdir().unwrap();
        // A generous budget: a loaded machine must not add `slow` findings.
        let t = Target { budget: Duration::from_secs(5), ..target(fails_on_x) };
        let r = fuzz(&t, 1, 7, out.path());
        assert!(r.executions > 10);
        assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
        assert!(std::fs::read(&r.findings[0].1).unwrap().contains(&b'x'));
    }

    #[test]
    fn mutate_can_repeat_a_slice_into_deep_nesting() {
        let mut rng = Rng(1);
        let longest = (0..2000).map(|_| mutate(&mut rng, b"a: [1]", None, 4096).len()).max().unwrap();
        assert!(longest > 1000, "{longest}");
    }
}
