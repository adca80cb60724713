//! The data of one instance's store, and the host side of its imports:
//! WASI, the resource limiter that notices out-of-memory, and `log`.

use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::{wit, wit_log};
use crate::logs::{Level, Logger};

pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) limits: StoreLimits,
    /// What happened during the current call, for classifying its trap;
    /// reset before every call into the guest.
    pub(crate) diag: Diagnostics,
    /// The memory cap, for messages (`StoreLimits` does not expose it).
    pub(crate) memory_cap: u64,
    pub(crate) logger: Arc<Logger>,
    /// The models the job grants (shared by the node's instances).
    pub(crate) models: Option<Arc<sluice_onnx::ModelRegistry>>,
    /// The tabular mini-batch being run, for column sources.
    pub(crate) rows: Option<Arc<crate::onnx_host::HostRows>>,
    /// Columns `run` receives (`batch.deliver-columns`); `None` = all.
    pub(crate) deliver: Option<std::collections::HashSet<String>>,
    /// When the current call must end: ONNX runs are terminated there.
    pub(crate) deadline: Option<std::time::Instant>,
    /// Set when the watchdog terminated an ONNX run (or host-side work for
    /// one passed the deadline): the trap is a `TIMEOUT`.
    pub(crate) onnx_timed_out: bool,
    /// `limits.max_tensor_mb`: all inputs of one `onnx.run` together.
    pub(crate) max_tensor_bytes: u64,
    /// `limits.max_output_mb`: what one `onnx.run` turns into columns and
    /// tensors for the guest.
    pub(crate) max_output_bytes: u64,
}

/// The events of one guest call that explain a trap after them. Only the
/// latest matters: an allocation failure the guest handled, followed by a
/// panic, is a panic.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    pub(crate) last: Option<Event>,
}

#[derive(Debug)]
pub(crate) enum Event {
    /// A memory growth was refused (the cap in `memory_cap`).
    Oom,
    /// The SDK's panic hook reported this text (bounded and escaped).
    Panic(String),
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let ok = self.limits.memory_growing(current, desired, maximum)?;
        if !ok {
            self.diag.last = Some(Event::Oom);
        }
        Ok(ok)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

impl wit_log::Host for HostState {
    fn log(&mut self, level: wit_log::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            wit_log::Level::Trace => Level::Trace,
            wit_log::Level::Debug => Level::Debug,
            wit_log::Level::Info => Level::Info,
            wit_log::Level::Warn => Level::Warn,
            wit_log::Level::Error => Level::Error,
        };
        self.logger.log(level, &message);
        Ok(())
    }

    fn panicked(&mut self, message: String) -> wasmtime::Result<()> {
        // Bounded (on a character boundary) and escaped: it ends up in
        // reports, logs and on the terminal.
        // Room for the "init: panicked: " its report adds.
        let m = sluice_job::text::guest_text(&message, sluice_job::text::MAX_MESSAGE_BYTES - 32);
        self.logger.log(Level::Error, &format!("panicked: {m}"));
        self.diag.last = Some(Event::Panic(m));
        Ok(())
    }
}

impl wit::Host for HostState {}
