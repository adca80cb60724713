//! Encoding returned rows for the output file, through Arrow's writers.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_buffer::NullBuffer;
use arrow_schema::{DataType, Field, Schema};
use sluice_job::spec::OutputFormat;
use sluice_job::{ColumnData, Table};

/// Writing tables in an output format, through Arrow's writers.
pub trait Encode {
    /// The rows of `table`, encoded without any header.
    fn encode(&self, table: &Table) -> Result<Vec<u8>, String>;

    /// What goes before the first row: the CSV header line for this table's
    /// columns; nothing for JSON Lines.
    fn header(&self, table: &Table) -> Result<Vec<u8>, String>;
}

impl Encode for OutputFormat {
    fn encode(&self, table: &Table) -> Result<Vec<u8>, String> {
        let batch = to_record_batch(table)?;
        let mut out = Vec::new();
        match self {
            OutputFormat::Csv => {
                let mut w = arrow_csv::WriterBuilder::new().with_header(false).build(&mut out);
                w.write(&batch).map_err(|e| e.to_string())?;
            }
            OutputFormat::JsonLines => {
                let mut w = arrow_json::LineDelimitedWriter::new(&mut out);
                w.write(&batch).map_err(|e| e.to_string())?;
                w.finish().map_err(|e| e.to_string())?;
            }
            // Parquet files cannot be concatenated: a part is an Arrow IPC
            // stream, turned into a row group when committed (ParquetOutput).
            OutputFormat::Parquet => {
                let mut w =
                    arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema()).map_err(|e| e.to_string())?;
                w.write(&batch).map_err(|e| e.to_string())?;
                w.finish().map_err(|e| e.to_string())?;
            }
        }
        Ok(out)
    }

    fn header(&self, table: &Table) -> Result<Vec<u8>, String> {
        match self {
            OutputFormat::JsonLines | OutputFormat::Parquet => Ok(Vec::new()),
            OutputFormat::Csv => {
                let empty = Table {
                    num_rows: 0,
                    columns: table
                        .columns
                        .iter()
                        .map(|c| sluice_job::Column { name: c.name.clone(), data: empty_like(&c.data), valid: None })
                        .collect(),
                };
                let batch = to_record_batch(&empty)?;
                let mut out = Vec::new();
                let mut w = arrow_csv::WriterBuilder::new().with_header(true).build(&mut out);
                w.write(&batch).map_err(|e| e.to_string())?;
                drop(w);
                Ok(out)
            }
        }
    }
}

fn empty_like(d: &ColumnData) -> ColumnData {
    match d {
        ColumnData::F32(_) => ColumnData::F32(Vec::new()),
        ColumnData::F64(_) => ColumnData::F64(Vec::new()),
        ColumnData::S64(_) => ColumnData::S64(Vec::new()),
        ColumnData::String(_) => ColumnData::String(Vec::new()),
        ColumnData::Bool(_) => ColumnData::Bool(Vec::new()),
    }
}

/// An Arrow record batch as a host table: integers become `s64`, floats
/// `f32`/`f64`, booleans `bool` and everything else text (Arrow's display
/// form), so any table a reader produces can cross into a guest.
pub fn from_record_batch(batch: &RecordBatch) -> Result<Table, String> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float32Type, Float64Type, Int64Type};
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, col) in batch.schema().fields().iter().zip(batch.columns()) {
        let valid = col.logical_nulls().map(|n| n.iter().collect::<Vec<bool>>());
        let data = match col.data_type() {
            DataType::Float64 => ColumnData::F64(col.as_primitive::<Float64Type>().values().to_vec()),
            DataType::Float32 => ColumnData::F32(col.as_primitive::<Float32Type>().values().to_vec()),
            DataType::Boolean => ColumnData::Bool(col.as_boolean().iter().map(|b| b.unwrap_or(false)).collect()),
            t if t.is_integer() => {
                let c =
                    arrow_cast::cast(col, &DataType::Int64).map_err(|e| format!("column `{}`: {e}", field.name()))?;
                ColumnData::S64(c.as_primitive::<Int64Type>().values().to_vec())
            }
            DataType::Utf8 => {
                ColumnData::String(col.as_string::<i32>().iter().map(|s| s.unwrap_or("").to_string()).collect())
            }
            _ => {
                let fmt = arrow_cast::display::FormatOptions::default();
                let f = arrow_cast::display::ArrayFormatter::try_new(col.as_ref(), &fmt)
                    .map_err(|e| format!("column `{}`: {e}", field.name()))?;
                ColumnData::String((0..col.len()).map(|i| f.value(i).to_string()).collect())
            }
        };
        columns.push(sluice_job::Column { name: field.name().clone(), data, valid });
    }
    Ok(Table { num_rows: batch.num_rows(), columns })
}

/// A host table as an Arrow record batch (nulls from the validity masks).
pub fn to_record_batch(table: &Table) -> Result<RecordBatch, String> {
    let mut fields = Vec::with_capacity(table.columns.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(table.columns.len());
    for c in &table.columns {
        let nulls = c.valid.clone().map(NullBuffer::from);
        // Every column may hold nulls: the first mini-batch fixes the schema
        // of a Parquet output for all the others.
        let nullable = true;
        let (dt, array): (DataType, ArrayRef) = match &c.data {
            ColumnData::F32(v) => (DataType::Float32, Arc::new(Float32Array::new(v.clone().into(), nulls))),
            ColumnData::F64(v) => (DataType::Float64, Arc::new(Float64Array::new(v.clone().into(), nulls))),
            ColumnData::S64(v) => (DataType::Int64, Arc::new(Int64Array::new(v.clone().into(), nulls))),
            ColumnData::Bool(v) => (DataType::Boolean, Arc::new(BooleanArray::new(v.as_slice().into(), nulls))),
            ColumnData::String(v) => {
                let array = match &c.valid {
                    None => StringArray::from_iter_values(v),
                    Some(valid) => v.iter().zip(valid).map(|(s, ok)| ok.then_some(s.as_str())).collect(),
                };
                (DataType::Utf8, Arc::new(array))
            }
        };
        fields.push(Field::new(&c.name, dt, nullable));
        arrays.push(array);
    }
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(table.num_rows));
    RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), arrays, &options).map_err(|e| e.to_string())
}
