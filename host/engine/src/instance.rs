//! One sandboxed scorer instance: its store, limits and calls.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use sluice_job::data::{FileInput, Items, MiniBatchInput};
use sluice_job::spec::{Mount, ScorerConfig};
use sluice_job::{BatchOutput, Column, Failure, ItemError, Limits, ReasonCode, Table};
use wasmtime::component::ResourceTable;
use wasmtime::{Store, StoreLimitsBuilder, Trap, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx};

use crate::bindings::{Scorer, column_from_wit, column_to_wit, wit};
use crate::engine::{EPOCH_TICK, ScorerComponent};
use crate::features::batch::{BatchState, HostRows};
use crate::features::log::LogState;
use crate::features::onnx::OnnxState;
use crate::features::{Event, MAX_HOST_HANDLES};
use crate::logs::{GuestLog, GuestStream, LogBudget, Logger};
use crate::store::StoreState;

/// What an instance is made with.
#[derive(Clone)]
pub struct InstanceSettings {
    /// The job's limits, enforced per instance: `limits.memory_mb` by the
    /// store's limiter, `limits.fuel` and the timeout before every call,
    /// `limits.max_log_kb`, `limits.max_tensor_mb` and
    /// `limits.max_output_mb` by the host features. Its
    /// `limits.max_wasm_stack_kb` and `limits.memory_mb` must fit the
    /// engine's ([`crate::EngineConfig::check`]), or the instance is
    /// refused; the stack in force is the engine's.
    pub limits: Limits,
    /// Wall clock for each `init()` and `run()`.
    pub timeout: Duration,
    /// The job's `task.config` settings and program arguments, handed to the guest's `init()`.
    pub config: ScorerConfig,
    /// The host folders the guest may read, each preopened read-only at its guest path.
    pub mounts: Vec<Mount>,
    /// The host folders the guest may write, each preopened read-write at
    /// its guest path (the instance's folders for the job's `uri_folder`
    /// outputs). What the guest writes there is bounded and moved out by
    /// the embedder after each `run`; the sandbox confines it to them.
    pub writable: Vec<Mount>,
    /// Where the instance's log lines (the `log` import, stdout and stderr) go.
    pub log: Arc<dyn GuestLog>,
    /// A number for logs and reports.
    pub instance_id: usize,
    /// The models the job grants; `None` when it grants none.
    pub models: Option<Arc<sluice_onnx::ModelRegistry>>,
    /// What `init()` logs draws on: the budget of the mini-batch the
    /// instance is made for (so retries share one cap); `None` gives the
    /// instance its own `limits.max_log_kb`.
    pub log_budget: Option<Arc<LogBudget>>,
    /// Set by the embedder to abandon the instance's work (a canceled job
    /// past its grace period): the call in progress fails within about
    /// 50 ms, whether the guest computes or waits in a host call.
    /// An ONNX inference in progress is not cut short (it ends at its own
    /// deadline). `None`: only the deadline stops a call.
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// A stop flag of this instance alone, checked like `stop`: set by an
    /// embedder that watches what a call does from another thread (the
    /// runtime measuring what a call writes into its output folders). The
    /// call fails as `INVALID_OUTPUT` ("stopped by the host"); the embedder
    /// says why.
    pub halt: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// How often a call checks [`InstanceSettings::stop`].
pub(crate) const STOP_CHECK: Duration = Duration::from_millis(50);

impl std::fmt::Debug for InstanceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceSettings").field("instance_id", &self.instance_id).finish_non_exhaustive()
    }
}

/// A live instance after a successful `init()`. After any failed call the
/// instance is spent: the scheduler drops it and makes a fresh one.
pub struct ScorerInstance {
    store: Store<StoreState>,
    bindings: Scorer,
    shutdown: Option<wasmtime::component::TypedFunc<(), (Result<(), wit::Error>,)>>,
    settings: InstanceSettings,
}

impl std::fmt::Debug for ScorerInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScorerInstance").field("instance_id", &self.settings.instance_id).finish_non_exhaustive()
    }
}

impl ScorerComponent {
    /// Instantiates a fresh sandbox and runs `init(config)` in it, under the
    /// same fuel and wall-clock limits as `run()`.
    pub async fn instantiate(&self, settings: InstanceSettings) -> Result<ScorerInstance, Failure> {
        let mut store = new_store(&self.engine, &self.config, &settings, &[])?;
        let instance = bounded(&settings, self.pre.instance_pre().instantiate_async(&mut store))
            .await
            .and_then(|r| r.map_err(|e| classify(&e, store.data(), &settings.limits)))
            .map_err(|f| prefix(f, "instantiate"))?;
        self.init(store, instance, settings).await
    }

    async fn init(
        &self,
        mut store: Store<StoreState>,
        instance: wasmtime::component::Instance,
        settings: InstanceSettings,
    ) -> Result<ScorerInstance, Failure> {
        let bindings = Scorer::new(&mut store, &instance)
            .map_err(|e| Failure::new(ReasonCode::Trap, bounded_text(&format!("{e:#}"))))?;
        let shutdown = if let Some(lifecycle) = &self.lifecycle {
            instance
                .get_export_index(&mut store, None, lifecycle)
                .and_then(|i| instance.get_export_index(&mut store, Some(&i), "shutdown"))
                .and_then(|i| instance.get_typed_func(&mut store, i).ok())
        } else {
            None
        };

        let config = wit::Config {
            settings: settings.config.settings.clone(),
            arguments: settings.config.arguments.clone(),
            environment: settings.config.environment.clone(),
        };
        arm(&mut store, &settings);
        let r = bounded(&settings, bindings.call_init(&mut store, &config)).await;
        match r {
            Err(f) => return Err(prefix(f, "init")),
            Ok(Err(trap)) => return Err(prefix(classify(&trap, store.data(), &settings.limits), "init")),
            Ok(Ok(Err(e))) => {
                return Err(Failure::new(ReasonCode::UserError, format!("init: {}", bounded_text(&e.message))));
            }
            Ok(Ok(Ok(()))) => {}
        }
        Ok(ScorerInstance { store, bindings, shutdown, settings })
    }
}

/// A store for one sandboxed instance with `settings`' limits, preopens,
/// logging and deadlines, armed for its first call; `args` are its WASI
/// arguments (a command's; a scorer has none).
pub(crate) fn new_store(
    engine: &wasmtime::Engine,
    config: &crate::EngineConfig,
    settings: &InstanceSettings,
    args: &[String],
) -> Result<Store<StoreState>, Failure> {
    config.check(&settings.limits).map_err(|e| Failure::new(ReasonCode::UserError, e.to_string()))?;
    let budget = settings.log_budget.clone().unwrap_or_else(|| LogBudget::new(settings.limits.max_log_bytes));
    let logger = Logger::new(settings.log.clone(), settings.instance_id, budget);
    let mut wasi = WasiCtx::builder();
    // No network (the default), no environment, no inherited stdio
    // (stdout/stderr become log lines); arguments only for a command.
    wasi.args(args);
    wasi.stdout(GuestStream { logger: logger.clone(), which: 0 })
        .stderr(GuestStream { logger: logger.clone(), which: 1 })
        .allow_blocking_current_thread(false);
    let perms = settings.mounts.iter().map(|m| (m, FsPerms::ReadOnly));
    for (m, perm) in perms.chain(settings.writable.iter().map(|m| (m, FsPerms::ReadWrite))) {
        wasi.preopened_dir(&m.host_path, &m.guest_path, perm).map_err(|e| {
            Failure::new(
                ReasonCode::UserError,
                format!("cannot grant {} as {}: {e}", m.host_path.display(), m.guest_path),
            )
        })?;
    }
    let limits = StoreLimitsBuilder::new()
        .memory_size(settings.limits.memory_bytes as usize)
        .instances(64)
        .tables(64)
        .memories(8)
        .table_elements(1 << 20)
        .build();
    // WASI handles (streams, pollables, descriptors) live in host memory:
    // a scorer needs a handful, so cap them far below wasmtime's default
    // of a million per instance.
    let mut table = ResourceTable::new();
    table.set_max_capacity(MAX_HOST_HANDLES);
    let state = StoreState {
        wasi: wasi.build(),
        table,
        limits,
        memory_cap: settings.limits.memory_bytes,
        diag: Default::default(),
        log: LogState { logger },
        onnx: OnnxState::new(settings.models.clone(), &settings.limits),
        batch: BatchState::new(settings.limits.max_output_bytes),
        stop: settings.stop.clone(),
        halt: settings.halt.clone(),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| s);
    // Every few ticks: stop when abandoned or past the call's deadline.
    let (stop, halt) = (settings.stop.clone(), settings.halt.clone());
    store.epoch_deadline_callback(move |ctx| {
        let state = ctx.data();
        if [&stop, &halt].into_iter().flatten().any(|s| s.load(Ordering::Acquire)) {
            return Ok(UpdateDeadline::Interrupt);
        }
        let now = std::time::Instant::now();
        match state.onnx.deadline {
            Some(d) if now < d => Ok(UpdateDeadline::Continue(ticks_until(d - now))),
            _ => Ok(UpdateDeadline::Interrupt),
        }
    });
    arm(&mut store, settings);
    Ok(store)
}

/// Resets fuel, the epoch deadline and what explains a trap before a call
/// into the guest (so an earlier call's allocation failure or panic text is
/// never blamed for this one's trap).
pub(crate) fn arm(store: &mut Store<StoreState>, s: &InstanceSettings) {
    // Fuel is enabled on every engine we build, so this cannot fail.
    let _ = store.set_fuel(s.limits.fuel);
    store.set_epoch_deadline(ticks_until(s.timeout));
    store.set_hostcall_fuel(hostcall_fuel(&s.limits));
    let data = store.data_mut();
    data.onnx.deadline = Some(std::time::Instant::now() + s.timeout);
    data.diag = Default::default();
    data.onnx.timed_out = false;
}

/// Epoch ticks until the next check: the time left, at most [`STOP_CHECK`].
fn ticks_until(left: Duration) -> u64 {
    left.min(STOP_CHECK).as_nanos().div_ceil(EPOCH_TICK.as_nanos()).max(1) as u64
}

/// The most bytes one host call (or one returned result) may copy out of
/// the guest into host memory: wasmtime lifts no more than this "hostcall
/// fuel" (its default, 128 MiB, would cap `limits.max_output_mb` below
/// what the spec allows). The largest legitimate copies are a `run()`
/// result (`limits.max_output_mb`) and an ONNX tensor (`limits.max_tensor_mb`),
/// plus 1 MiB for names and small fields.
pub(crate) fn hostcall_fuel(l: &Limits) -> usize {
    (l.max_output_bytes.max(l.max_tensor_bytes) + (1 << 20)).min(usize::MAX as u64) as usize
}

/// Guest text for a mini-batch failure: escaped and bounded (as every
/// [`Failure`] message is; this bounds it before it is quoted in another).
pub(crate) fn bounded_text(s: &str) -> String {
    sluice_job::text::guest_text(s, sluice_job::text::MAX_MESSAGE_BYTES - 32)
}

/// Runs a guest call under the wall-clock deadline. Epoch interruption stops
/// a guest that computes; this stops one waiting in a host call (a sleep),
/// which epochs cannot reach.
pub(crate) async fn bounded<T>(s: &InstanceSettings, call: impl std::future::Future<Output = T>) -> Result<T, Failure> {
    let halted = || s.halt.as_ref().is_some_and(|h| h.load(Ordering::Acquire));
    let stopped = async {
        if s.stop.is_none() && s.halt.is_none() {
            return std::future::pending::<bool>().await;
        }
        loop {
            if halted() {
                return true;
            }
            if s.stop.as_ref().is_some_and(|st| st.load(Ordering::Acquire)) {
                return false;
            }
            tokio::time::sleep(STOP_CHECK).await;
        }
    };
    tokio::select! {
        r = tokio::time::timeout(s.timeout, call) => r.map_err(|_| {
            Failure::new(
                ReasonCode::Timeout,
                format!("exceeded retry_settings.timeout = {}s (wall clock)", s.timeout.as_secs()),
            )
        }),
        by_host = stopped => Err(if by_host { halted_failure() } else { abandoned() }),
    }
}

/// The failure of a call its embedder halted ([`InstanceSettings::halt`]).
fn halted_failure() -> Failure {
    Failure::new(ReasonCode::InvalidOutput, "stopped by the host")
}

/// The failure of a call the embedder abandoned ([`InstanceSettings::stop`]).
fn abandoned() -> Failure {
    Failure::new(ReasonCode::Timeout, "abandoned: the job was canceled and its grace period is over")
}

pub(crate) fn prefix(f: Failure, what: &str) -> Failure {
    Failure::new(f.code, format!("{what}: {}", f.message))
}

/// Maps a wasmtime error out of a guest call to a reason code and a
/// message that names the root cause (the exit code, the full handle
/// table, the forged handle, the limit), never just "error while
/// executing".
pub(crate) fn classify(e: &wasmtime::Error, state: &StoreState, limits: &Limits) -> Failure {
    use wasmtime::component::ResourceTableError as Table;
    if state.onnx.timed_out {
        return Failure::new(
            ReasonCode::Timeout,
            "exceeded retry_settings.timeout (wall clock) inside ONNX inference; the run was terminated",
        );
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => {
            return Failure::new(ReasonCode::Timeout, "ran out of fuel (limits.fuel): the guest computed for too long");
        }
        Some(Trap::Interrupt) if state.halt.as_ref().is_some_and(|s| s.load(Ordering::Acquire)) => {
            return halted_failure();
        }
        Some(Trap::Interrupt) if state.stop.as_ref().is_some_and(|s| s.load(Ordering::Acquire)) => {
            return abandoned();
        }
        Some(Trap::Interrupt) => {
            return Failure::new(ReasonCode::Timeout, "exceeded retry_settings.timeout (wall clock, interrupted)");
        }
        Some(Trap::StackOverflow) => {
            return Failure::new(ReasonCode::Trap, "stack overflow (limits.max_wasm_stack_kb)");
        }
        _ => {}
    }
    if let Some(exit) = e.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return Failure::new(
            ReasonCode::Trap,
            format!(
                "the scorer exited (exit status {}) instead of returning from init()/run(); a scorer must not \
                 call exit",
                exit.0
            ),
        );
    }
    if let Some(t) = e.downcast_ref::<Table>() {
        let why = match t {
            Table::Full => format!(
                "the scorer holds {MAX_HOST_HANDLES} host handles (files, streams, models) at once, the most \
                 an instance may"
            ),
            Table::NotPresent | Table::WrongType => {
                "the scorer used a host handle it was never given or had already dropped".to_string()
            }
            Table::HasChildren => "the scorer dropped a host handle that other handles still depend on".to_string(),
        };
        return Failure::new(ReasonCode::Trap, why);
    }
    let root = e.root_cause().to_string();
    if root.contains("fuel allocated for hostcalls") {
        let in_call = e.downcast_ref::<wasmtime::WasmBacktrace>().is_some_and(|b| !b.frames().is_empty());
        let fuel = hostcall_fuel(limits);
        return if in_call {
            Failure::new(
                ReasonCode::Trap,
                format!(
                    "the scorer passed more than {fuel} bytes to one host call (the most is \
                     max(limits.max_output_mb, limits.max_tensor_mb) + 1 MiB)"
                ),
            )
        } else {
            Failure::new(
                ReasonCode::InvalidOutput,
                format!(
                    "returned more than {fuel} bytes, over limits.max_output_mb = {} MiB",
                    limits.max_output_bytes >> 20
                ),
            )
        };
    }
    match &state.diag.last {
        Some(Event::Oom) => Failure::new(
            ReasonCode::Oom,
            format!("out of memory: the guest hit limits.memory_mb ({} MiB)", state.memory_cap >> 20),
        ),
        Some(Event::Panic(p)) => Failure::new(ReasonCode::Trap, format!("panicked: {p}")),
        None => {
            let what = match e.downcast_ref::<Trap>() {
                Some(t) => t.to_string(),
                None if root.starts_with("unknown handle index") => {
                    format!("{root}: the scorer passed a resource handle it does not hold")
                }
                None => root,
            };
            let at = e
                .downcast_ref::<wasmtime::WasmBacktrace>()
                .and_then(|b| b.frames().iter().find_map(|f| f.func_name().map(str::to_string)))
                .map(|f| format!(" (in {})", sluice_job::text::prefix(&f, 200)))
                .unwrap_or_default();
            Failure::new(ReasonCode::Trap, bounded_text(&format!("{what}{at}")))
        }
    }
}

/// A mini-batch ready to run: files converted once to their WIT form (so
/// retries pass the same data without copying it); tabular rows kept in
/// the host, where ONNX column sources read them, and copied into the
/// guest per call with only the columns the instance asked for.
pub struct PreparedBatch {
    id: String,
    data: Prepared,
    items: usize,
    /// The guest log volume of this mini-batch, shared by all its tries.
    log_budget: Option<Arc<LogBudget>>,
}

enum Prepared {
    Files(wit::MiniBatch),
    Rows(Arc<HostRows>),
}

impl std::fmt::Debug for PreparedBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedBatch").field("id", &self.id).field("items", &self.items).finish()
    }
}

impl PreparedBatch {
    /// A file mini-batch, converted once to its WIT form.
    pub fn new(batch: MiniBatchInput) -> PreparedBatch {
        let items = batch.items.len();
        let id = batch.id.clone();
        PreparedBatch {
            id: id.clone(),
            data: Prepared::Files(to_wit(MiniBatchInput { id, items: batch.items })),
            items,
            log_budget: None,
        }
    }

    /// Tabular rows with their provenance.
    pub fn rows(id: String, rows: HostRows) -> PreparedBatch {
        let items = rows.table.num_rows;
        PreparedBatch { id, data: Prepared::Rows(Arc::new(rows)), items, log_budget: None }
    }

    /// Charges the guest log lines of every try of this mini-batch to
    /// `budget` (instead of the running instance's own).
    pub fn with_log_budget(mut self, budget: Arc<LogBudget>) -> PreparedBatch {
        self.log_budget = Some(budget);
        self
    }

    /// The WIT form for an instance that wants `deliver` columns.
    fn wit(
        &self,
        deliver: Option<&std::collections::HashSet<String>>,
        origins: bool,
    ) -> std::borrow::Cow<'_, wit::MiniBatch> {
        match &self.data {
            Prepared::Files(w) => std::borrow::Cow::Borrowed(w),
            Prepared::Rows(r) => {
                let table = Table {
                    num_rows: r.table.num_rows,
                    columns: r
                        .table
                        .columns
                        .iter()
                        .filter(|c| deliver.is_none_or(|d| d.contains(&c.name)))
                        .cloned()
                        .collect(),
                };
                std::borrow::Cow::Owned(wit::MiniBatch {
                    id: self.id.clone(),
                    items: wit::Items::Rows(wit::TableItems {
                        rows: table_to_wit(table),
                        sources: r.origins.sources.clone(),
                        row_source: if origins { r.origins.source.clone() } else { Vec::new() },
                        row_number: if origins { r.origins.row.clone() } else { Vec::new() },
                    }),
                })
            }
        }
    }
}

impl ScorerInstance {
    /// Runs one mini-batch. `Err` fails the try with a reason code and the
    /// instance must be dropped.
    pub async fn run(&mut self, batch: &PreparedBatch) -> Result<BatchOutput, Failure> {
        let items = batch.items;
        self.store.data().log.logger.set_mini_batch(Some(&batch.id), batch.log_budget.clone());
        let state = &self.store.data().batch;
        let wit = batch.wit(state.deliver.as_ref(), state.deliver_origins);
        self.store.data_mut().batch.rows = match &batch.data {
            Prepared::Rows(r) => Some(r.clone()),
            Prepared::Files(_) => None,
        };
        self.store.data_mut().batch.take_added();
        arm(&mut self.store, &self.settings);
        let r = bounded(&self.settings, self.bindings.call_run(&mut self.store, &wit)).await;
        // The guest's copy of the delivered columns and provenance is in
        // its memory now: free the host's before the result is checked.
        drop(wit);
        self.store.data_mut().batch.rows = None;
        let added = self.store.data_mut().batch.take_added();
        let out = match r {
            Err(f) => Err(f),
            Ok(Err(trap)) => Err(classify(&trap, self.store.data(), &self.settings.limits)),
            Ok(Ok(Err(e))) => Err(Failure::new(ReasonCode::UserError, bounded_text(&e.message))),
            Ok(Ok(Ok(result))) => self.check(result, items, added),
        };
        self.store.data().log.logger.set_mini_batch(None, None);
        out
    }

    /// The guest's result with the columns it had the host add
    /// (`batch.add-result-column`) after its own, checked whole.
    fn check(&self, result: wit::BatchResult, items: usize, added: Vec<Column>) -> Result<BatchOutput, Failure> {
        let mut out = from_wit(result);
        // A result without rows (every item an error) drops what was added:
        // a run that added columns and then failed its items need not undo
        // them.
        if out.rows.num_rows > 0 {
            out.rows.columns.extend(added);
        }
        // 0.1.3: one row per item in item order may leave `row-items` empty.
        if out.row_items.is_empty() && out.errors.is_empty() && items > 0 && out.rows.num_rows == items {
            out.row_items = (0..items).collect();
        }
        let size = out.rows.byte_size() as u64 + out.errors.iter().map(|e| e.message.len() as u64).sum::<u64>();
        if size > self.settings.limits.max_output_bytes {
            return Err(Failure::new(
                ReasonCode::InvalidOutput,
                format!(
                    "returned {size} bytes, over limits.max_output_mb = {} MiB",
                    self.settings.limits.max_output_bytes >> 20
                ),
            ));
        }
        out.check_accounting(items).map_err(|m| Failure::new(ReasonCode::InvalidOutput, m))?;
        Ok(out)
    }

    /// Calls the optional `shutdown` export; failures are reported, not
    /// counted.
    pub async fn shutdown(mut self) -> Result<(), Failure> {
        let Some(f) = self.shutdown else {
            return Ok(());
        };
        arm(&mut self.store, &self.settings);
        match bounded(&self.settings, f.call_async(&mut self.store, ())).await? {
            Err(trap) => Err(classify(&trap, self.store.data(), &self.settings.limits)),
            Ok((Err(e),)) => Err(Failure::new(ReasonCode::UserError, bounded_text(&e.message))),
            Ok((Ok(()),)) => Ok(()),
        }
    }

    /// The instance's number, [`InstanceSettings::instance_id`].
    pub fn id(&self) -> usize {
        self.settings.instance_id
    }

    /// Its [`InstanceSettings::halt`] flag.
    pub fn halt_flag(&self) -> Option<Arc<std::sync::atomic::AtomicBool>> {
        self.settings.halt.clone()
    }
}

fn to_wit(b: MiniBatchInput) -> wit::MiniBatch {
    let items = match b.items {
        Items::Files(files) => {
            wit::Items::Files(files.into_iter().map(|FileInput { name, data }| wit::FileItem { name, data }).collect())
        }
    };
    wit::MiniBatch { id: b.id, items }
}

fn table_to_wit(t: Table) -> wit::Table {
    wit::Table { num_rows: t.num_rows as u32, columns: t.columns.into_iter().map(column_to_wit).collect() }
}

/// The most bytes of item error text one mini-batch keeps: the job holds
/// every mini-batch's item errors until it writes `errors.jsonl`.
pub const MAX_ITEM_ERROR_TEXT_PER_BATCH: usize = 1 << 20;

/// Item errors are guest text: each bounded and escaped on the way in, and
/// past [`MAX_ITEM_ERROR_TEXT_PER_BATCH`] of text in one mini-batch, the
/// rest keep only a note (the items still count as failed).
fn item_errors(errors: Vec<wit::ItemError>) -> Vec<ItemError> {
    use sluice_job::text::{MAX_ITEM_ERROR_BYTES, guest_text};
    let mut used = 0usize;
    errors
        .into_iter()
        .map(|e| {
            let message = if used < MAX_ITEM_ERROR_TEXT_PER_BATCH {
                let m = guest_text(&e.message, MAX_ITEM_ERROR_BYTES);
                used += m.len();
                m
            } else {
                "(text dropped: this mini-batch's item errors passed 1 MiB of text)".to_string()
            };
            ItemError { item: e.item as usize, message }
        })
        .collect()
}

fn from_wit(r: wit::BatchResult) -> BatchOutput {
    BatchOutput {
        rows: Table {
            num_rows: r.rows.num_rows as usize,
            columns: r.rows.columns.into_iter().map(column_from_wit).collect(),
        },
        row_items: r.row_items.into_iter().map(|i| i as usize).collect(),
        errors: item_errors(r.errors),
    }
}
