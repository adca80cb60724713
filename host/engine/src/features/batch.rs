//! The `batch` import and the batch data the host holds: the tabular
//! mini-batch being run ([`HostRows`], which the `onnx` feature's column
//! sources read without a copy through guest memory), the columns an
//! instance asked to receive (`batch.deliver-columns`), and the `types`
//! interface those rows are written in.

use std::collections::HashSet;
use std::sync::Arc;

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
}
