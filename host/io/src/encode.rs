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
        if *self == OutputFormat::Csv {
            return Ok(csv_rows(table));
        }
        let batch = to_record_batch(table)?;
        let mut out = Vec::new();
        match self {
            OutputFormat::Csv => unreachable!("encoded above"),
            OutputFormat::JsonLines => {
                let mut w = arrow_json::WriterBuilder::new()
                    .with_encoder_factory(Arc::new(NonFiniteAsText))
                    .build::<_, arrow_json::writer::LineDelimited>(&mut out);
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

/// The rows of `table` as CSV, written straight from the host columns: the
/// same bytes as arrow-csv's writer (its defaults: `,`, `"` doubled, `\n`,
/// nulls empty; integers in decimal, floats in `ryu`'s shortest form,
/// booleans `true`/`false`, text quoted only when it holds `,`, `"`, `\r`
/// or `\n`, and a row of one empty field written `""`), without first
/// copying the table into Arrow arrays (every text value) and formatting
/// each cell through a dynamic formatter.
fn csv_rows(table: &Table) -> Vec<u8> {
    let cols = &table.columns;
    // A guess at the size (numbers are a few bytes, text its length): one
    // allocation in the common case.
    let per_row: usize = cols
        .iter()
        .map(|c| match &c.data {
            ColumnData::String(v) => v.iter().take(64).map(|s| s.len()).sum::<usize>() / v.len().clamp(1, 64) + 1,
            ColumnData::Bool(_) => 6,
            ColumnData::S64(_) => 8,
            ColumnData::F32(_) | ColumnData::F64(_) => 12,
        })
        .sum();
    let mut out = Vec::with_capacity(per_row.saturating_mul(table.num_rows) + table.num_rows);
    let mut int = itoa::Buffer::new();
    let mut float = ryu::Buffer::new();
    for row in 0..table.num_rows {
        let start = out.len();
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if c.valid.as_ref().is_some_and(|v| !v[row]) {
                continue;
            }
            match &c.data {
                ColumnData::S64(v) => out.extend_from_slice(int.format(v[row]).as_bytes()),
                ColumnData::F64(v) => out.extend_from_slice(float.format(v[row]).as_bytes()),
                ColumnData::F32(v) => out.extend_from_slice(float.format(v[row]).as_bytes()),
                ColumnData::Bool(v) => out.extend_from_slice(if v[row] { b"true" } else { b"false" }),
                ColumnData::String(v) => csv_text(&mut out, v[row].as_bytes()),
            }
        }
        // The csv crate quotes a row that is one empty field (else it
        // would read back as no field at all).
        if out.len() == start {
            out.extend_from_slice(b"\"\"");
        }
        out.push(b'\n');
    }
    out
}

/// A text field as the csv crate writes it (`QuoteStyle::Necessary`).
fn csv_text(out: &mut Vec<u8>, s: &[u8]) {
    if !s.iter().any(|&b| matches!(b, b',' | b'"' | b'\r' | b'\n')) {
        out.extend_from_slice(s);
        return;
    }
    out.push(b'"');
    for &b in s {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// JSON has no NaN or infinities, and arrow-json writes them as `null`,
/// which loses them (CSV and Parquet keep them). This writes them as the
/// strings `"NaN"`, `"Infinity"` and `"-Infinity"` (what pandas and
/// Python's `float()` read back); columns without such values keep
/// arrow-json's own encoder.
#[derive(Debug)]
struct NonFiniteAsText;

/// arrow-json's options without our factory, for the wrapped encoder.
static PLAIN_JSON: std::sync::LazyLock<arrow_json::writer::EncoderOptions> =
    std::sync::LazyLock::new(arrow_json::writer::EncoderOptions::default);

impl arrow_json::writer::EncoderFactory for NonFiniteAsText {
    fn make_default_encoder<'a>(
        &self,
        field: &'a arrow_schema::FieldRef,
        array: &'a dyn Array,
        _options: &'a arrow_json::writer::EncoderOptions,
    ) -> Result<Option<arrow_json::writer::NullableEncoder<'a>>, arrow_schema::ArrowError> {
        use arrow_array::cast::AsArray;
        use arrow_array::types::{Float32Type, Float64Type};
        let value: Box<dyn Fn(usize) -> f64 + 'a> = match array.data_type() {
            DataType::Float64 => {
                let v = array.as_primitive::<Float64Type>().values();
                if v.iter().all(|x| x.is_finite()) {
                    return Ok(None);
                }
                Box::new(move |i| v[i])
            }
            DataType::Float32 => {
                let v = array.as_primitive::<Float32Type>().values();
                if v.iter().all(|x| x.is_finite()) {
                    return Ok(None);
                }
                Box::new(move |i| v[i] as f64)
            }
            _ => return Ok(None),
        };
        let inner = arrow_json::writer::make_encoder(field, array, &PLAIN_JSON)?;
        Ok(Some(arrow_json::writer::NullableEncoder::new(Box::new(NonFinite { value, inner }), array.nulls().cloned())))
    }
}

struct NonFinite<'a> {
    value: Box<dyn Fn(usize) -> f64 + 'a>,
    inner: arrow_json::writer::NullableEncoder<'a>,
}

impl arrow_json::writer::Encoder for NonFinite<'_> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        let v = (self.value)(idx);
        if v.is_nan() {
            out.extend_from_slice(b"\"NaN\"");
        } else if v == f64::INFINITY {
            out.extend_from_slice(b"\"Infinity\"");
        } else if v == f64::NEG_INFINITY {
            out.extend_from_slice(b"\"-Infinity\"");
        } else {
            arrow_json::writer::Encoder::encode(&mut self.inner, idx, out);
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

/// Arrow record batches (of one schema) as one host table: integers
/// become `s64`, floats `f32`/`f64`, booleans `bool` and everything else
/// text (Arrow's display form), so any table a reader produces can cross
/// into a guest. The batches are consumed one by one ([`TableBuilder`]):
/// each batch's Arrow buffers are freed as soon as it is converted.
pub fn into_table(schema: &Schema, batches: Vec<RecordBatch>) -> Result<Table, String> {
    let num_rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut table = TableBuilder::new(schema, num_rows);
    for b in batches {
        table.push(b)?;
    }
    Ok(table.finish())
}

/// A host table built from Arrow record batches (of one schema) one at a
/// time, so that a reader can convert each batch as soon as it has parsed
/// it and the Arrow form of a whole mini-batch is never in memory next to
/// its host form (for a 50,000-row mini-batch of 31 columns that is 12 MB
/// per instance at the peak). Conversions as in [`into_table`].
#[derive(Debug)]
pub struct TableBuilder {
    fields: Vec<arrow_schema::FieldRef>,
    columns: Vec<(ColumnData, Option<Vec<bool>>)>,
    num_rows: usize,
}

impl TableBuilder {
    /// An empty table of `schema`'s columns, with room for `rows` rows.
    pub fn new(schema: &Schema, rows: usize) -> TableBuilder {
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                let data = match f.data_type() {
                    DataType::Float64 => ColumnData::F64(Vec::with_capacity(rows)),
                    DataType::Float32 => ColumnData::F32(Vec::with_capacity(rows)),
                    t if t.is_integer() => ColumnData::S64(Vec::with_capacity(rows)),
                    DataType::Boolean => ColumnData::Bool(Vec::with_capacity(rows)),
                    _ => ColumnData::String(Vec::with_capacity(rows)),
                };
                (data, None)
            })
            .collect();
        TableBuilder { fields: schema.fields().iter().cloned().collect(), columns, num_rows: 0 }
    }

    /// Rows so far.
    pub fn num_rows(&self) -> usize {
        self.num_rows
    }

    /// Rows the table has room for without growing.
    pub fn capacity(&self) -> usize {
        self.columns.iter().map(|(d, _)| capacity(d)).min().unwrap_or(usize::MAX)
    }

    /// Makes room for `rows` rows in all (no more than asked: a mini-batch's
    /// table is its largest allocation, and growing it by doubling would
    /// leave up to half of it unused, and copy it at each step).
    pub fn reserve_total(&mut self, rows: usize) {
        let more = rows.saturating_sub(self.num_rows);
        for (data, valid) in &mut self.columns {
            match data {
                ColumnData::F32(v) => v.reserve_exact(more),
                ColumnData::F64(v) => v.reserve_exact(more),
                ColumnData::S64(v) => v.reserve_exact(more),
                ColumnData::String(v) => v.reserve_exact(more),
                ColumnData::Bool(v) => v.reserve_exact(more),
            }
            if let Some(v) = valid {
                v.reserve_exact(more);
            }
        }
    }

    /// Appends a batch's rows, converting (and then freeing) it column by
    /// column. On an error the table is left with a partial row set: drop
    /// it, or [`TableBuilder::truncate`] it to the rows before.
    pub fn push(&mut self, batch: RecordBatch) -> Result<(), String> {
        use arrow_array::cast::AsArray;
        use arrow_array::types::{Float32Type, Float64Type, Int64Type};
        if batch.num_columns() != self.fields.len() {
            return Err(format!("a batch has {} columns, the table {}", batch.num_columns(), self.fields.len()));
        }
        let before = self.num_rows;
        let n = batch.num_rows();
        let arrays: Vec<ArrayRef> = batch.columns().to_vec();
        drop(batch);
        for ((field, (data, valid)), a) in self.fields.iter().zip(&mut self.columns).zip(arrays) {
            if a.logical_null_count() > 0 || valid.is_some() {
                let cap = capacity(data).max(before + n);
                let v = valid.get_or_insert_with(|| {
                    let mut v = Vec::with_capacity(cap);
                    v.resize(before, true);
                    v
                });
                match a.logical_nulls() {
                    Some(nulls) => v.extend(nulls.iter()),
                    None => v.extend(std::iter::repeat_n(true, a.len())),
                }
            }
            let err = |e: arrow_schema::ArrowError| format!("column `{}`: {e}", field.name());
            match (field.data_type(), data) {
                (DataType::Float64, ColumnData::F64(v)) => {
                    v.extend_from_slice(a.as_primitive::<Float64Type>().values())
                }
                (DataType::Float32, ColumnData::F32(v)) => {
                    v.extend_from_slice(a.as_primitive::<Float32Type>().values())
                }
                (DataType::Int64, ColumnData::S64(v)) => v.extend_from_slice(a.as_primitive::<Int64Type>().values()),
                (t, ColumnData::S64(v)) if t.is_integer() => {
                    let c = arrow_cast::cast(&a, &DataType::Int64).map_err(err)?;
                    v.extend_from_slice(c.as_primitive::<Int64Type>().values());
                }
                (DataType::Boolean, ColumnData::Bool(v)) => {
                    v.extend(a.as_boolean().iter().map(|b| b.unwrap_or(false)));
                }
                (DataType::Utf8, ColumnData::String(v)) => {
                    v.extend(a.as_string::<i32>().iter().map(|s| s.unwrap_or("").to_string()));
                }
                (_, ColumnData::String(v)) => {
                    let fmt = arrow_cast::display::FormatOptions::default();
                    let f = arrow_cast::display::ArrayFormatter::try_new(a.as_ref(), &fmt).map_err(err)?;
                    v.extend((0..a.len()).map(|i| f.value(i).to_string()));
                }
                (t, _) => return Err(format!("column `{}`: a batch column of type {t} does not fit", field.name())),
            }
        }
        self.num_rows += n;
        Ok(())
    }

    /// Drops the rows from `rows` on (after a failed [`TableBuilder::push`],
    /// back to the rows before it: a push that fails midway has extended
    /// only some columns).
    pub fn truncate(&mut self, rows: usize) {
        for (data, valid) in &mut self.columns {
            match data {
                ColumnData::F32(v) => v.truncate(rows),
                ColumnData::F64(v) => v.truncate(rows),
                ColumnData::S64(v) => v.truncate(rows),
                ColumnData::String(v) => v.truncate(rows),
                ColumnData::Bool(v) => v.truncate(rows),
            }
            if let Some(v) = valid {
                v.truncate(rows);
            }
        }
        self.num_rows = self.num_rows.min(rows);
    }

    /// The table.
    pub fn finish(self) -> Table {
        let columns = self
            .fields
            .iter()
            .zip(self.columns)
            .map(|(f, (data, valid))| sluice_job::Column { name: f.name().clone(), data, valid })
            .collect();
        Table { num_rows: self.num_rows, columns }
    }
}

/// The values a column has room for.
fn capacity(d: &ColumnData) -> usize {
    match d {
        ColumnData::F32(v) => v.capacity(),
        ColumnData::F64(v) => v.capacity(),
        ColumnData::S64(v) => v.capacity(),
        ColumnData::String(v) => v.capacity(),
        ColumnData::Bool(v) => v.capacity(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct CSV encoder writes what arrow-csv's writer writes.
    #[test]
    fn csv_rows_are_arrow_csvs() {
        let arrow = |t: &Table| {
            let batch = to_record_batch(t).unwrap();
            let mut out = Vec::new();
            let mut w = arrow_csv::WriterBuilder::new().with_header(false).build(&mut out);
            w.write(&batch).unwrap();
            drop(w);
            out
        };
        let texts = ["plain", "", "a,b", "say \"hi\"", "two\nlines", "cr\rhere", " lead", "#hash", "é ü", "\"", ","];
        let n = texts.len();
        let col = |name: &str, data: ColumnData, valid: Option<Vec<bool>>| sluice_job::Column {
            name: name.into(),
            data,
            valid,
        };
        let f64s = vec![
            0.5,
            -0.0,
            1.0,
            1e20,
            1e-7,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            123456.789,
            f64::MAX,
            f64::MIN_POSITIVE,
        ];
        let f32s: Vec<f32> = f64s.iter().map(|&x| x as f32).collect();
        let t = Table {
            num_rows: n,
            columns: vec![
                col("id", ColumnData::S64((0..n as i64).map(|i| i * 1_000_000_007 - 5_000_000_000).collect()), None),
                col("s", ColumnData::String(texts.iter().map(|s| s.to_string()).collect()), None),
                col("x", ColumnData::F64(f64s), Some((0..n).map(|i| i % 4 != 3).collect())),
                col("y", ColumnData::F32(f32s), None),
                col(
                    "b",
                    ColumnData::Bool((0..n).map(|i| i % 3 == 0).collect()),
                    Some((0..n).map(|i| i != 1).collect()),
                ),
                col("m", ColumnData::S64(vec![i64::MIN, i64::MAX, 0, -1, 1, 9, 10, 99, 100, -100, 7]), None),
            ],
        };
        assert_eq!(String::from_utf8(csv_rows(&t)).unwrap(), String::from_utf8(arrow(&t)).unwrap());
        // One column: an empty (or null) field is quoted, a row of one
        // empty field must not read back as no field.
        for valid in [None, Some((0..n).map(|i| i % 2 == 0).collect())] {
            let one = Table { num_rows: n, columns: vec![col("s", t.columns[1].data.clone(), valid)] };
            assert_eq!(String::from_utf8(csv_rows(&one)).unwrap(), String::from_utf8(arrow(&one)).unwrap());
        }
        let empty = Table {
            num_rows: 0,
            columns: t
                .columns
                .clone()
                .into_iter()
                .map(|mut c| {
                    c.data = empty_like(&c.data);
                    c.valid = None;
                    c
                })
                .collect(),
        };
        assert_eq!(csv_rows(&empty), arrow(&empty));
    }

    #[test]
    fn a_failed_push_truncates_back() {
        let ints = Schema::new(vec![Field::new("a", DataType::Int64, true), Field::new("b", DataType::Int64, true)]);
        let batch = |a: Vec<Option<i64>>, b: Vec<i64>| {
            RecordBatch::try_new(
                Arc::new(ints.clone()),
                vec![Arc::new(Int64Array::from(a)), Arc::new(Int64Array::from(b))],
            )
            .unwrap()
        };
        let mut t = TableBuilder::new(&ints, 0);
        t.push(batch(vec![Some(1), Some(2)], vec![1, 2])).unwrap();
        // `b` now wants floats but holds integers: `a` converts (a null
        // adds a validity mask), then `b` fails.
        t.fields[1] = Arc::new(Field::new("b", DataType::Float64, true));
        let e = t.push(batch(vec![Some(3), None], vec![3, 4])).unwrap_err();
        assert!(e.contains("column `b`"), "{e}");
        t.truncate(2);
        assert_eq!(t.num_rows(), 2);
        assert!(t.columns.iter().all(|(d, v)| d.len() == 2 && v.as_ref().is_none_or(|v| v.len() == 2)));
        t.fields[1] = Arc::new(Field::new("b", DataType::Int64, true));
        t.push(batch(vec![None], vec![5])).unwrap();
        let table = t.finish();
        assert_eq!(table.num_rows, 3);
        assert_eq!(table.columns[0].data, ColumnData::S64(vec![1, 2, 0]));
        assert_eq!(table.columns[0].valid, Some(vec![true, true, false]));
        assert_eq!(table.columns[1].data, ColumnData::S64(vec![1, 2, 5]));
    }

    #[test]
    fn json_lines_keep_nan_and_infinities() {
        let t = Table {
            num_rows: 4,
            columns: vec![
                sluice_job::Column {
                    name: "x".into(),
                    data: ColumnData::F64(vec![0.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY]),
                    valid: None,
                },
                sluice_job::Column {
                    name: "y".into(),
                    data: ColumnData::F32(vec![f32::NAN, 1.0, 2.0, 3.0]),
                    valid: Some(vec![true, true, false, true]),
                },
                sluice_job::Column { name: "z".into(), data: ColumnData::F64(vec![1.0; 4]), valid: None },
            ],
        };
        let out = String::from_utf8(OutputFormat::JsonLines.encode(&t).unwrap()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                r#"{"x":0.5,"y":"NaN","z":1.0}"#,
                r#"{"x":"NaN","y":1.0,"z":1.0}"#,
                r#"{"x":"Infinity","z":1.0}"#,
                r#"{"x":"-Infinity","y":3.0,"z":1.0}"#
            ]
        );
    }
}
