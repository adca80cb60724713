//! The `onnx` import: models the job grants and inference on them.
//!
//! Models come only from the job's grants (a [`ModelRegistry`] shared by
//! every instance of the node); a guest names them, never passes bytes.
//! Column sources are stacked from the batch feature's rows ([`HostRows`]),
//! so feature data need not pass through guest memory. Every bad request is
//! a typed error for the guest; only a run past the `run()` deadline traps
//! (the watchdog terminates ONNX Runtime and the mini-batch fails with
//! `TIMEOUT`).

use std::sync::Arc;

use sluice_job::{Column, ColumnData};
use sluice_onnx::{ElementType, ErrorCode, Model, ModelRegistry, OnnxError, Tensor, TensorData};
use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

use crate::bindings::{ModelHandle, column_from_wit, wit, wit_onnx};
use crate::features::MAX_HOST_HANDLES;
use crate::features::batch::{BatchState, HostRows};

/// The onnx feature's state in a store: the grants, the bounds of one
/// `onnx.run` (from the job's limits) and the deadline of the current call.
pub(crate) struct OnnxState {
    /// The models the job grants (shared by the node's instances).
    pub(crate) models: Option<Arc<ModelRegistry>>,
    /// When the current call must end: ONNX runs are terminated there.
    /// Set before every call into the guest.
    pub(crate) deadline: Option<std::time::Instant>,
    /// Set when the watchdog terminated an ONNX run (or host-side work for
    /// one passed the deadline): the trap is a `TIMEOUT`.
    pub(crate) timed_out: bool,
    /// `limits.max_tensor_mb`: all inputs of one `onnx.run` together.
    pub(crate) max_tensor_bytes: u64,
    /// `limits.max_output_mb`: what one `onnx.run` turns into columns and
    /// tensors for the guest.
    pub(crate) max_output_bytes: u64,
}

impl OnnxState {
    /// No deadline yet (each call into the guest sets one).
    pub(crate) fn new(models: Option<Arc<ModelRegistry>>, limits: &sluice_job::Limits) -> OnnxState {
        OnnxState {
            models,
            deadline: None,
            timed_out: false,
            max_tensor_bytes: limits.max_tensor_bytes,
            max_output_bytes: limits.max_output_bytes,
        }
    }
}

/// What an `onnx` call may touch: its own state, the resource table its
/// model handles live in, and the batch feature's rows (read only) for
/// column sources.
pub(crate) struct OnnxView<'a> {
    pub(crate) state: &'a mut OnnxState,
    pub(crate) table: &'a mut ResourceTable,
    pub(crate) batch: &'a mut BatchState,
}

/// The [`HasData`] type of the onnx feature: its `Data` is an [`OnnxView`].
pub(crate) struct Onnx;

impl HasData for Onnx {
    type Data<'a> = OnnxView<'a>;
}

/// Links the `onnx` interface, reaching the feature through `view`.
pub(crate) fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> OnnxView<'_>,
) -> wasmtime::Result<()> {
    wit_onnx::add_to_linker::<T, Onnx>(linker, view)
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

/// Why stacking stopped: a typed error for the guest, or the `run()`
/// deadline passed while the host was still copying (a `TIMEOUT` trap).
enum Stop {
    Error(wit_onnx::Error),
    Deadline,
}

impl From<wit_onnx::Error> for Stop {
    fn from(e: wit_onnx::Error) -> Stop {
        Stop::Error(e)
    }
}

/// A column source checked against the mini-batch and the model input it
/// fills: everything is known (and refused) before anything is allocated.
struct CheckedSource<'a> {
    cols: Vec<&'a sluice_job::Column>,
    /// `None`: every row.
    rows: Option<&'a [u32]>,
    n: usize,
    bytes: u64,
}

/// Checks a column source: the columns exist and hold numbers, the rows
/// are in range, no picked cell is null, and the input takes a numeric
/// type. Allocates nothing beyond the list of column references.
fn check_source<'a>(
    rows: &'a HostRows,
    source: &'a wit_onnx::ColumnSource,
    input: &sluice_onnx::TensorInfo,
) -> Result<CheckedSource<'a>, wit_onnx::Error> {
    use wit_onnx::ErrorCode as C;
    let table = &rows.table;
    if source.columns.is_empty() {
        return Err(err(C::InvalidInput, format!("the column source of input `{}` names no columns", input.name)));
    }
    if !matches!(
        input.element_type,
        ElementType::F32 | ElementType::F64 | ElementType::I64 | ElementType::I32 | ElementType::U8
    ) {
        return Err(err(
            C::TypeMismatch,
            format!(
                "input `{}` takes {}: a column source can fill only numeric inputs",
                input.name, input.element_type
            ),
        ));
    }
    let mut cols = Vec::with_capacity(source.columns.len().min(table.columns.len().max(1) * 4));
    for name in &source.columns {
        let c = table.columns.iter().find(|c| &c.name == name).ok_or_else(|| {
            let have: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
            err(
                C::UnknownName,
                format!(
                    "no column `{}` in this mini-batch (columns: {})",
                    sluice_job::text::guest_text(name, 256),
                    have.join(", ")
                ),
            )
        })?;
        if let ColumnData::String(_) = c.data {
            return Err(err(
                C::TypeMismatch,
                format!("column `{}` holds text; a column source needs numbers or booleans", c.name),
            ));
        }
        cols.push(c);
    }
    let picked = source.rows.as_deref();
    if let Some(r) = picked
        && let Some(&bad) = r.iter().find(|&&i| i as usize >= table.num_rows)
    {
        return Err(err(
            C::InvalidInput,
            format!("row {bad} is out of range: the mini-batch has {} rows", table.num_rows),
        ));
    }
    let n = picked.map_or(table.num_rows, <[u32]>::len);
    let bytes = (n as u64).saturating_mul(cols.len() as u64).saturating_mul(elem_size(&input.element_type));
    for c in &cols {
        if let Some(valid) = &c.valid {
            let null = match picked {
                None => valid.iter().position(|v| !v),
                Some(r) => r.iter().map(|&i| i as usize).find(|&i| !valid[i]),
            };
            if let Some(row) = null {
                return Err(err(
                    C::InvalidInput,
                    format!("column `{}` is null at row {row} ({})", c.name, rows.origins.label(row)),
                ));
            }
        }
    }
    Ok(CheckedSource { cols, rows: picked, n, bytes })
}

/// Rows per model run when a run fed only by column sources is cut into
/// row chunks (see [`OnnxView::run_model`]): a 50,000-row mini-batch of 30
/// features then stacks 1 MB at a time instead of 6 MB, and ONNX
/// Runtime's per-run working memory shrinks with it; per-run overhead is
/// tens of microseconds, so the chunks cost nothing measurable.
pub(crate) const CHUNK_ROWS: usize = 8192;

/// Stacks rows `range` (positions in the source's selection) of checked
/// columns into a `[rows, columns]` tensor of the input's element type (or
/// `[rows]` when the model input has rank 1), stopping at `deadline`
/// between columns.
fn stack_columns(
    src: &CheckedSource<'_>,
    input: &sluice_onnx::TensorInfo,
    deadline: Option<std::time::Instant>,
    range: std::ops::Range<usize>,
) -> Result<Tensor, Stop> {
    let (n, k) = (range.len(), src.cols.len());
    let first = range.start;
    let picked = |r: usize| src.rows.map_or(first + r, |rows| rows[first + r] as usize);
    let past = || deadline.is_some_and(|d| std::time::Instant::now() >= d);
    // Row-major [n, k]: element (r, j) = column j at picked row r. Filled
    // column by column, so each inner loop is one typed, branch-free pass
    // (and an empty selection is an empty tensor, never an index panic).
    macro_rules! stack {
        ($t:ty, $variant:ident) => {{
            let mut out: Vec<$t> = vec![<$t>::default(); n * k];
            for (j, c) in src.cols.iter().enumerate() {
                if past() {
                    return Err(Stop::Deadline);
                }
                let dst = out.iter_mut().skip(j).step_by(k);
                match &c.data {
                    ColumnData::F32(v) => dst.enumerate().for_each(|(r, d)| *d = v[picked(r)] as $t),
                    ColumnData::F64(v) => dst.enumerate().for_each(|(r, d)| *d = v[picked(r)] as $t),
                    ColumnData::S64(v) => dst.enumerate().for_each(|(r, d)| *d = v[picked(r)] as $t),
                    ColumnData::Bool(v) => dst.enumerate().for_each(|(r, d)| *d = u8::from(v[picked(r)]) as $t),
                    ColumnData::String(_) => unreachable!("text columns are refused by check_source"),
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
        _ => unreachable!("non-numeric inputs are refused by check_source"),
    };
    let shape = if input.shape.len() == 1 && k == 1 { vec![n] } else { vec![n, k] };
    Ok(Tensor { shape, data })
}

/// `(rows, values per row)` of an output that `to-columns` can read.
fn columns_shape(t: &Tensor, oc: &wit_onnx::OutputColumn) -> Result<(usize, usize), wit_onnx::Error> {
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
    if width == 0 || rows.checked_mul(width) != Some(t.data.len()) {
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
    Ok((rows, width))
}

/// Element `i` as f64, for comparisons (argmax, max).
fn value_at(d: &TensorData, i: usize) -> f64 {
    match d {
        TensorData::F32(v) => v[i] as f64,
        TensorData::F64(v) => v[i],
        TensorData::I64(v) => v[i] as f64,
        TensorData::I32(v) => v[i] as f64,
        TensorData::U8(v) => v[i] as f64,
    }
}

/// One output turned into a column of `rows` values, reading the tensor
/// in place (no converted copy of it per column).
fn select_column(t: &Tensor, oc: &wit_onnx::OutputColumn) -> Result<wit::Column, wit_onnx::Error> {
    use wit_onnx::ErrorCode as C;
    let (rows, width) = columns_shape(t, oc)?;
    let argmax = |r: usize| {
        (0..width)
            .map(|i| value_at(&t.data, r * width + i))
            .enumerate()
            .fold((0usize, f64::NEG_INFINITY), |b, (i, x)| if x > b.1 { (i, x) } else { b })
            .0
    };
    let data = match oc.select {
        wit_onnx::OutputSelect::Whole => {
            if width != 1 {
                return Err(err(
                    C::InvalidInput,
                    format!("output `{}` has {width} values per row; use index, max or argmax", oc.output),
                ));
            }
            same_type(&t.data, rows, |r| r)
        }
        wit_onnx::OutputSelect::Index(k) => {
            let k = k as usize;
            if k >= width {
                return Err(err(
                    C::InvalidInput,
                    format!("index {k} is out of range for output `{}` with {width} values per row", oc.output),
                ));
            }
            same_type(&t.data, rows, |r| r * width + k)
        }
        wit_onnx::OutputSelect::Max => same_type(&t.data, rows, |r| r * width + argmax(r)),
        wit_onnx::OutputSelect::Argmax => wit::ColumnData::S64((0..rows).map(|r| argmax(r) as i64).collect()),
    };
    Ok(wit::Column { name: oc.column.clone(), data, valid: None })
}

/// The elements at `at(0..rows)` as a column of the tensor's own type
/// (integers as `s64`).
fn same_type(d: &TensorData, rows: usize, at: impl Fn(usize) -> usize) -> wit::ColumnData {
    match d {
        TensorData::F32(v) => wit::ColumnData::F32((0..rows).map(|r| v[at(r)]).collect()),
        TensorData::F64(v) => wit::ColumnData::F64((0..rows).map(|r| v[at(r)]).collect()),
        TensorData::I64(v) => wit::ColumnData::S64((0..rows).map(|r| v[at(r)]).collect()),
        TensorData::I32(v) => wit::ColumnData::S64((0..rows).map(|r| v[at(r)] as i64).collect()),
        TensorData::U8(v) => wit::ColumnData::S64((0..rows).map(|r| v[at(r)] as i64).collect()),
    }
}

/// What [`OnnxView::run_chunked`] did.
enum Chunked {
    Done(Result<Vec<wit::Column>, wit_onnx::Error>),
    NotRowWise,
}

/// Room for `rows` values in a column chunks are appended to.
fn reserve_column(d: &mut wit::ColumnData, rows: usize) {
    use wit::ColumnData as D;
    match d {
        D::F32(v) => v.reserve_exact(rows.saturating_sub(v.len())),
        D::F64(v) => v.reserve_exact(rows.saturating_sub(v.len())),
        D::S64(v) => v.reserve_exact(rows.saturating_sub(v.len())),
        D::String(v) => v.reserve_exact(rows.saturating_sub(v.len())),
        D::Bool(v) => v.reserve_exact(rows.saturating_sub(v.len())),
    }
}

/// Appends a chunk's column to the column so far (the same output and
/// selection, so the same variant).
fn append_column(acc: &mut wit::ColumnData, more: wit::ColumnData) {
    use wit::ColumnData as D;
    match (acc, more) {
        (D::F32(a), D::F32(b)) => a.extend(b),
        (D::F64(a), D::F64(b)) => a.extend(b),
        (D::S64(a), D::S64(b)) => a.extend(b),
        (D::String(a), D::String(b)) => a.extend(b),
        (D::Bool(a), D::Bool(b)) => a.extend(b),
        _ => unreachable!("one output's chunks have one element type"),
    }
}

/// The `too-large` error for results over `limits.max_output_mb`.
fn too_large_results(back: u64, max: u64) -> wit_onnx::Error {
    err(
        wit_onnx::ErrorCode::TooLarge,
        format!(
            "the results of this run (its to-columns and fetched tensors) would be {back} bytes, over \
             limits.max_output_mb = {} MiB",
            max >> 20
        ),
    )
}

/// Bytes one `to-columns` entry makes for `rows` rows (8 per value: `f64`
/// or `s64`, the widest a column of it can be).
fn column_bytes(rows: usize) -> u64 {
    rows as u64 * 8
}

impl OnnxView<'_> {
    fn registry(&self) -> Option<&Arc<ModelRegistry>> {
        self.state.models.as_ref()
    }

    /// Runs a model for the guest. Every argument is checked before the
    /// host allocates anything for it (names, duplicates, columns, rows,
    /// nulls, and the bytes of all inputs together against
    /// `limits.max_tensor_mb`); the outputs it turns into columns are
    /// bounded by `limits.max_output_mb` before they are made; stacking
    /// stops at the `run()` deadline. A run of only column sources and
    /// to-columns over more than [`CHUNK_ROWS`] rows goes in row chunks, so
    /// its stacked tensor and ONNX Runtime's working memory stay bounded
    /// by the chunk, not the mini-batch.
    fn run_model(
        &mut self,
        model: &Arc<Model>,
        req: wit_onnx::RunRequest,
    ) -> wasmtime::Result<Result<wit_onnx::RunResult, wit_onnx::Error>> {
        use wit_onnx::ErrorCode as C;
        let info = model.info();
        let rows = self.batch.rows.clone();
        let mut seen = std::collections::HashSet::with_capacity(req.inputs.len());
        let mut total: u64 = 0;
        let mut checked = Vec::with_capacity(req.inputs.len());
        for input in &req.inputs {
            let Some(spec) = info.inputs.iter().find(|i| i.name == input.name) else {
                return Ok(Err(no_such(model, "input", &input.name, &info.inputs)));
            };
            if !seen.insert(input.name.as_str()) {
                return Ok(Err(err(C::InvalidInput, format!("input `{}` is given twice", input.name))));
            }
            let bytes = match &input.source {
                wit_onnx::TensorSource::Data(t) => {
                    checked.push(None);
                    tensor_bytes(&t.data)
                }
                wit_onnx::TensorSource::Columns(src) => {
                    let Some(rows) = rows.as_deref() else {
                        return Ok(Err(err(
                            C::InvalidInput,
                            "column sources need a tabular mini-batch (type: mltable input) being run",
                        )));
                    };
                    match check_source(rows, src, spec) {
                        Ok(c) => {
                            let b = c.bytes;
                            checked.push(Some((c, spec)));
                            b
                        }
                        Err(e) => return Ok(Err(e)),
                    }
                }
            };
            total = total.saturating_add(bytes);
            if total > self.state.max_tensor_bytes {
                return Ok(Err(err(
                    C::TooLarge,
                    format!(
                        "the inputs of this run would be {total} bytes or more (input `{}` is {bytes}), over \
                         limits.max_tensor_mb = {} MiB for all inputs of one run together",
                        input.name,
                        self.state.max_tensor_bytes >> 20
                    ),
                )));
            }
        }
        let mut wanted: Vec<String> = Vec::with_capacity(req.fetch.len() + 1);
        for name in req.fetch.iter().chain(req.to_columns.iter().map(|oc| &oc.output)) {
            if !info.outputs.iter().any(|o| &o.name == name) {
                return Ok(Err(no_such(model, "output", name, &info.outputs)));
            }
            if !wanted.contains(name) {
                wanted.push(name.clone());
            }
        }
        let mut columns_seen = std::collections::HashSet::with_capacity(req.to_columns.len());
        for oc in &req.to_columns {
            if !columns_seen.insert(oc.column.as_str()) {
                return Ok(Err(err(C::InvalidInput, format!("to-columns names column `{}` twice", oc.column))));
            }
        }

        // Only column sources, only columns back, and more rows than a
        // chunk: run it chunk by chunk, each output's rows appended, when
        // the model gives one output row per input row (a row-wise model:
        // what a column source of independent rows is for). A model that
        // does not (its first chunk says so) is run whole below.
        let rows_of = |c: &Option<(CheckedSource<'_>, &sluice_onnx::TensorInfo)>| c.as_ref().map(|(c, _)| c.n);
        if req.fetch.is_empty()
            && !req.to_columns.is_empty()
            && let Some(Some(n)) = checked.first().map(rows_of)
            && n > CHUNK_ROWS
            && checked.iter().all(|c| rows_of(c) == Some(n))
        {
            let back = column_bytes(n).saturating_mul(req.to_columns.len() as u64);
            if back > self.state.max_output_bytes {
                return Ok(Err(too_large_results(back, self.state.max_output_bytes)));
            }
            let names: Vec<String> = req.inputs.iter().map(|i| i.name.clone()).collect();
            match self.run_chunked(model, &checked, &names, &wanted, &req.to_columns, n)? {
                Chunked::Done(Ok(columns)) => return Ok(Ok(wit_onnx::RunResult { tensors: Vec::new(), columns })),
                Chunked::Done(Err(e)) => return Ok(Err(e)),
                Chunked::NotRowWise => {}
            }
        }

        // Checked: now stack the column sources, then take the guest's own
        // tensors as they are (no copy), in request order.
        let mut stacked: Vec<Option<Tensor>> = Vec::with_capacity(checked.len());
        for c in &checked {
            stacked.push(match c {
                None => None,
                Some((c, spec)) => match stack_columns(c, spec, self.state.deadline, 0..c.n) {
                    Ok(t) => Some(t),
                    Err(Stop::Error(e)) => return Ok(Err(e)),
                    Err(Stop::Deadline) => return Err(self.deadline_passed()),
                },
            });
        }
        drop(checked);
        let mut inputs = Vec::with_capacity(req.inputs.len());
        for (input, s) in req.inputs.into_iter().zip(stacked) {
            let tensor = match (input.source, s) {
                (_, Some(t)) => t,
                (wit_onnx::TensorSource::Data(t), None) => tensor_from_wit(t),
                (wit_onnx::TensorSource::Columns(_), None) => unreachable!("every column source was stacked"),
            };
            inputs.push((input.name, tensor));
        }
        let outputs = match model.run(inputs, &wanted, self.state.deadline) {
            Ok(o) => o,
            Err(OnnxError::Timeout { .. }) => return Err(self.deadline_passed()),
            Err(e) => return Ok(Err(from_onnx(&e))),
        };
        let fetch_all = req.fetch.is_empty() && req.to_columns.is_empty();
        // What goes back to the guest, bounded before it is made: the
        // to-columns values and the fetched tensors.
        let mut back: u64 = 0;
        for oc in &req.to_columns {
            let t = &outputs.iter().find(|(n, _)| n == &oc.output).expect("requested output present").1;
            match columns_shape(t, oc) {
                Ok((rows, _)) => back = back.saturating_add(column_bytes(rows)),
                Err(e) => return Ok(Err(e)),
            }
        }
        for (name, t) in &outputs {
            if fetch_all || req.fetch.contains(name) {
                back = back.saturating_add(tensor_bytes_host(&t.data));
            }
        }
        if back > self.state.max_output_bytes {
            return Ok(Err(too_large_results(back, self.state.max_output_bytes)));
        }
        let mut columns = Vec::with_capacity(req.to_columns.len());
        for oc in &req.to_columns {
            if self.state.deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Err(self.deadline_passed());
            }
            let t = &outputs.iter().find(|(n, _)| n == &oc.output).expect("requested output present").1;
            match select_column(t, oc) {
                Ok(c) => columns.push(c),
                Err(e) => return Ok(Err(e)),
            }
        }
        let tensors = outputs
            .into_iter()
            .filter(|(n, _)| fetch_all || req.fetch.contains(n))
            .map(|(name, t)| wit_onnx::NamedTensor { name, tensor: tensor_to_wit(t) })
            .collect();
        Ok(Ok(wit_onnx::RunResult { tensors, columns }))
    }

    /// A run of `n` rows from column sources only, [`CHUNK_ROWS`] at a
    /// time: each chunk stacked, run and turned into its rows of the
    /// to-columns. `NotRowWise` when an output's rows are not the chunk's
    /// (the caller then runs it whole).
    fn run_chunked(
        &mut self,
        model: &Arc<Model>,
        checked: &[Option<(CheckedSource<'_>, &sluice_onnx::TensorInfo)>],
        names: &[String],
        wanted: &[String],
        to_columns: &[wit_onnx::OutputColumn],
        n: usize,
    ) -> wasmtime::Result<Chunked> {
        let mut columns: Vec<wit::Column> = Vec::with_capacity(to_columns.len());
        let mut lo = 0;
        while lo < n {
            let hi = (lo + CHUNK_ROWS).min(n);
            let mut inputs = Vec::with_capacity(checked.len());
            for (c, name) in checked.iter().zip(names) {
                let (c, spec) = c.as_ref().expect("only column sources are run in chunks");
                match stack_columns(c, spec, self.state.deadline, lo..hi) {
                    Ok(t) => inputs.push((name.clone(), t)),
                    Err(Stop::Error(e)) => return Ok(Chunked::Done(Err(e))),
                    Err(Stop::Deadline) => return Err(self.deadline_passed()),
                }
            }
            let outputs = match model.run(inputs, wanted, self.state.deadline) {
                Ok(o) => o,
                Err(OnnxError::Timeout { .. }) => return Err(self.deadline_passed()),
                Err(e) => return Ok(Chunked::Done(Err(from_onnx(&e)))),
            };
            for (i, oc) in to_columns.iter().enumerate() {
                if self.state.deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                    return Err(self.deadline_passed());
                }
                let t = &outputs.iter().find(|(n, _)| n == &oc.output).expect("requested output present").1;
                match columns_shape(t, oc) {
                    Ok((rows, _)) if rows == hi - lo => {}
                    Ok(_) => return Ok(Chunked::NotRowWise),
                    Err(e) => return Ok(Chunked::Done(Err(e))),
                }
                let c = match select_column(t, oc) {
                    Ok(c) => c,
                    Err(e) => return Ok(Chunked::Done(Err(e))),
                };
                match columns.get_mut(i) {
                    None => {
                        let mut c = c;
                        reserve_column(&mut c.data, n);
                        columns.push(c);
                    }
                    Some(acc) => append_column(&mut acc.data, c.data),
                }
            }
            lo = hi;
        }
        Ok(Chunked::Done(Ok(columns)))
    }

    /// The trap for host-side work past the `run()` deadline (a `TIMEOUT`).
    fn deadline_passed(&mut self) -> wasmtime::Error {
        self.state.timed_out = true;
        wasmtime::Error::msg("ONNX inference passed the run() deadline and was terminated")
    }
}

/// The `unknown-name` error for a guest-given input or output name, with
/// the names the model has.
fn no_such(model: &Model, kind: &str, name: &str, known: &[sluice_onnx::TensorInfo]) -> wit_onnx::Error {
    let names: Vec<&str> = known.iter().map(|t| t.name.as_str()).collect();
    err(
        wit_onnx::ErrorCode::UnknownName,
        format!(
            "model `{}` has no {kind} `{}` ({kind}s: {})",
            model.name(),
            sluice_job::text::guest_text(name, 256),
            names.join(", ")
        ),
    )
}

/// Bytes of a tensor the guest sent.
fn tensor_bytes(d: &wit_onnx::TensorData) -> u64 {
    match d {
        wit_onnx::TensorData::F32(v) => v.len() as u64 * 4,
        wit_onnx::TensorData::F64(v) => v.len() as u64 * 8,
        wit_onnx::TensorData::S64(v) => v.len() as u64 * 8,
        wit_onnx::TensorData::S32(v) => v.len() as u64 * 4,
        wit_onnx::TensorData::U8(v) => v.len() as u64,
    }
}

/// Bytes of a tensor the host holds.
fn tensor_bytes_host(d: &TensorData) -> u64 {
    d.byte_size()
}

impl wit_onnx::Host for OnnxView<'_> {
    fn load(&mut self, name: String) -> wasmtime::Result<Result<Resource<ModelHandle>, wit_onnx::Error>> {
        let Some(reg) = self.registry() else {
            return Ok(Err(err(
                wit_onnx::ErrorCode::UnknownModel,
                format!("no model `{name}`: the job grants no models (add an mlflow_model or custom_model input)"),
            )));
        };
        match reg.get(&name) {
            Ok(model) => match self.table.push(ModelHandle { model }) {
                Ok(handle) => Ok(Ok(handle)),
                Err(wasmtime::component::ResourceTableError::Full) => Ok(Err(err(
                    wit_onnx::ErrorCode::TooLarge,
                    format!(
                        "this instance already holds {} host handles, the most it may; drop models it no \
                         longer uses",
                        MAX_HOST_HANDLES
                    ),
                ))),
                Err(e) => Err(e.into()),
            },
            Err(e) => Ok(Err(from_onnx(&e))),
        }
    }

    fn granted(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.registry().map(|r| r.names()).unwrap_or_default())
    }
}

impl wit_onnx::HostModel for OnnxView<'_> {
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

    fn run_into_result(
        &mut self,
        self_: Resource<ModelHandle>,
        request: wit_onnx::RunRequest,
    ) -> wasmtime::Result<Result<u32, wit_onnx::Error>> {
        if !request.fetch.is_empty() || request.to_columns.is_empty() {
            return Ok(Err(err(
                wit_onnx::ErrorCode::InvalidInput,
                "run-into-result adds its to-columns to the result: `fetch` must be empty and `to-columns` name \
                 at least one output",
            )));
        }
        // Count and names are checked before the model runs, the bytes
        // (already bounded by `run`'s own check) once the columns exist.
        let names = request.to_columns.iter().map(|c| c.column.as_str());
        if let Err(e) = self.batch.check_added(names, request.to_columns.len(), 0) {
            return Ok(Err(e));
        }
        let model = self.table.get(&self_)?.model.clone();
        let columns: Vec<Column> = match self.run_model(&model, request)? {
            Ok(r) => r.columns.into_iter().map(column_from_wit).collect(),
            Err(e) => return Ok(Err(e)),
        };
        let bytes = |c: &Column| (c.name.len() + c.data.byte_size() + c.valid.as_ref().map_or(0, Vec::len)) as u64;
        if let Err(e) = self.batch.check_added([], 0, columns.iter().map(bytes).sum()) {
            return Ok(Err(e));
        }
        let rows = columns.first().map_or(0, |c| c.data.len());
        if let Some(c) = columns.iter().find(|c| c.data.len() != rows) {
            return Ok(Err(err(
                wit_onnx::ErrorCode::InvalidInput,
                format!(
                    "to-columns of unequal length: `{}` has {rows} rows, `{}` {}; nothing was added",
                    columns[0].name,
                    c.name,
                    c.data.len()
                ),
            )));
        }
        for c in columns {
            let b = bytes(&c);
            self.batch.push_added(c, b);
        }
        Ok(Ok(rows as u32))
    }

    fn drop(&mut self, rep: Resource<ModelHandle>) -> wasmtime::Result<()> {
        self.table.delete(rep)?;
        Ok(())
    }
}
