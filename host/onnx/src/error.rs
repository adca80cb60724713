//! Errors of this crate, and the coarse [`ErrorCode`] a scorer sees.
//!
//! Every message names what it is about (the model, the input or output, the path) and, where there is
//! one, what to do about it. The code is what crosses into the guest; the message goes with it.

use std::fmt;
use std::path::PathBuf;

/// The fix printed with [`OnnxError::LibraryMissing`].
pub const LIBRARY_FIX: &str = "run scripts/install-onnxruntime.sh (scripts/setup.sh does it) \
     or set SLUICE_ONNXRUNTIME=/path/to/libonnxruntime.so";

/// Everything that can go wrong between finding ONNX Runtime and reading a model's outputs.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// No ONNX Runtime library in any of the places searched.
    #[error("ONNX Runtime library not found; looked in: {}; to fix: {LIBRARY_FIX}", join_paths(.searched))]
    LibraryMissing {
        /// Every file or folder looked at, in search order.
        searched: Vec<PathBuf>,
    },
    /// A library was found but could not be loaded (not ONNX Runtime, too old, wrong architecture).
    #[error("cannot load ONNX Runtime from {}: {message}", path.display())]
    LibraryLoad {
        /// The library file that was tried.
        path: PathBuf,
        /// Why loading it failed.
        message: String,
    },
    /// A granted model could not be resolved, read or compiled by ONNX Runtime.
    #[error("cannot load model from {}: {message}", path.display())]
    ModelLoad {
        /// The model file (or folder) granted.
        path: PathBuf,
        /// Why it could not be used.
        message: String,
    },
    /// The scorer asked for a model the job did not grant.
    #[error("model `{name}` is not granted to this job (granted: {})", list_or_none(.granted))]
    UnknownModel {
        /// The model name the scorer asked for.
        name: String,
        /// The names the job grants.
        granted: Vec<String>,
    },
    /// An input or output name the model does not have.
    #[error("model `{model}` has no {kind} named `{name}` (its {kind}s: {})", list_or_none(.known))]
    UnknownName {
        /// The model's granted name.
        model: String,
        /// Whether an input or an output was asked for.
        kind: NameKind,
        /// The name asked for.
        name: String,
        /// The model's names of that kind.
        known: Vec<String>,
    },
    /// A tensor's shape does not fit the model's, or its data length does not fit its own shape.
    #[error("model `{model}`, input `{name}`: shape {} does not match the model's {}: {reason}", Dims(.got), Dims(.expected))]
    ShapeMismatch {
        /// The model's granted name.
        model: String,
        /// The input.
        name: String,
        /// The model's shape for the input; a negative dim is dynamic.
        expected: Vec<i64>,
        /// The shape the scorer gave.
        got: Vec<i64>,
        /// What does not fit, in words.
        reason: String,
    },
    /// A tensor's element type differs from the model's, or an output's type is not supported.
    #[error("model `{model}`, `{name}`: expected {expected}, got {got}")]
    TypeMismatch {
        /// The model's granted name.
        model: String,
        /// The input or output.
        name: String,
        /// The type wanted, in words.
        expected: String,
        /// The type found, in words.
        got: String,
    },
    /// A tensor is over the job's per-tensor byte limit.
    #[error("model `{model}`, `{name}`: tensor of {bytes} bytes is over limits.max_tensor_mb ({limit} bytes)")]
    TooLarge {
        /// The model's granted name.
        model: String,
        /// The input or output.
        name: String,
        /// The tensor's size in bytes.
        bytes: u64,
        /// The limit, `limits.max_tensor_mb`, in bytes.
        limit: u64,
    },
    /// Inputs that are wrong as a whole: a required input missing, a name given twice.
    #[error("model `{model}`: {message}")]
    InvalidInput {
        /// The model's granted name.
        model: String,
        /// What is wrong, in words.
        message: String,
    },
    /// The run's deadline passed; ONNX Runtime was told to stop (or the run never started).
    #[error("model `{model}` ran past its deadline and was stopped after {elapsed_ms} ms")]
    Timeout {
        /// The model's granted name.
        model: String,
        /// Milliseconds from the call's start to the stop.
        elapsed_ms: u64,
    },
    /// ONNX Runtime failed while running a model; the value is its message.
    #[error("ONNX Runtime: {0}")]
    Runtime(String),
}

/// Which side of a model a name is on, for [`OnnxError::UnknownName`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A model input.
    Input,
    /// A model output.
    Output,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Input => "input",
            NameKind::Output => "output",
        })
    }
}

/// The coarse error kinds a scorer can tell apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The model is not granted to the job ([`OnnxError::UnknownModel`]).
    UnknownModel,
    /// The model has no input or output of that name ([`OnnxError::UnknownName`]).
    UnknownName,
    /// A tensor's shape does not fit ([`OnnxError::ShapeMismatch`]).
    ShapeMismatch,
    /// A tensor's element type does not fit ([`OnnxError::TypeMismatch`]).
    TypeMismatch,
    /// A tensor is over `limits.max_tensor_mb` ([`OnnxError::TooLarge`]).
    TooLarge,
    /// The inputs are wrong as a whole ([`OnnxError::InvalidInput`]).
    InvalidInput,
    /// A failure on the host's side (the library, loading the model, ONNX Runtime itself).
    Runtime,
    /// The run passed its deadline ([`OnnxError::Timeout`]).
    Timeout,
}

impl OnnxError {
    /// The code for this error. Host-side failures (library, model loading) are `Runtime`: the
    /// scorer can do nothing about them.
    pub fn code(&self) -> ErrorCode {
        match self {
            OnnxError::UnknownModel { .. } => ErrorCode::UnknownModel,
            OnnxError::UnknownName { .. } => ErrorCode::UnknownName,
            OnnxError::ShapeMismatch { .. } => ErrorCode::ShapeMismatch,
            OnnxError::TypeMismatch { .. } => ErrorCode::TypeMismatch,
            OnnxError::TooLarge { .. } => ErrorCode::TooLarge,
            OnnxError::InvalidInput { .. } => ErrorCode::InvalidInput,
            OnnxError::Timeout { .. } => ErrorCode::Timeout,
            OnnxError::LibraryMissing { .. }
            | OnnxError::LibraryLoad { .. }
            | OnnxError::ModelLoad { .. }
            | OnnxError::Runtime(_) => ErrorCode::Runtime,
        }
    }
}

fn join_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nowhere".to_owned();
    }
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
}

/// Shows dims as `[?, 3]`, a negative dim being dynamic.
pub(crate) struct Dims<'a>(pub &'a [i64]);

impl fmt::Display for Dims<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if *d < 0 { f.write_str("?")? } else { write!(f, "{d}")? }
        }
        f.write_str("]")
    }
}
