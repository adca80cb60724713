//! Native ONNX inference from a scorer: load a granted model by name, read
//! its metadata, and run it with columns of the mini-batch as inputs and
//! outputs coming back as result columns, with no loop over cells in the
//! scorer (and, for column sources, no copy of the features through the
//! guest at all).

use crate::bindings::sluice::scorer::batch;
use crate::bindings::sluice::scorer::onnx as wit;
use crate::{Column, ColumnData, Table};

pub use wit::{
    ColumnSource, ElementType, Error as OnnxError, ErrorCode, ModelInfo, NamedTensor, OutputColumn, OutputSelect,
    RunResult, Tensor, TensorData, TensorInfo,
};

impl ErrorCode {
    /// The code as the WIT spells it (`unknown-model`, `too-large`...).
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::UnknownModel => "unknown-model",
            ErrorCode::UnknownName => "unknown-name",
            ErrorCode::ShapeMismatch => "shape-mismatch",
            ErrorCode::TypeMismatch => "type-mismatch",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::InvalidInput => "invalid-input",
            ErrorCode::RuntimeFailure => "runtime-failure",
        }
    }
}

impl From<OnnxError> for crate::Error {
    fn from(e: OnnxError) -> crate::Error {
        crate::Error { message: format!("{:?}: {}", e.code, e.message) }
    }
}

/// A model the job grants, opened by name.
#[derive(Debug)]
pub struct Model {
    inner: wit::Model,
    info: ModelInfo,
}

impl Model {
    /// Opens the model the job grants as `name` (its `inputs.NAME`).
    pub fn load(name: &str) -> Result<Model, OnnxError> {
        let inner = wit::load(name)?;
        let info = inner.info();
        Ok(Model { inner, info })
    }

    /// The names of every model the job grants.
    pub fn granted() -> Vec<String> {
        wit::granted()
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// A run request to fill in.
    pub fn request(&self) -> Request<'_> {
        Request { model: self, inputs: Vec::new(), fetch: Vec::new(), to_columns: Vec::new() }
    }
}

impl ModelInfo {
    pub fn input(&self, name: &str) -> Option<&TensorInfo> {
        self.inputs.iter().find(|t| t.name == name)
    }

    pub fn output(&self, name: &str) -> Option<&TensorInfo> {
        self.outputs.iter().find(|t| t.name == name)
    }
}

impl TensorInfo {
    /// The fixed size of the last dimension (the features per row of a
    /// `[-1, k]` input), if it has one.
    pub fn width(&self) -> Option<usize> {
        match self.shape.as_slice() {
            [_, k] if *k > 0 => Some(*k as usize),
            [_] => Some(1),
            _ => None,
        }
    }
}

/// A model run being put together.
#[derive(Debug)]
pub struct Request<'a> {
    model: &'a Model,
    inputs: Vec<wit::Input>,
    fetch: Vec<String>,
    to_columns: Vec<OutputColumn>,
}

impl Request<'_> {
    /// Feeds input `name` from columns of the current mini-batch, stacked
    /// by the host into `[rows, columns]` (all rows when `rows` is `None`).
    pub fn columns(mut self, name: &str, columns: &[String], rows: Option<&[u32]>) -> Self {
        self.inputs.push(wit::Input {
            name: name.to_string(),
            source: wit::TensorSource::Columns(ColumnSource {
                columns: columns.to_vec(),
                rows: rows.map(<[u32]>::to_vec),
            }),
        });
        self
    }

    /// Feeds input `name` with a tensor the scorer computed.
    pub fn tensor(mut self, name: &str, tensor: Tensor) -> Self {
        self.inputs.push(wit::Input { name: name.to_string(), source: wit::TensorSource::Data(tensor) });
        self
    }

    /// Returns output `name` as a tensor.
    pub fn fetch(mut self, name: &str) -> Self {
        self.fetch.push(name.to_string());
        self
    }

    /// Turns output `output` into result column `column`.
    pub fn to_column(mut self, output: &str, column: &str, select: OutputSelect) -> Self {
        self.to_columns.push(OutputColumn { output: output.to_string(), column: column.to_string(), select });
        self
    }

    pub fn run(self) -> Result<RunResult, OnnxError> {
        self.model.inner.run(&wit::RunRequest { inputs: self.inputs, fetch: self.fetch, to_columns: self.to_columns })
    }

    /// Runs the model with the `to_column` outputs added by the host to
    /// this `run`'s result (after the returned columns, in call order with
    /// [`host_batch::add_result_column`]) instead of coming back to the
    /// scorer; returns their number of rows. Takes no `fetch`. (sluice 0.1.3)
    pub fn run_into_result(self) -> Result<u32, OnnxError> {
        self.model.inner.run_into_result(&wit::RunRequest {
            inputs: self.inputs,
            fetch: self.fetch,
            to_columns: self.to_columns,
        })
    }
}

impl Tensor {
    pub fn f32(shape: &[usize], data: Vec<f32>) -> Tensor {
        Tensor { shape: shape.iter().map(|&d| d as u64).collect(), data: TensorData::F32(data) }
    }

    pub fn f32s(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    pub fn s64s(&self) -> Option<&[i64]> {
        match &self.data {
            TensorData::S64(v) => Some(v),
            _ => None,
        }
    }
}

/// Stacks numeric columns of `table` into a row-major `[rows, columns]`
/// `f32` tensor in the guest (for features the scorer transforms first;
/// prefer [`Request::columns`] when the columns go in as they are).
pub fn f32_tensor(table: &Table, columns: &[String], rows: &[u32]) -> Result<Tensor, String> {
    let mut cols = Vec::with_capacity(columns.len());
    for name in columns {
        cols.push(table.column(name).ok_or_else(|| format!("no column `{name}`"))?);
    }
    let mut out = Vec::with_capacity(rows.len() * cols.len());
    for &r in rows {
        let r = r as usize;
        for c in &cols {
            out.push(match &c.data {
                ColumnData::F32(v) => v[r],
                ColumnData::F64(v) => v[r] as f32,
                ColumnData::S64(v) => v[r] as f32,
                ColumnData::Bool(v) => f32::from(u8::from(v[r])),
                ColumnData::String(_) => return Err(format!("column `{}` holds text", c.name)),
            });
        }
    }
    Ok(Tensor::f32(&[rows.len(), cols.len()], out))
}

/// The current tabular mini-batch as the host holds it.
pub mod host_batch {
    use super::*;

    /// Asks the host to deliver only `names` to `run` (call in `init`); the
    /// other columns stay in the host, usable as column sources.
    pub fn deliver_columns(names: &[String]) {
        batch::deliver_columns(names);
    }

    /// `false` (call in `init`): tabular mini-batches then arrive without
    /// each row's source and row number (`row_source` and `row_number`
    /// empty); [`add_result_column`] still adds them to a result. (sluice 0.1.3)
    pub fn deliver_row_origins(deliver: bool) {
        batch::deliver_row_origins(deliver);
    }

    /// `(name, type)` of every column of the current mini-batch.
    pub fn columns() -> Vec<(String, String)> {
        batch::columns()
    }

    /// Rows where any of `columns` is null.
    pub fn null_rows(columns: &[String]) -> Result<Vec<u32>, OnnxError> {
        batch::null_rows(columns)
    }

    /// Where an added result column's values come from.
    pub use batch::ResultSource;

    /// Has the host add a column `name` to this `run`'s result, after the
    /// columns `run` returns (in call order), built from the mini-batch it
    /// holds: `source` picks an input column or a row's source file or row
    /// number, `rows` the mini-batch rows (one result row each; `None`:
    /// every row). The values never cross into the guest. (sluice 0.1.2)
    pub fn add_result_column(name: &str, source: &ResultSource, rows: Option<&[u32]>) -> Result<(), OnnxError> {
        batch::add_result_column(name, source, rows)
    }
}

impl Column {
    /// A column with no nulls.
    pub fn new(name: &str, data: ColumnData) -> Column {
        Column { name: name.to_string(), data, valid: None }
    }

    /// The values at `rows`, in that order, as a new column.
    pub fn take(&self, rows: &[u32]) -> Column {
        fn pick<T: Clone>(v: &[T], rows: &[u32]) -> Vec<T> {
            rows.iter().map(|&r| v[r as usize].clone()).collect()
        }
        let data = match &self.data {
            ColumnData::F32(v) => ColumnData::F32(pick(v, rows)),
            ColumnData::F64(v) => ColumnData::F64(pick(v, rows)),
            ColumnData::S64(v) => ColumnData::S64(pick(v, rows)),
            ColumnData::String(v) => ColumnData::String(pick(v, rows)),
            ColumnData::Bool(v) => ColumnData::Bool(pick(v, rows)),
        };
        Column { name: self.name.clone(), data, valid: self.valid.as_ref().map(|v| pick(v, rows)) }
    }

    /// The same column under another name.
    pub fn renamed(mut self, name: &str) -> Column {
        self.name = name.to_string();
        self
    }
}
