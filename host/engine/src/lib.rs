//! The only place in sluice that knows wasmtime: the engine and its
//! configuration, the compiled-component cache, the sandbox of one scorer
//! instance (WASI without network, environment or undeclared files; memory,
//! stack, fuel and wall-clock limits) and the host imports (`log`, `onnx`, `batch`).
//!
//! The scheduler sees three things: [`ScorerEngine`] (one per job),
//! [`ScorerComponent`] (a compiled, linked scorer) and [`ScorerInstance`]
//! (one sandboxed instance after its `init`). Every failure of a guest comes
//! back as a [`sluice_job::Failure`] with a reason code; none panics the host.

mod bindings;
mod cache;
mod compile;
mod engine;
mod host_state;
mod instance;
mod logs;
mod onnx_host;
mod world;

pub use compile::{COMPILE_SUBCOMMAND, Compiler, compiler_child_main, set_default_compiler};
pub use engine::{EngineError, ScorerComponent, ScorerEngine, Validation};
pub use instance::{InstanceSettings, PreparedBatch, ScorerInstance};
pub use logs::{GuestLog, LINE_COST, Level, LogBudget};
pub use onnx_host::HostRows;
pub use sluice_onnx::{ModelRegistry, OnnxError, RegistryOptions};
