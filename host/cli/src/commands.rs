//! `resume`, `jobs list|show|logs`, `replay`, `validate` and `compile`.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::{Args, Subcommand};
use sluice_job::spec::SpecSource;
use sluice_runtime::jobs::{JobIndex, alive, job_info, read_result};
use sluice_runtime::{BatchRowStatus, ErrorLine, JobDir};

use crate::{ClusterArgs, Failure, cache_dir, data_dir, exit_for};

/// Where jobs and the compile cache are.
#[derive(Args, Debug)]
pub struct Dirs {
    /// Where sluice keeps jobs (env SLUICE_DATA_DIR).
    #[arg(long, env = "SLUICE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The compiled-component cache (env SLUICE_CACHE_DIR).
    #[arg(long, env = "SLUICE_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

impl Dirs {
    fn index(&self) -> JobIndex {
        JobIndex::new(&data_dir(self.data_dir.as_deref()))
    }

    /// A job by directory, directory name (or prefix) or job name.
    fn resolve(&self, job: &str) -> Result<PathBuf, Failure> {
        self.index().resolve(job).map_err(|e| Failure::Usage(anyhow!(e)))
    }
}

#[derive(Args, Debug)]
pub struct ResumeArgs {
    /// The job: its directory, directory name (or a unique prefix) or name.
    job: String,
    #[command(flatten)]
    dirs: Dirs,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    /// Resume on this cluster (default: the one the job ran on, from its
    /// cluster.json; none: in this process).
    #[arg(long, env = "SLUICE_CLUSTER")]
    cluster: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum JobsCommand {
    /// Recent jobs, newest first: status, counts, duration.
    List {
        #[command(flatten)]
        dirs: Dirs,
        /// How many to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One job in detail: result, resource use, mini-batches, failed items.
    Show {
        job: String,
        /// Only the mini-batches that failed or had failed items, and every
        /// failed item.
        #[arg(long)]
        failed: bool,
        #[command(flatten)]
        dirs: Dirs,
    },
    /// The guest logs of a job, all instances merged in time order.
    Logs {
        job: String,
        /// Only the lines of this mini-batch (an id or a unique prefix).
        #[arg(long)]
        mini_batch: Option<String>,
        /// Keep printing new lines until the job ends.
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        dirs: Dirs,
    },
    /// Cancels a job running in another process, as Ctrl-C would: no new
    /// mini-batches, the ones in flight get a grace period, committed work
    /// is kept; `sluice resume JOB` finishes it.
    Cancel {
        job: String,
        #[command(flatten)]
        dirs: Dirs,
    },
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The job: its directory, directory name (or a unique prefix) or name.
    job: String,
    /// The mini-batch id (or a unique prefix), from `jobs show`.
    mini_batch: String,
    #[command(flatten)]
    dirs: Dirs,
}

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// The scorer component.
    scorer: PathBuf,
    /// The compiled-component cache (env SLUICE_CACHE_DIR): validate
    /// compiles through it, so a run afterwards compiles nothing.
    #[arg(long, env = "SLUICE_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile without the cache (and leave nothing in it).
    #[arg(long)]
    no_cache: bool,
    #[command(flatten)]
    limits: CompileLimitArgs,
}

/// `sluice cache list|gc|clear`.
#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// The compiled scorers and per-function entries in the cache, oldest
    /// use first, with the total against the cap.
    List(CacheArgs),
    /// Evict least-recently-used entries down to the cap (--max-mb, else
    /// SLUICE_CACHE_MAX_MB, else 4096), and stale temp files.
    Gc {
        #[command(flatten)]
        cache: CacheArgs,
        /// The size to trim to, MiB (fractions allowed).
        #[arg(long, value_parser = parse_mib)]
        max_mb: Option<u64>,
    },
    /// Remove every entry (files with the cache's own names only).
    Clear(CacheArgs),
}

#[derive(Args, Debug)]
pub struct CacheArgs {
    /// The compiled-component cache (env SLUICE_CACHE_DIR).
    #[arg(long, env = "SLUICE_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CompileArgs {
    /// The scorer component.
    scorer: PathBuf,
    /// The compiled-component cache (env SLUICE_CACHE_DIR).
    #[arg(long, env = "SLUICE_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    #[command(flatten)]
    limits: CompileLimitArgs,
}

/// The bounds of reading and compiling a scorer, as `run` takes them
/// (same keys and ranges as the spec's `limits.*`).
#[derive(Args, Debug)]
pub struct CompileLimitArgs {
    /// Scorer file size cap, MiB (limits.max_scorer_mb; default 256).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    max_scorer_mb: Option<u64>,
    /// Memory of the process compiling the scorer, MiB (limits.compile_memory_mb; default 4096).
    #[arg(long, value_parser = clap::value_parser!(u64).range(64..=1 << 20))]
    compile_memory_mb: Option<u64>,
    /// Seconds to compile the scorer (limits.compile_timeout_s; default 300).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=24 * 3600))]
    compile_timeout: Option<u64>,
}

impl CompileLimitArgs {
    fn limits(&self) -> sluice_job::Limits {
        let mut l = sluice_job::Limits::default();
        if let Some(n) = self.max_scorer_mb {
            l.max_scorer_bytes = n << 20;
        }
        if let Some(n) = self.compile_memory_mb {
            l.compile_memory_bytes = n << 20;
        }
        if let Some(n) = self.compile_timeout {
            l.compile_timeout = Duration::from_secs(n);
        }
        l
    }
}

fn job_error(e: impl Into<anyhow::Error>) -> Failure {
    Failure::Job(e.into())
}

/// The spec a job ran with (`spec.json` in its directory).
fn saved_spec(dir: &Path) -> Result<(SpecSource, sluice_job::JobSpec), Failure> {
    let source: SpecSource = JobDir::open(dir)
        .spec_source()
        .map_err(|e| Failure::Job(anyhow!("{}: unreadable: {}", e.path.display(), e.source)))?
        .with_context(|| format!("{}: not a resumable job (it has no spec.json)", dir.display()))
        .map_err(Failure::Usage)?;
    let spec = source.spec().map_err(|e| Failure::Usage(anyhow!(e).context("the job's spec no longer validates")))?;
    Ok((source, spec))
}

pub fn resume(a: ResumeArgs) -> Result<ExitCode, Failure> {
    if crate::pipeline::is_pipeline_dir(Path::new(&a.job)) {
        let cache = cache_dir(a.dirs.cache_dir.as_deref(), false);
        return crate::pipeline::resume(Path::new(&a.job), cache, a.dirs.index(), a.quiet);
    }
    let dir = a.dirs.resolve(&a.job)?;
    let (source, spec) = saved_spec(&dir)?;
    let cache = cache_dir(a.dirs.cache_dir.as_deref(), false);
    let saved = JobDir::open(&dir).cluster().ok().flatten();
    let cluster = ClusterArgs { cluster: a.cluster.or(saved), ..ClusterArgs::default() };
    let r = crate::run_spec(&spec, source, dir, cache, a.dirs.index(), false, a.quiet, &cluster)?;
    Ok(exit_for(&r))
}

/// `sluice worker`.
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// The NATS JetStream server (or cluster) to serve, nats://HOST:PORT
    /// (env SLUICE_CLUSTER).
    #[arg(long, env = "SLUICE_CLUSTER")]
    cluster: String,
    /// Instances this node runs at once, over all jobs (default: the cores).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024))]
    max_concurrency: Option<u64>,
    /// The node's name in logs, reports and `jobs show` (default: the host
    /// name and the process id); A-Z a-z 0-9 - _.
    #[arg(long)]
    name: Option<String>,
    /// Where the node keeps artifacts and compiled scorers (env
    /// SLUICE_CACHE_DIR).
    #[arg(long, env = "SLUICE_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

pub fn worker(a: WorkerArgs) -> Result<ExitCode, Failure> {
    crate::init_worker_tracing();
    let name = a.name.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let host: String = host.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(40).collect();
        format!("{}-{}", if host.is_empty() { "node" } else { &host }, std::process::id())
    });
    let cache_dir = cache_dir(a.cache_dir.as_deref(), false)
        .context("no cache folder for this user: give --cache-dir")
        .map_err(Failure::Usage)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let opts = sluice_cluster::WorkerOptions {
        cluster: a.cluster,
        name,
        max_concurrency: a.max_concurrency.map_or(cores, |n| n as usize),
        cache_dir,
        compiler: sluice_runtime::Compiler::Discover,
    };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // SIGTERM / Ctrl-C: the tries in flight finish and report, then the
    // node leaves; a second signal exits at once (the server delivers what
    // it held again once its leases expire).
    let flag = stop.clone();
    if let Ok(mut signals) =
        signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM])
    {
        std::thread::spawn(move || {
            for _ in signals.forever() {
                if flag.swap(true, std::sync::atomic::Ordering::AcqRel) {
                    std::process::exit(130);
                }
                err_out!("stopping: the mini-batches in flight finish first (again to stop now)");
            }
        });
    }
    sluice_cluster::run_worker(opts, stop).map_err(|e| Failure::Job(e.into()))?;
    Ok(ExitCode::SUCCESS)
}

pub fn jobs(c: JobsCommand) -> Result<ExitCode, Failure> {
    match c {
        JobsCommand::List { dirs, limit } => {
            let jobs = dirs.index().list();
            if jobs.is_empty() {
                out!("no jobs yet in {}", data_dir(dirs.data_dir.as_deref()).display());
                return Ok(ExitCode::SUCCESS);
            }
            let shown = &jobs[..jobs.len().min(limit)];
            let w = shown.iter().map(|j| j.dir.file_name().unwrap_or_default().len()).max().unwrap_or(3).max(3);
            out!(
                "{:<w$} {:<22} {:<20} {:>14} {:>8} {:>9}",
                "JOB",
                "STATUS",
                "STARTED",
                "MINI-BATCHES",
                "FAILED",
                "DURATION"
            );
            for j in shown {
                let dir = j.dir.file_name().unwrap_or_default().to_string_lossy();
                out!(
                    "{:<w$} {:<22} {:<20} {:>14} {:>8} {:>8.1}s",
                    dir,
                    j.status,
                    j.started_at,
                    format!("{}/{}", j.mini_batches_done, j.mini_batches_total),
                    j.mini_batches_failed,
                    j.duration_s
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Show { job, failed, dirs } => {
            if crate::pipeline::is_pipeline_dir(Path::new(&job)) {
                crate::pipeline::show(Path::new(&job))?;
                return Ok(ExitCode::SUCCESS);
            }
            let dir = dirs.resolve(&job)?;
            show(&dir, failed, &job)?;
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Logs { job, mini_batch, follow, dirs } => {
            let dir = dirs.resolve(&job)?;
            logs(&dir, mini_batch.as_deref(), follow)?;
            Ok(ExitCode::SUCCESS)
        }
        JobsCommand::Cancel { job, dirs } => {
            let dir = dirs.resolve(&job)?;
            if dir.join("job_result.json").exists() {
                return Err(Failure::Usage(anyhow!("{}: the job has already finished", dir.display())));
            }
            sluice_runtime::request_cancel(&dir, "canceled by `sluice jobs cancel`")
                .with_context(|| format!("{}: cannot ask the job to cancel", dir.display()))
                .map_err(Failure::Job)?;
            out!("asked {} to cancel; it stops within a few seconds (`sluice resume` finishes it)", dir.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn show(dir: &Path, only_failed: bool, key: &str) -> Result<(), Failure> {
    let info = job_info(dir).ok_or_else(|| Failure::Usage(anyhow!("{}: no job there yet", dir.display())))?;
    out!("job {} ({})", info.name, dir.display());
    out!("  status:        {}", info.status);
    out!("  started:       {}  ({:.1}s)", info.started_at, info.duration_s);
    if let Some(r) = read_result(dir) {
        if let Some(reason) = &r.reason {
            out!("  reason:        {reason}");
        }
        let m = &r.mini_batches;
        out!(
            "  mini-batches:  {} total, {} succeeded, {} failed, {} retried, {} not run, {} resumed ({} tries)",
            m.total,
            m.succeeded,
            m.failed,
            m.retried,
            m.not_run,
            m.resumed,
            m.tries
        );
        let i = &r.items;
        out!(
            "  items:         {} total, {} succeeded, {} failed, {} not run",
            i.total,
            i.succeeded,
            i.failed,
            i.not_run
        );
        let t = &r.thresholds;
        out!(
            "  thresholds:    error_threshold {}, mini_batch_error_threshold {}, allowed_failed_percent {}{}",
            t.error_threshold,
            t.mini_batch_error_threshold,
            t.allowed_failed_percent,
            r.crossed.as_ref().map(|c| format!(" (crossed: {c:?})")).unwrap_or_default()
        );
        if let Some(out) = &r.output {
            out!("  output:        {out} ({} rows)", r.output_rows);
        }
    } else if let Ok(Some(p)) = JobDir::open(dir).read_progress() {
        out!(
            "  progress:      {}/{} mini-batches, {} failed, {} items (updated {})",
            p.mini_batches_done,
            p.mini_batches_total,
            p.mini_batches_failed,
            p.items_done,
            p.updated_at
        );
    }
    if let Some(res) = JobDir::open(dir).resources() {
        let (peak, mean, max, n) = (res.peak_rss_mib, res.cpu_mean, res.cpu_max, res.samples);
        out!(
            "  resources:     peak RSS {peak:.1} MiB; CPU {mean:.0}% mean, {max:.0}% max ({n} samples, 100% = one core)"
        );
    }

    let jd = JobDir::open(dir);
    if let Ok(Some(url)) = jd.cluster() {
        let nodes = jd.nodes();
        let ran: Vec<String> = nodes.iter().map(|(n, k)| format!("{n} ({k})")).collect();
        out!("  cluster:       {url}");
        out!(
            "  nodes:         {} (mini-batches each ran a try of)",
            if ran.is_empty() { "none yet".into() } else { ran.join(", ") }
        );
    }

    // The mini-batch table.
    let mut failed_ids = Vec::new();
    if let Some(rows) = jd.read_batches().map_err(|e| Failure::Job(e.into()))? {
        out!();
        out!(
            "{:<17} {:<10} {:>5} {:>7} {:>8}  {:<36} REASON",
            "MINI-BATCH",
            "STATUS",
            "TRIES",
            "ITEMERR",
            "SECONDS",
            "INPUTS"
        );
        for row in rows {
            let bad = row.status == BatchRowStatus::Failed || row.item_errors != 0;
            if bad {
                failed_ids.push(row.id.clone());
            }
            if only_failed && !bad {
                continue;
            }
            let why = if row.reason.is_empty() { String::new() } else { format!("{}: {}", row.reason, row.message) };
            let rec = row.to_record();
            out!(
                "{:<17} {:<10} {:>5} {:>7} {:>8}  {:<36} {}",
                row.id,
                row.status.as_str(),
                rec[5],
                row.item_errors,
                rec[10],
                row.inputs,
                why
            );
        }
    }

    // Failed items.
    let lines = jd.read_errors().map_err(|e| Failure::Job(e.into()))?;
    if !lines.is_empty() {
        let limit = if only_failed { lines.len() } else { 10 };
        out!();
        out!("failed items ({} in errors.jsonl):", lines.len());
        for e in lines.iter().take(limit) {
            out!("  {}", error_line(e, true));
        }
        if lines.len() > limit {
            out!("  ... {} more: `sluice jobs show {key} --failed`", lines.len() - limit);
        }
    }
    if let Some(first) = failed_ids.first() {
        out!();
        out!("next: `sluice jobs logs {key} --mini-batch {first}` for its guest log,");
        out!("      `sluice replay {key} {first}` to run it again alone");
    }
    Ok(())
}

/// One `errors.jsonl` line for people: `[CODE] input row N (mini-batch
/// ID): message`.
fn error_line(e: &ErrorLine, with_mini_batch: bool) -> String {
    let row = e.row.map(|r| format!(" row {r}")).unwrap_or_default();
    let mb = if with_mini_batch { format!(" (mini-batch {})", e.mini_batch) } else { String::new() };
    format!("[{}] {}{row}{mb}: {}", e.code.as_str(), e.input.as_deref().unwrap_or("?"), e.message)
}

/// A guest log line's mini-batch tag.
fn line_mini_batch(line: &str) -> Option<&str> {
    line.split_whitespace().find_map(|w| w.strip_prefix("mini_batch="))
}

fn logs(dir: &Path, mini_batch: Option<&str>, follow: bool) -> Result<(), Failure> {
    let jd = JobDir::open(dir);
    let log_dir = jd.logs_dir();
    let keep = |l: &str| mini_batch.is_none_or(|m| line_mini_batch(l).is_some_and(|x| x.starts_with(m)));
    // Read offsets per file, so --follow prints only what is new.
    let mut offsets: std::collections::HashMap<PathBuf, u64> = std::collections::HashMap::new();
    let mut printed_any = false;
    loop {
        let files = jd.log_files();
        let mut new_lines = Vec::new();
        for f in files {
            let at = offsets.entry(f.clone()).or_insert(0);
            let Ok(mut file) = std::fs::File::open(&f) else { continue };
            if file.seek(SeekFrom::Start(*at)).is_err() {
                continue;
            }
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            // Only whole lines; a partial last line waits for the next pass.
            let whole = text.rfind('\n').map_or(0, |i| i + 1);
            *at += whole as u64;
            new_lines.extend(text[..whole].lines().filter(|l| keep(l)).map(str::to_string));
        }
        // Lines start with an RFC 3339 time stamp: sorting merges instances.
        new_lines.sort();
        for l in &new_lines {
            out!("{l}");
        }
        printed_any |= !new_lines.is_empty();
        let running = jd.read_progress().ok().flatten().is_some_and(|p| p.status == "running" && alive(p.pid));
        if !follow || (!running && new_lines.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    if !printed_any && !follow {
        match mini_batch {
            Some(m) => err_out!("no guest log lines for mini-batch {m} in {}", log_dir.display()),
            None => err_out!("no guest log lines in {}", log_dir.display()),
        }
    }
    Ok(())
}

pub fn replay(a: ReplayArgs) -> Result<ExitCode, Failure> {
    let dir = a.dirs.resolve(&a.job)?;
    let (_, spec) = saved_spec(&dir)?;
    let cache = cache_dir(a.dirs.cache_dir.as_deref(), false);
    let r = sluice_runtime::replay(&spec, &a.mini_batch, cache).map_err(|e| match e {
        e @ sluice_runtime::RunError::NoSuchMiniBatch { .. } => Failure::Usage(e.into()),
        e => job_error(e),
    })?;
    let status = if r.result.mini_batches.failed > 0 { "failed" } else { "succeeded" };
    match &r.record {
        Some(row) => {
            out!("mini-batch {} (#{}; inputs {}) of job {}: {status}", row.id, row.index, row.inputs, spec.name);
            if !row.reason.is_empty() {
                out!("  {}: {}", row.reason, row.message);
            }
        }
        None => out!("mini-batch {} of job {}: {status}", a.mini_batch, spec.name),
    }
    out!();
    if r.rows_csv.is_empty() {
        out!("rows: none");
    } else {
        out!("rows ({}):", r.result.output_rows);
        for line in String::from_utf8_lossy(&r.rows_csv).lines() {
            out!("{line}");
        }
    }
    if !r.errors.is_empty() {
        out!();
        out!("errors ({}):", r.errors.len());
        for e in &r.errors {
            out!("  {}", error_line(e, false));
        }
    }
    out!();
    out!("guest log ({} lines):", r.logs.len());
    for l in &r.logs {
        out!("  {l}");
    }
    Ok(if r.result.mini_batches.failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The name check first (no compile), each import `ok` or `MISSING` with
/// the reason; the compile (in the compiler child) and wasmtime's link
/// check only when the names fit.
pub fn validate(a: ValidateArgs) -> Result<ExitCode, Failure> {
    let engine = sluice_engine::ScorerEngine::new(&sluice_engine::EngineConfig::for_job(&a.limits.limits(), 1))
        .map_err(job_error)?;
    let cache = cache_dir(a.cache_dir.as_deref(), a.no_cache);
    let v = engine.validate(&a.scorer, cache.as_deref()).map_err(|e| Failure::Job(e.into()))?;
    out!("{} (sha256 {})", a.scorer.display(), &v.hash[..16]);
    out!("imports:");
    for (name, why) in &v.imports {
        match why {
            None => out!("  ok       {name}"),
            Some(w) => out!("  MISSING  {name}: {w}"),
        }
    }
    out!("exports:");
    for (name, what) in &v.exports {
        out!("  {name}: {what}");
    }
    if v.problems.is_empty() {
        out!("fits the sluice:scorer world: ready to run");
        Ok(ExitCode::SUCCESS)
    } else {
        out!("does NOT fit the sluice:scorer world:");
        for p in &v.problems {
            out!("  - {p}");
        }
        Ok(ExitCode::from(1))
    }
}

pub fn compile(a: CompileArgs) -> Result<ExitCode, Failure> {
    let cache = cache_dir(a.cache_dir.as_deref(), false)
        .ok_or_else(|| Failure::Usage(anyhow!("no cache folder: set --cache-dir or SLUICE_CACHE_DIR")))?;
    let engine = sluice_engine::ScorerEngine::new(&sluice_engine::EngineConfig::for_job(&a.limits.limits(), 1))
        .map_err(job_error)?;
    let started = std::time::Instant::now();
    let c = engine.load(&a.scorer, Some(&cache)).map_err(|e| Failure::Job(e.into()))?;
    if c.from_cache {
        out!("{} ({}) is already compiled in {}", a.scorer.display(), &c.hash[..12], cache.display());
    } else {
        out!(
            "compiled {} ({}) in {:.2}s into {}",
            a.scorer.display(),
            &c.hash[..12],
            started.elapsed().as_secs_f64(),
            cache.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--max-mb`: MiB, fractions allowed, as bytes.
fn parse_mib(s: &str) -> Result<u64, String> {
    match s.trim().parse::<f64>() {
        Ok(mb) if mb.is_finite() && mb >= 0.0 => Ok((mb * f64::from(1 << 20)) as u64),
        _ => Err(format!("`{s}`: a size in MiB, 0 or more (e.g. 2048 or 0.5)")),
    }
}

pub fn cache(c: CacheCommand) -> Result<ExitCode, Failure> {
    use sluice_engine::cache::{self, EntryKind};
    let args = match &c {
        CacheCommand::List(a) | CacheCommand::Clear(a) | CacheCommand::Gc { cache: a, .. } => a,
    };
    let dir = cache_dir(args.cache_dir.as_deref(), false)
        .ok_or_else(|| Failure::Usage(anyhow!("no cache folder: set --cache-dir or SLUICE_CACHE_DIR")))?;
    let io = |what: &str, e: std::io::Error| Failure::Job(anyhow!("{what} the compile cache {}: {e}", dir.display()));
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / f64::from(1 << 20));
    match c {
        CacheCommand::List(_) => {
            let all = cache::entries(&dir).map_err(|e| io("cannot read", e))?;
            out!("compile cache {} (cap {}, {})", dir.display(), mib(cache::cap()), cache::CAP_ENV);
            let (mut fns, mut fn_bytes, mut total) = (0u64, 0u64, 0u64);
            for e in &all {
                total += e.bytes;
                match e.kind {
                    EntryKind::Component => {
                        let used = humantime::format_rfc3339_seconds(e.last_used);
                        let hash = e.wasm_hash.as_deref().unwrap_or_default();
                        out!("  scorer sha256 {}  {:>10}  last used {used}", &hash[..16], mib(e.bytes));
                    }
                    EntryKind::Function => {
                        fns += 1;
                        fn_bytes += e.bytes;
                    }
                    EntryKind::Leftover => {}
                }
            }
            out!("  {fns} compiled functions (incremental cache): {}", mib(fn_bytes));
            out!("total {} in {} files", mib(total), all.len());
        }
        CacheCommand::Gc { max_mb, .. } => {
            let cap = max_mb.unwrap_or_else(cache::cap);
            let t = cache::gc(&dir, cap).map_err(|e| io("cannot trim", e))?;
            out!("evicted {} files ({}) from {}; cap {}", t.files, mib(t.bytes), dir.display(), mib(cap));
        }
        CacheCommand::Clear(_) => {
            let t = cache::clear(&dir).map_err(|e| io("cannot clear", e))?;
            out!("removed {} files ({}) from {}", t.files, mib(t.bytes), dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
