//! Native ONNX inference for sluice scorers.
//!
//! Scorers are WebAssembly components; running a model inside the guest would be slow and would ship
//! the model in every component. Instead the host offers inference: a job grants models by name
//! ([`ModelGrant`]), the host loads each once per process ([`ModelRegistry`]) and a scorer calls the
//! host with named tensors ([`Model::run`]). This crate is that host side, kept free of wasmtime so it
//! can be built, tested and benchmarked on its own; the runtime crate maps its types to the WIT interface.
//!
//! - [`runtime`]: finding and loading the ONNX Runtime shared library (loaded at run time, not linked).
//! - [`registry`]: granted models, session pools, validation, running.
//! - [`tensor`]: the tensor and signature types that cross the boundary.
//! - deadlines: one background thread per process stops runs past their deadline.
//!
//! Each module's documentation says where its limits are.

#![warn(missing_docs)]

pub mod error;
pub mod registry;
pub mod runtime;
pub mod tensor;
mod watchdog;

pub use error::{ErrorCode, NameKind, OnnxError};
pub use registry::{Model, ModelGrant, ModelRegistry, RegistryOptions, resolve_model_file};
pub use runtime::{LibrarySearch, PROJECT_LIBRARY_DIR, find_library, init_runtime};
pub use tensor::{ElementType, ModelInfo, Tensor, TensorData, TensorInfo};
