//! The host side of the `onnx` and `batch` imports.
//!
//! Models come only from the job's grants (a [`ModelRegistry`] shared by
//! every instance of the node); a guest names them, never passes bytes.
//! Column sources are stacked from the current mini-batch held in the host,
//! so feature data need not pass through guest memory. Every bad request is
//! a typed error for the guest; only a run past the `run()` deadline traps
//! (the watchdog terminates ONNX Runtime and the mini-batch fails with
//! `TIMEOUT`).

use std::sync::Arc;

use sluice_job::{ColumnData, Table};
use sluice_onnx::{ElementType, ErrorCode, Model, ModelRegistry, OnnxError, Tensor, TensorData};
use wasmtime::component::Resource;

use crate::bindings::{wit, wit_batch, wit_onnx};
use crate::host_state::HostState;

/// A model opened by a guest: a handle in its resource table.
pub struct ModelHandle {
    model: Arc<Model>,
}

impl std::fmt::Debug for ModelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelHandle").field("model", &self.model.name()).finish()
    }
}

/// The current tabular mini-batch as the host holds it.
#[derive(Debug)]
pub struct HostRows {
    pub table: Table,
    pub sources: Vec<String>,
    pub row_source: Vec<u32>,
    pub row_number: Vec<u64>,
}

impl HostRows {
    /// `file.csv row 12`, for messages.
    fn where_is(&self, row: usize) -> String {
        match (self.row_source.get(row), self.row_number.get(row)) {
            (Some(&s), Some(&n)) => format!("{} row {n}", self.sources.get(s as usize).map_or("?", String::as_str)),
            _ => format!("row {row}"),
        }
    }
}

fn err(code: wit_onnx::ErrorCode, message: impl Into<String>) -> wit_onnx::Error {
    wit_onnx::Error { code, message: message.into() }
}

fn from_onnx(e: &OnnxError) -> wit_onnx::Error {
    let code = match e.code() {
        ErrorCode::UnknownModel => wit_onnx::ErrorCode::UnknownModel,
        ErrorCode::UnknownName => wit_onnx::ErrorCode::UnknownName,
        ErrorCode::ShapeMismatch => wit_onnx::ErrorCode::ShapeMismatch,
        ErrorCode::TypeMismatch => wit_onnx::ErrorCode::TypeMismatch,
        ErrorCode::TooLarge => wit_onnx::ErrorCode::TooLarge,
        ErrorCode::InvalidInput => wit_onnx::ErrorCode::InvalidInput,
        ErrorCode::Runtime | ErrorCode::Timeout => wit_onnx::ErrorCode::RuntimeFailure,
    };
    err(code, e.to_string())
}

fn elem_to_wit(t: &ElementType) -> wit_onnx::ElementType {
    match t {
        ElementType::F32 => wit_onnx::ElementType::F32,
        ElementType::F64 => wit_onnx::ElementType::F64,
        ElementType::I64 => wit_onnx::ElementType::S64,
        ElementType::I32 => wit_onnx::ElementType::S32,
        ElementType::U8 => wit_onnx::ElementType::U8,
        ElementType::Bool => wit_onnx::ElementType::Bool,
        ElementType::String => wit_onnx::ElementType::String,
        ElementType::Other(_) => wit_onnx::ElementType::Other,
    }
}

fn tensor_from_wit(t: wit_onnx::Tensor) -> Tensor {
    let data = match t.data {
        wit_onnx::TensorData::F32(v) => TensorData::F32(v),
        wit_onnx::TensorData::F64(v) => TensorData::F64(v),
        wit_onnx::TensorData::S64(v) => TensorData::I64(v),
        wit_onnx::TensorData::S32(v) => TensorData::I32(v),
        wit_onnx::TensorData::U8(v) => TensorData::U8(v),
    };
    Tensor { shape: t.shape.into_iter().map(|d| d as usize).collect(), data }
}

fn tensor_to_wit(t: Tensor) -> wit_onnx::Tensor {
    let data = match t.data {
        TensorData::F32(v) => wit_onnx::TensorData::F32(v),
        TensorData::F64(v) => wit_onnx::TensorData::F64(v),
        TensorData::I64(v) => wit_onnx::TensorData::S64(v),
        TensorData::I32(v) => wit_onnx::TensorData::S32(v),
        TensorData::U8(v) => wit_onnx::TensorData::U8(v),
    };
    wit_onnx::Tensor { shape: t.shape.into_iter().map(|d| d as u64).collect(), data }
}

fn elem_size(t: &ElementType) -> u64 {
    match t {
        ElementType::F64 | ElementType::I64 => 8,
        ElementType::F32 | ElementType::I32 => 4,
        _ => 1,
    }
}

/// Stacks columns of the current mini-batch into a `[rows, columns]`
/// tensor of `elem` (or `[rows]` when the model input has rank 1).
fn stack_columns(
    rows: &HostRows,
    source: &wit_onnx::ColumnSource,
    input: &sluice_onnx::TensorInfo,
    max_bytes: u64,
) -> Result<Tensor, wit_onnx::Error> {
    use wit_onnx::ErrorCode as C;
    let table = &rows.table;
    let mut cols = Vec::with_capacity(source.columns.len());
    for name in &source.columns {
        let c = table.columns.iter().find(|c| &c.name == name).ok_or_else(|| {
            let have: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
            err(C::UnknownName, format!("no column `{name}` in this mini-batch (columns: {})", have.join(", ")))
        })?;
        cols.push(c);
    }
    let picked: Vec<usize> = match &source.rows {
        None => (0..table.num_rows).collect(),
        Some(r) => {
            if let Some(&bad) = r.iter().find(|&&i| i as usize >= table.num_rows) {
                return Err(err(
                    C::InvalidInput,
                    format!("row {bad} is out of range: the mini-batch has {} rows", table.num_rows),
                ));
            }
            r.iter().map(|&i| i as usize).collect()
        }
    };
    let (n, k) = (picked.len(), cols.len());
    let bytes = (n as u64) * (k as u64) * elem_size(&input.element_type);
    if bytes > max_bytes {
        return Err(err(
            C::TooLarge,
            format!(
                "input `{}` would be {bytes} bytes ({n} rows x {k} columns), over limits.max_tensor_mb = {} MiB",
                input.name,
                max_bytes >> 20
            ),
        ));
    }
    for c in &cols {
        if let Some(valid) = &c.valid
            && let Some(&row) = picked.iter().find(|&&r| !valid[r])
        {
            return Err(err(
                C::InvalidInput,
                format!("column `{}` is null at row {row} ({})", c.name, rows.where_is(row)),
            ));
        }
        if let ColumnData::String(_) = c.data {
            return Err(err(
                C::TypeMismatch,
                format!("column `{}` holds text; a column source needs numbers or booleans", c.name),
            ));
        }
    }
    // Row-major [n, k]: element (r, j) = column j at picked row r. Filled
    // column by column, so each inner loop is one typed, branch-free pass.
    macro_rules! stack {
        ($t:ty, $variant:ident) => {{
            let mut out: Vec<$t> = vec![<$t>::default(); n * k];
            for (j, c) in cols.iter().enumerate() {
                let dst = out[j..].iter_mut().step_by(k.max(1));
                match &c.data {
                    ColumnData::F32(v) => dst.zip(&picked).for_each(|(d, &r)| *d = v[r] as $t),
                    ColumnData::F64(v) => dst.zip(&picked).for_each(|(d, &r)| *d = v[r] as $t),
                    ColumnData::S64(v) => dst.zip(&picked).for_each(|(d, &r)| *d = v[r] as $t),
                    ColumnData::Bool(v) => dst.zip(&picked).for_each(|(d, &r)| *d = u8::from(v[r]) as $t),
                    ColumnData::String(_) => unreachable!("text columns are refused above"),
                }
            }
            TensorData::$variant(out)
        }};
    }
    let data = match &input.element_type {
        ElementType::F32 => stack!(f32, F32),
        ElementType::F64 => stack!(f64, F64),
        ElementType::I64 => stack!(i64, I64),
        ElementType::I32 => stack!(i32, I32),
        ElementType::U8 => stack!(u8, U8),
        other => {
            return Err(err(
                C::TypeMismatch,
                format!("input `{}` takes {other}: a column source can fill only numeric inputs", input.name),
            ));
        }
    };
    let shape = if input.shape.len() == 1 && k == 1 { vec![n] } else { vec![n, k] };
    Ok(Tensor { shape, data })
}

/// One output turned into a column of `rows` values.
fn select_column(t: &Tensor, oc: &wit_onnx::OutputColumn) -> Result<wit::Column, wit_onnx::Error> {
    use wit_onnx::ErrorCode as C;
    let (rows, width) = match t.shape.as_slice() {
        [r] => (*r, 1),
        [r, w] => (*r, *w),
        other => {
            return Err(err(
                C::ShapeMismatch,
                format!("output `{}` has shape {other:?}; to-columns needs [rows] or [rows, k]", oc.output),
            ));
        }
    };
    if width == 0 || t.data.len() != rows * width {
        return Err(err(
            C::InvalidInput,
            format!(
                "output `{}` has shape {:?} and {} values: no column can be taken from it",
                oc.output,
                t.shape,
                t.data.len()
            ),
        ));
    }
    let at = |f: &dyn Fn(usize) -> f64| -> Vec<f64> { (0..rows * width).map(f).collect() };
    let values: Vec<f64> = match &t.data {
        TensorData::F32(v) => at(&|i| v[i] as f64),
        TensorData::F64(v) => v.clone(),
        TensorData::I64(v) => at(&|i| v[i] as f64),
        TensorData::I32(v) => at(&|i| v[i] as f64),
        TensorData::U8(v) => at(&|i| v[i] as f64),
    };
    let row = |r: usize| &values[r * width..(r + 1) * width];
    let argmax = |r: usize| {
        row(r).iter().enumerate().fold((0usize, f64::NEG_INFINITY), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0
    };
    let data = match oc.select {
        wit_onnx::OutputSelect::Whole => {
            if width != 1 {
                return Err(err(
                    C::InvalidInput,
                    format!("output `{}` has {width} values per row; use index, max or argmax", oc.output),
                ));
            }
            same_type(&t.data, (0..rows).collect())
        }
        wit_onnx::OutputSelect::Index(k) => {
            let k = k as usize;
            if k >= width {
                return Err(err(
                    C::InvalidInput,
                    format!("index {k} is out of range for output `{}` with {width} values per row", oc.output),
                ));
            }
            same_type(&t.data, (0..rows).map(|r| r * width + k).collect())
        }
        wit_onnx::OutputSelect::Max => same_type(&t.data, (0..rows).map(|r| r * width + argmax(r)).collect()),
        wit_onnx::OutputSelect::Argmax => wit::ColumnData::S64((0..rows).map(|r| argmax(r) as i64).collect()),
    };
    Ok(wit::Column { name: oc.column.clone(), data, valid: None })
}

/// The elements at `idx` as a column of the tensor's own type (integers
/// as `s64`).
fn same_type(d: &TensorData, idx: Vec<usize>) -> wit::ColumnData {
    match d {
        TensorData::F32(v) => wit::ColumnData::F32(idx.into_iter().map(|i| v[i]).collect()),
        TensorData::F64(v) => wit::ColumnData::F64(idx.into_iter().map(|i| v[i]).collect()),
        TensorData::I64(v) => wit::ColumnData::S64(idx.into_iter().map(|i| v[i]).collect()),
        TensorData::I32(v) => wit::ColumnData::S64(idx.into_iter().map(|i| v[i] as i64).collect()),
        TensorData::U8(v) => wit::ColumnData::S64(idx.into_iter().map(|i| v[i] as i64).collect()),
    }
}

impl HostState {
    fn registry(&self) -> Option<&Arc<ModelRegistry>> {
        self.models.as_ref()
    }

    fn run_model(
        &mut self,
        model: &Arc<Model>,
        req: wit_onnx::RunRequest,
    ) -> wasmtime::Result<Result<wit_onnx::RunResult, wit_onnx::Error>> {
        use wit_onnx::ErrorCode as C;
        let info = model.info();
        let mut inputs = Vec::with_capacity(req.inputs.len());
        for input in req.inputs {
            let tensor = match input.source {
                wit_onnx::TensorSource::Data(t) => tensor_from_wit(t),
                wit_onnx::TensorSource::Columns(src) => {
                    let Some(spec) = info.inputs.iter().find(|i| i.name == input.name) else {
                        let names: Vec<&str> = info.inputs.iter().map(|i| i.name.as_str()).collect();
                        return Ok(Err(err(
                            C::UnknownName,
                            format!(
                                "model `{}` has no input `{}` (inputs: {})",
                                model.name(),
                                input.name,
                                names.join(", ")
                            ),
                        )));
                    };
                    let Some(rows) = self.rows.clone() else {
                        return Ok(Err(err(
                            C::InvalidInput,
                            "column sources need a tabular mini-batch (type: mltable input) being run",
                        )));
                    };
                    match stack_columns(&rows, &src, spec, self.max_tensor_bytes) {
                        Ok(t) => t,
                        Err(e) => return Ok(Err(e)),
                    }
                }
            };
            inputs.push((input.name, tensor));
        }
        let mut wanted: Vec<String> = req.fetch.clone();
        for oc in &req.to_columns {
            if !wanted.contains(&oc.output) {
                wanted.push(oc.output.clone());
            }
        }
        let outputs = match model.run(inputs, &wanted, self.deadline) {
            Ok(o) => o,
            Err(OnnxError::Timeout { .. }) => {
                self.onnx_timed_out = true;
                return Err(wasmtime::Error::msg("ONNX inference passed the run() deadline and was terminated"));
            }
            Err(e) => return Ok(Err(from_onnx(&e))),
        };
        let mut columns = Vec::with_capacity(req.to_columns.len());
        for oc in &req.to_columns {
            let t = &outputs.iter().find(|(n, _)| n == &oc.output).expect("requested output present").1;
            match select_column(t, oc) {
                Ok(c) => columns.push(c),
                Err(e) => return Ok(Err(e)),
            }
        }
        let fetch_all = req.fetch.is_empty() && req.to_columns.is_empty();
        let tensors = outputs
            .into_iter()
            .filter(|(n, _)| fetch_all || req.fetch.contains(n))
            .map(|(name, t)| wit_onnx::NamedTensor { name, tensor: tensor_to_wit(t) })
            .collect();
        Ok(Ok(wit_onnx::RunResult { tensors, columns }))
    }
}

impl wit_onnx::Host for HostState {
    fn load(&mut self, name: String) -> wasmtime::Result<Result<Resource<ModelHandle>, wit_onnx::Error>> {
        let Some(reg) = self.registry() else {
            return Ok(Err(err(
                wit_onnx::ErrorCode::UnknownModel,
                format!("no model `{name}`: the job grants no models (add an mlflow_model or custom_model input)"),
            )));
        };
        match reg.get(&name) {
            Ok(model) => Ok(Ok(self.table.push(ModelHandle { model })?)),
            Err(e) => Ok(Err(from_onnx(&e))),
        }
    }

    fn granted(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.registry().map(|r| r.names()).unwrap_or_default())
    }
}

impl wit_onnx::HostModel for HostState {
    fn info(&mut self, self_: Resource<ModelHandle>) -> wasmtime::Result<wit_onnx::ModelInfo> {
        let m = &self.table.get(&self_)?.model;
        let conv = |ts: &[sluice_onnx::TensorInfo]| {
            ts.iter()
                .map(|t| wit_onnx::TensorInfo {
                    name: t.name.clone(),
                    element_type: elem_to_wit(&t.element_type),
                    shape: t.shape.clone(),
                })
                .collect()
        };
        Ok(wit_onnx::ModelInfo {
            name: m.name().to_string(),
            inputs: conv(&m.info().inputs),
            outputs: conv(&m.info().outputs),
        })
    }

    fn run(
        &mut self,
        self_: Resource<ModelHandle>,
        request: wit_onnx::RunRequest,
    ) -> wasmtime::Result<Result<wit_onnx::RunResult, wit_onnx::Error>> {
        let model = self.table.get(&self_)?.model.clone();
        self.run_model(&model, request)
    }

    fn drop(&mut self, rep: Resource<ModelHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}

impl wit_batch::Host for HostState {
    fn deliver_columns(&mut self, names: Vec<String>) -> wasmtime::Result<()> {
        self.deliver = Some(names);
        Ok(())
    }

    fn columns(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self
            .rows
            .as_ref()
            .map(|r| r.table.columns.iter().map(|c| (c.name.clone(), c.data.type_name().to_string())).collect())
            .unwrap_or_default())
    }

    fn null_rows(&mut self, columns: Vec<String>) -> wasmtime::Result<Result<Vec<u32>, wit_onnx::Error>> {
        let Some(rows) = &self.rows else {
            return Ok(Err(err(wit_onnx::ErrorCode::InvalidInput, "no tabular mini-batch is being run")));
        };
        let mut null = vec![false; rows.table.num_rows];
        for name in &columns {
            let Some(c) = rows.table.columns.iter().find(|c| &c.name == name) else {
                return Ok(Err(err(
                    wit_onnx::ErrorCode::UnknownName,
                    format!("no column `{name}` in this mini-batch"),
                )));
            };
            if let Some(valid) = &c.valid {
                for (n, v) in null.iter_mut().zip(valid) {
                    *n |= !v;
                }
            }
        }
        Ok(Ok(null.iter().enumerate().filter(|(_, n)| **n).map(|(i, _)| i as u32).collect()))
    }
}
