//! The only place in sluice that knows wasmtime: the engine and its
//! configuration, the compiled-component cache, the sandbox of one scorer
//! instance (WASI without network, environment or undeclared files; memory,
//! stack, fuel and wall-clock limits) and the host imports (`log`, `onnx`, `batch`).
//!
//! The scheduler sees three things: [`ScorerEngine`] (made from an
//! [`EngineConfig`]; one can serve many jobs), [`ScorerComponent`] (a
//! compiled, linked scorer) and [`ScorerInstance`] (one sandboxed instance
//! after its `init`). Every failure of a guest comes back as a
//! [`sluice_job::Failure`] with a reason code; none panics the host.
//!
//! # Where the limits are
//!
//! - Engine-wide, in [`EngineConfig`]: the pool's size, the wasm stack
//!   (wasmtime checks it against one limit per engine) and the largest
//!   memory slot. [`EngineConfig::for_job`] makes them a job's own.
//! - Per load, [`ScorerEngine::load_for`]: a job's compile bounds
//!   ([`CompileBounds`]), after checking its stack and memory fit the
//!   engine.
//! - Per instance, [`InstanceSettings::limits`]: memory (the store's
//!   limiter), fuel and wall clock (armed before each call), log volume
//!   and the ONNX bounds (the host features).
//!
//! # Layers
//!
//! Each module uses (`use crate::...`) only modules in the layers below it:
//!
//! 1. `bindings` (generated from `wit/`, plus the `onnx.model` resource
//!    type), `error`, `logs`, `world` (the name check): no crate imports,
//!    except `error` for the two below.
//! 2. `cache`, `compile`: reading and compiling a scorer (use `error`).
//! 3. `features::{log, batch, onnx}`: one module per host import, each
//!    with its state, its view of the store (`HasData`) and its
//!    `add_to_linker`; `onnx` reads `batch`'s rows. They use `bindings` and
//!    `logs`, never the store or the engine.
//! 4. `store`: the store's state composing WASI and the features' states,
//!    the resource limiter, the linker of all imports.
//! 5. `engine`: [`EngineConfig`], [`ScorerEngine`], [`ScorerComponent`].
//! 6. `instance`: [`ScorerInstance`] and [`PreparedBatch`] (uses `engine`,
//!    `store`, `features`).

#![warn(missing_docs)]

mod bindings;
pub mod cache;
mod command;
mod compile;
mod engine;
mod error;
mod features;
mod instance;
mod logs;
mod store;
mod world;

pub use command::CommandComponent;
pub use compile::{COMPILE_SUBCOMMAND, CompileBounds, Compiler, compiler_child_main, set_default_compiler};
pub use engine::{EngineConfig, ScorerComponent, ScorerEngine, Validation};
pub use error::EngineError;
pub use features::batch::HostRows;
pub use instance::{InstanceSettings, PreparedBatch, ScorerInstance};
pub use logs::{GuestLog, LINE_COST, Level, LogBudget};
pub use sluice_onnx::{ModelRegistry, OnnxError, RegistryOptions};
