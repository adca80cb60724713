//! Plain tensor and model-signature types, free of ort types so that callers (the runtime's host
//! functions) need not depend on ort.
//!
//! Only dense tensors of f32, f64, s64, s32 and u8 cross this boundary ([`TensorData`]); that covers
//! the inputs and outputs of typical tabular models (sklearn-onnx, xgboost, lightgbm exports).
//! Strings, bools, f16 and non-tensor values (sequences, maps: sklearn's ZipMap) are described in
//! [`ModelInfo`] but cannot be fed or read.

use std::fmt;

use ort::value::{TensorElementType, ValueType};

/// The element type of a model's input or output.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ElementType {
    /// 32-bit float (`f32`); can be fed and read.
    F32,
    /// 64-bit float (`f64`); can be fed and read.
    F64,
    /// Signed 64-bit integer (`s64` in WIT); can be fed and read.
    I64,
    /// Signed 32-bit integer (`s32` in WIT); can be fed and read.
    I32,
    /// Unsigned byte (`u8`); can be fed and read.
    U8,
    /// Boolean; described only, it cannot be fed or read.
    Bool,
    /// String; described only, it cannot be fed or read.
    String,
    /// Any other tensor element type, or a non-tensor value (`sequence<...>`, `map<k,v>`, `optional<...>`),
    /// by name.
    Other(String),
}

impl fmt::Display for ElementType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ElementType::F32 => "f32",
            ElementType::F64 => "f64",
            ElementType::I64 => "s64",
            ElementType::I32 => "s32",
            ElementType::U8 => "u8",
            ElementType::Bool => "bool",
            ElementType::String => "string",
            ElementType::Other(name) => name,
        })
    }
}

impl From<TensorElementType> for ElementType {
    fn from(ty: TensorElementType) -> Self {
        match ty {
            TensorElementType::Float32 => ElementType::F32,
            TensorElementType::Float64 => ElementType::F64,
            TensorElementType::Int64 => ElementType::I64,
            TensorElementType::Int32 => ElementType::I32,
            TensorElementType::Uint8 => ElementType::U8,
            TensorElementType::Bool => ElementType::Bool,
            TensorElementType::String => ElementType::String,
            other => ElementType::Other(other.to_string()),
        }
    }
}

/// One input or output of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The name the model gives the input or output.
    pub name: String,
    /// Its element type, or the kind of a non-tensor value.
    pub element_type: ElementType,
    /// Dims as the model declares them; -1 is a dynamic dim. Empty for a scalar or a non-tensor value.
    pub shape: Vec<i64>,
}

impl TensorInfo {
    pub(crate) fn from_outlet(name: &str, dtype: &ValueType) -> TensorInfo {
        let (element_type, shape) = match dtype {
            ValueType::Tensor { ty, shape, .. } => {
                (ElementType::from(*ty), shape.iter().map(|&d| if d < 0 { -1 } else { d }).collect())
            }
            other => (ElementType::Other(value_type_name(other)), Vec::new()),
        };
        TensorInfo { name: name.to_owned(), element_type, shape }
    }
}

fn value_type_name(ty: &ValueType) -> String {
    match ty {
        ValueType::Tensor { ty, .. } => ElementType::from(*ty).to_string(),
        ValueType::Sequence(inner) => format!("sequence<{}>", value_type_name(inner)),
        ValueType::Map { key, value } => format!("map<{},{}>", ElementType::from(*key), ElementType::from(*value)),
        ValueType::Optional(inner) => format!("optional<{}>", value_type_name(inner)),
    }
}

/// A model's signature: its inputs (all required) and outputs, in the model's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelInfo {
    /// The inputs, each of which a run must give.
    pub inputs: Vec<TensorInfo>,
    /// The outputs a run can ask for.
    pub outputs: Vec<TensorInfo>,
}

/// The elements of a dense tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    /// 32-bit floats.
    F32(Vec<f32>),
    /// 64-bit floats.
    F64(Vec<f64>),
    /// Signed 64-bit integers.
    I64(Vec<i64>),
    /// Signed 32-bit integers.
    I32(Vec<i32>),
    /// Unsigned bytes.
    U8(Vec<u8>),
}

impl TensorData {
    /// The element type of the data, to compare with a model's [`TensorInfo::element_type`].
    pub fn element_type(&self) -> ElementType {
        match self {
            TensorData::F32(_) => ElementType::F32,
            TensorData::F64(_) => ElementType::F64,
            TensorData::I64(_) => ElementType::I64,
            TensorData::I32(_) => ElementType::I32,
            TensorData::U8(_) => ElementType::U8,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F64(v) => v.len(),
            TensorData::I64(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::U8(v) => v.len(),
        }
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size of the elements in bytes.
    pub fn byte_size(&self) -> u64 {
        let width = match self {
            TensorData::F32(_) | TensorData::I32(_) => 4,
            TensorData::F64(_) | TensorData::I64(_) => 8,
            TensorData::U8(_) => 1,
        };
        self.len() as u64 * width
    }
}

/// A dense tensor: its shape and its row-major elements (`data.len()` is the product of `shape`).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The dims, outermost first.
    pub shape: Vec<usize>,
    /// The elements, row-major.
    pub data: TensorData,
}

impl Tensor {
    /// A tensor of `shape` and `data`. Nothing is checked here: [`crate::Model::run`] refuses data whose
    /// length does not fit the shape.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Tensor {
        Tensor { shape, data }
    }
}
