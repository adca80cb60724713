//! Shows where sluice's time goes: pooled instantiate, an empty `run()` call, and file-stats over many small files against the same work in plain Rust.
//!
//! Usage: `sluice-bench [--files N] [--rounds R] [--guests DIR] [--only instance|files]` (see
//! scripts/bench.sh, which builds the guests first). Figures are medians of
//! side-by-side rounds on this machine; see BENCHMARKS.md.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use sha2::{Digest, Sha256};
use sluice_engine::{GuestLog, InstanceSettings, Level, PreparedBatch, ScorerEngine, ScorerInstance};
use sluice_job::data::{FileInput, Items, MiniBatchInput};
use sluice_job::spec::{Override, ScorerConfig};
use sluice_job::{JobSpec, Limits};
use sluice_runtime::RunOptions;

struct NoLog;
impl GuestLog for NoLog {
    fn line(&self, _: usize, _: Option<&str>, _: Level, _: &str) {}
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p) as usize]
}

fn main() -> anyhow::Result<()> {
    let mut files = 10_000usize;
    let mut rounds = 5usize;
    let mut guests = PathBuf::from("target/wasm32-wasip2/release");
    let mut only: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--files" => files = args.next().context("--files N")?.parse()?,
            "--rounds" => rounds = args.next().context("--rounds R")?.parse()?,
            "--guests" => guests = args.next().context("--guests DIR")?.into(),
            "--only" => only = Some(args.next().context("--only instance|files")?),
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let echo = guests.join("echo.wasm");
    let file_stats = guests.join("file_stats.wasm");
    for p in [&echo, &file_stats, &guests.join("sizes.wasm")] {
        anyhow::ensure!(p.is_file(), "{} is missing: run scripts/bench.sh", p.display());
    }

    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    if only.as_deref().is_none_or(|o| o == "instance") {
        rt.block_on(instance_benches(&echo))?;
    }
    if only.as_deref().is_none_or(|o| o == "files") {
        let data = make_files(files)?;
        files_per_second("file-stats", &file_stats, &data, rounds, native_file_stats)?;
        // The same run with a scorer that does no compute: what is left is
        // sluice's own overhead (listing, copies, calls, staging, output).
        files_per_second("sizes (name, size)", &guests.join("sizes.wasm"), &data, rounds, native_sizes)?;
    }
    Ok(())
}

/// Pooled instantiate (+ `init()`) and an empty `run()` of a small Rust scorer.
async fn instance_benches(echo: &Path) -> anyhow::Result<()> {
    let limits = Limits::default();
    // The bench's own guests are trusted: compile them in this process.
    let engine = ScorerEngine::new(&sluice_engine::EngineConfig::for_job(&limits, 4))?
        .with_compiler(sluice_engine::Compiler::InProcess);
    let component = engine.load(echo, None)?;
    let settings = InstanceSettings {
        limits,
        timeout: Duration::from_secs(60),
        config: ScorerConfig::default(),
        mounts: Vec::new(),
        writable: Vec::new(),
        halt: None,
        log: Arc::new(NoLog),
        instance_id: 0,
        models: None,
        log_budget: None,
        stop: None,
    };

    // Warm the pool's slots first.
    for _ in 0..50 {
        drop(component.instantiate(settings.clone()).await.map_err(|f| anyhow::anyhow!("{f}"))?);
    }
    let mut t = Vec::new();
    for _ in 0..2000 {
        let start = Instant::now();
        let inst = component.instantiate(settings.clone()).await.map_err(|f| anyhow::anyhow!("{f}"))?;
        t.push(start.elapsed().as_secs_f64() * 1e6);
        drop(inst);
    }
    println!(
        "instantiate+init (pooled, InstancePre): median {:.1} us, p90 {:.1} us  (target <= 50 us)",
        median(&mut t),
        pct(&mut t, 0.9)
    );

    let mut inst = component.instantiate(settings.clone()).await.map_err(|f| anyhow::anyhow!("{f}"))?;
    let empty = PreparedBatch::new(MiniBatchInput { id: "bench".into(), items: Items::Files(Vec::new()) });
    for _ in 0..1000 {
        inst.run(&empty).await.map_err(|f| anyhow::anyhow!("{f}"))?;
    }
    let mut t = per_call_us(&mut inst, &empty).await?;
    println!("empty run() call: median {:.2} us, p90 {:.2} us  (target <= 5 us)", median(&mut t), pct(&mut t, 0.9));

    let one = PreparedBatch::new(MiniBatchInput {
        id: "bench".into(),
        items: Items::Files(vec![FileInput { name: "a".into(), data: vec![b'x'; 1024] }]),
    });
    let mut t = per_call_us(&mut inst, &one).await?;
    println!("run() of one 1 KiB file returning one row: median {:.2} us", median(&mut t));
    Ok(())
}

/// Per-call time of `run(batch)` in microseconds, measured over groups of
/// 100 calls to keep timer overhead out: one figure per group, 200 groups.
async fn per_call_us(inst: &mut ScorerInstance, batch: &PreparedBatch) -> anyhow::Result<Vec<f64>> {
    let mut t = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        for _ in 0..100 {
            inst.run(batch).await.map_err(|f| anyhow::anyhow!("{f}"))?;
        }
        t.push(start.elapsed().as_secs_f64() * 1e6 / 100.0);
    }
    Ok(t)
}

/// `n` small text files (256 B to 4 KiB, 64-byte lines), deterministic.
fn make_files(n: usize) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("in");
    std::fs::create_dir(&input)?;
    let mut seed = 0x2545f4914f6cdd1du64;
    for i in 0..n {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let len = 256 + (seed % 3840) as usize;
        let line: String =
            (0..len).map(|j| if j % 64 == 63 { '\n' } else { (b'a' + (j % 26) as u8) as char }).collect();
        std::fs::write(input.join(format!("f{i:06}.txt")), line)?;
    }
    Ok(dir)
}

type Native = fn(&Path, &Path, usize) -> anyhow::Result<()>;

/// A scorer over the files at 2 instances, against a plain Rust loop doing
/// the same reads, work and CSV writing on 2 threads, in paired rounds.
fn files_per_second(
    what: &str,
    scorer: &Path,
    data: &tempfile::TempDir,
    rounds: usize,
    native_fn: Native,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let input = data.path().join("in");
    let n = std::fs::read_dir(&input)?.count();
    let cache = dir.path().join("cache");
    let spec = JobSpec::from_overrides(&[
        Override::parse(&format!("inputs.data.path={}", input.display())).map_err(anyhow::Error::msg)?,
        Override::parse("inputs.data.type=uri_folder").map_err(anyhow::Error::msg)?,
        Override::parse("input_data=${{inputs.data}}").map_err(anyhow::Error::msg)?,
        Override::parse(&format!("task.code={}", scorer.display())).map_err(anyhow::Error::msg)?,
        Override::parse(&format!("task.append_row_to={}", dir.path().join("out.csv").display()))
            .map_err(anyhow::Error::msg)?,
        Override::parse("max_concurrency_per_instance=2").map_err(anyhow::Error::msg)?,
        Override::parse("mini_batch_size=100").map_err(anyhow::Error::msg)?,
    ])?;

    let mut sluice = Vec::new();
    let mut phases = Vec::new();
    let mut native = Vec::new();
    for round in 0..rounds {
        // The bench's own guests are trusted (and their compile is cached
        // after the first round): compile them in this process.
        let opts = RunOptions {
            cache_dir: Some(cache.clone()),
            compiler: sluice_runtime::Compiler::InProcess,
            ..RunOptions::new(dir.path().join(format!("job{round}")))
        };
        let start = Instant::now();
        let r = sluice_runtime::run_job(&spec, &opts)?;
        let s = start.elapsed().as_secs_f64();
        anyhow::ensure!(r.items.succeeded == n as u64, "sluice scored {} of {n} files", r.items.succeeded);
        sluice.push(n as f64 / s);
        phases.push((r.timings.plan_s, r.timings.compile_s, r.timings.run_s, s));

        let start = Instant::now();
        native_fn(&input, &dir.path().join("native.csv"), 2)?;
        native.push(n as f64 / start.elapsed().as_secs_f64());
    }
    let (s, b) = (median(&mut sluice), median(&mut native));
    println!(
        "{what}, {n} files, 2 instances, mini_batch_size 100: sluice {s:.0} files/s, plain Rust {b:.0} files/s, ratio {:.2}x  (target >= 0.8x; medians of {rounds} paired rounds)",
        s / b
    );
    phases.sort_by(|a, b| a.3.total_cmp(&b.3));
    let (plan, compile, run, total) = phases[phases.len() / 2];
    println!(
        "  sluice phases (median round): listing+plan {:.1} ms, engine+load {:.1} ms, run {:.1} ms, whole job {:.1} ms",
        plan * 1e3,
        compile * 1e3,
        run * 1e3,
        total * 1e3
    );
    let a = std::fs::read(dir.path().join("out.csv"))?;
    let c = std::fs::read(dir.path().join("native.csv"))?;
    anyhow::ensure!(a == c, "sluice and plain-Rust outputs differ");
    println!("outputs identical: yes");
    Ok(())
}

/// The same work as file-stats + sluice's listing and CSV output, with no
/// WASM: list sorted, split in order across threads, hash, count lines,
/// write rows in input order.
fn native_file_stats(input: &Path, out: &Path, threads: usize) -> anyhow::Result<()> {
    native_loop(input, out, threads, b"name,bytes,lines,sha256\n", |name, data, buf| {
        let lines =
            data.iter().filter(|&&b| b == b'\n').count() + usize::from(!data.is_empty() && !data.ends_with(b"\n"));
        writeln!(buf, "{name},{},{lines},{}", data.len(), hex::encode(Sha256::digest(data)))
    })
}

/// What the sizes test scorer does, natively.
fn native_sizes(input: &Path, out: &Path, threads: usize) -> anyhow::Result<()> {
    native_loop(input, out, threads, b"name,size\n", |name, data, buf| writeln!(buf, "{name},{}", data.len()))
}

fn native_loop(
    input: &Path,
    out: &Path,
    threads: usize,
    header: &[u8],
    row: fn(&str, &[u8], &mut Vec<u8>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(input)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    files.sort();
    let chunk = files.len().div_ceil(threads);
    let parts: Vec<anyhow::Result<Vec<u8>>> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || -> anyhow::Result<Vec<u8>> {
                    let mut buf = Vec::new();
                    for p in part {
                        let data = std::fs::read(p)?;
                        row(&p.file_name().unwrap().to_string_lossy(), &data, &mut buf)?;
                    }
                    Ok(buf)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut f = std::io::BufWriter::new(std::fs::File::create(out)?);
    f.write_all(header)?;
    for p in parts {
        f.write_all(&p?)?;
    }
    f.flush()?;
    Ok(())
}
