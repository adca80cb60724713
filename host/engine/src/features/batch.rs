//! The `batch` import and the batch data the host holds: the tabular
//! mini-batch being run ([`HostRows`], which the `onnx` feature's column
//! sources read without a copy through guest memory), the columns an
//! instance asked to receive (`batch.deliver-columns`), and the `types`
//! interface those rows are written in.

use std::collections::HashSet;
use std::sync::Arc;

use sluice_job::data::{Column, ColumnData};
use sluice_job::{RowOrigins, Table};
use wasmtime::component::{HasData, Linker};

use crate::bindings::{wit, wit_batch, wit_onnx};

/// The current tabular mini-batch as the host holds it: its rows and where
/// each came from.
#[derive(Debug)]
pub struct HostRows {
    /// The mini-batch's rows, every column.
    pub table: Table,
    /// For each row, the file and row number it came from.
    pub origins: Arc<RowOrigins>,
}

/// The batch feature's state in a store.
#[derive(Debug, Default)]
pub(crate) struct BatchState {
    /// The tabular mini-batch being run, for column sources; `None`
    /// between calls and for file mini-batches.
    pub(crate) rows: Option<Arc<HostRows>>,
    /// Columns `run` receives (`batch.deliver-columns`); `None` = all.
    pub(crate) deliver: Option<HashSet<String>>,
    /// Whether `run` receives each row's source and row number
    /// (`batch.deliver-row-origins`, default yes).
    pub(crate) deliver_origins: bool,
    /// Columns the current `run` added to its result
    /// (`batch.add-result-column`), in call order, and their bytes.
    pub(crate) added: Vec<Column>,
    pub(crate) added_bytes: u64,
    /// `limits.max_output_mb`: what added columns may hold in all.
    pub(crate) max_output_bytes: u64,
}

/// The most columns one `run` may add to its result.
pub const MAX_ADDED_COLUMNS: usize = 64;

impl BatchState {
    /// The state of a new instance whose results are bounded by
    /// `max_output_bytes`.
    pub(crate) fn new(max_output_bytes: u64) -> BatchState {
        BatchState { max_output_bytes, deliver_origins: true, ..BatchState::default() }
    }

    /// Whether `names` (`count` columns of `bytes` in all) may still be
    /// added to the current `run`'s result: a tabular mini-batch is being
    /// run, at most [`MAX_ADDED_COLUMNS`] in all, names new and not empty,
    /// and everything added within `limits.max_output_mb`. Checked before
    /// any column is built.
    pub(crate) fn check_added<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
        count: usize,
        bytes: u64,
    ) -> Result<(), wit_onnx::Error> {
        use wit_onnx::ErrorCode::{InvalidInput, TooLarge};
        if self.rows.is_none() {
            return Err(err(InvalidInput, "no tabular mini-batch is being run (result columns are added in `run`)"));
        }
        if self.added.len() + count > MAX_ADDED_COLUMNS {
            return Err(err(TooLarge, format!("a result may have at most {MAX_ADDED_COLUMNS} added columns")));
        }
        for name in names {
            if name.is_empty() || self.added.iter().any(|c| c.name == name) {
                return Err(err(
                    InvalidInput,
                    format!("result column `{}` is empty or already added", sluice_job::text::guest_text(name, 256)),
                ));
            }
        }
        if self.added_bytes.saturating_add(bytes) > self.max_output_bytes {
            return Err(err(
                TooLarge,
                format!("the added columns pass limits.max_output_mb = {} MiB", self.max_output_bytes >> 20),
            ));
        }
        Ok(())
    }

    /// Adds a column [`BatchState::check_added`] let through, charged `bytes`.
    pub(crate) fn push_added(&mut self, column: Column, bytes: u64) {
        self.added_bytes = self.added_bytes.saturating_add(bytes);
        self.added.push(column);
    }

    /// Takes the columns the finished `run` added.
    pub(crate) fn take_added(&mut self) -> Vec<Column> {
        self.added_bytes = 0;
        std::mem::take(&mut self.added)
    }
}

/// The [`HasData`] type of the batch feature: it needs only its own state.
pub(crate) struct Batch;

impl HasData for Batch {
    type Data<'a> = &'a mut BatchState;
}

/// Links the `batch` and `types` interfaces, reaching the feature's state
/// through `state`.
pub(crate) fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    state: fn(&mut T) -> &mut BatchState,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, Batch>(linker, state)?;
    wit_batch::add_to_linker::<T, Batch>(linker, state)
}

impl wit::Host for BatchState {}

fn err(code: wit_onnx::ErrorCode, message: impl Into<String>) -> wit_onnx::Error {
    wit_onnx::Error { code, message: message.into() }
}

impl wit_batch::Host for BatchState {
    fn deliver_columns(&mut self, names: Vec<String>) -> wasmtime::Result<()> {
        // A set: the filter per mini-batch is then one lookup per column,
        // however many (repeated) names the guest sent.
        self.deliver = Some(names.into_iter().collect());
        Ok(())
    }

    fn deliver_row_origins(&mut self, deliver: bool) -> wasmtime::Result<()> {
        self.deliver_origins = deliver;
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
        let mut done = HashSet::with_capacity(rows.table.columns.len());
        for name in &columns {
            // A name given again costs nothing: the work stays columns x rows.
            if !done.insert(name.as_str()) {
                continue;
            }
            let Some(c) = rows.table.columns.iter().find(|c| &c.name == name) else {
                return Ok(Err(err(
                    wit_onnx::ErrorCode::UnknownName,
                    format!("no column `{}` in this mini-batch", sluice_job::text::guest_text(name, 256)),
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

    fn add_result_column(
        &mut self,
        name: String,
        source: wit_batch::ResultSource,
        rows: Option<Vec<u32>>,
    ) -> wasmtime::Result<Result<(), wit_onnx::Error>> {
        use wit_onnx::ErrorCode::{InvalidInput, UnknownName};
        let shown = |n: &str| sluice_job::text::guest_text(n, 256);
        if let Err(e) = self.check_added([name.as_str()], 1, 0) {
            return Ok(Err(e));
        }
        let batch = self.rows.clone().expect("check_added: a mini-batch is being run");
        let n = batch.table.num_rows;
        if let Some(r) = rows.as_ref().and_then(|r| r.iter().find(|&&i| i as usize >= n)) {
            return Ok(Err(err(InvalidInput, format!("row {r} is out of range: the mini-batch has {n} rows"))));
        }
        let picked = rows.as_ref().map_or(n, Vec::len);
        // What the column will hold, checked before it is built.
        let origins = &batch.origins;
        let bytes: u64 = name.len() as u64
            + match &source {
                wit_batch::ResultSource::Column(c) => match batch.table.columns.iter().find(|x| &x.name == c) {
                    None => {
                        return Ok(Err(err(UnknownName, format!("no column `{}` in this mini-batch", shown(c)))));
                    }
                    Some(col) => {
                        let size = col.data.byte_size() as u64 + col.valid.as_ref().map_or(0, |v| v.len() as u64);
                        // Proportional to the rows picked, rounded up.
                        (size * picked as u64).div_ceil(n.max(1) as u64)
                    }
                },
                wit_batch::ResultSource::SourceFile => {
                    let longest = origins.sources.iter().map(String::len).max().unwrap_or(0);
                    (picked * (longest + 8)) as u64
                }
                wit_batch::ResultSource::RowNumber => picked as u64 * 8,
            };
        if let Err(e) = self.check_added([], 0, bytes) {
            return Ok(Err(e));
        }
        let index = |i: usize| rows.as_ref().map_or(i, |r| r[i] as usize);
        let (data, valid) = match source {
            wit_batch::ResultSource::Column(c) => {
                let col = batch.table.columns.iter().find(|x| x.name == c).expect("checked above");
                match &rows {
                    None => (col.data.clone(), col.valid.clone()),
                    Some(r) => {
                        fn pick<T: Clone>(v: &[T], rows: &[u32]) -> Vec<T> {
                            rows.iter().map(|&i| v[i as usize].clone()).collect()
                        }
                        let data = match &col.data {
                            ColumnData::F32(v) => ColumnData::F32(pick(v, r)),
                            ColumnData::F64(v) => ColumnData::F64(pick(v, r)),
                            ColumnData::S64(v) => ColumnData::S64(pick(v, r)),
                            ColumnData::Bool(v) => ColumnData::Bool(pick(v, r)),
                            ColumnData::String(v) => ColumnData::String(pick(v, r)),
                        };
                        (data, col.valid.as_ref().map(|v| pick(v, r)))
                    }
                }
            }
            wit_batch::ResultSource::SourceFile => (
                ColumnData::String(
                    (0..picked).map(|i| origins.sources[origins.source[index(i)] as usize].clone()).collect(),
                ),
                None,
            ),
            wit_batch::ResultSource::RowNumber => {
                (ColumnData::S64((0..picked).map(|i| origins.row[index(i)] as i64).collect()), None)
            }
        };
        self.push_added(Column { name, data, valid }, bytes);
        Ok(Ok(()))
    }
}
