//! A job run on other nodes: what a coordinator gives every node
//! ([`JobTicket`], one [`WorkItem`] per mini-batch), what a node does with
//! them ([`NodeJob`]: one try on this node's instances, the same code as
//! the local scheduler's workers) and what it reports back
//! ([`TryReport`]). The transport (a distributed queue, a results stream)
//! is the caller's: this module knows none, so a cluster backend is
//! another [`Dispatch`], not a fork of the scheduler.
//!
//! **A report is not a commit.** A node's lease on a mini-batch can expire
//! while it still runs it, so two nodes can report one mini-batch; the
//! coordinator keeps the first result per mini-batch ([`Dispatched::report`])
//! and drops the rest. A node stages each try's rows under a name of its
//! own ([`sluice_io::OutputStore::stage_try`]); the coordinator promotes
//! the part of the result it keeps and only then journals it, so the
//! local invariant holds: an entry is visible only after its part is
//! durable.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sluice_engine::{Compiler, LogBudget, ModelRegistry, RegistryOptions, ScorerEngine, ScorerInstance};
use sluice_io::{InputSource, OutputStore, TabularInput};
use sluice_job::plan::RowSpan;
use sluice_job::spec::SpecSource;
use sluice_job::{Failure, InputItem, JobSpec, MiniBatchPlan, Plan, ReasonCode};

use crate::exec::{Exec, Tried, TryInput, install_panic_location_hook, worker_runtime};
use crate::guest_log::FileGuestLog;
use crate::jobdir::JobDir;
use crate::observer::CancelToken;
use crate::report::{BatchRecord, BatchStatus, SavedSchema};
use crate::scheduler::{Job, RunError};

/// Everything a node needs to run any mini-batch of a job, published once
/// per job by its coordinator. The spec travels as its source (YAML and
/// overrides), validated again on the node with `task.code` and the
/// models pointed at the node's cached copies of the artifacts: one
/// validation, wherever a job runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobTicket {
    /// The job on the cluster: `[a-z0-9-]`, stable across resumes of one
    /// job directory.
    pub key: String,
    /// The job's name (tags guest log lines).
    pub name: String,
    /// The spec as the coordinator read it.
    pub source: SpecSource,
    /// The coordinator's job directory: where nodes stage parts and write
    /// guest logs when they see it (a path every node mounts).
    pub job_dir: PathBuf,
    /// The scorer: SHA-256 of the component, and where the coordinator
    /// read it (for the upload).
    pub scorer: Artifact,
    /// Granted models by name: SHA-256 of the `.onnx` file, and its path.
    pub models: Vec<(String, Artifact)>,
    /// Tabular input: the job's columns as an Arrow IPC stream (schema
    /// only), and where they came from.
    pub tabular_schema: Option<Vec<u8>>,
    /// Where the tabular schema came from, for messages.
    pub schema_source: String,
    /// Tabular input: how the files are read (an `MLTable` file's options;
    /// the defaults without one).
    #[serde(default)]
    pub tabular_read: sluice_io::ReadOptions,
    /// Tries per mini-batch (`max_retries + 1`): a node's last try is
    /// final.
    pub max_tries: u32,
    /// How many mini-batches the job runs in this run.
    pub mini_batches: usize,
}

/// A file the nodes get by content hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Artifact {
    /// SHA-256, lowercase hex.
    pub hash: String,
    /// Where the coordinator has it.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

/// One mini-batch as a node gets it: its items and row ranges, never its
/// data (a queue message stays small).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkItem {
    /// The job ([`JobTicket::key`]).
    pub job: String,
    /// The mini-batch, with its items numbered from 0 (`items` below).
    pub mini_batch: MiniBatchPlan,
    /// Its items.
    pub items: Vec<InputItem>,
}

impl WorkItem {
    /// Mini-batch `mb` of `plan`, its items renumbered from 0.
    fn of(job: &str, plan: &Plan, mb: &MiniBatchPlan) -> WorkItem {
        let lo = mb.items.start;
        let mut m = mb.clone();
        m.items = 0..mb.items.len();
        for s in &mut m.segments {
            s.file -= lo;
        }
        WorkItem { job: job.to_string(), mini_batch: m, items: plan.items_of(mb).to_vec() }
    }

    /// The one-mini-batch plan a node runs, or why the item is malformed
    /// (it comes off the network: checked before anything indexes with it).
    fn plan(&self) -> Result<Plan, String> {
        let mb = &self.mini_batch;
        if mb.items.start != 0 || mb.items.end != self.items.len() {
            return Err(format!("mini-batch {}: its items do not match its item list", mb.id));
        }
        if mb.segments.iter().any(|s| s.file >= self.items.len()) {
            return Err(format!("mini-batch {}: a segment names a file it does not list", mb.id));
        }
        if mb.segments.iter().any(|s| matches!(&s.rows, RowSpan::Range { start, end, .. } if start > end)) {
            return Err(format!("mini-batch {}: a row range ends before it starts", mb.id));
        }
        Ok(Plan { items: self.items.clone(), mini_batches: vec![mb.clone()] })
    }
}

/// What one try on a node came to, sent to the coordinator.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TryReport {
    /// The mini-batch (its index in the plan).
    pub index: usize,
    /// Its id: a report for another plan's mini-batch is dropped.
    pub id: String,
    /// The delivery (try number, from 1).
    pub delivery: u32,
    /// The node that ran it.
    pub node: String,
    /// Whether the try succeeded.
    pub succeeded: bool,
    /// A failed try that was the last one allowed (or that must not be
    /// retried): the mini-batch's outcome.
    pub last: bool,
    /// The tag of the part it staged (`stage_try`), if it staged one.
    pub part: Option<String>,
    /// The output columns it encoded its rows with.
    schema: Option<SavedSchema>,
    record: BatchRecord,
}

impl TryReport {
    /// A try of `work` that failed before it could run (the node cannot
    /// open the job: its scorer, its models or its storage); `last` when no
    /// try is left after it.
    pub fn failed(work: &WorkItem, delivery: u32, node: &str, failure: Failure, last: bool) -> TryReport {
        let mut record = BatchRecord::new(&work.mini_batch, &work.items);
        record.tries = delivery;
        record.finish_failed(failure, std::time::Duration::ZERO);
        TryReport {
            index: work.mini_batch.index,
            id: work.mini_batch.id.clone(),
            delivery,
            node: node.to_string(),
            succeeded: false,
            last,
            part: None,
            schema: None,
            record,
        }
    }

    /// The try's failure, when it failed.
    pub fn failure(&self) -> Option<&Failure> {
        self.record.failure.as_ref().filter(|_| !self.succeeded)
    }
}

/// Where a node runs a job: its name, its compile cache and its limit on
/// instances.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Tags the node's log lines and part names (`[A-Za-z0-9_-]`).
    pub node: String,
    /// The compile cache; also where guest logs go when the coordinator's
    /// job directory is not visible here.
    pub cache_dir: PathBuf,
    /// How the scorer is compiled (as for a local job).
    pub compiler: Compiler,
    /// Instances this node runs for the job at most.
    pub max_concurrency: usize,
}

/// A job as one node runs it: its scorer compiled (or loaded from the
/// node's cache), its models loaded, its input readable.
pub struct NodeJob {
    exec: Exec,
    key: String,
    node: String,
    max_tries: u32,
    concurrency: usize,
    output: Option<Box<dyn OutputStore>>,
    /// Kept alive: its epoch ticker enforces wall-clock deadlines.
    _engine: ScorerEngine,
}

impl std::fmt::Debug for NodeJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeJob").field("job", &self.key).field("node", &self.node).finish_non_exhaustive()
    }
}

/// One worker thread's instance of a job, reused while it stays healthy.
pub struct NodeSlot {
    rt: tokio::runtime::Runtime,
    instance: Option<ScorerInstance>,
}

impl std::fmt::Debug for NodeSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSlot").field("instance", &self.instance.as_ref().map(|i| i.id())).finish()
    }
}

impl NodeSlot {
    /// A slot with no instance yet (made on its first try).
    pub fn new() -> std::io::Result<NodeSlot> {
        Ok(NodeSlot { rt: worker_runtime()?, instance: None })
    }

    /// Shuts the instance down (the scorer's `shutdown`, if it has one).
    pub fn close(mut self) {
        if let Some(inst) = self.instance.take() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.rt.block_on(inst.shutdown())));
        }
    }
}

impl NodeJob {
    /// Opens `ticket` on this node, with the scorer and models at `scorer`
    /// and `models` (the node's copies, by the ticket's names).
    pub fn open(
        ticket: &JobTicket,
        scorer: &Path,
        models: &[(String, PathBuf)],
        opts: &NodeOptions,
    ) -> Result<NodeJob, RunError> {
        install_panic_location_hook();
        let mut source = ticket.source.clone();
        let yaml = |p: &Path| serde_json::to_string(&p.display().to_string()).expect("a string serialises");
        source.overrides.push(("task.code".into(), yaml(scorer)));
        source.overrides.push(("task.entry_script".into(), "~".into()));
        // A model input is read from the node's copy; a data input that
        // holds a model stays where every node mounts it (it is mounted
        // into the guest as well, at the same guest path on every node).
        for (name, path) in models {
            if matches!(source.input_type(name).as_deref(), Some("mlflow_model" | "custom_model")) {
                source.overrides.push((format!("inputs.{name}.path"), yaml(path)));
            }
        }
        let mut spec = source.spec().map_err(|e| RunError::Ticket(e.to_string()))?;
        crate::grants::grant_files(&mut spec, &opts.cache_dir.join("jobs").join(&ticket.key).join("grants"))?;
        let concurrency = spec.max_concurrency.min(opts.max_concurrency).max(1);
        let input: Arc<dyn InputSource> = sluice_io::open_input(&spec.input)?;
        let tabular = match &ticket.tabular_schema {
            Some(bytes) => Some(TabularInput {
                schema: sluice_io::tabular::schema_from_ipc(bytes).map_err(RunError::Ticket)?,
                schema_source: ticket.schema_source.clone(),
                max_file_bytes: spec.limits.max_file_bytes,
                source: input.clone(),
                read: Arc::new(ticket.tabular_read.clone()),
            }),
            None => None,
        };
        let models = load_models(&spec, concurrency)?;
        let engine = ScorerEngine::new(&sluice_engine::EngineConfig::for_job(&spec.limits, concurrency as u32))?
            .with_compiler(opts.compiler.clone());
        let component = engine.load(&spec.scorer, Some(&opts.cache_dir))?;
        if component.hash != ticket.scorer.hash {
            return Err(RunError::Ticket(format!(
                "the scorer {} is not the job's (sha256 {}, expected {})",
                spec.scorer.display(),
                &component.hash[..12],
                &ticket.scorer.hash[..ticket.scorer.hash.len().min(12)]
            )));
        }
        let dir = JobDir::open(&ticket.job_dir);
        // Guest logs go into the coordinator's job directory when this node
        // sees it (files named after the node), else next to the cache.
        let logs = if ticket.job_dir.is_dir() {
            dir.logs_dir()
        } else {
            opts.cache_dir.join("jobs").join(&ticket.key).join("logs")
        };
        let log = Arc::new(
            FileGuestLog::new(&spec.name, logs.clone())
                .map_err(|source| RunError::JobDir { path: logs, source })?
                .with_prefix(&opts.node),
        );
        // The coordinator's output store, seen from this node: its staging
        // folder (a path every node mounts) or its staging prefix on object
        // storage (named by the job directory's path, which the ticket
        // carries canonical).
        let output: Option<Box<dyn OutputStore>> = match &spec.append_row_to {
            Some(o) => Some(sluice_io::open_output(o, &dir.staged_dir(), &ticket.job_dir).map_err(|e| match e {
                sluice_io::objects::OpenOutputError::Local { path, source } => RunError::Output { path, source },
                sluice_io::objects::OpenOutputError::Storage(e) => RunError::Storage(e),
            })?),
            None => None,
        };
        Ok(NodeJob {
            exec: Exec {
                spec,
                component,
                input,
                tabular,
                models,
                log,
                next_instance: AtomicUsize::new(1),
                cancel: CancelToken::default(),
                schema: Mutex::new(None),
                // Refused for cluster jobs when they are submitted.
                folders: None,
            },
            key: ticket.key.clone(),
            node: opts.node.clone(),
            max_tries: ticket.max_tries.max(1),
            concurrency,
            output,
            _engine: engine,
        })
    }

    /// How many instances this node runs for the job at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// The job's wall-clock limit for one `run()` (a lease must outlast
    /// it, or be kept alive while it runs).
    pub fn timeout(&self) -> std::time::Duration {
        self.exec.spec.timeout
    }

    /// The job is over (done, or canceled past its grace period) while
    /// tries may still run here: their calls are interrupted and nothing
    /// of them is reported as the mini-batch's outcome.
    pub fn abandon(&self, why: &str) {
        self.exec.cancel.cancel(why);
        self.exec.cancel.abandon();
    }

    /// Flushes the guest logs.
    pub fn flush_logs(&self) {
        self.exec.log.flush();
    }

    /// Runs delivery `delivery` of `work` on `slot` and says how it went.
    /// A succeeded try's rows are staged (durably) before this returns; a
    /// failed one stages nothing. A work item that does not parse into a
    /// plan fails as `HOST_FAULT`, and is not retried.
    pub fn run_try(&self, slot: &mut NodeSlot, work: &WorkItem, delivery: u32) -> TryReport {
        let mb = &work.mini_batch;
        let report = |record: BatchRecord, succeeded: bool, last: bool, part: Option<String>| TryReport {
            index: mb.index,
            id: mb.id.clone(),
            delivery,
            node: self.node.clone(),
            succeeded,
            last,
            part,
            schema: None,
            record,
        };
        let start = Instant::now();
        let plan = match work.plan() {
            Ok(p) => p,
            Err(why) => {
                let mut record = BatchRecord::new(mb, &[]);
                record.tries = delivery;
                record.finish_failed(Failure::new(ReasonCode::HostFault, why), start.elapsed());
                return report(record, false, true, None);
            }
        };
        let t = TryInput {
            plan: &plan,
            mb: &plan.mini_batches[0],
            delivery,
            budget: LogBudget::new(self.exec.spec.limits.max_log_bytes),
            last_failure: None,
            last_instance: None,
            start,
        };
        match self.exec.try_once(&mut slot.rt, &mut slot.instance, t, &|_| Ok(())) {
            Tried::Succeeded { record, part } => {
                let tag = format!("{}-{delivery}", self.node);
                let staged = match (&part, &self.output) {
                    (Some(part), Some(out)) => out.stage_try(mb.index, &tag, part).map(|()| Some(tag)),
                    _ => Ok(None),
                };
                match staged {
                    Ok(part) => {
                        let mut r = report(record, true, false, part);
                        r.schema = self.exec.schema.lock().expect("schema lock").as_ref().map(|(s, h)| SavedSchema {
                            columns: s.iter().map(|(n, t)| (n.clone(), t.to_string())).collect(),
                            header: h.clone(),
                        });
                        r
                    }
                    Err(e) => {
                        let mut record = BatchRecord::new(mb, &work.items);
                        record.tries = delivery;
                        let f = Failure::new(
                            ReasonCode::HostFault,
                            format!("node {} cannot stage the output of mini-batch {}: {e}", self.node, mb.id),
                        );
                        record.finish_failed(f, start.elapsed());
                        report(record, false, delivery >= self.max_tries, None)
                    }
                }
            }
            Tried::Abandoned => {
                let mut record = BatchRecord::new(mb, &work.items);
                record.tries = delivery;
                record.finish_failed(Failure::new(ReasonCode::NodeLost, "abandoned by a cancel"), start.elapsed());
                report(record, false, false, None)
            }
            Tried::Failed { mut record, failure, retryable } => {
                record.finish_failed(failure, start.elapsed());
                report(record, false, !retryable || delivery >= self.max_tries, None)
            }
        }
    }
}

fn load_models(spec: &JobSpec, pool_size: usize) -> Result<Option<Arc<ModelRegistry>>, RunError> {
    if spec.models.is_empty() {
        return Ok(None);
    }
    let grants: Vec<sluice_onnx::ModelGrant> =
        spec.models.iter().map(|m| sluice_onnx::ModelGrant { name: m.name.clone(), path: m.path.clone() }).collect();
    let reg = ModelRegistry::load(
        &grants,
        RegistryOptions {
            intra_op_threads: spec.onnx_threads,
            pool_size,
            max_tensor_bytes: spec.limits.max_tensor_bytes,
        },
    )?;
    Ok(Some(Arc::new(reg)))
}

/// Runs a prepared job's mini-batches somewhere else (a cluster's nodes):
/// give each [`WorkItem`] to a node, pass every [`TryReport`] to
/// [`Dispatched::report`], until [`Dispatched::open`] is 0 or the job stops.
pub trait Dispatch: Sync {
    /// Runs the job until every mini-batch has its outcome, or
    /// [`Dispatched::stopping`] (a threshold, a fault, a cancel) and the
    /// tries in flight have reported or [`Dispatched::abandoned`]. An `Err`
    /// is a fault of the job (the cluster cannot be reached): it stops, and
    /// what is committed stays.
    fn dispatch(&self, job: &Dispatched<'_, '_>) -> Result<(), String>;
}

/// A job as its coordinator sees it while its mini-batches run elsewhere.
pub struct Dispatched<'j, 'a> {
    pub(crate) job: &'j Job<'a>,
    pub(crate) ticket: JobTicket,
    pub(crate) todo: Vec<usize>,
    /// Per mini-batch: which tries have reported, and the last failure.
    pub(crate) tries: Mutex<HashMap<usize, RemoteTries>>,
}

impl std::fmt::Debug for Dispatched<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatched").field("job", &self.ticket.key).field("todo", &self.todo.len()).finish()
    }
}

#[derive(Default)]
pub(crate) struct RemoteTries {
    reported: BTreeSet<u32>,
    last_failure: Option<Failure>,
    nodes: Vec<String>,
}

impl Dispatched<'_, '_> {
    /// What every node needs to run the job.
    pub fn ticket(&self) -> &JobTicket {
        &self.ticket
    }

    /// The mini-batches to run, in input order.
    pub fn work(&self) -> Vec<WorkItem> {
        let plan = &self.job.plan;
        self.todo.iter().map(|&i| WorkItem::of(&self.ticket.key, plan, &plan.mini_batches[i])).collect()
    }

    /// How many of this run's mini-batches have no outcome yet.
    pub fn open(&self) -> usize {
        let st = self.job.state.lock().expect("job lock");
        self.todo.iter().filter(|&&i| st.records[i].is_none()).count()
    }

    /// Whether the job is stopping (no new mini-batches should start).
    pub fn stopping(&self) -> bool {
        self.job.stop.load(Ordering::Acquire)
    }

    /// How long a stopping job (a cancel, a crossed threshold, a fault)
    /// waits for the tries in flight before it ends without them.
    pub fn grace(&self) -> std::time::Duration {
        self.job.cancel.grace()
    }

    /// Whether a cancel's grace period is over: stop waiting for the tries
    /// in flight.
    pub fn abandoned(&self) -> bool {
        self.job.cancel.abandoned()
    }

    /// Why the job is stopping, once it is.
    pub fn stop_reason(&self) -> Option<String> {
        let st = self.job.state.lock().expect("job lock");
        st.fault.clone().or_else(|| st.crossed.as_ref().map(|c| c.1.clone())).or_else(|| self.job.cancel.reason())
    }

    /// A try's report. The first result of a mini-batch wins: a report for
    /// a mini-batch that already has its outcome, or for another plan's
    /// mini-batch, is dropped. Tries that never reported were lost with
    /// their node (`NODE_LOST`).
    pub fn report(&self, r: TryReport) {
        let job = self.job;
        let Some(mb) = job.plan.mini_batches.get(r.index).filter(|mb| mb.id == r.id) else {
            tracing::warn!(mini_batch = %sluice_job::text::guest_text(&r.id, 64), "a report for a mini-batch of another plan: dropped");
            return;
        };
        let node = sluice_job::text::guest_text(&r.node, 64);
        if job.state.lock().expect("job lock").records[r.index].is_some() {
            if r.succeeded {
                tracing::info!(mini_batch = %mb.id, node = %node, "a second result for a finished mini-batch: dropped");
            }
            return;
        }
        let (recovered, nodes) = {
            let mut tries = self.tries.lock().expect("tries lock");
            let t = tries.entry(r.index).or_default();
            // A delivery after one that never reported: that try's node
            // vanished while it held the mini-batch.
            if r.delivery > 1 && !t.reported.contains(&(r.delivery - 1)) {
                t.last_failure = Some(Failure::new(
                    ReasonCode::NodeLost,
                    format!(
                        "try {} was lost with its node (its lease expired before it reported); delivered again",
                        r.delivery - 1
                    ),
                ));
            }
            t.reported.insert(r.delivery);
            if !t.nodes.contains(&node) {
                t.nodes.push(node.clone());
            }
            if !r.succeeded && !r.last {
                if let Some(f) = r.failure() {
                    tracing::warn!(mini_batch = %mb.id, node = %node, "try {} failed: {f}", r.delivery);
                    t.last_failure = Some(f.clone());
                }
                return;
            }
            (t.last_failure.clone(), t.nodes.clone())
        };
        let mut record = r.record;
        record.id = mb.id.clone();
        record.index = r.index;
        // Which try's part counts is the coordinator's word, set when it
        // is promoted below, never the report's.
        record.part = None;
        record.tries = r.delivery;
        record.nodes = nodes;
        if record.failure.is_none() {
            record.failure = recovered;
        }
        if !r.succeeded {
            record.status = BatchStatus::Failed;
            self.tries.lock().expect("tries lock").remove(&r.index);
            job.finalize_failed(record);
            return;
        }
        // The job's output columns: fixed by the first result with rows.
        if let (Some(got), Some(_)) = (&r.schema, &r.part) {
            let refused = {
                let mut schema = job.exec.schema.lock().expect("schema lock");
                let cols: sluice_job::data::Schema =
                    got.columns.iter().map(|(n, t)| (n.clone(), sluice_job::data::type_name(t))).collect();
                match &*schema {
                    None => {
                        let saved = serde_json::to_vec(got).expect("a schema serialises");
                        if let Err(e) = job.journal.save_schema(&saved) {
                            drop(schema);
                            job.fault(format!("cannot write the journal ({}): {e}", job.journal.location()));
                            return;
                        }
                        *schema = Some((cols, got.header.clone()));
                        None
                    }
                    Some((expected, _)) if *expected != cols => Some(crate::exec::schema_mismatch(&cols, expected)),
                    Some(_) => None,
                }
            };
            if let Some(why) = refused {
                record.finish_failed(Failure::new(ReasonCode::InvalidOutput, why), record.duration);
                job.finalize_failed(record);
                return;
            }
        }
        if !job.state.lock().expect("job lock").committing.insert(r.index) {
            return;
        }
        if let (Some(tag), Some(out)) = (&r.part, &job.output) {
            match out.promote(r.index, tag) {
                Ok(()) => record.part = Some(tag.clone()),
                // A report from an earlier run whose try parts that run's
                // end discarded: not usable; the mini-batch runs again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::info!(mini_batch = %mb.id, "a report whose part {tag} is gone: dropped");
                    job.state.lock().expect("job lock").committing.remove(&r.index);
                    return;
                }
                Err(e) => {
                    job.fault(format!("cannot commit the output of mini-batch {} (part {tag}): {e}", mb.id));
                    return;
                }
            }
        }
        if let Some(record) = job.commit(record) {
            self.tries.lock().expect("tries lock").remove(&r.index);
            job.finalize(r.index, record);
        }
    }

    /// Mini-batch `index` will not be delivered again and its last try
    /// never reported (its node vanished on the last try allowed): it
    /// failed with `NODE_LOST`.
    pub fn lost(&self, index: usize, why: &str) {
        let job = self.job;
        let Some(mb) = job.plan.mini_batches.get(index) else { return };
        if job.state.lock().expect("job lock").records[index].is_some() {
            return;
        }
        let nodes = self.tries.lock().expect("tries lock").remove(&index).map(|t| t.nodes).unwrap_or_default();
        let mut record = BatchRecord::new(mb, job.plan.items_of(mb));
        record.tries = self.ticket.max_tries;
        record.nodes = nodes;
        record.finish_failed(Failure::new(ReasonCode::NodeLost, why.to_string()), std::time::Duration::ZERO);
        job.finalize_failed(record);
    }

    /// A fault of the job itself (the cluster cannot be reached): it stops
    /// and fails with `why`.
    pub fn fault(&self, why: String) {
        self.job.fault(why);
    }
}

/// The key a job directory's job has on a cluster: its name (cut to what a
/// subject allows) and a hash of the directory's path.
pub fn job_key(name: &str, job_dir: &Path) -> String {
    use sha2::{Digest, Sha256};
    let dir = std::path::absolute(job_dir).unwrap_or_else(|_| job_dir.to_path_buf());
    let h = hex::encode(&Sha256::digest(dir.as_os_str().as_encoded_bytes())[..6]);
    let stem: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).take(40).collect();
    format!("{}-{h}", stem.trim_matches('-'))
}
