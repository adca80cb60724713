//! The data of one instance's store: a small struct composing the states
//! of WASI and of each host feature ([`crate::features`]), the resource
//! limiter that enforces the job's memory cap and notices out-of-memory,
//! and the linker that links every import through the features' own
//! `add_to_linker`.
//!
//! Above the features, below the engine and the instance: the engine links
//! with [`linker`], an instance builds a [`StoreState`] per sandbox.

use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::features::batch::BatchState;
use crate::features::log::{LogState, LogView};
use crate::features::onnx::{OnnxState, OnnxView};
use crate::features::{self, Diagnostics, Event};

/// What one instance's store holds.
pub(crate) struct StoreState {
    pub(crate) wasi: WasiCtx,
    /// Resource handles of WASI and of the onnx feature together, capped at
    /// [`features::MAX_HOST_HANDLES`].
    pub(crate) table: ResourceTable,
    /// The instance's memory, table and instance caps (`limits.memory_mb`
    /// for memory): per store, so instances of jobs with different limits
    /// can share one engine.
    pub(crate) limits: StoreLimits,
    /// The memory cap, for messages (`StoreLimits` does not expose it).
    pub(crate) memory_cap: u64,
    /// What happened during the current call, for classifying its trap;
    /// reset before every call into the guest.
    pub(crate) diag: Diagnostics,
    pub(crate) log: LogState,
    pub(crate) onnx: OnnxState,
    pub(crate) batch: BatchState,
    /// The embedder's abandon flag ([`crate::InstanceSettings::stop`]), to
    /// tell an abandoned call's interrupt from a deadline's.
    pub(crate) stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// The instance's own stop flag ([`crate::InstanceSettings::halt`]).
    pub(crate) halt: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl ResourceLimiter for StoreState {
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

/// A linker for `engine` with every import of the `sluice:scorer` world:
/// WASI 0.2 (async: a guest waiting in it can be abandoned at its
/// deadline), then each feature through its own view of the store.
pub(crate) fn linker(engine: &Engine) -> wasmtime::Result<Linker<StoreState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    features::log::add_to_linker(&mut linker, |s: &mut StoreState| LogView { state: &mut s.log, diag: &mut s.diag })?;
    features::batch::add_to_linker(&mut linker, |s: &mut StoreState| &mut s.batch)?;
    features::onnx::add_to_linker(&mut linker, |s: &mut StoreState| OnnxView {
        state: &mut s.onnx,
        table: &mut s.table,
        batch: &mut s.batch,
    })?;
    Ok(linker)
}
