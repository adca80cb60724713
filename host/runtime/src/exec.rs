//! One try of one mini-batch on this node: read its items, run the scorer
//! on an instance, check and encode what it returned. The same code runs
//! for the local scheduler's workers and for a cluster node's; what
//! happens to the outcome (commit it, retry it, report it to a
//! coordinator) is the caller's, so this module knows no queue, no journal
//! and no thresholds.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use sluice_engine::{
    HostRows, InstanceSettings, LogBudget, ModelRegistry, PreparedBatch, ScorerComponent, ScorerInstance,
};
use sluice_io::inputs::over_file_cap;
use sluice_io::{Encode, InputSource, TabularInput};
use sluice_job::data::{FileInput, Items, MiniBatchInput, Schema};
use sluice_job::{BatchOutput, Failure, JobSpec, MiniBatchPlan, Plan, ReasonCode};

use crate::folders::Folders;
use crate::guest_log::FileGuestLog;
use crate::observer::CancelToken;
use crate::report::{BatchRecord, RowLabels, SavedSchema};

/// What running tries of one job on this node needs.
pub(crate) struct Exec {
    pub spec: JobSpec,
    pub component: ScorerComponent,
    /// Where the input's bytes come from.
    pub input: Arc<dyn InputSource>,
    /// Tabular input: the job's columns and how to read its files.
    pub tabular: Option<TabularInput>,
    pub models: Option<Arc<ModelRegistry>>,
    pub log: Arc<FileGuestLog>,
    pub next_instance: AtomicUsize,
    pub cancel: CancelToken,
    /// Column names and types of the job's output, fixed by the first
    /// mini-batch that succeeds with rows; the header bytes that go with
    /// it.
    pub schema: Mutex<Option<(Schema, Vec<u8>)>>,
    /// The job's `uri_folder` outputs, if it has any.
    pub folders: Option<Folders>,
}

/// One try of a mini-batch, and what its earlier tries left.
pub(crate) struct TryInput<'a> {
    /// The plan `mb`'s items and segments index into.
    pub plan: &'a Plan,
    pub mb: &'a MiniBatchPlan,
    /// Which delivery this is, from 1.
    pub delivery: u32,
    /// One guest log budget for every try of the mini-batch.
    pub budget: Arc<LogBudget>,
    /// The failure of the previous try, kept as the record's `failure`
    /// when this one succeeds.
    pub last_failure: Option<Failure>,
    pub last_instance: Option<usize>,
    /// When the mini-batch's first try started.
    pub start: Instant,
}

/// How a try ended.
pub(crate) enum Tried {
    /// The scorer's result was accepted: the record is finished (item
    /// errors, rows), `part` holds the encoded rows to stage (none without
    /// `append_row_to` or without rows).
    Succeeded { record: BatchRecord, part: Option<Vec<u8>> },
    /// The whole try failed; the record is not finished (the caller decides
    /// whether this was the last try). `retryable` is false when the host
    /// failed reading the input (a bug in sluice, not the scorer's doing).
    Failed { record: BatchRecord, failure: Failure, retryable: bool },
    /// A cancel's grace period abandoned the try: its outcome is not the
    /// mini-batch's (a resume runs it).
    Abandoned,
}

impl Exec {
    pub(crate) fn instance_settings(&self, log_budget: Option<Arc<LogBudget>>) -> Result<InstanceSettings, Failure> {
        let instance_id = self.next_instance.fetch_add(1, Ordering::Relaxed);
        let writable = match &self.folders {
            Some(f) => f.instance_mounts(instance_id)?,
            None => Vec::new(),
        };
        Ok(InstanceSettings {
            limits: self.spec.limits.clone(),
            timeout: self.spec.timeout,
            config: self.spec.config.clone(),
            mounts: self.spec.mounts.clone(),
            writable,
            log: self.log.clone(),
            instance_id,
            models: self.models.clone(),
            log_budget,
            stop: Some(self.cancel.abandon_flag()),
            // Output folders are watched while `run` goes on.
            halt: self.folders.as_ref().map(|_| Arc::new(std::sync::atomic::AtomicBool::new(false))),
        })
    }

    /// The header the output file starts with, once the job's columns are
    /// known.
    pub(crate) fn header(&self) -> Vec<u8> {
        self.schema.lock().expect("schema lock").as_ref().map(|s| s.1.clone()).unwrap_or_default()
    }

    /// Runs one try. A panic in host code on the mini-batch's behalf
    /// (reading its input, a host import, checking its result) fails that
    /// try as `HOST_FAULT` naming the bug, never the worker or the job; the
    /// instance and the runtime the panic went through are replaced. A
    /// failed try drops its instance (a retry runs on a fresh one); a
    /// healthy one stays in `instance` for the next mini-batch.
    /// `save_schema` keeps the job's output schema when this try fixes it.
    pub(crate) fn try_once(
        &self,
        rt: &mut tokio::runtime::Runtime,
        instance: &mut Option<ScorerInstance>,
        t: TryInput<'_>,
        save_schema: &dyn Fn(&[u8]) -> std::io::Result<()>,
    ) -> Tried {
        let mb = t.mb;
        let items = t.plan.items_of(mb);
        let mut record = BatchRecord::new(mb, items);
        record.tries = t.delivery;
        record.instance = t.last_instance;

        // Whole items are fetched ahead, all at once, where reads wait on a
        // network; what was fetched is freed once they are read.
        let whole: Vec<&sluice_job::InputItem> = match &self.tabular {
            Some(_) => mb
                .segments
                .iter()
                .filter(|s| s.rows == sluice_job::plan::RowSpan::All)
                .map(|s| &t.plan.items[s.file])
                .collect(),
            None => items.iter().collect(),
        };
        // (A tabular input reads through this same source.)
        let ahead = self.input.prefetch(&whole);
        // Read the items; the ones the host cannot read are item errors now
        // and never reach the scorer.
        let read = catch_unwind(AssertUnwindSafe(|| match &self.tabular {
            Some(tab) => {
                let mut r = BatchRecord::new(mb, items);
                let (batch, guest_index, errors) = read_rows(t.plan, mb, tab, &mut r);
                (batch, guest_index, errors, Some(r))
            }
            None => {
                let mut inputs = Vec::with_capacity(items.len());
                let mut guest_index = Vec::with_capacity(items.len());
                let mut input_errors = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match sluice_io::read_whole(&*self.input, item, self.spec.limits.max_file_bytes, over_file_cap) {
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
        drop(ahead);
        let (batch, guest_index, mut input_errors) = match read {
            Ok((batch, guest_index, errors, tabular_record)) => {
                if let Some(mut r) = tabular_record {
                    r.tries = record.tries;
                    r.instance = record.instance;
                    record = r;
                }
                (batch, guest_index, errors)
            }
            Err(panic) => {
                let failure = prefix_failure(host_fault(&panic), "reading the input");
                return Tried::Failed { record, failure, retryable: false };
            }
        };
        if guest_index.is_empty() {
            record.finish_ok(input_errors, 0, t.last_failure, t.start.elapsed());
            return Tried::Succeeded { record, part: None };
        }
        // Taken out once the scorer has run, so the mini-batch's table (its
        // largest allocation) is freed before its output is encoded.
        let mut batch = Some(batch.with_log_budget(t.budget.clone()));

        let attempt = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(async {
                let inst = match instance {
                    Some(i) => i,
                    None => {
                        let settings = self.instance_settings(Some(t.budget.clone())).map_err(|f| (f, None))?;
                        let id = settings.instance_id;
                        let i = self.component.instantiate(settings).await.map_err(|f| {
                            if let Some(folders) = &self.folders {
                                folders.discard(id);
                            }
                            (f, None)
                        })?;
                        instance.insert(i)
                    }
                };
                let id = inst.id();
                // A job with output folders has them measured while `run`
                // goes on (and the call stopped past a bound).
                let watch = match (&self.folders, inst.halt_flag()) {
                    (Some(f), Some(stop)) => Some(f.watch(id, stop)),
                    _ => None,
                };
                let out = inst.run(batch.as_ref().expect("the batch runs once")).await;
                if let Some(why) = watch.and_then(|w| w.finish()) {
                    return Err((Failure::new(ReasonCode::InvalidOutput, why), Some(id)));
                }
                batch = None;
                let out = out.map_err(|f| (f, Some(id)))?;
                let enc = self.encode(out, &guest_index, save_schema).map_err(|f| (f, Some(id)))?;
                Ok::<_, (Failure, Option<usize>)>((enc, id))
            })
        }));
        let outcome = match attempt {
            Ok(r) => r,
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
        // What it wrote into the output folders, checked and staged. An
        // instance that wrote anything goes first, with the runtime its
        // file writes may still be running on (wasmtime-wasi finishes a
        // stream's write on a blocking task after the call returns): no
        // byte lands after the check, and no descriptor it kept open can
        // reach a staged or committed file.
        let outcome = match (outcome, &self.folders) {
            (Ok((enc, id)), Some(folders)) => {
                if folders.wrote(id) {
                    *instance = None;
                    match worker_runtime() {
                        Ok(fresh) => std::mem::replace(rt, fresh).shutdown_timeout(std::time::Duration::from_secs(10)),
                        Err(e) => tracing::warn!("cannot make a fresh worker runtime: {e}"),
                    }
                }
                folders.stage(id, &mb.id).map(|files| (enc, id, files)).map_err(|f| (f, Some(id)))
            }
            (Ok((enc, id)), None) => Ok((enc, id, Vec::new())),
            (Err(e), _) => Err(e),
        };
        match outcome {
            Ok((enc, id, files)) => {
                record.instance = Some(id);
                record.folder_files = files;
                input_errors.extend(enc.errors);
                input_errors.sort_by_key(|e| e.0);
                record.finish_ok(input_errors, enc.rows, t.last_failure, t.start.elapsed());
                Tried::Succeeded { record, part: enc.part }
            }
            // A try that failed because the cancel abandoned it (its call
            // was interrupted) is not the mini-batch's outcome.
            Err(e) if self.cancel.abandoned() => {
                if let (Some(f), Some(id)) = (&self.folders, e.1) {
                    f.discard(id);
                }
                *instance = None;
                Tried::Abandoned
            }
            Err((failure, id)) => {
                if id.is_some() {
                    record.instance = id;
                }
                if let (Some(f), Some(id)) = (&self.folders, id) {
                    f.discard(id);
                }
                tracing::warn!(mini_batch = %mb.id, instance = ?id, "try {} failed: {failure}", record.tries);
                *instance = None;
                Tried::Failed { record, failure, retryable: true }
            }
        }
    }

    /// Checks a successful result against the job's output schema and
    /// encodes its rows. Returns the item errors (as mini-batch item
    /// indexes), the number of rows and the encoded part (none without
    /// `append_row_to` or without rows).
    fn encode(
        &self,
        out: BatchOutput,
        guest_index: &[usize],
        save_schema: &dyn Fn(&[u8]) -> std::io::Result<()>,
    ) -> Result<Encoded, Failure> {
        let errors: Vec<_> =
            out.errors.iter().map(|e| (guest_index[e.item], ReasonCode::ItemError, e.message.clone())).collect();
        let rows = out.rows.num_rows as u64;
        let Some(format) = self.spec.append_row_to.as_ref().map(|o| o.format).filter(|_| rows > 0) else {
            return Ok(Encoded { errors, rows, part: None });
        };
        let schema = out.rows.schema();
        {
            let mut saved_schema = self.schema.lock().expect("schema lock");
            match &*saved_schema {
                None => {
                    let header = format.header(&out.rows).map_err(|m| Failure::new(ReasonCode::InvalidOutput, m))?;
                    let saved = SavedSchema {
                        columns: schema.iter().map(|(n, t)| (n.clone(), t.to_string())).collect(),
                        header: header.clone(),
                    };
                    let saved = serde_json::to_vec(&saved).expect("a schema serialises");
                    save_schema(&saved).map_err(|e| {
                        Failure::new(ReasonCode::InvalidOutput, format!("cannot write the journal: {e}"))
                    })?;
                    *saved_schema = Some((schema, header));
                }
                Some((expected, _)) if *expected != schema => {
                    return Err(Failure::new(ReasonCode::InvalidOutput, schema_mismatch(&schema, expected)));
                }
                Some(_) => {}
            }
        }
        let part = format.encode(&out.rows).map_err(|m| Failure::new(ReasonCode::InvalidOutput, m))?;
        Ok(Encoded { errors, rows, part: Some(part) })
    }
}

/// Why a result whose columns are not the job's is refused.
pub(crate) fn schema_mismatch(got: &[(String, &str)], expected: &[(String, &str)]) -> String {
    let show = |s: &[(String, &str)]| s.iter().map(|(n, t)| format!("{n}: {t}")).collect::<Vec<_>>().join(", ");
    format!("output columns [{}] differ from the job's output columns [{}]", show(got), show(expected))
}

/// The current-thread runtime each worker thread runs its instance on.
pub(crate) fn worker_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_time().build()
}

fn prefix_failure(f: Failure, what: &str) -> Failure {
    Failure::new(f.code, format!("{what}: {}", f.message))
}

/// A panic caught in host code, as the mini-batch's failure: the panic's
/// text and where it happened (recorded by [`install_panic_location_hook`]).
pub(crate) fn host_fault(panic: &Box<dyn std::any::Any + Send>) -> Failure {
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
pub(crate) fn install_panic_location_hook() {
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
    plan: &Plan,
    mb: &MiniBatchPlan,
    tab: &TabularInput,
    record: &mut BatchRecord,
) -> (PreparedBatch, Vec<usize>, Vec<(usize, ReasonCode, String)>) {
    let rows = sluice_io::read_mini_batch(plan, &mb.segments, tab);
    let mut errors = Vec::new();
    let seen = rows.table.num_rows;
    let origins = Arc::new(rows.origins);
    let mut labels = RowLabels { origins: origins.clone(), unread: Vec::new() };
    for f in &rows.failed {
        match &f.rows {
            Some(rs) => {
                for &r in rs {
                    labels.unread.push(sluice_job::row_label(&f.source, r));
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
    let host_rows = HostRows { table: rows.table, origins };
    (PreparedBatch::rows(mb.id.clone(), host_rows), guest_index, errors)
}

/// A successful result, checked and encoded.
struct Encoded {
    errors: Vec<(usize, ReasonCode, String)>,
    rows: u64,
    part: Option<Vec<u8>>,
}
