//! The single-node scheduler.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use sluice_engine::{
    Compiler, HostRows, InstanceSettings, LogBudget, ModelRegistry, PreparedBatch, RegistryOptions, ScorerComponent,
    ScorerEngine, ScorerInstance,
};
use sluice_io::{Encode, FsItemSource, InProcessQueue, ItemSource, LocalOutput, OutputStore, TabularInput, WorkQueue};
use sluice_job::data::{FileInput, Items, MiniBatchInput, Schema};
use sluice_job::result::{ErrorEntry, JobResult, JobStatus, Timings};
use sluice_job::thresholds::{Crossed, Tally, Thresholds};
use sluice_job::{BatchOutput, Failure, JobSpec, Plan, ReasonCode};

use crate::guest_log::FileGuestLog;
use crate::journal::{Journal, Manifest, SavedSchema};
use crate::progress::{Counters, Progress, ProgressMode};
use crate::report::{self, BatchRecord, BatchStatus, RowLabels};

/// How many errors `job_result.json` lists.
const FIRST_ERRORS: usize = 20;

/// Where and how a job runs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The job directory (created if missing).
    pub job_dir: PathBuf,
    /// Compiled-component cache; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    pub progress: ProgressMode,
    /// Forget what an earlier run in `job_dir` committed and start over.
    pub restart: bool,
    /// Where the spec came from: saved as `spec.json` for `resume` and
    /// `replay`.
    pub source: Option<sluice_job::spec::SpecSource>,
    /// The job registry to list the job in (`sluice jobs list`).
    pub index: Option<crate::jobs::JobIndex>,
    /// Run only the mini-batch with this id (or unique id prefix): `replay`.
    pub only: Option<String>,
    /// Where the scorer is compiled: by default a child process with the
    /// job's compile limits (`sluice __compile-component`, found as
    /// [`Compiler::Discover`] says).
    pub compiler: Compiler,
}

impl RunOptions {
    /// A job in `job_dir`, quiet, without a compile cache, resuming what
    /// is there; set the other fields with struct update syntax.
    pub fn new(job_dir: PathBuf) -> RunOptions {
        RunOptions {
            job_dir,
            cache_dir: None,
            progress: ProgressMode::Quiet,
            restart: false,
            source: None,
            index: None,
            only: None,
            compiler: Compiler::Discover,
        }
    }
}

/// A job that could not run at all (as opposed to one that ran and failed
/// its thresholds, which is a [`JobResult`] with status `failed`).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{path}: cannot create the job directory: {source}")]
    JobDir { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Input(#[from] sluice_io::inputs::InputError),
    #[error(transparent)]
    Engine(#[from] sluice_engine::EngineError),
    #[error("{path}: cannot write the output: {source}")]
    Output { path: PathBuf, source: std::io::Error },
    #[error("cannot start worker threads: {0}")]
    Threads(std::io::Error),
    #[error("{}: {source}", .path.display())]
    Tabular { path: PathBuf, source: sluice_io::tabular::TabularError },
    #[error("cannot load the granted models")]
    Models(#[from] sluice_engine::OnnxError),
    #[error(transparent)]
    Journal(#[from] crate::journal::JournalError),
    #[error("{what}; choose another path (a job never writes over what it reads)")]
    Overlap { what: String },
    #[error("no mini-batch `{id}` in this job (its first ids: {known}); see processed_mini_batches.csv")]
    NoSuchMiniBatch { id: String, known: String },
}

/// State shared by the workers of one job.
struct Job<'a> {
    spec: &'a JobSpec,
    plan: Plan,
    component: ScorerComponent,
    source: FsItemSource,
    /// Tabular input: the job's columns and how to read its files.
    tabular: Option<TabularInput>,
    models: Option<Arc<ModelRegistry>>,
    queue: InProcessQueue,
    output: Option<Box<dyn OutputStore>>,
    journal: Journal,
    log: Arc<FileGuestLog>,
    thresholds: Thresholds,
    stop: AtomicBool,
    next_instance: AtomicUsize,
    counters: Arc<Counters>,
    state: Mutex<Shared>,
}

#[derive(Default)]
struct Shared {
    tally: Tally,
    crossed: Option<(Crossed, String)>,
    /// Column names and types of the job's output, fixed by the first
    /// mini-batch that succeeds; the header bytes that go with it.
    schema: Option<(Schema, Vec<u8>)>,
    records: Vec<Option<BatchRecord>>,
    first_errors: Vec<ErrorEntry>,
    output_rows: u64,
    /// Why the job itself failed (not one of its mini-batches).
    fault: Option<String>,
}

impl Shared {
    /// What the output file starts with, once the job's columns are known.
    fn header(&self) -> Vec<u8> {
        self.schema.as_ref().map(|s| s.1.clone()).unwrap_or_default()
    }
}

/// Runs a job to the end and writes its job directory, with its rows going
/// to the local file `task.append_row_to` names. Returns `Err` only when the
/// job cannot run at all (bad scorer, unreadable input folder, output folder
/// that cannot be made).
pub fn run_job(spec: &JobSpec, opts: &RunOptions) -> Result<JobResult, RunError> {
    check_paths(spec, &opts.job_dir)?;
    let output: Option<Box<dyn OutputStore>> = match &spec.append_row_to {
        Some(o) => Some(Box::new(
            LocalOutput::with_format(&o.path, &opts.job_dir.join("staged"), o.format)
                .map_err(|source| RunError::Output { path: o.path.clone(), source })?,
        )),
        None => None,
    };
    run_job_with_output(spec, opts, output)
}

/// [`run_job`] with the rows going to any [`OutputStore`] (object storage,
/// a test double); `output` must be `Some` when the spec has
/// `append_row_to`, whose format it is written in.
pub fn run_job_with_output(
    spec: &JobSpec,
    opts: &RunOptions,
    output: Option<Box<dyn OutputStore>>,
) -> Result<JobResult, RunError> {
    check_paths(spec, &opts.job_dir)?;
    let started = Instant::now();
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let dir = &opts.job_dir;
    std::fs::create_dir_all(dir).map_err(|source| RunError::JobDir { path: dir.clone(), source })?;
    if let Some(src) = &opts.source {
        let json = serde_json::to_vec_pretty(src).expect("a spec source serialises");
        sluice_io::output::write_durably(&dir.join("spec.json"), &json)
            .map_err(|source| RunError::JobDir { path: dir.join("spec.json"), source })?;
    }
    if let Some(index) = &opts.index
        && let Err(e) = index.register(dir)
    {
        tracing::warn!("cannot list the job in the job registry: {e}");
    }
    for note in &spec.notes {
        tracing::info!("note: {note}");
    }

    let items = sluice_io::list_input(&spec.input)?;
    if items.is_empty() {
        tracing::warn!("{} holds no input files: nothing to score", spec.input.path.display());
    }
    let (plan, tabular) = if spec.input.tabular {
        let (plan, tabular) =
            sluice_io::plan_tabular(items, spec.mini_batch_size, &spec.partition_keys, spec.limits.max_file_bytes)
                .map_err(|source| RunError::Tabular { path: spec.input.path.clone(), source })?;
        tracing::info!("tabular input: {} columns from {}", tabular.schema.fields().len(), tabular.schema_source);
        (plan, Some(tabular))
    } else {
        (Plan::cut(items, spec.mini_batch_size), None)
    };
    let plan_s = started.elapsed().as_secs_f64();
    tracing::info!(
        "planned {} mini-batches over {} items from {}",
        plan.mini_batches.len(),
        plan.items.len(),
        spec.input.path.display()
    );

    let models = if spec.models.is_empty() {
        None
    } else {
        let grants: Vec<sluice_onnx::ModelGrant> = spec
            .models
            .iter()
            .map(|m| sluice_onnx::ModelGrant { name: m.name.clone(), path: m.path.clone() })
            .collect();
        let reg = ModelRegistry::load(
            &grants,
            RegistryOptions {
                intra_op_threads: spec.onnx_threads,
                pool_size: spec.max_concurrency,
                max_tensor_bytes: spec.limits.max_tensor_bytes,
            },
        )?;
        for name in reg.names() {
            if let Ok(m) = reg.get(&name) {
                tracing::info!("model {name}: {} ({})", m.path().display(), &m.hash()[..12]);
            }
        }
        Some(Arc::new(reg))
    };

    let compile_start = Instant::now();
    let engine = ScorerEngine::new(&sluice_engine::EngineConfig::for_job(&spec.limits, spec.max_concurrency as u32))?
        .with_compiler(opts.compiler.clone());
    let component = engine.load(&spec.scorer, opts.cache_dir.as_deref())?;
    let compile_s = compile_start.elapsed().as_secs_f64();
    tracing::info!(
        "scorer {} ({}) {} in {compile_s:.2}s",
        spec.scorer.display(),
        &component.hash[..12],
        if component.from_cache { "loaded from the compile cache" } else { "compiled" }
    );

    let manifest = manifest(spec, &component, models.as_deref());
    let mut plan = plan;
    plan.salt(&manifest.fingerprint());
    let journal = Journal::open(dir, &manifest, opts.restart)?;
    if opts.restart
        && let Some(store) = &output
    {
        store.discard_parts().map_err(|source| RunError::Output { path: dir.join("staged"), source })?;
    }

    let log = Arc::new(
        FileGuestLog::new(&spec.name, dir.join("logs"))
            .map_err(|source| RunError::JobDir { path: dir.join("logs"), source })?,
    );
    let total = plan.mini_batches.len();
    // Mini-batches an earlier run committed are not run again.
    let mut records = vec![None; total];
    let mut todo = Vec::with_capacity(total);
    if let Some(only) = &opts.only {
        let found: Vec<usize> =
            plan.mini_batches.iter().filter(|m| m.id.starts_with(only.as_str())).map(|m| m.index).collect();
        let [index] = found.as_slice() else {
            let known: Vec<&str> = plan.mini_batches.iter().take(5).map(|m| m.id.as_str()).collect();
            return Err(RunError::NoSuchMiniBatch { id: only.clone(), known: known.join(", ") });
        };
        todo.push(*index);
    }
    for mb in plan.mini_batches.iter().filter(|_| opts.only.is_none()) {
        let staged = |r: &BatchRecord| r.rows == 0 || output.as_ref().is_none_or(|o| o.has_part(mb.index));
        match journal.committed(mb.index, &mb.id).filter(staged) {
            Some(mut r) => {
                r.resumed = true;
                records[mb.index] = Some(r);
            }
            None => todo.push(mb.index),
        }
    }
    let resumed = records.iter().flatten().count();
    if resumed > 0 {
        tracing::info!("resuming: {resumed} of {total} mini-batches were committed by an earlier run");
    }
    let schema = journal.schema().map(|s| {
        (s.columns.into_iter().map(|(n, t)| (n, sluice_job::data::type_name(&t))).collect::<Schema>(), s.header)
    });
    install_panic_location_hook();
    let job = Job {
        spec,
        queue: InProcessQueue::of(todo),
        journal,
        component,
        source: FsItemSource { max_bytes: spec.limits.max_file_bytes },
        tabular,
        models,
        output,
        log: log.clone(),
        thresholds: Thresholds {
            error_threshold: spec.error_threshold,
            mini_batch_error_threshold: spec.mini_batch_error_threshold,
            allowed_failed_percent: spec.allowed_failed_percent,
        },
        stop: AtomicBool::new(false),
        next_instance: AtomicUsize::new(1),
        counters: Arc::new(Counters::default()),
        state: Mutex::new(Shared { records: vec![None; total], schema, ..Shared::default() }),
        plan,
    };
    for (index, r) in records.into_iter().enumerate() {
        if let Some(r) = r {
            job.finalize(index, r);
        }
    }

    let run_start = Instant::now();
    let progress = Progress::start(opts.progress, total as u64, job.counters.clone());
    let monitor = crate::monitor::Monitor::start(crate::monitor::MonitorSetup {
        dir: dir.clone(),
        job: spec.name.clone(),
        started_at: started_at.clone(),
        total: total as u64,
        counters: job.counters.clone(),
        tick: {
            let log = log.clone();
            Box::new(move || log.flush())
        },
    });
    let workers = spec.max_concurrency.min(total.max(1));
    std::thread::scope(|s| -> Result<(), RunError> {
        let mut handles = Vec::new();
        for w in 0..workers {
            let job = &job;
            let h = std::thread::Builder::new()
                .name(format!("sluice-worker-{w}"))
                .spawn_scoped(s, move || worker(job))
                .map_err(RunError::Threads)?;
            handles.push(h);
        }
        for h in handles {
            if h.join().is_err() {
                tracing::error!("a worker thread panicked; its mini-batch is reported as not run");
            }
        }
        Ok(())
    })?;
    progress.finish();
    monitor.stop();
    let run_s = run_start.elapsed().as_secs_f64();
    log.flush();

    finish(job, opts, started_at, Timings { plan_s, compile_s, run_s, total_s: 0.0, peak_rss_mb: 0.0 }, started)
}

/// `p` with symlinks resolved as far as it exists (a file not made yet is
/// its resolved folder plus its name), so two spellings of one place
/// compare equal.
fn resolved(p: &std::path::Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => resolved(parent).join(name),
        _ => std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()),
    }
}

/// Refuses a job that would write over what it reads: the output file in
/// (or as) the input, the scorer or a granted model, and a job directory
/// inside the input folder (its files would become input).
fn check_paths(spec: &JobSpec, job_dir: &std::path::Path) -> Result<(), RunError> {
    let input = resolved(&spec.input.path);
    let inside = |p: &std::path::Path, root: &std::path::Path| p == root || (root.is_dir() && p.starts_with(root));
    if let Some(o) = &spec.append_row_to {
        let out = resolved(&o.path);
        let mut reads = vec![("the input", input.clone()), ("the scorer (task.code)", resolved(&spec.scorer))];
        reads.extend(spec.models.iter().map(|m| ("a granted model", resolved(&m.path))));
        for (what, path) in reads {
            if inside(&out, &path) {
                return Err(RunError::Overlap {
                    what: format!(
                        "the output task.append_row_to = {} is {} {}",
                        out.display(),
                        if out == path { "the same file as" } else { "inside" },
                        format_args!("{what} ({})", path.display())
                    ),
                });
            }
        }
    }
    let jd = resolved(job_dir);
    if input.is_dir() && jd.starts_with(&input) {
        return Err(RunError::Overlap {
            what: format!(
                "the job directory {} is inside the input folder {}: its files would become input",
                jd.display(),
                input.display()
            ),
        });
    }
    Ok(())
}

/// One worker: a thread with its own single-threaded async runtime (so a
/// guest computing on it never starves another) holding at most one live
/// instance at a time.
fn worker(job: &Job<'_>) {
    let mut rt = match worker_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            job.fault(format!("cannot start a worker runtime: {e}"));
            return;
        }
    };
    let mut instance: Option<ScorerInstance> = None;
    while !job.stop.load(Ordering::Acquire) {
        let Some(index) = job.queue.pop() else { break };
        if let Some(record) = run_mini_batch(job, &mut rt, index, &mut instance) {
            job.finalize(index, record);
        }
    }
    if let Some(inst) = instance {
        let id = inst.id();
        let r = catch_unwind(AssertUnwindSafe(|| rt.block_on(inst.shutdown())));
        match r {
            Ok(Ok(())) => {}
            Ok(Err(f)) => tracing::warn!(instance = id, "shutdown failed: {f}"),
            Err(p) => tracing::error!(instance = id, "shutdown: {}", host_fault(&p).message),
        }
    }
}

fn worker_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_time().build()
}

/// Runs one mini-batch with its retries; each retry after a failure runs on
/// a fresh instance (the failed one is dropped). A panic in host code on
/// the mini-batch's behalf (reading its input, a host import, checking
/// its result) fails that try as `HOST_FAULT` naming the bug, never the
/// worker or the job. `None`: the job has a fault of its own (its output
/// or journal cannot be written) and the mini-batch stays uncommitted.
fn run_mini_batch(
    job: &Job<'_>,
    rt: &mut tokio::runtime::Runtime,
    index: usize,
    instance: &mut Option<ScorerInstance>,
) -> Option<BatchRecord> {
    let mb = &job.plan.mini_batches[index];
    let items = job.plan.items_of(mb);
    let start = Instant::now();
    let mut record = BatchRecord::new(mb, items);

    // Read the items; the ones the host cannot read are item errors now and
    // never reach the scorer.
    let read = catch_unwind(AssertUnwindSafe(|| match &job.tabular {
        Some(tab) => {
            let mut r = BatchRecord::new(mb, items);
            let (batch, guest_index, errors) = read_rows(job, mb, tab, &mut r);
            (batch, guest_index, errors, Some(r))
        }
        None => {
            let mut inputs = Vec::with_capacity(items.len());
            let mut guest_index = Vec::with_capacity(items.len());
            let mut input_errors = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match job.source.read(item) {
                    Ok(data) => {
                        inputs.push(FileInput { name: item.name.clone(), data });
                        guest_index.push(i);
                    }
                    Err(message) => input_errors.push((i, ReasonCode::InputError, message)),
                }
            }
            let batch = PreparedBatch::new(MiniBatchInput { id: mb.id.clone(), items: Items::Files(inputs) });
            (batch, guest_index, input_errors, None)
        }
    }));
    let (batch, guest_index, mut input_errors) = match read {
        Ok((batch, guest_index, errors, tabular_record)) => {
            if let Some(r) = tabular_record {
                record = r;
            }
            (batch, guest_index, errors)
        }
        Err(panic) => {
            record.tries = 1;
            record.finish_failed(prefix_failure(host_fault(&panic), "reading the input"), start.elapsed());
            return Some(record);
        }
    };
    if guest_index.is_empty() {
        record.finish_ok(input_errors, 0, None, start.elapsed());
        return job.commit(record);
    }
    // One guest log budget for every try of this mini-batch.
    let budget = LogBudget::new(job.spec.limits.max_log_bytes);
    let batch = batch.with_log_budget(budget.clone());

    let max_tries = job.spec.max_retries + 1;
    let mut last_failure = None;
    for _ in 0..max_tries {
        if job.stop.load(Ordering::Acquire) && record.tries > 0 {
            break;
        }
        record.tries += 1;
        let attempt = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(async {
                let inst = match instance {
                    Some(i) => i,
                    None => {
                        let i = job.component.instantiate(job.instance_settings(Some(budget.clone()))).await?;
                        instance.insert(i)
                    }
                };
                let id = inst.id();
                let out = inst.run(&batch).await.map_err(|f| (f, Some(id)))?;
                let mut enc = job.encode(out, &guest_index).map_err(|f| (f, Some(id)))?;
                if let Some(part) = enc.part.take()
                    && let Err(e) = job.stage(index, &part)
                {
                    return Err(Attempt::Fault(format!("cannot stage the output of mini-batch {}: {e}", mb.id)));
                }
                Ok::<_, Attempt>((enc, id))
            })
        }));
        let outcome = match attempt {
            Ok(Ok((enc, id))) => Ok((enc, id)),
            Ok(Err(Attempt::Failed(f, id))) => Err((f, id)),
            Ok(Err(Attempt::Fault(why))) => {
                job.fault(why);
                return None;
            }
            Err(panic) => {
                // The instance's store may be mid-call: never reuse it, nor
                // the runtime the panic went through.
                *instance = None;
                if let Ok(fresh) = worker_runtime() {
                    *rt = fresh;
                }
                Err((host_fault(&panic), record.instance))
            }
        };
        match outcome {
            Ok((enc, id)) => {
                record.instance = Some(id);
                input_errors.extend(enc.errors);
                input_errors.sort_by_key(|e| e.0);
                record.finish_ok(input_errors, enc.rows, last_failure.take(), start.elapsed());
                return job.commit(record);
            }
            Err((f, id)) => {
                if id.is_some() {
                    record.instance = id;
                }
                tracing::warn!(mini_batch = %mb.id, instance = ?id, "try {} failed: {f}", record.tries);
                *instance = None;
                last_failure = Some(f);
            }
        }
    }
    let failure = last_failure.unwrap_or_else(|| Failure::new(ReasonCode::UserError, "not run: the job stopped"));
    record.finish_failed(failure, start.elapsed());
    Some(record)
}

/// How one try ended short of success: its failure and the instance it
/// ran on (none when instantiation failed).
enum Attempt {
    Failed(Failure, Option<usize>),
    /// The job's own fault (its output cannot be staged): it stops.
    Fault(String),
}

impl From<Failure> for Attempt {
    fn from(f: Failure) -> Attempt {
        Attempt::Failed(f, None)
    }
}

impl From<(Failure, Option<usize>)> for Attempt {
    fn from((f, id): (Failure, Option<usize>)) -> Attempt {
        Attempt::Failed(f, id)
    }
}

fn prefix_failure(f: Failure, what: &str) -> Failure {
    Failure::new(f.code, format!("{what}: {}", f.message))
}

/// A panic caught in host code, as the mini-batch's failure: the panic's
/// text and where it happened (recorded by [`install_panic_location_hook`]).
fn host_fault(panic: &Box<dyn std::any::Any + Send>) -> Failure {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string());
    let at = PANIC_AT.with(|l| l.borrow_mut().take()).map(|l| format!(" at {l}")).unwrap_or_default();
    Failure::new(
        ReasonCode::HostFault,
        sluice_job::text::guest_text(
            &format!("sluice failed while running this mini-batch (a bug in sluice; please report it): {text}{at}"),
            sluice_job::text::MAX_MESSAGE_BYTES,
        ),
    )
}

thread_local! {
    /// Where the last panic on this thread happened, for [`host_fault`].
    static PANIC_AT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Chains a panic hook that records each panic's location for the
/// mini-batch report (the default hook still prints it).
fn install_panic_location_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(l) = info.location() {
                let at = format!("{}:{}:{}", l.file(), l.line(), l.column());
                PANIC_AT.with(|p| *p.borrow_mut() = Some(at));
            }
            previous(info);
        }));
    });
}

/// Reads a tabular mini-batch's rows. Rows the host cannot read become
/// item errors numbered after the rows the scorer sees (a whole file whose
/// rows were never counted is one item).
fn read_rows(
    job: &Job<'_>,
    mb: &sluice_job::MiniBatchPlan,
    tab: &TabularInput,
    record: &mut BatchRecord,
) -> (PreparedBatch, Vec<usize>, Vec<(usize, ReasonCode, String)>) {
    let mut rows = sluice_io::read_mini_batch(&job.plan, &mb.segments, tab);
    let mut errors = Vec::new();
    let (table, convert_error) = match sluice_io::encode::into_table(&tab.schema, std::mem::take(&mut rows.batches)) {
        Ok(t) => (t, None),
        Err(e) => (sluice_job::Table::default(), Some(e)),
    };
    let seen = if convert_error.is_some() { 0 } else { table.num_rows };
    let mut labels = RowLabels {
        sources: rows.sources.clone(),
        row_source: rows.row_source.clone(),
        row_number: rows.row_number.clone(),
        unread: Vec::new(),
    };
    if let Some(e) = convert_error {
        labels.row_source.clear();
        labels.row_number.clear();
        for (&s, &n) in rows.row_source.iter().zip(&rows.row_number) {
            labels.unread.push(format!("{} row {n}", rows.sources[s as usize]));
            errors.push((labels.unread.len() - 1, ReasonCode::InputError, e.clone()));
        }
    }
    for f in &rows.failed {
        match &f.rows {
            Some(rs) => {
                for r in rs {
                    labels.unread.push(format!("{} row {r}", f.source));
                    errors.push((
                        labels.unread.len() - 1,
                        ReasonCode::InputError,
                        format!("{}: {}", f.source, f.message),
                    ));
                }
            }
            None => {
                labels.unread.push(f.source.clone());
                errors.push((labels.unread.len() - 1, ReasonCode::InputError, format!("{}: {}", f.source, f.message)));
            }
        }
    }
    // Unread items follow the rows the scorer sees.
    for e in &mut errors {
        e.0 += seen;
    }
    record.item_count = seen + labels.unread.len();
    record.row_labels = Some(labels);
    let guest_index: Vec<usize> = (0..seen).collect();
    let host_rows = HostRows { table, sources: rows.sources, row_source: rows.row_source, row_number: rows.row_number };
    (PreparedBatch::rows(mb.id.clone(), host_rows), guest_index, errors)
}

/// A successful result, checked and encoded.
struct Encoded {
    errors: Vec<(usize, ReasonCode, String)>,
    rows: u64,
    part: Option<Vec<u8>>,
}

impl Job<'_> {
    fn instance_settings(&self, log_budget: Option<Arc<LogBudget>>) -> InstanceSettings {
        InstanceSettings {
            limits: self.spec.limits.clone(),
            timeout: self.spec.timeout,
            config: self.spec.config.clone(),
            mounts: self.spec.mounts.clone(),
            log: self.log.clone(),
            instance_id: self.next_instance.fetch_add(1, Ordering::Relaxed),
            models: self.models.clone(),
            log_budget,
        }
    }

    /// Records a fault of the job itself (its output or journal cannot be
    /// written, a worker cannot start): the job stops and fails with it as
    /// the reason; what is committed stays, and a resume runs the rest.
    fn fault(&self, why: String) {
        tracing::error!("stopping the job: {why}");
        let mut st = self.state.lock().expect("job lock");
        st.fault.get_or_insert(why);
        self.stop.store(true, Ordering::Release);
        self.queue.close();
    }

    /// Checks a successful result against the job's output schema and
    /// encodes its rows. Returns the item errors (as mini-batch item
    /// indexes), the number of rows and the encoded part (none without
    /// `append_row_to` or without rows).
    fn encode(&self, out: BatchOutput, guest_index: &[usize]) -> Result<Encoded, Failure> {
        let errors: Vec<_> =
            out.errors.iter().map(|e| (guest_index[e.item], ReasonCode::ItemError, e.message.clone())).collect();
        let rows = out.rows.num_rows as u64;
        let Some(format) = self.spec.append_row_to.as_ref().map(|o| o.format).filter(|_| rows > 0) else {
            return Ok(Encoded { errors, rows, part: None });
        };
        let schema = out.rows.schema();
        {
            let mut st = self.state.lock().expect("job lock");
            match &st.schema {
                None => {
                    let header = format.header(&out.rows).map_err(|m| Failure::new(ReasonCode::InvalidOutput, m))?;
                    let saved = SavedSchema {
                        columns: schema.iter().map(|(n, t)| (n.clone(), t.to_string())).collect(),
                        header: header.clone(),
                    };
                    self.journal.save_schema(&saved).map_err(|e| {
                        Failure::new(ReasonCode::InvalidOutput, format!("cannot write the journal: {e}"))
                    })?;
                    st.schema = Some((schema, header));
                }
                Some((expected, _)) if *expected != schema => {
                    let show = |s: &[(String, &str)]| {
                        s.iter().map(|(n, t)| format!("{n}: {t}")).collect::<Vec<_>>().join(", ")
                    };
                    return Err(Failure::new(
                        ReasonCode::InvalidOutput,
                        format!(
                            "output columns [{}] differ from the job's output columns [{}]",
                            show(&schema),
                            show(expected)
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        let part = format.encode(&out.rows).map_err(|m| Failure::new(ReasonCode::InvalidOutput, m))?;
        Ok(Encoded { errors, rows, part: Some(part) })
    }

    /// Makes a finished mini-batch's rows durable (its staged part).
    fn stage(&self, index: usize, part: &[u8]) -> std::io::Result<()> {
        match &self.output {
            Some(store) => store.stage(index, part),
            None => Ok(()),
        }
    }

    /// Journals a succeeded mini-batch (after its part is staged): from
    /// here on a resumed job skips it. A journal that cannot be written is
    /// a fault of the job (no mini-batch would survive a resume): it stops,
    /// and this mini-batch stays uncommitted.
    fn commit(&self, record: BatchRecord) -> Option<BatchRecord> {
        if let Err(e) = self.journal.commit(&record) {
            self.fault(format!("cannot write the journal ({}): {e}", self.journal_dir().display()));
            return None;
        }
        Some(record)
    }

    fn journal_dir(&self) -> &std::path::Path {
        self.journal.dir()
    }

    /// Records a mini-batch's final outcome, updates the tally and checks
    /// the thresholds.
    fn finalize(&self, index: usize, record: BatchRecord) {
        let c = &self.counters;
        c.done.fetch_add(1, Ordering::Relaxed);
        if record.status == BatchStatus::Failed {
            c.failed.fetch_add(1, Ordering::Relaxed);
        }
        c.items.fetch_add(record.item_count as u64, Ordering::Relaxed);

        let mut st = self.state.lock().expect("job lock");
        match record.status {
            BatchStatus::Failed => {
                st.tally.failed_mini_batches += 1;
                st.tally.failed_items += record.item_count as u64;
            }
            _ => st.tally.failed_items += record.item_errors.len() as u64,
        }
        st.output_rows += record.rows;
        let room = FIRST_ERRORS.saturating_sub(st.first_errors.len());
        st.first_errors.extend(record.error_entries().into_iter().take(room));
        st.records[index] = Some(record);
        if st.crossed.is_none()
            && let Some(crossed) = self.thresholds.check(&st.tally, self.plan.mini_batches.len() as u64)
        {
            tracing::error!("stopping the job: {}", crossed.1);
            st.crossed = Some(crossed);
            self.stop.store(true, Ordering::Release);
            self.queue.close();
        }
    }
}

fn finish(
    job: Job<'_>,
    opts: &RunOptions,
    started_at: String,
    mut timings: Timings,
    started: Instant,
) -> Result<JobResult, RunError> {
    let Job { output, spec, plan, thresholds, state, mut journal, .. } = job;
    if let Err(e) = journal.close() {
        tracing::warn!("the journal could not be flushed ({e}): a resume may run some mini-batches again");
    }
    let mut st = state.into_inner().expect("job lock");
    // The output, from the staged parts of every mini-batch that succeeded
    // with rows, in input order (a stopped job keeps what it did). A failed
    // write fails the job; its report is still written and the staged
    // parts stay, so a resume can assemble it again.
    let mut write_error = None;
    let output_file = match &output {
        Some(store) => {
            let indexes: Vec<usize> = st
                .records
                .iter()
                .flatten()
                .filter(|r| r.status == BatchStatus::Succeeded && r.rows > 0)
                .map(|r| r.index)
                .collect();
            // A store with a bug must not take the job's report with it.
            match catch_unwind(AssertUnwindSafe(|| store.assemble(&indexes, &st.header()))) {
                Ok(r) => r.map_err(|e| write_error = Some(e)).ok(),
                Err(p) => {
                    write_error = Some(std::io::Error::other(host_fault(&p).message));
                    None
                }
            }
        }
        None => None,
    };
    timings.total_s = started.elapsed().as_secs_f64();
    timings.peak_rss_mb = crate::monitor::peak_rss_bytes().map_or(0.0, |b| b as f64 / (1 << 20) as f64);
    let fault = st.fault.take();
    let mut result = report::assemble(report::Assemble {
        spec,
        plan: &plan,
        records: &st.records,
        tally: st.tally,
        crossed: st.crossed.take(),
        thresholds,
        first_errors: std::mem::take(&mut st.first_errors),
        output: output_file.as_deref(),
        output_rows: st.output_rows,
        job_dir: &opts.job_dir,
        started_at,
        timings,
    });
    if let Some(why) = fault {
        result.status = JobStatus::Failed;
        result.reason = Some(why);
    }
    report::never_complete_with_unrun(&mut result, opts.only.is_some());
    if let Some(e) = write_error {
        let path = spec.append_row_to.as_ref().map(|o| o.path.display().to_string()).unwrap_or_default();
        tracing::error!("cannot write the output {path}: {e}");
        let why = format!("cannot write the output {path}: {e}");
        // A fault that stopped the job came first: keep it, add this.
        result.reason = Some(match (result.status, result.reason.take()) {
            (JobStatus::Failed, Some(first)) => format!("{first}; then {why}"),
            _ => why,
        });
        result.status = JobStatus::Failed;
    }
    report::write_job_dir(&opts.job_dir, &result, &plan, &st.records)
        .map_err(|source| RunError::JobDir { path: opts.job_dir.clone(), source })?;
    if let Some(mut p) = crate::monitor::read_progress(&opts.job_dir) {
        p.status =
            serde_json::to_value(result.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        p.elapsed_s = result.timings.total_s;
        crate::monitor::write_progress_file(&opts.job_dir, &p);
    }
    Ok(result)
}

/// What this job's results depend on: the scorer, the granted models and
/// the settings that change what `run` returns or how input is cut.
fn manifest(spec: &JobSpec, component: &ScorerComponent, models: Option<&ModelRegistry>) -> Manifest {
    let mut settings = std::collections::BTreeMap::new();
    let mut set = |k: String, v: String| {
        settings.insert(k, v);
    };
    set(
        "input".into(),
        format!("{} ({})", spec.input.path.display(), if spec.input.tabular { "tabular" } else { "files" }),
    );
    set("mini_batch_size".into(), spec.mini_batch_size.to_string());
    if !spec.partition_keys.is_empty() {
        set("partition_keys".into(), spec.partition_keys.join(","));
    }
    for (k, v) in &spec.config.settings {
        set(format!("task.config.{k}"), v.clone());
    }
    if !spec.config.arguments.is_empty() {
        set("task.program_arguments".into(), spec.config.arguments.join(" "));
    }
    for (k, v) in &spec.config.environment {
        set(format!("environment_variables.{k}"), v.clone());
    }
    if let Some(o) = &spec.append_row_to {
        set(crate::journal::OUTPUT_KEY.into(), format!("{:?}", o.format).to_lowercase());
    }
    let models = models
        .map(|reg| {
            reg.names().into_iter().filter_map(|n| reg.get(&n).ok().map(|m| (n, m.hash().to_string()))).collect()
        })
        .unwrap_or_default();
    Manifest { version: 1, scorer: component.hash.clone(), models, settings }
}
