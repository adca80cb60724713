//! The single-node scheduler.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use sluice_engine::{
    Compiler, LogBudget, ModelRegistry, RegistryOptions, ScorerComponent, ScorerEngine, ScorerInstance,
};
use sluice_io::journal::{LocalJournal, Manifest};
use sluice_io::{CommitLog, InProcessQueue, InputSource, Lease, OutputStore, PartRef, TabularInput, WorkQueue};
use sluice_job::data::Schema;
use sluice_job::result::{ErrorEntry, JobResult, JobStatus, Timings};
use sluice_job::thresholds::{Crossed, Tally, Thresholds};
use sluice_job::{Failure, JobSpec, Plan};

use crate::exec::{Exec, Tried, TryInput, host_fault, install_panic_location_hook, worker_runtime};
use crate::guest_log::FileGuestLog;
use crate::jobdir::JobDir;
use crate::observer::{BatchFinished, BatchOutcome, BatchStarted, CancelToken, JobStarted, NoObserver, RunObserver};
use crate::progress::Counters;
use crate::remote::{Artifact, Dispatch, Dispatched, JobTicket};
use crate::report::{self, BatchRecord, BatchStatus, SavedSchema};

/// How many errors `job_result.json` lists.
const FIRST_ERRORS: usize = 20;

/// Where a job runs and what it may reuse (library settings only: how
/// progress is shown and which registry lists the job are observers, see
/// [`PreparedJob::run`]).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The job directory (created if missing).
    pub job_dir: PathBuf,
    /// Compiled-component cache; `None` compiles every time.
    pub cache_dir: Option<PathBuf>,
    /// Forget what an earlier run in `job_dir` committed and start over.
    pub restart: bool,
    /// Where the spec came from: saved as `spec.json` for `resume` and
    /// `replay`.
    pub source: Option<sluice_job::spec::SpecSource>,
    /// Where the scorer is compiled: by default a child process with the
    /// job's compile limits (`sluice __compile-component`, found as
    /// [`Compiler::Discover`] says).
    pub compiler: Compiler,
}

impl RunOptions {
    /// A job in `job_dir`, without a compile cache, resuming what is
    /// there; set the other fields with struct update syntax.
    pub fn new(job_dir: PathBuf) -> RunOptions {
        RunOptions { job_dir, cache_dir: None, restart: false, source: None, compiler: Compiler::Discover }
    }
}

/// The backends a prepared job runs on; the default is the embedded,
/// in-process one.
#[derive(Default)]
pub struct Backends {
    /// Where workers take mini-batches from. `None`: an in-process queue
    /// of [`PreparedJob::todo`]. A queue given here must deliver exactly
    /// those indexes.
    pub queue: Option<Arc<dyn WorkQueue>>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends").field("queue", &self.queue.as_ref().map(|_| "custom")).finish()
    }
}

/// Who runs a prepared job's mini-batches: this process's workers, or a
/// dispatcher's nodes.
enum Driver<'d> {
    Local(Backends),
    /// Boxed: a ticket is large next to [`Backends`].
    Remote(&'d dyn Dispatch, Box<JobTicket>),
}

/// A job that could not run at all (as opposed to one that ran and failed
/// its thresholds, which is a [`JobResult`] with status `failed`).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The job directory, or a file or folder in it, could not be created, written or read.
    #[error("{path}: cannot create the job directory: {source}")]
    JobDir {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The input could not be listed.
    #[error(transparent)]
    Input(#[from] sluice_io::inputs::InputError),
    /// The scorer could not be loaded, compiled or linked, or the job's limits do not fit the engine.
    #[error(transparent)]
    Engine(#[from] sluice_engine::EngineError),
    /// The output could not be opened, or its staged parts could not be discarded.
    #[error("{path}: cannot write the output: {source}")]
    Output {
        /// The output file, or the folder of its staged parts.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The input or the output is on object storage that cannot be opened
    /// or reached (no credentials, no such bucket, the endpoint refuses):
    /// names the URL.
    #[error(transparent)]
    Storage(#[from] sluice_io::StorageError),
    /// A worker thread could not be spawned; the value is the OS error.
    #[error("cannot start worker threads: {0}")]
    Threads(std::io::Error),
    /// A tabular job could not be planned.
    #[error("{path}: {source}")]
    Tabular {
        /// The job's input.
        path: sluice_job::spec::Location,
        /// Why planning failed.
        source: sluice_io::tabular::TabularError,
    },
    /// The models the job grants could not be loaded (the ONNX Runtime library, or a model file).
    #[error("cannot load the granted models")]
    Models(#[from] sluice_engine::OnnxError),
    /// The journal could not be opened or written, or it belongs to a run with other inputs.
    #[error(transparent)]
    Journal(#[from] sluice_io::journal::JournalError),
    /// The job would write over what it reads: the output is (or is in) the input, the scorer or a model,
    /// or the job directory is inside the input folder.
    #[error("{what}; choose another path (a job never writes over what it reads)")]
    Overlap {
        /// Which paths overlap, in words.
        what: String,
    },
    /// A cluster job's ticket could not be made or opened on a node.
    #[error("{0}")]
    Ticket(String),
    /// `replay` was given an id that no mini-batch id, or more than one, starts with.
    #[error("no mini-batch `{id}` in this job (its first ids: {known}); see processed_mini_batches.csv")]
    NoSuchMiniBatch {
        /// The id (or id prefix) asked for.
        id: String,
        /// The plan's first few ids, comma-separated.
        known: String,
    },
}

/// State shared by the workers of one job.
pub(crate) struct Job<'a> {
    spec: &'a JobSpec,
    pub(crate) plan: Plan,
    /// What running a try needs (the scorer, the input, the models).
    pub(crate) exec: Exec,
    queue: Arc<dyn WorkQueue>,
    pub(crate) output: Option<Arc<dyn OutputStore>>,
    /// Owns exactly-once: stages parts (into `output`) and commits entries.
    pub(crate) journal: Box<dyn CommitLog>,
    thresholds: Thresholds,
    pub(crate) stop: AtomicBool,
    counters: Arc<Counters>,
    pub(crate) state: Mutex<Shared>,
    observer: &'a dyn RunObserver,
    pub(crate) cancel: CancelToken,
    /// Per mini-batch, what its earlier tries left (a failed try is
    /// delivered again, maybe to another worker).
    tries: Mutex<HashMap<usize, Tries>>,
}

/// What the tries of one mini-batch carry from one delivery to the next.
struct Tries {
    start: Instant,
    budget: Arc<LogBudget>,
    last_failure: Option<Failure>,
    instance: Option<usize>,
}

#[derive(Default)]
pub(crate) struct Shared {
    tally: Tally,
    pub(crate) crossed: Option<(Crossed, String)>,
    pub(crate) records: Vec<Option<BatchRecord>>,
    first_errors: Vec<ErrorEntry>,
    output_rows: u64,
    /// Why the job itself failed (not one of its mini-batches).
    pub(crate) fault: Option<String>,
    /// Mini-batches whose result is being committed (the first result
    /// wins).
    pub(crate) committing: std::collections::HashSet<usize>,
}

/// Runs a job to the end and writes its job directory, with its rows going
/// to the file or object `task.append_row_to` names. Returns `Err` only when
/// the job cannot run at all (bad scorer, unreadable input folder or bucket,
/// output folder that cannot be made).
pub fn run_job(spec: &JobSpec, opts: &RunOptions) -> Result<JobResult, RunError> {
    prepare_local(spec, opts)?.run(Backends::default(), &NoObserver, &CancelToken::default())
}

/// [`run_job`] with the rows going to any [`OutputStore`] (a test double);
/// `output` must be `Some` when the spec has `append_row_to`, whose format
/// it is written in. The input is read as [`sluice_io::open_input`] picks.
pub fn run_job_with_output(
    spec: &JobSpec,
    opts: &RunOptions,
    output: Option<Box<dyn OutputStore>>,
) -> Result<JobResult, RunError> {
    prepare(spec, opts, sluice_io::open_input(&spec.input)?, output)?.run(
        Backends::default(),
        &NoObserver,
        &CancelToken::default(),
    )
}

/// [`prepare`] with the input and the output where the spec says: local
/// files ([`sluice_io::LocalSource`], [`sluice_io::LocalOutput`] staged under
/// the job directory) or object storage ([`sluice_io::ObjectSource`],
/// [`sluice_io::ObjectOutput`] staged next to the output object, under
/// [`sluice_io::objects::staging_url`]), as [`sluice_io::open_input`] and
/// [`sluice_io::open_output`] pick.
pub fn prepare_local(spec: &JobSpec, opts: &RunOptions) -> Result<PreparedJob, RunError> {
    check_paths(spec, &opts.job_dir)?;
    let output = match &spec.append_row_to {
        Some(o) => {
            // The staging prefix of a URL output is named by the job
            // directory's canonical path: make it first.
            let dir = &opts.job_dir;
            std::fs::create_dir_all(dir).map_err(|source| RunError::JobDir { path: dir.clone(), source })?;
            let staged = JobDir::open(dir).staged_dir();
            Some(sluice_io::open_output(o, &staged, dir).map_err(|e| match e {
                sluice_io::objects::OpenOutputError::Local { path, source } => RunError::Output { path, source },
                sluice_io::objects::OpenOutputError::Storage(e) => RunError::Storage(e),
            })?)
        }
        None => None,
    };
    prepare(spec, opts, sluice_io::open_input(&spec.input)?, output)
}

/// A job ready to run: planned, its models loaded, its scorer compiled, its
/// job directory opened, and what an earlier run committed known (those
/// mini-batches are skipped). Nothing has run yet.
pub struct PreparedJob {
    spec: JobSpec,
    opts: RunOptions,
    plan: Plan,
    /// Kept alive while the job runs: its epoch ticker is what enforces
    /// wall-clock deadlines.
    engine: ScorerEngine,
    component: ScorerComponent,
    input: Arc<dyn InputSource>,
    tabular: Option<TabularInput>,
    models: Option<Arc<ModelRegistry>>,
    output: Option<Arc<dyn OutputStore>>,
    journal: Box<dyn CommitLog>,
    log: Arc<FileGuestLog>,
    /// What an earlier run committed, by index.
    records: Vec<Option<BatchRecord>>,
    /// The mini-batches to run, in input order.
    todo: Vec<usize>,
    schema: Option<(Schema, Vec<u8>)>,
    /// Set by [`PreparedJob::only`]: the rest is left out on purpose.
    only: bool,
    started: Instant,
    started_at: String,
    plan_s: f64,
    compile_s: f64,
}

impl std::fmt::Debug for PreparedJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedJob")
            .field("job", &self.spec.name)
            .field("mini_batches", &self.plan.mini_batches.len())
            .field("todo", &self.todo.len())
            .finish_non_exhaustive()
    }
}

/// Prepares `spec` to run in `opts.job_dir`, its input listed and read
/// through `input` and its rows going to `output` (`Some` when the spec has
/// `append_row_to`): the prepare step of prepare / run / finish.
pub fn prepare(
    spec: &JobSpec,
    opts: &RunOptions,
    input: Arc<dyn InputSource>,
    output: Option<Box<dyn OutputStore>>,
) -> Result<PreparedJob, RunError> {
    check_paths(spec, &opts.job_dir)?;
    let started = Instant::now();
    let started_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let dir = &opts.job_dir;
    std::fs::create_dir_all(dir).map_err(|source| RunError::JobDir { path: dir.clone(), source })?;
    // A cancel request left by an earlier run is not this run's.
    let _ = std::fs::remove_file(dir.join(CANCEL_FILE));
    if let Some(src) = &opts.source {
        JobDir::open(dir).write_spec(src).map_err(|e| RunError::JobDir { path: e.path, source: e.source })?;
    }
    for note in &spec.notes {
        tracing::info!("note: {note}");
    }
    // File data inputs get a folder of their own in the job directory.
    let mut spec_with_grants = spec.clone();
    crate::grants::grant_files(&mut spec_with_grants, &dir.join("grants"))?;
    let spec = &spec_with_grants;

    let items = input.list(&spec.input)?;
    if items.is_empty() {
        tracing::warn!("{} holds no input files: nothing to score", spec.input.path.display());
    }
    let (plan, tabular) = if spec.input.tabular {
        let (plan, tabular) = sluice_io::plan_tabular(
            input.clone(),
            items,
            spec.mini_batch_size,
            &spec.partition_keys,
            spec.limits.max_file_bytes,
        )
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

    let mut manifest = manifest(spec, &component, models.as_deref());
    // An MLTable file decides the files, columns and rows: a changed one
    // is a changed setting.
    if let Some((file, hash)) = tabular.as_ref().and_then(|t| t.read.mltable.as_ref()) {
        manifest.settings.insert(format!("input.{file}"), format!("sha256 {}", &hash[..hash.len().min(12)]));
    }
    let mut plan = plan;
    plan.salt(&manifest.fingerprint());
    let output: Option<Arc<dyn OutputStore>> = output.map(Arc::from);
    let journal: Box<dyn CommitLog> = Box::new(LocalJournal::open(dir, &manifest, opts.restart, output.clone())?);
    if opts.restart
        && let Some(store) = &output
    {
        store.discard_parts().map_err(|source| RunError::Output { path: JobDir::open(dir).staged_dir(), source })?;
    }

    let log = Arc::new(
        FileGuestLog::new(&spec.name, JobDir::open(dir).logs_dir())
            .map_err(|source| RunError::JobDir { path: JobDir::open(dir).logs_dir(), source })?,
    );
    let total = plan.mini_batches.len();
    // Mini-batches an earlier run committed are not run again.
    let mut records = vec![None; total];
    let mut todo = Vec::with_capacity(total);
    for mb in &plan.mini_batches {
        // The log counts an entry only while its part is still staged.
        match journal.committed(mb.index, &mb.id).and_then(|e| serde_json::from_slice::<BatchRecord>(&e).ok()) {
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
    let schema = journal.schema().and_then(|s| serde_json::from_slice::<SavedSchema>(&s).ok()).map(|s| {
        (s.columns.into_iter().map(|(n, t)| (n, sluice_job::data::type_name(&t))).collect::<Schema>(), s.header)
    });
    Ok(PreparedJob {
        spec: spec.clone(),
        opts: opts.clone(),
        plan,
        engine,
        component,
        input,
        tabular,
        models,
        output,
        journal,
        log,
        records,
        todo,
        schema,
        only: false,
        started,
        started_at,
        plan_s,
        compile_s,
    })
}

impl PreparedJob {
    /// The job's plan: its items and mini-batches (with their salted ids).
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The mini-batches this run will run (by index, in input order): all
    /// but those an earlier run committed.
    pub fn todo(&self) -> &[usize] {
        &self.todo
    }

    /// How many mini-batches an earlier run committed.
    pub fn resumed(&self) -> usize {
        self.records.iter().flatten().count()
    }

    /// Runs only the mini-batch with this id (or unique id prefix), as if
    /// nothing had been committed: `replay`.
    pub fn only(&mut self, id: &str) -> Result<(), RunError> {
        let found: Vec<usize> =
            self.plan.mini_batches.iter().filter(|m| m.id.starts_with(id)).map(|m| m.index).collect();
        let [index] = found.as_slice() else {
            let known: Vec<&str> = self.plan.mini_batches.iter().take(5).map(|m| m.id.as_str()).collect();
            return Err(RunError::NoSuchMiniBatch { id: id.to_string(), known: known.join(", ") });
        };
        self.records.iter_mut().for_each(|r| *r = None);
        self.todo = vec![*index];
        self.only = true;
        Ok(())
    }

    /// Runs the job's mini-batches on `backends`, telling `observer` what
    /// happens, until they are all done, a threshold or fault stops the
    /// job, or `cancel` is canceled; then finishes it (assembles the
    /// output, writes the job directory) and returns what
    /// `job_result.json` says.
    pub fn run(
        self,
        backends: Backends,
        observer: &dyn RunObserver,
        cancel: &CancelToken,
    ) -> Result<JobResult, RunError> {
        self.run_with(Driver::Local(backends), observer, cancel)
    }

    /// What every node of a cluster needs to run this job's mini-batches
    /// (see [`crate::remote`]); `key` names the job on the cluster. Needs
    /// the spec's source ([`RunOptions::source`]).
    pub fn ticket(&self, key: &str) -> Result<JobTicket, RunError> {
        let source = self.opts.source.clone().ok_or_else(|| {
            RunError::Ticket("a job run on a cluster needs its spec source (RunOptions::source)".into())
        })?;
        let artifact = |path: &std::path::Path, hash: &str| Artifact {
            hash: hash.to_string(),
            path: path.to_path_buf(),
            size: std::fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        };
        let models = match &self.models {
            Some(reg) => reg
                .names()
                .into_iter()
                .filter_map(|n| reg.get(&n).ok().map(|m| (n, artifact(m.path(), m.hash()))))
                .collect(),
            None => Vec::new(),
        };
        let tabular_schema = match &self.tabular {
            Some(t) => Some(sluice_io::tabular::schema_to_ipc(&t.schema).map_err(RunError::Ticket)?),
            None => None,
        };
        Ok(JobTicket {
            key: key.to_string(),
            name: self.spec.name.clone(),
            source,
            job_dir: self
                .opts
                .job_dir
                .canonicalize()
                .or_else(|_| std::path::absolute(&self.opts.job_dir))
                .unwrap_or_else(|_| self.opts.job_dir.clone()),
            scorer: artifact(&self.spec.scorer, &self.component.hash),
            models,
            tabular_schema,
            schema_source: self.tabular.as_ref().map(|t| t.schema_source.clone()).unwrap_or_default(),
            tabular_read: self.tabular.as_ref().map(|t| (*t.read).clone()).unwrap_or_default(),
            max_tries: self.spec.max_retries + 1,
            mini_batches: self.todo.len(),
        })
    }

    /// [`PreparedJob::run`] with the mini-batches run by `dispatch` (a
    /// cluster's nodes) instead of this process's workers; everything else
    /// (commits, thresholds, cancel, the output, the job directory) is the
    /// same. `ticket` is what [`PreparedJob::ticket`] gave.
    pub fn run_on(
        self,
        dispatch: &dyn Dispatch,
        ticket: JobTicket,
        observer: &dyn RunObserver,
        cancel: &CancelToken,
    ) -> Result<JobResult, RunError> {
        self.run_with(Driver::Remote(dispatch, Box::new(ticket)), observer, cancel)
    }

    fn run_with(
        self,
        driver: Driver<'_>,
        observer: &dyn RunObserver,
        cancel: &CancelToken,
    ) -> Result<JobResult, RunError> {
        let PreparedJob {
            spec,
            opts,
            plan,
            engine,
            component,
            input,
            tabular,
            models,
            output,
            journal,
            log,
            records,
            todo,
            schema,
            only,
            started,
            started_at,
            plan_s,
            compile_s,
        } = self;
        let dir = opts.job_dir.clone();
        let total = plan.mini_batches.len();
        let resumed = records.iter().flatten().count() as u64;
        let workers = spec.max_concurrency.min(todo.len().max(1));
        let (queue, remote): (Arc<dyn WorkQueue>, _) = match driver {
            Driver::Local(backends) => {
                (backends.queue.unwrap_or_else(|| Arc::new(InProcessQueue::of(todo.clone()))), None)
            }
            // The nodes take mini-batches from the dispatcher's queue; this
            // one stays empty.
            Driver::Remote(d, ticket) => {
                (Arc::new(InProcessQueue::of(Vec::new())) as Arc<dyn WorkQueue>, Some((d, ticket)))
            }
        };
        install_panic_location_hook();
        let job = Job {
            spec: &spec,
            exec: Exec {
                spec: spec.clone(),
                component,
                input,
                tabular,
                models,
                log: log.clone(),
                next_instance: AtomicUsize::new(1),
                cancel: cancel.clone(),
                schema: Mutex::new(schema),
                folders: crate::folders::Folders::new(&opts.job_dir, &spec.output_folders, &spec.limits),
            },
            queue,
            journal,
            output,
            thresholds: Thresholds {
                error_threshold: spec.error_threshold,
                mini_batch_error_threshold: spec.mini_batch_error_threshold,
                allowed_failed_percent: spec.allowed_failed_percent,
            },
            stop: AtomicBool::new(false),
            counters: Arc::new(Counters::default()),
            state: Mutex::new(Shared { records: vec![None; total], ..Shared::default() }),
            plan,
            observer,
            cancel: cancel.clone(),
            tries: Mutex::new(HashMap::new()),
        };
        observer.job_started(&JobStarted {
            job: spec.name.clone(),
            job_dir: dir.clone(),
            total: total as u64,
            resumed,
        });
        for (index, r) in records.into_iter().enumerate() {
            if let Some(r) = r {
                job.finalize(index, r);
            }
        }

        let run_start = Instant::now();
        let cancel_file = dir.join(CANCEL_FILE);
        let monitor = crate::monitor::Monitor::start(crate::monitor::MonitorSetup {
            dir: dir.clone(),
            job: spec.name.clone(),
            started_at: started_at.clone(),
            total: total as u64,
            counters: job.counters.clone(),
            tick: {
                let log = log.clone();
                let cancel = cancel.clone();
                Box::new(move || {
                    log.flush();
                    // `sluice jobs cancel` from another process.
                    if !cancel.is_canceled()
                        && let Ok(why) = std::fs::read_to_string(&cancel_file)
                    {
                        cancel.cancel(sluice_job::text::guest_text(why.trim(), 512));
                    }
                })
            },
        });
        let ended = AtomicBool::new(false);
        std::thread::scope(|s| -> Result<(), RunError> {
            let job = &job;
            let ended = &ended;
            // The cancel watch: stops the job when canceled and, after the
            // grace period, abandons what is still in flight.
            s.spawn(move || {
                let pause = std::time::Duration::from_millis(20);
                while !ended.load(Ordering::Acquire) {
                    if job.cancel.is_canceled() {
                        let why = job.cancel.reason().unwrap_or_else(|| "canceled".into());
                        job.request_stop(&why);
                        let until = Instant::now() + job.cancel.grace();
                        while !ended.load(Ordering::Acquire) && Instant::now() < until {
                            std::thread::sleep(pause);
                        }
                        if !ended.load(Ordering::Acquire) {
                            tracing::warn!(
                                "the grace period ({:?}) is over: abandoning the mini-batches in flight",
                                job.cancel.grace()
                            );
                            job.cancel.abandon();
                        }
                        return;
                    }
                    std::thread::sleep(pause);
                }
            });
            if let Some((dispatch, ticket)) = remote {
                let d = Dispatched { job, ticket: *ticket, todo, tries: Mutex::new(HashMap::new()) };
                let r = catch_unwind(AssertUnwindSafe(|| dispatch.dispatch(&d)));
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(why)) => job.fault(why),
                    Err(p) => job.fault(format!("the dispatcher failed: {}", host_fault(&p).message)),
                }
                ended.store(true, Ordering::Release);
                return Ok(());
            }
            let mut handles = Vec::new();
            for w in 0..workers {
                let h = std::thread::Builder::new()
                    .name(format!("sluice-worker-{w}"))
                    .spawn_scoped(s, move || worker(job))
                    .map_err(RunError::Threads);
                match h {
                    Ok(h) => handles.push(h),
                    Err(e) => {
                        job.request_stop("cannot start worker threads");
                        for h in handles {
                            let _ = h.join();
                        }
                        ended.store(true, Ordering::Release);
                        return Err(e);
                    }
                }
            }
            for h in handles {
                if h.join().is_err() {
                    tracing::error!("a worker thread panicked; its mini-batch is reported as not run");
                }
            }
            ended.store(true, Ordering::Release);
            Ok(())
        })?;
        monitor.stop();
        let run_s = run_start.elapsed().as_secs_f64();
        log.flush();

        let timings = Timings { plan_s, compile_s, run_s, total_s: 0.0, peak_rss_mb: 0.0 };
        let result = finish(job, &opts, only, started_at, timings, started)?;
        drop(engine);
        observer.job_finished(&result);
        Ok(result)
    }
}

/// The file in a job directory that asks the process running it to cancel
/// it (`sluice jobs cancel`); it holds the reason.
pub const CANCEL_FILE: &str = "cancel_requested";

/// Asks the process running the job in `job_dir` to cancel it: it sees the
/// request within about a second and stops as Ctrl-C would.
pub fn request_cancel(job_dir: &std::path::Path, why: &str) -> std::io::Result<()> {
    sluice_job::durable::write_durably(&job_dir.join(CANCEL_FILE), why.as_bytes())
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
///
/// An object-storage URL is compared as text (the same scheme, bucket and
/// key prefix, by whole segments; `s3a://` is `s3://`): an output URL in or
/// at the input URL is refused; a URL never overlaps a local path.
fn check_paths(spec: &JobSpec, job_dir: &std::path::Path) -> Result<(), RunError> {
    use sluice_job::spec::Location;
    let input = match &spec.input.path {
        Location::Local(p) => resolved(p),
        Location::Url(url) => {
            if let Some(Location::Url(out)) = spec.append_row_to.as_ref().map(|o| &o.path) {
                let key = |u: &str| match u.split_once("://") {
                    Some((scheme, rest)) => {
                        let scheme = scheme.to_ascii_lowercase();
                        format!("{}://{rest}", if scheme == "s3a" { "s3" } else { &scheme })
                    }
                    None => u.to_string(),
                };
                let (o, i) = (key(out), key(url));
                if o == i || o.starts_with(&format!("{i}/")) {
                    return Err(RunError::Overlap {
                        what: format!(
                            "the output task.append_row_to = {out} is {} the input ({url})",
                            if o == i { "the same object as" } else { "inside" }
                        ),
                    });
                }
            }
            // A local output, scorer, model or job directory is not in a
            // bucket: only the local checks below remain.
            PathBuf::new()
        }
    };
    let inside = |p: &std::path::Path, root: &std::path::Path| {
        !root.as_os_str().is_empty() && (p == root || (root.is_dir() && p.starts_with(root)))
    };
    // An output folder and what the job reads must not hold each other: the
    // scorer's files would become input (and a resume's listing differ).
    for f in &spec.output_folders {
        let folder = resolved(&f.host_path);
        let mut reads = vec![("the input", input.clone()), ("the scorer (task.code)", resolved(&spec.scorer))];
        reads.extend(spec.models.iter().map(|m| ("a granted model", resolved(&m.path))));
        reads.extend(spec.data_inputs.iter().map(|d| ("a data input", resolved(&d.host_path))));
        reads.extend(spec.mounts.iter().map(|m| ("a mount", resolved(&m.host_path))));
        reads.push(("the job directory", resolved(job_dir)));
        for (what, path) in reads {
            if !path.as_os_str().is_empty() && (inside(&folder, &path) || folder == path || path.starts_with(&folder)) {
                return Err(RunError::Overlap {
                    what: format!(
                        "the output folder outputs.{} = {} and {what} ({}) hold one another",
                        f.name,
                        folder.display(),
                        path.display()
                    ),
                });
            }
        }
    }
    if let Some(o) = &spec.append_row_to
        && let Location::Local(out) = &o.path
    {
        let out = resolved(out);
        let mut reads = vec![("the input", input.clone()), ("the scorer (task.code)", resolved(&spec.scorer))];
        reads.extend(spec.models.iter().map(|m| ("a granted model", resolved(&m.path))));
        reads.extend(spec.data_inputs.iter().map(|d| ("a data input", resolved(&d.host_path))));
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
    if !input.as_os_str().is_empty() && input.is_dir() && jd.starts_with(&input) {
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
/// instance at a time, taking one delivery (one try) at a time.
fn worker(job: &Job<'_>) {
    let mut rt = match worker_runtime() {
        Ok(rt) => rt,
        Err(e) => {
            job.fault(format!("cannot start a worker runtime: {e}"));
            return;
        }
    };
    let mut instance: Option<ScorerInstance> = None;
    while let Some(lease) = job.queue.take() {
        if job.cancel.is_canceled() {
            // Seen here first when mini-batches are quicker than the watch.
            job.request_stop(&job.cancel.reason().unwrap_or_else(|| "canceled".into()));
        }
        if job.stop.load(Ordering::Acquire) {
            // Taken as the job stopped: not run (a resume runs it).
            let _ = job.queue.nack(lease, false);
            continue;
        }
        run_delivery(job, &mut rt, lease, &mut instance);
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

/// Runs one delivery of a mini-batch: one try ([`Exec::try_once`]), then
/// settles it. A failed try is given back to the queue to be delivered
/// again (to this or another worker, on a fresh instance) until
/// `max_retries` is spent; the last failure is the mini-batch's. A job
/// fault (its output or journal cannot be written) stops the job and
/// leaves the mini-batch uncommitted. A result whose lease was lost
/// meanwhile, or that comes after a cancel's grace period, is dropped
/// uncommitted.
fn run_delivery(job: &Job<'_>, rt: &mut tokio::runtime::Runtime, lease: Lease, instance: &mut Option<ScorerInstance>) {
    let index = lease.index;
    let mb = &job.plan.mini_batches[index];
    let (start, budget, last_failure, last_instance) = {
        let mut tries = job.tries.lock().expect("tries lock");
        let t = tries.entry(index).or_insert_with(|| Tries {
            start: Instant::now(),
            // One guest log budget for every try of this mini-batch.
            budget: LogBudget::new(job.spec.limits.max_log_bytes),
            last_failure: None,
            instance: None,
        });
        (t.start, t.budget.clone(), t.last_failure.clone(), t.instance)
    };
    let max_tries = job.spec.max_retries + 1;
    job.observer.mini_batch_started(&BatchStarted { index, id: mb.id.clone(), attempt: lease.delivery });
    let t = TryInput { plan: &job.plan, mb, delivery: lease.delivery, budget, last_failure, last_instance, start };
    let tried = match job.exec.try_once(rt, instance, t, &|schema| job.journal.save_schema(schema)) {
        Tried::Succeeded { mut record, part: Some(part) } => {
            if !job.keeps(&lease) {
                job.drop_delivery(lease);
                return;
            }
            // A store with a bug (a panic) fails this try as HOST_FAULT,
            // as a panic in the try itself does; an I/O error stops the job.
            match catch_unwind(AssertUnwindSafe(|| job.stage(index, &part))) {
                Ok(Ok(())) => Tried::Succeeded { record, part: None },
                Ok(Err(e)) => {
                    job.fault(format!("cannot stage the output of mini-batch {}: {e}", mb.id));
                    let _ = job.queue.nack(lease, false);
                    return;
                }
                Err(panic) => {
                    *instance = None;
                    record.item_errors.clear();
                    record.error_labels.clear();
                    record.rows = 0;
                    Tried::Failed { record, failure: host_fault(&panic), retryable: true }
                }
            }
        }
        other => other,
    };
    match tried {
        Tried::Succeeded { record, .. } => job.settle_ok(lease, record),
        Tried::Abandoned => job.drop_delivery(lease),
        Tried::Failed { mut record, failure, retryable } => {
            if retryable && record.tries < max_tries && !job.stop.load(Ordering::Acquire) {
                {
                    let mut tries = job.tries.lock().expect("tries lock");
                    if let Some(t) = tries.get_mut(&index) {
                        t.last_failure = Some(failure.clone());
                        t.instance = record.instance;
                    }
                }
                match job.queue.nack(lease, true) {
                    Ok(true) => return,
                    // Not delivered again (the job stopped): this failure
                    // is the mini-batch's.
                    Ok(false) => {}
                    Err(lost) => {
                        tracing::warn!(mini_batch = %mb.id, "{lost}");
                        return;
                    }
                }
                record.finish_failed(failure, start.elapsed());
                job.finalize_failed(record);
                return;
            }
            record.finish_failed(failure, start.elapsed());
            job.settle_failed(lease, record);
        }
    }
}

impl Job<'_> {
    /// Records a fault of the job itself (its output or journal cannot be
    /// written, a worker cannot start): the job stops and fails with it as
    /// the reason; what is committed stays, and a resume runs the rest.
    pub(crate) fn fault(&self, why: String) {
        tracing::error!("stopping the job: {why}");
        self.state.lock().expect("job lock").fault.get_or_insert(why.clone());
        self.request_stop(&why);
    }

    /// No new mini-batches: the queue hands out nothing more; the ones in
    /// flight finish (or, after a cancel's grace period, are abandoned).
    fn request_stop(&self, why: &str) {
        if !self.stop.swap(true, Ordering::AcqRel) {
            self.observer.job_stopping(why);
        }
        self.queue.close();
    }

    /// Whether this delivery's result may still be kept: its lease is
    /// still held and a cancel has not abandoned the work in flight.
    fn keeps(&self, lease: &Lease) -> bool {
        !self.cancel.abandoned() && self.queue.held(lease)
    }

    /// A delivery whose result is not kept: the lease is given back without
    /// a retry (lost: another delivery owns the mini-batch; abandoned: a
    /// resume runs it).
    fn drop_delivery(&self, lease: Lease) {
        let index = lease.index;
        if self.cancel.abandoned() {
            tracing::warn!(mini_batch = %self.plan.mini_batches[index].id, "abandoned after the cancel's grace period");
        } else {
            tracing::warn!(mini_batch = %self.plan.mini_batches[index].id, "lease lost: its result is dropped");
        }
        let _ = self.queue.nack(lease, false);
    }

    /// A try that succeeded: commits it (the first result of a mini-batch
    /// wins; a later one, from a redelivery after a lost lease, is dropped)
    /// and acks the lease.
    fn settle_ok(&self, lease: Lease, record: BatchRecord) {
        let index = lease.index;
        if !self.keeps(&lease) {
            self.drop_delivery(lease);
            return;
        }
        {
            let mut st = self.state.lock().expect("job lock");
            if st.records[index].is_some() || !st.committing.insert(index) {
                drop(st);
                tracing::warn!(mini_batch = %record.id, "a second result for a committed mini-batch: dropped");
                let _ = self.queue.ack(lease);
                return;
            }
        }
        let Some(record) = self.commit(record) else {
            let _ = self.queue.nack(lease, false);
            return;
        };
        // An ack is not a commit: the entry is what counts, so a lease lost
        // after it changes nothing.
        let _ = self.queue.ack(lease);
        self.tries.lock().expect("tries lock").remove(&index);
        self.finalize(index, record);
    }

    /// A mini-batch that failed for good: its record is final, its lease
    /// acked.
    fn settle_failed(&self, lease: Lease, record: BatchRecord) {
        if self.queue.ack(lease).is_err() {
            // Another delivery owns it now.
            return;
        }
        self.finalize_failed(record);
    }

    pub(crate) fn finalize_failed(&self, record: BatchRecord) {
        let index = record.index;
        self.tries.lock().expect("tries lock").remove(&index);
        if self.state.lock().expect("job lock").records[index].is_some() {
            return;
        }
        self.finalize(index, record);
    }

    /// Makes a finished mini-batch's rows durable (its staged part).
    fn stage(&self, index: usize, part: &[u8]) -> std::io::Result<()> {
        self.journal.stage(index, part)
    }

    /// Journals a succeeded mini-batch (after its part is staged): from
    /// here on a resumed job skips it. A journal that cannot be written is
    /// a fault of the job (no mini-batch would survive a resume): it stops,
    /// and this mini-batch stays uncommitted.
    pub(crate) fn commit(&self, record: BatchRecord) -> Option<BatchRecord> {
        let entry = serde_json::to_vec(&record).map_err(std::io::Error::other);
        if let Err(e) = entry.and_then(|entry| self.journal.commit(&entry)) {
            self.fault(format!("cannot write the journal ({}): {e}", self.journal_dir()));
            return None;
        }
        Some(record)
    }

    fn journal_dir(&self) -> String {
        self.journal.location()
    }

    /// Records a mini-batch's final outcome, updates the tally and checks
    /// the thresholds.
    pub(crate) fn finalize(&self, index: usize, record: BatchRecord) {
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
        let finished = BatchFinished {
            index,
            id: record.id.clone(),
            outcome: match (record.resumed, record.status) {
                (true, _) => BatchOutcome::Resumed,
                (false, BatchStatus::Failed) => BatchOutcome::Failed,
                (false, _) => BatchOutcome::Succeeded,
            },
            tries: record.tries,
            items: record.item_count as u64,
            failed_items: match record.status {
                BatchStatus::Failed => record.item_count as u64,
                _ => record.item_errors.len() as u64,
            },
            rows: record.rows,
            failure: record.failure.as_ref().filter(|_| record.status == BatchStatus::Failed).map(|f| f.to_string()),
            counters: self.counters.snapshot(),
        };
        st.records[index] = Some(record);
        let mut stop = None;
        if st.crossed.is_none()
            && let Some(crossed) = self.thresholds.check(&st.tally, self.plan.mini_batches.len() as u64)
        {
            tracing::error!("stopping the job: {}", crossed.1);
            stop = Some(crossed.1.clone());
            st.crossed = Some(crossed);
        }
        drop(st);
        if let Some(why) = stop {
            self.request_stop(&why);
        }
        self.observer.mini_batch_finished(&finished);
    }
}

fn finish(
    job: Job<'_>,
    opts: &RunOptions,
    only: bool,
    started_at: String,
    mut timings: Timings,
    started: Instant,
) -> Result<JobResult, RunError> {
    let Job { output, spec, plan, thresholds, state, mut journal, cancel, exec, .. } = job;
    let journal_flushed = match journal.close() {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("the journal could not be flushed ({e}): a resume may run some mini-batches again");
            false
        }
    };
    let mut st = state.into_inner().expect("job lock");
    // The output, from the staged parts of every mini-batch that succeeded
    // with rows, in input order (a stopped job keeps what it did). A failed
    // write fails the job; its report is still written and the staged
    // parts stay, so a resume can assemble it again.
    let mut write_error = None;
    let output_file = match &output {
        Some(store) => {
            let parts: Vec<PartRef<'_>> = st
                .records
                .iter()
                .flatten()
                .filter(|r| r.status == BatchStatus::Succeeded && r.rows > 0)
                .map(|r| PartRef { index: r.index, tag: r.part.as_deref() })
                .collect();
            // Parts of tries that were not kept (a cluster's second results).
            if let Err(e) = store.discard_tries(&parts) {
                tracing::warn!("cannot delete the parts of tries not kept: {e}");
            }
            // A store with a bug must not take the job's report with it.
            match catch_unwind(AssertUnwindSafe(|| store.assemble(&parts, &exec.header()))) {
                Ok(r) => r.map_err(|e| write_error = Some(e)).ok(),
                Err(p) => {
                    write_error = Some(std::io::Error::other(host_fault(&p).message));
                    None
                }
            }
        }
        None => None,
    };
    // The files committed mini-batches wrote into the output folders, in
    // input order (a stopped job keeps what it did, as for rows).
    if let Some(folders) = exec.folders.as_ref().filter(|_| {
        // Files of entries that may not be durable would be written again by
        // the resume that runs them again: they stay staged for it.
        if !journal_flushed {
            tracing::warn!("the output folders are not assembled: the journal could not be flushed");
        }
        journal_flushed
    }) {
        let committed = st
            .records
            .iter()
            .flatten()
            .filter(|r| r.status == BatchStatus::Succeeded && !r.folder_files.is_empty())
            .map(|r| (r.id.as_str(), r.folder_files.as_slice()));
        match catch_unwind(AssertUnwindSafe(|| folders.assemble(committed))) {
            Ok(Ok(n)) => tracing::info!("{n} files in the output folders"),
            Ok(Err(e)) => write_error = write_error.or(Some(e)),
            Err(p) => write_error = write_error.or(Some(std::io::Error::other(host_fault(&p).message))),
        }
    }
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
    if cancel.is_canceled() && result.mini_batches.not_run > 0 && result.status != JobStatus::Failed {
        result.status = JobStatus::Canceled;
        result.reason = Some(format!(
            "{}; {} of {} mini-batches did not run (`sluice resume` runs them)",
            cancel.reason().unwrap_or_else(|| "canceled".into()),
            result.mini_batches.not_run,
            result.mini_batches.total
        ));
    }
    report::never_complete_with_unrun(&mut result, only);
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
    let job_dir = JobDir::open(&opts.job_dir);
    report::write_job_dir(&job_dir, &result, &plan, &st.records)
        .map_err(|e| RunError::JobDir { path: e.path, source: e.source })?;
    if let Ok(Some(mut p)) = job_dir.read_progress() {
        p.status =
            serde_json::to_value(result.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        p.elapsed_s = result.timings.total_s;
        let _ = job_dir.write_progress(&p);
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
    // What a data input is changes what the scorer reads.
    for d in &spec.data_inputs {
        // A file's size and modification time too: a resume must not score
        // the rest against another version of a lookup table.
        let stamp = match (d.file_name(), std::fs::metadata(&d.host_path)) {
            (Some(_), Ok(m)) => {
                let t = m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                format!(" ({} bytes, modified {})", m.len(), t.map_or(0, |t| t.as_nanos()))
            }
            _ => String::new(),
        };
        set(format!("inputs.{}", d.name), format!("{}{stamp}", d.host_path.display()));
    }
    // Where committed files go, and what a try may write: a resume must
    // assemble into the same folders with the same bounds.
    for f in &spec.output_folders {
        set(
            format!("outputs.{}", f.name),
            format!(
                "{} (max {} MiB, {} files per try)",
                f.host_path.display(),
                spec.limits.max_folder_output_bytes >> 20,
                spec.limits.max_folder_output_files
            ),
        );
    }
    if let Some(o) = &spec.append_row_to {
        set(sluice_io::journal::OUTPUT_KEY.into(), format!("{:?}", o.format).to_lowercase());
    }
    let models = models
        .map(|reg| {
            reg.names().into_iter().filter_map(|n| reg.get(&n).ok().map(|m| (n, m.hash().to_string()))).collect()
        })
        .unwrap_or_default();
    Manifest { version: 1, scorer: component.hash.clone(), models, settings }
}
