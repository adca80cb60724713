//! The host imports of the `sluice:scorer` world, one module per import,
//! in the manner of wasmtime's own crates (`wasmtime-wasi-config`,
//! `wasmtime-wasi-http`): each has its own state struct, a view of the
//! store's state it needs (a [`wasmtime::component::HasData`] type) and an
//! `add_to_linker(linker, |state| view)` that links only its interface.
//!
//! - [`log`]: guest log lines and the SDK's panic report.
//! - [`batch`]: the tabular mini-batch the host holds ([`batch::HostRows`]),
//!   the columns a guest asks for, and the `types` interface.
//! - [`onnx`]: models the job grants and inference on them, reading
//!   column sources from the batch feature's rows.
//!
//! This layer sits on [`crate::bindings`] (and [`crate::logs`]); the store
//! that composes the features' states (`store`) and the engine and
//! instance above it use it, never the other way round. What more than one
//! feature shares lives here: the resource-handle cap and what explains a
//! trap.

pub(crate) mod batch;
pub(crate) mod log;
pub(crate) mod onnx;

/// Host-side resource handles one instance may hold at once (its resource
/// table's capacity, shared by WASI streams and ONNX models): a scorer
/// needs a handful, far below wasmtime's default of a million.
pub(crate) const MAX_HOST_HANDLES: usize = 10_000;

/// The events of one guest call that explain a trap after them. Only the
/// latest matters: an allocation failure the guest handled, followed by a
/// panic, is a panic. Written by the store's resource limiter (`Oom`) and
/// the log feature (`Panic`); reset before every call into the guest.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    pub(crate) last: Option<Event>,
}

#[derive(Debug)]
pub(crate) enum Event {
    /// A memory growth was refused (the cap in the store's `memory_cap`).
    Oom,
    /// The SDK's panic hook reported this text (bounded and escaped).
    Panic(String),
}
