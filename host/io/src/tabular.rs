//! Tabular input (`type: mltable`): CSV, Parquet and JSON Lines files read
//! by Arrow's readers in the host, cut into mini-batches of rows.
//!
//! Planning fixes one schema for the job (the first readable file's, with
//! dates and untyped columns read as text) and, for row- or byte-sized
//! mini-batches, scans each file once for its row boundaries so a worker
//! can seek straight to its rows: a mini-batch may span files and never
//! cuts a row. `"N files"` mini-batches need no scan. `partition_keys` reads
//! the key columns of every file and makes one mini-batch per key tuple.
//!
//! Whatever cannot be read (a file whose header differs from the job's, a
//! cell that does not parse as its column's type, a file over
//! `limits.max_file_mb`) fails only the rows it holds, as item errors.
//!
//! A folder holding an `MLTable` file is planned from it
//! ([`crate::mltable`]): its paths pick the files, its read transformation
//! fixes the format, delimiter, header mode and encoding, and its column
//! transformations the job's columns ([`ReadOptions`], applied to each
//! parsed batch by `TabularInput::shape`); `take` stops planning at that
//! many rows.
//!
//! Every byte comes through the job's [`InputSource`] as a byte range
//! (Parquet through [`ItemChunks`], its `ChunkReader`): nothing here opens
//! a file, so object storage needs no change to these readers.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use sluice_job::plan::{RowSpan, Segment};
use sluice_job::size::MiniBatchSize;
use sluice_job::{InputItem, Plan};

use crate::inputs::InputSource;
use crate::mltable::{ColumnKind, HeaderMode, MLTABLE_FILE, MlTable, MlTableError, ReadOptions};

/// The formats of tabular files, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TableFormat {
    /// Comma-separated values with a header row (`.csv`).
    Csv,
    /// Apache Parquet (`.parquet`, `.pq`).
    Parquet,
    /// One JSON object per line (`.jsonl`, `.ndjson`).
    JsonLines,
}

impl TableFormat {
    /// The format of a file by its extension (any case); `None` for any other extension, which no tabular
    /// reader takes.
    pub fn from_name(name: &str) -> Option<TableFormat> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(TableFormat::Csv),
            "parquet" | "pq" => Some(TableFormat::Parquet),
            "jsonl" | "ndjson" => Some(TableFormat::JsonLines),
            _ => None,
        }
    }
}

/// Why a tabular job cannot be planned; it fails before any mini-batch runs.
#[derive(Debug, thiserror::Error)]
pub enum TabularError {
    /// No input file gave a schema with columns; the value says why, for the first few files tried.
    #[error("the tabular input holds no readable table (CSV, Parquet or JSON Lines file): {0}")]
    NoSchema(String),
    /// The values of the `partition_keys` columns could not be formatted to group the rows by.
    #[error("partition_keys: the values of [{keys}] cannot be compared: {message}")]
    KeyValues {
        /// The key columns, comma-separated.
        keys: String,
        /// Arrow's error.
        message: String,
    },
    /// A `partition_keys` column is not in the job's schema.
    #[error("partition_keys: column `{key}` is not in the input's columns ({columns})")]
    UnknownKey {
        /// The key asked for.
        key: String,
        /// The schema's columns, comma-separated.
        columns: String,
    },
    /// The input folder's `MLTable` file cannot be used.
    #[error(transparent)]
    MlTable(Box<MlTableError>),
}

impl From<MlTableError> for TabularError {
    fn from(e: MlTableError) -> TabularError {
        TabularError::MlTable(Box::new(e))
    }
}

/// What the workers need to read a tabular plan.
#[derive(Debug, Clone)]
pub struct TabularInput {
    /// The job's columns: every mini-batch has exactly these.
    pub schema: SchemaRef,
    /// Where the schema came from, for messages.
    pub schema_source: String,
    /// Cap on one file read whole, and on one mini-batch segment's bytes
    /// (`limits.max_file_mb`).
    pub max_file_bytes: u64,
    /// Where the files' bytes come from.
    pub source: Arc<dyn InputSource>,
    /// How the files are read: the defaults, or what the input's `MLTable` file says.
    pub read: Arc<ReadOptions>,
}

impl TabularInput {
    /// A reader of `item`'s bytes from `offset` to its end.
    fn read_from(&self, item: &InputItem, offset: u64) -> Result<Box<dyn Read + Send>, String> {
        self.open(item, offset..u64::MAX)
    }

    /// A reader of `item`'s bytes in `range` (a leading byte order mark
    /// skipped at the file's start, with `encoding: utf8bom`).
    fn open(&self, item: &InputItem, range: std::ops::Range<u64>) -> Result<Box<dyn Read + Send>, String> {
        open_range(&self.source, &self.read, item, range)
    }

    /// The format `item` is read as: the MLTable's read transformation, or its extension.
    pub fn format_of(&self, name: &str) -> Option<TableFormat> {
        self.read.format.or_else(|| TableFormat::from_name(name))
    }

    /// The columns the readers parse: the files' columns when an MLTable
    /// reshapes them, else the job's.
    fn read_schema(&self) -> SchemaRef {
        if self.read.shaped() {
            Arc::new(Schema::new(
                self.read.file_columns.iter().map(|(n, k)| Field::new(n, k.data_type(), true)).collect::<Vec<_>>(),
            ))
        } else {
            self.schema.clone()
        }
    }

    /// Whether a newline inside quotes stays inside a CSV record.
    fn quotes(&self, format: TableFormat) -> bool {
        format == TableFormat::Csv && !self.read.line_records
    }

    /// A parsed batch (in [`TabularInput::read_schema`]) in the job's
    /// columns: with an MLTable, empty text kept as text
    /// (`empty_as_string`), the path column added, columns converted and
    /// kept or dropped, a column the file lacks as nulls. Without one, the
    /// batch as it is.
    fn shape(&self, batch: RecordBatch, item: &InputItem) -> Result<RecordBatch, String> {
        let o = &*self.read;
        if !o.shaped() {
            return Ok(batch);
        }
        let n = batch.num_rows();
        let mut cols = Vec::with_capacity(self.schema.fields().len());
        for field in self.schema.fields() {
            let name = field.name().as_str();
            let col: ArrayRef = if o.path_column.as_deref() == Some(name) {
                Arc::new(arrow_array::StringArray::from_iter_values(std::iter::repeat_n(item.name.as_str(), n)))
            } else if let Some(c) = batch.column_by_name(name) {
                if o.empty_as_string && c.data_type() == &DataType::Utf8 && c.null_count() > 0 {
                    let s = c.as_any().downcast_ref::<arrow_array::StringArray>().expect("a Utf8 column");
                    Arc::new(s.iter().map(|v| Some(v.unwrap_or(""))).collect::<arrow_array::StringArray>())
                } else {
                    c.clone()
                }
            } else {
                arrow_array::new_null_array(&DataType::Utf8, n)
            };
            let col = match o.conversions.iter().find(|(c, _)| c == name) {
                Some((_, conv)) => crate::mltable::convert(&col, conv, name)?,
                None => col,
            };
            let col = if col.data_type() == field.data_type() {
                col
            } else {
                let opts = arrow_cast::CastOptions { safe: false, ..Default::default() };
                arrow_cast::cast_with_options(&col, field.data_type(), &opts)
                    .map_err(|e| format!("column `{name}`: {e}"))?
            };
            cols.push(col);
        }
        let opts = arrow_array::RecordBatchOptions::new().with_row_count(Some(n));
        RecordBatch::try_new_with_options(self.schema.clone(), cols, &opts).map_err(|e| e.to_string())
    }

    /// How a CSV file is laid out: the columns to parse it with and
    /// whether its first line is a header (checked against the job's
    /// columns when there is no MLTable).
    fn csv_layout(&self, item: &InputItem) -> Result<(SchemaRef, bool), String> {
        let schema = self.read_schema();
        let o = &*self.read;
        match o.header {
            HeaderMode::Checked => {
                check_header(&mut self.open(item, 0..HEADER_MAX)?, &schema, o.delimiter.unwrap_or(b','))?;
                Ok((schema, true))
            }
            HeaderMode::NoHeader => Ok((schema, false)),
            HeaderMode::FromFirstFile => Ok((schema, o.first_file.as_deref() == Some(item.name.as_str()))),
            HeaderMode::SameHeaders => Ok((schema, true)),
            HeaderMode::DifferentHeaders => {
                let names = header_names(&mut self.open(item, 0..HEADER_MAX)?, o.delimiter.unwrap_or(b','))?;
                let fields: Vec<Field> = names
                    .iter()
                    .map(|n| {
                        let kind = o.file_columns.iter().find(|(c, _)| c == n).map_or(ColumnKind::Utf8, |(_, k)| *k);
                        Field::new(n, kind.data_type(), true)
                    })
                    .collect();
                Ok((Arc::new(Schema::new(fields)), true))
            }
        }
    }

    /// Whether a file's first line is a header, not a row (planning skips it).
    fn has_header(&self, item: &InputItem) -> bool {
        match self.read.header {
            HeaderMode::NoHeader => false,
            HeaderMode::FromFirstFile => self.read.first_file.as_deref() == Some(item.name.as_str()),
            _ => true,
        }
    }

    /// `item` as Parquet's reader reads it.
    fn parquet(&self, item: &InputItem) -> Result<ParquetBuilder, String> {
        parquet_reader(&self.source, item)
    }
}

type ParquetBuilder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder<ItemChunks>;

/// A reader of `item`'s bytes in `range`, through `source`; a UTF-8 byte
/// order mark at the file's start is skipped when `read.strip_bom`.
fn open_range(
    source: &Arc<dyn InputSource>,
    read: &ReadOptions,
    item: &InputItem,
    range: std::ops::Range<u64>,
) -> Result<Box<dyn Read + Send>, String> {
    let r = source.read_range(item, range.clone())?;
    Ok(if read.strip_bom && range.start == 0 { Box::new(SkipBom { inner: r, head: None }) } else { r })
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A reader that drops a leading UTF-8 byte order mark.
struct SkipBom<R> {
    inner: R,
    /// The first bytes, once looked at (what is left of them to hand out).
    head: Option<(Vec<u8>, usize)>,
}

impl<R: Read> Read for SkipBom<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.head.is_none() {
            let mut first = Vec::with_capacity(3);
            while first.len() < 3 {
                let mut b = [0u8; 3];
                match self.inner.read(&mut b[..3 - first.len()]) {
                    Ok(0) => break,
                    Ok(n) => first.extend_from_slice(&b[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
            if first == BOM {
                first.clear();
            }
            self.head = Some((first, 0));
        }
        if let Some((head, at)) = &mut self.head
            && *at < head.len()
        {
            let n = (head.len() - *at).min(buf.len());
            buf[..n].copy_from_slice(&head[*at..*at + n]);
            *at += n;
            return Ok(n);
        }
        self.inner.read(buf)
    }
}

/// `item` of `source` as Parquet's reader reads it: its footer read, its
/// row groups not yet.
fn parquet_reader(source: &Arc<dyn InputSource>, item: &InputItem) -> Result<ParquetBuilder, String> {
    let chunks = ItemChunks { source: source.clone(), item: item.clone() };
    ParquetBuilder::try_new(chunks).map_err(|e| e.to_string())
}

/// An item as Parquet's reader sees it: its footer, then the column chunks
/// it needs, each one ranged read of the [`InputSource`]. Its length is the
/// listed size, which [`InputSource::check`] has confirmed.
#[derive(Debug)]
pub struct ItemChunks {
    source: Arc<dyn InputSource>,
    item: InputItem,
}

impl parquet::file::reader::Length for ItemChunks {
    fn len(&self) -> u64 {
        self.item.size
    }
}

impl parquet::file::reader::ChunkReader for ItemChunks {
    type T = Box<dyn Read + Send>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        self.source.read_range(&self.item, start..u64::MAX).map_err(parquet::errors::ParquetError::General)
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        use parquet::errors::ParquetError;
        // Parquet asks for lengths its footer names: bound them by the
        // file, so a corrupt footer cannot make the host allocate more.
        if start.saturating_add(length as u64) > self.item.size {
            return Err(ParquetError::EOF(format!(
                "{} bytes at offset {start} run past the file's end ({} bytes)",
                length, self.item.size
            )));
        }
        let mut buf = Vec::with_capacity(length);
        self.source
            .read_range(&self.item, start..start + length as u64)
            .map_err(ParquetError::General)?
            .read_to_end(&mut buf)
            .map_err(|e| ParquetError::External(Box::new(e)))?;
        if buf.len() != length {
            return Err(ParquetError::EOF(format!(
                "expected {length} bytes at offset {start}, got {} (did the file change?)",
                buf.len()
            )));
        }
        Ok(buf.into())
    }
}

/// Rows read for one mini-batch, with where each came from, and the rows
/// that could not be read.
#[derive(Debug)]
pub struct TabularRows {
    /// The rows read, in order, already in the host's form: each file's
    /// Arrow batches are converted as soon as it is parsed, so the Arrow
    /// form of only one file is in memory next to the table.
    pub table: sluice_job::Table,
    /// Where each row of `table` came from.
    pub origins: sluice_job::RowOrigins,
    /// Rows that could not be read: one entry per failed segment (or per
    /// failed row of a segment read row by row).
    pub failed: Vec<FailedRows>,
}

/// A segment that could not be read.
#[derive(Debug, Clone)]
pub struct FailedRows {
    /// The file the rows were in (its name relative to the input).
    pub source: String,
    /// The rows lost (row numbers), when known; `None` for a whole file
    /// whose rows were never counted (it counts as one failed item).
    pub rows: Option<Vec<u64>>,
    /// Why they could not be read.
    pub message: String,
}

/// The job's columns as bytes (an Arrow IPC stream holding only the
/// schema), for a node that reads the job's input without planning it.
pub fn schema_to_ipc(schema: &Schema) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut buf, schema).map_err(|e| e.to_string())?;
    w.finish().map_err(|e| e.to_string())?;
    drop(w);
    Ok(buf)
}

/// The columns [`schema_to_ipc`] wrote.
pub fn schema_from_ipc(bytes: &[u8]) -> Result<SchemaRef, String> {
    arrow_ipc::reader::StreamReader::try_new(bytes, None)
        .map(|r| r.schema())
        .map_err(|e| format!("the job's tabular schema does not parse: {e}"))
}

/// Plans a tabular job: fixes the schema and cuts `items` into mini-batches.
///
/// A folder whose listing holds an `MLTable` file at its root is planned
/// from it (see [`crate::mltable`]): it is read once, here, through
/// `source` (at most [`crate::mltable::MAX_MLTABLE_BYTES`]); its `paths`
/// pick the data files among `items` and its transformations fix how they
/// are read and which columns the job has ([`TabularInput::read`]). The
/// same listing and MLTable file give the same plan.
pub fn plan_tabular(
    source: Arc<dyn InputSource>,
    items: Vec<InputItem>,
    size: MiniBatchSize,
    partition_keys: &[String],
    max_file_bytes: u64,
) -> Result<(Plan, TabularInput), TabularError> {
    let whole = !partition_keys.is_empty() || matches!(size, MiniBatchSize::Files(_));
    let (items, mltable) = match items.iter().position(|i| i.name == MLTABLE_FILE) {
        Some(at) => {
            let file = &items[at];
            let bytes = crate::inputs::read_whole(&*source, file, crate::mltable::MAX_MLTABLE_BYTES, |size, cap| {
                format!("{size} bytes, over the cap of {cap} bytes on an MLTable file")
            })
            .map_err(|message| MlTableError::Read { file: file.name.clone(), message })?;
            let table = MlTable::parse(&file.name, &bytes)?;
            let keep = table.select(&items)?;
            let mut items: Vec<Option<InputItem>> = items.into_iter().map(Some).collect();
            let items: Vec<InputItem> = keep.into_iter().filter_map(|i| items[i].take()).collect();
            (items, Some(table))
        }
        None => (items, None),
    };
    let input = match &mltable {
        Some(table) => mltable_input(table, source, &items, max_file_bytes, whole)?,
        None => {
            let read = Arc::new(ReadOptions::default());
            let (schema, schema_source) = job_schema(&source, &read, &items, max_file_bytes, whole)?;
            TabularInput { schema, schema_source, max_file_bytes, source, read }
        }
    };
    let take = input.read.take;
    let plan = if !partition_keys.is_empty() {
        plan_partitions(items, partition_keys, &input, take)?
    } else {
        match size {
            MiniBatchSize::Files(n) => {
                let n = n.max(1) as usize;
                match take {
                    Some(limit) => plan_files_taken(items, n, limit, &input),
                    None => {
                        let batches = (0..items.len())
                            .collect::<Vec<_>>()
                            .chunks(n)
                            .map(|c| c.iter().map(|&file| Segment { file, rows: RowSpan::All }).collect())
                            .collect();
                        Plan::from_segments(items, batches)
                    }
                }
            }
            MiniBatchSize::Count(n) | MiniBatchSize::Rows(n) => plan_scanned(items, Cut::Rows(n.max(1)), &input, take),
            MiniBatchSize::Bytes(n) => plan_scanned(items, Cut::Bytes(n.max(1)), &input, take),
        }
    };
    Ok((plan, input))
}

/// The tabular input an MLTable gives over its data files `items`: the
/// columns the files hold (the first readable file's; with
/// `all_files_different_headers` the union of every file's header, a
/// column first seen after the first file read as text), shaped by the
/// transformations into the job's columns.
fn mltable_input(
    table: &MlTable,
    source: Arc<dyn InputSource>,
    items: &[InputItem],
    max_file_bytes: u64,
    whole: bool,
) -> Result<TabularInput, TabularError> {
    let first_file = items.first().map(|i| i.name.clone());
    // How the files are laid out, before any column is known.
    let read = Arc::new(ReadOptions { path_column: None, ..table.layout(first_file.as_deref()) });
    let (schema, schema_source) = job_schema(&source, &read, items, max_file_bytes, whole)?;
    let mut file_columns: Vec<(String, ColumnKind)> = schema
        .fields()
        .iter()
        .map(|f| {
            let text = table.read.as_ref().is_some_and(|r| !r.infer_types);
            (f.name().clone(), if text { ColumnKind::Utf8 } else { ColumnKind::of(f.data_type()) })
        })
        .collect();
    if read.header == HeaderMode::DifferentHeaders {
        for item in items {
            if item.name == schema_source || source.check(item).is_err() {
                continue;
            }
            let Ok(mut r) = open_range(&source, &read, item, 0..HEADER_MAX) else { continue };
            let Ok(names) = header_names(&mut r, read.delimiter.unwrap_or(b',')) else { continue };
            for n in names {
                if !file_columns.iter().any(|(c, _)| *c == n) {
                    if file_columns.len() >= crate::mltable::MAX_COLUMNS {
                        return Err(MlTableError::Invalid {
                            file: table.file.clone(),
                            key: "paths".into(),
                            problem: format!(
                                "the files' headers name more than {} columns",
                                crate::mltable::MAX_COLUMNS
                            ),
                        }
                        .into());
                    }
                    file_columns.push((n, ColumnKind::Utf8));
                }
            }
        }
    }
    let shape = table.shape(&file_columns, first_file.as_deref())?;
    let schema = Arc::new(Schema::new(
        shape.columns.iter().map(|(n, k)| Field::new(n, k.data_type(), true)).collect::<Vec<_>>(),
    ));
    Ok(TabularInput {
        schema,
        schema_source: format!("{} (from {})", schema_source, table.file),
        max_file_bytes,
        source,
        read: Arc::new(shape.options),
    })
}

/// The first readable table's columns, normalised: what the host hands
/// the guest must be one of the WIT column types, so dates, times and
/// all-empty columns are read as text.
fn job_schema(
    source: &Arc<dyn InputSource>,
    read: &ReadOptions,
    items: &[InputItem],
    max_file_bytes: u64,
    whole: bool,
) -> Result<(SchemaRef, String), TabularError> {
    let mut why = Vec::new();
    for item in items {
        if why.len() >= 5 {
            break;
        }
        let Some(format) = read.format.or_else(|| TableFormat::from_name(&item.name)) else { continue };
        if let Some(r) = &item.refused {
            why.push(format!("{}: {r}", item.name));
            continue;
        }
        if whole && item.size > max_file_bytes {
            why.push(format!("{}: {}", item.name, over_cap(item.size, max_file_bytes)));
            continue;
        }
        match file_schema(source, read, item, format) {
            Ok(s) if !s.fields().is_empty() => {
                let fields: Vec<Field> =
                    s.fields().iter().map(|f| Field::new(f.name(), normalise_type(f.data_type()), true)).collect();
                return Ok((Arc::new(Schema::new(fields)), item.name.clone()));
            }
            Ok(_) => why.push(format!("{}: no columns", item.name)),
            Err(e) => why.push(format!("{}: {e}", item.name)),
        }
    }
    Err(TabularError::NoSchema(if why.is_empty() {
        format!("none of the {} input files is a .csv, .parquet or .jsonl file", items.len())
    } else {
        why.join("; ")
    }))
}

fn normalise_type(t: &DataType) -> DataType {
    match t {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => DataType::Int64,
        DataType::Float16 | DataType::Float32 => DataType::Float32,
        DataType::Float64 => DataType::Float64,
        DataType::Boolean => DataType::Boolean,
        _ => DataType::Utf8,
    }
}

/// A file's own columns (CSV: header names with types inferred from the
/// first 1,000 rows; without a header, `Column1`, `Column2`, ... as Azure
/// names them).
fn file_schema(
    source: &Arc<dyn InputSource>,
    read: &ReadOptions,
    item: &InputItem,
    format: TableFormat,
) -> Result<Schema, String> {
    source.check(item)?;
    match format {
        TableFormat::Csv => {
            let header = match read.header {
                HeaderMode::NoHeader => false,
                HeaderMode::FromFirstFile => read.first_file.as_deref() == Some(item.name.as_str()),
                _ => true,
            };
            // Infer from the header and the first 1,000 rows that are text:
            // one bad row must not decide the job's columns (it fails on
            // its own when read).
            let mut sample = Vec::new();
            open_range(source, read, item, 0..16 << 20)?
                .read_to_end(&mut sample)
                .map_err(|e| format!("cannot read: {e}"))?;
            let mut clean = Vec::with_capacity(sample.len());
            for (off, len) in line_spans(&sample, !read.line_records).into_iter().take(1001) {
                let line = &sample[off as usize..(off + len) as usize];
                if std::str::from_utf8(line).is_ok() {
                    clean.extend_from_slice(line);
                    if !line.ends_with(b"\n") {
                        clean.push(b'\n');
                    }
                }
            }
            let schema = arrow_csv::reader::Format::default()
                .with_header(header)
                .with_delimiter(read.delimiter.unwrap_or(b','))
                .with_truncated_rows(true)
                .infer_schema(clean.as_slice(), Some(1000))
                .map(|(s, _)| s)
                .map_err(|e| e.to_string())?;
            if header {
                return Ok(schema);
            }
            let fields: Vec<Field> = schema
                .fields()
                .iter()
                .enumerate()
                .map(|(i, f)| Field::new(format!("Column{}", i + 1), f.data_type().clone(), true))
                .collect();
            Ok(Schema::new(fields))
        }
        TableFormat::JsonLines => arrow_json::reader::infer_json_schema(
            BufReader::new(open_range(source, read, item, 0..u64::MAX)?),
            Some(1000),
        )
        .map(|(s, _)| s)
        .map_err(|e| e.to_string()),
        TableFormat::Parquet => parquet_reader(source, item).map(|b| b.schema().as_ref().clone()),
    }
}

#[derive(Debug, Clone, Copy)]
enum Cut {
    Rows(u64),
    Bytes(u64),
}

/// Row- or byte-sized mini-batches across files: every file is scanned once
/// (in order, streaming) for its row boundaries, keeping state per
/// mini-batch only, never per row. A segment's bytes stay within
/// `limits.max_file_mb` (a mini-batch is cut early rather than exceed it;
/// rows are never cut). A file that cannot be scanned gets a mini-batch of
/// its own that fails as one item. With `take` (an MLTable's), planning
/// stops at that many rows: a file is scanned only up to them, and the
/// files after them are left out of the plan.
fn plan_scanned(mut items: Vec<InputItem>, cut: Cut, input: &TabularInput, take: Option<u64>) -> Plan {
    let mut cutter = Cutter::new(cut, input.max_file_bytes);
    let mut left = take;
    let mut used = items.len();
    for (file, item) in items.iter().enumerate() {
        if left == Some(0) {
            used = file;
            break;
        }
        let before = left;
        cutter.start_file(file);
        let scanned = scan_file(item, input, &mut |offset, len, count| {
            let count = match &mut left {
                Some(l) => {
                    let c = count.min(*l);
                    *l -= c;
                    c
                }
                None => count,
            };
            if count > 0 {
                cutter.rows(offset, len, count);
            }
            if left == Some(0) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        });
        match scanned {
            Ok(()) if cutter.file_rows > 0 => cutter.close_segment(),
            // Unreadable or without rows: a mini-batch of its own, where
            // reading it fails as one item with the reason. (A scan that
            // fails part-way drops what it had planned of the file.)
            _ => {
                left = before;
                cutter.drop_file()
            }
        }
    }
    items.truncate(used);
    Plan::from_segments(items, cutter.finish())
}

/// `"N files"` mini-batches of at most `take` rows in all: each file whole
/// until the one where the rows run out, which is cut there (a row
/// range); the files after it are left out.
fn plan_files_taken(mut items: Vec<InputItem>, n: usize, take: u64, input: &TabularInput) -> Plan {
    let mut segments = Vec::new();
    let mut left = take;
    let mut used = items.len();
    for (file, item) in items.iter().enumerate() {
        if left == 0 {
            used = file;
            break;
        }
        let (mut rows, mut first) = (0u64, None);
        let scanned = scan_file(item, input, &mut |offset, _, count| {
            first.get_or_insert(offset);
            rows += count.min(left - rows);
            if rows == left { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        });
        match (scanned, first) {
            (Ok(()), Some(offset)) if rows == left => {
                segments.push(Segment { file, rows: RowSpan::Range { start: 0, end: rows, offset } });
                left = 0;
            }
            (Ok(()), _) => {
                segments.push(Segment { file, rows: RowSpan::All });
                left -= rows;
            }
            // Unreadable: read whole, where it fails as one item.
            (Err(_), _) => segments.push(Segment { file, rows: RowSpan::All }),
        }
    }
    items.truncate(used);
    let batches = segments.chunks(n).map(<[Segment]>::to_vec).collect();
    Plan::from_segments(items, batches)
}

/// Cuts a stream of rows into mini-batches of segments: the state of
/// [`plan_scanned`], per mini-batch only.
#[derive(Debug)]
struct Cutter {
    cut: Cut,
    /// No segment holds more bytes than this (`limits.max_file_mb`).
    cap: u64,
    batches: Vec<Vec<Segment>>,
    current: Vec<Segment>,
    in_batch_rows: u64,
    in_batch_bytes: u64,
    file: usize,
    /// Rows of the current file so far.
    file_rows: u64,
    /// The current file's open segment: its first row and that row's offset.
    seg_start: Option<(u64, u64)>,
    /// `batches.len()` when the current file started.
    mark: usize,
}

impl Cutter {
    fn new(cut: Cut, cap: u64) -> Cutter {
        Cutter {
            cut,
            cap,
            batches: Vec::new(),
            current: Vec::new(),
            in_batch_rows: 0,
            in_batch_bytes: 0,
            file: 0,
            file_rows: 0,
            seg_start: None,
            mark: 0,
        }
    }

    fn start_file(&mut self, file: usize) {
        (self.file, self.file_rows, self.seg_start, self.mark) = (file, 0, None, self.batches.len());
    }

    /// `count` rows of `len` bytes each, the first at `offset` (a CSV or
    /// JSON Lines row: one at its byte offset; Parquet: a run of rows
    /// numbered from `offset`, so a file is planned in one step per
    /// mini-batch, not one per row).
    fn rows(&mut self, mut offset: u64, len: u64, mut count: u64) {
        let len = len.max(1);
        while count > 0 {
            let full = match self.cut {
                Cut::Rows(n) => self.in_batch_rows >= n,
                Cut::Bytes(n) => self.in_batch_rows > 0 && self.in_batch_bytes + len > n,
            } || (self.in_batch_rows > 0 && self.in_batch_bytes + len > self.cap);
            if full {
                self.close_segment();
                self.batches.push(std::mem::take(&mut self.current));
                self.in_batch_rows = 0;
                self.in_batch_bytes = 0;
            }
            if self.seg_start.is_none() {
                self.seg_start = Some((self.file_rows, offset));
            }
            // As many rows as fit before the next cut (at least one: the
            // check above made room). Rows that fit under a byte limit
            // `limit`: an empty mini-batch always takes its first row.
            let fit = |limit: u64| {
                if self.in_batch_rows == 0 {
                    (limit / len).max(1)
                } else {
                    limit.saturating_sub(self.in_batch_bytes) / len
                }
            };
            let mut take = count.min(fit(self.cap));
            match self.cut {
                Cut::Rows(n) => take = take.min(n - self.in_batch_rows),
                Cut::Bytes(n) => take = take.min(fit(n)),
            }
            let take = take.max(1);
            self.in_batch_rows += take;
            self.in_batch_bytes += take * len;
            self.file_rows += take;
            offset += take;
            count -= take;
        }
    }

    fn close_segment(&mut self) {
        if let Some((start, offset)) = self.seg_start.take() {
            self.current.push(Segment { file: self.file, rows: RowSpan::Range { start, end: self.file_rows, offset } });
        }
    }

    /// The current file could not be scanned: what was planned of it goes,
    /// and it gets a mini-batch of its own.
    fn drop_file(&mut self) {
        let file = self.file;
        self.seg_start = None;
        self.current.retain(|s| s.file != file);
        for b in &mut self.batches[self.mark..] {
            b.retain(|s| s.file != file);
        }
        self.batches.retain(|b| !b.is_empty());
        if !self.current.is_empty() {
            self.batches.push(std::mem::take(&mut self.current));
        }
        self.in_batch_rows = 0;
        self.in_batch_bytes = 0;
        self.batches.push(vec![Segment { file, rows: RowSpan::All }]);
    }

    fn finish(mut self) -> Vec<Vec<Segment>> {
        if !self.current.is_empty() {
            self.batches.push(self.current);
        }
        self.batches
    }
}

/// The planner's read buffer: a file is scanned this much at a time.
pub(crate) const SCAN_BUFFER: usize = 1 << 20;

/// Calls `on_rows(offset, length, count)` for the rows of a file, in order.
/// CSV and JSON Lines: a quote-aware streaming scan for line ends, one call
/// per row (blank lines are not rows; the CSV header is skipped); Parquet:
/// one call for all its rows, from its footer's row count, with the file's
/// bytes spread evenly over them (the reader later decodes only the row
/// groups a segment overlaps).
/// `on_rows` stops the scan by returning `Break`.
fn scan_file(
    item: &InputItem,
    input: &TabularInput,
    on_rows: &mut dyn FnMut(u64, u64, u64) -> ControlFlow<()>,
) -> Result<(), String> {
    check_item(item, input, false)?;
    let format = input.format_of(&item.name).ok_or_else(|| unknown_format(&item.name))?;
    match format {
        TableFormat::Parquet => {
            let b = input.parquet(item)?;
            let n = b.metadata().file_metadata().num_rows().max(0) as u64;
            let per_row = item.size.checked_div(n).unwrap_or(0).max(1);
            if n > 0 {
                let _ = on_rows(0, per_row, n);
            }
            Ok(())
        }
        TableFormat::Csv | TableFormat::JsonLines => {
            let mut header = format == TableFormat::Csv && input.has_header(item);
            // The file's own bytes (a byte order mark too): the offsets are
            // where a reader seeks to.
            let bytes = input.source.read_range(item, 0..u64::MAX)?;
            scan_rows(bytes, input.quotes(format), SCAN_BUFFER, &mut |o, l| {
                if std::mem::take(&mut header) {
                    return ControlFlow::Continue(());
                }
                on_rows(o, l, 1)
            })
            .map_err(|e| format!("cannot read: {e}"))
        }
    }
}

/// The streaming form of [`line_spans`]: reads `r` through a buffer of
/// `buf` bytes (refilled; the quote state and the open line carry across
/// refills, so a row longer than the buffer costs nothing extra) and calls
/// `on_row` for each non-blank line, with its offset from the reader's
/// start, until it returns `Break`.
pub(crate) fn scan_rows(
    mut r: impl Read,
    quotes: bool,
    buf: usize,
    on_row: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
) -> std::io::Result<()> {
    let mut chunk = vec![0u8; buf.max(1)];
    let (mut base, mut start, mut in_quotes, mut nonblank) = (0u64, 0u64, false, false);
    loop {
        let n = match r.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let data = &chunk[..n];
        let mut pos = 0usize;
        loop {
            let next =
                if quotes { memchr::memchr2(b'\n', b'"', &data[pos..]) } else { memchr::memchr(b'\n', &data[pos..]) };
            let Some(k) = next else {
                nonblank |= data[pos..].iter().any(|b| !b.is_ascii_whitespace());
                break;
            };
            let at = pos + k;
            nonblank |= data[pos..at].iter().any(|b| !b.is_ascii_whitespace());
            if data[at] == b'"' {
                in_quotes = !in_quotes;
                nonblank = true;
            } else if !in_quotes {
                let end = base + at as u64 + 1;
                if nonblank && on_row(start, end - start).is_break() {
                    return Ok(());
                }
                start = end;
                nonblank = false;
            }
            pos = at + 1;
        }
        base += n as u64;
    }
    if start < base && nonblank {
        let _ = on_row(start, base - start);
    }
    Ok(())
}

/// Byte spans of the non-blank lines of `data`; with `quotes`, a newline
/// inside a double-quoted CSV field does not end a line.
fn line_spans(data: &[u8], quotes: bool) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut in_quotes = false;
    let mut pos = 0usize;
    let mut push = |s: usize, e: usize| {
        if data[s..e].iter().any(|b| !b.is_ascii_whitespace()) {
            out.push((s as u64, (e - s) as u64));
        }
    };
    loop {
        let next =
            if quotes { memchr::memchr2(b'\n', b'"', &data[pos..]) } else { memchr::memchr(b'\n', &data[pos..]) };
        match next {
            None => break,
            Some(k) => {
                let at = pos + k;
                if data[at] == b'"' {
                    in_quotes = !in_quotes;
                } else if !in_quotes {
                    push(start, at + 1);
                    start = at + 1;
                }
                pos = at + 1;
            }
        }
    }
    if start < data.len() {
        push(start, data.len());
    }
    out
}

/// One mini-batch per distinct tuple of `keys`, in order of first
/// appearance; a file that cannot be read gets a mini-batch of its own.
/// With `take`, only the first that many rows are grouped (the files after them are left out).
fn plan_partitions(
    mut items: Vec<InputItem>,
    keys: &[String],
    input: &TabularInput,
    take: Option<u64>,
) -> Result<Plan, TabularError> {
    let mut projection = Vec::new();
    for k in keys {
        match input.schema.index_of(k) {
            Ok(i) => projection.push(i),
            Err(_) => {
                let columns: Vec<&str> = input.schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(TabularError::UnknownKey { key: k.clone(), columns: columns.join(", ") });
            }
        }
    }
    let mut groups: Vec<Vec<Segment>> = Vec::new();
    let mut bad: Vec<Vec<Segment>> = Vec::new();
    let mut index: HashMap<Vec<Option<String>>, usize> = HashMap::new();
    let mut left = take.unwrap_or(u64::MAX);
    let mut used = items.len();
    for (file, item) in items.iter().enumerate() {
        if left == 0 {
            used = file;
            break;
        }
        let batch = match read_segment(item, &RowSpan::All, input) {
            Ok(b) => b,
            Err(_) => {
                bad.push(vec![Segment { file, rows: RowSpan::All }]);
                continue;
            }
        };
        let cols: Vec<ArrayRef> = projection.iter().map(|&i| batch.column(i).clone()).collect();
        let fmt = arrow_cast::display::FormatOptions::default();
        let formatters: Vec<_> = cols
            .iter()
            .map(|c| arrow_cast::display::ArrayFormatter::try_new(c.as_ref(), &fmt))
            .collect::<Result<_, _>>()
            .map_err(|e| TabularError::KeyValues { keys: keys.join(", "), message: e.to_string() })?;
        let mut per_group: Vec<(usize, Vec<u64>)> = Vec::new();
        let mut local: HashMap<usize, usize> = HashMap::new();
        let rows = (batch.num_rows() as u64).min(left);
        left -= rows;
        for row in 0..rows as usize {
            let key: Vec<Option<String>> = cols
                .iter()
                .zip(&formatters)
                .map(|(c, f)| if c.is_null(row) { None } else { Some(f.value(row).to_string()) })
                .collect();
            let n = index.len();
            let g = *index.entry(key).or_insert(n);
            if g == groups.len() {
                groups.push(Vec::new());
            }
            let slot = *local.entry(g).or_insert_with(|| {
                per_group.push((g, Vec::new()));
                per_group.len() - 1
            });
            per_group[slot].1.push(row as u64);
        }
        for (g, rows) in per_group {
            groups[g].push(Segment { file, rows: RowSpan::Rows(rows) });
        }
    }
    groups.extend(bad);
    items.truncate(used);
    Ok(Plan::from_segments(items, groups))
}

fn unknown_format(name: &str) -> String {
    format!("{name}: not a table (tabular input reads .csv, .parquet and .jsonl files)")
}

/// Why a file is not read whole: its size against `limits.max_file_mb`,
/// and the ways out.
fn over_cap(size: u64, cap: u64) -> String {
    format!(
        "{} for a file read whole; raise it (--max-file-mb or limits.max_file_mb) or use row- or byte-sized \
         mini-batches (mini_batch_size: \"50000\" or \"64MB\")",
        crate::inputs::over_file_cap(size, cap)
    )
}

/// An item may be read: not refused, unchanged since planning and, when it
/// is read whole (`whole`), within `limits.max_file_mb`.
fn check_item(item: &InputItem, input: &TabularInput, whole: bool) -> Result<(), String> {
    input.source.check(item)?;
    if whole && item.size > input.max_file_bytes {
        return Err(over_cap(item.size, input.max_file_bytes));
    }
    Ok(())
}

/// Reads the rows of one segment, in the job's schema.
pub fn read_segment(item: &InputItem, rows: &RowSpan, input: &TabularInput) -> Result<RecordBatch, String> {
    let parts = read_segment_parts(item, rows, input)?;
    arrow_select::concat::concat_batches(&input.schema, &parts).map_err(|e| e.to_string())
}

/// Rows per Arrow batch when a segment is read. Each batch is handed on
/// (converted into the host table) as soon as it is parsed, so a reader
/// holds one batch's parse buffers at a time, not a segment's (arrow-csv's
/// buffers for 50,000 rows of 31 columns are over 25 MB).
const READ_BATCH_ROWS: usize = 1024;

/// The read buffer of a segment's reader; [`read_segment_with`] counts the
/// bytes it has taken from the source, so what it reports may run this far
/// ahead of what was parsed.
const READ_BUFFER: usize = 64 << 10;

/// Reads the rows of one segment, in the job's schema, as Arrow batches
/// (not joined: a caller converting them anyway saves a copy).
pub fn read_segment_parts(item: &InputItem, rows: &RowSpan, input: &TabularInput) -> Result<Vec<RecordBatch>, String> {
    let mut parts = Vec::new();
    read_segment_with(item, rows, input, &mut |b, _| {
        parts.push(b);
        Ok(())
    })?;
    Ok(parts)
}

/// Reads the rows of one segment, in the job's schema, handing each batch
/// to `sink` as it is parsed, with the bytes of the item taken so far (for
/// Parquet, its share of the file's bytes); returns the rows read. An error
/// from `sink` stops the read and is returned as it is.
pub fn read_segment_with(
    item: &InputItem,
    rows: &RowSpan,
    input: &TabularInput,
    sink: &mut dyn FnMut(RecordBatch, u64) -> Result<(), String>,
) -> Result<u64, String> {
    // A row range is read by its bytes (planning kept each within the cap);
    // anything else reads the file from its start.
    check_item(item, input, !matches!(rows, RowSpan::Range { .. }))?;
    let format = input.format_of(&item.name).ok_or_else(|| unknown_format(&item.name))?;
    match rows {
        RowSpan::All => read_span(item, format, input, Span { first: 0, count: None, offset: None }, sink),
        RowSpan::Range { start, end, offset } => {
            let span = Span { first: *start, count: Some(end - start), offset: Some(*offset) };
            read_span(item, format, input, span, sink)
        }
        // A row subset (partition keys): its span, then the rows in it.
        RowSpan::Rows(r) => {
            let lo = r.first().copied().unwrap_or(0);
            let hi = r.last().map_or(0, |x| x + 1);
            let mut parts = Vec::new();
            let span = Span { first: lo, count: Some(hi - lo), offset: None };
            read_span(item, format, input, span, &mut |b, _| {
                parts.push(b);
                Ok(())
            })?;
            let batch = arrow_select::concat::concat_batches(&input.schema, &parts).map_err(|e| e.to_string())?;
            drop(parts);
            let keep = UInt32Array::from(r.iter().map(|&x| (x - lo) as u32).collect::<Vec<_>>());
            let batch = arrow_select::take::take_record_batch(&batch, &keep).map_err(|e| e.to_string())?;
            let n = batch.num_rows() as u64;
            sink(batch, item.size)?;
            Ok(n)
        }
    }
}

/// Which rows of a file to read: `count` rows (all when `None`) from row
/// `first`, which starts at byte `offset` when planning recorded it.
#[derive(Debug, Clone, Copy)]
struct Span {
    first: u64,
    count: Option<u64>,
    offset: Option<u64>,
}

/// A reader that counts the bytes taken through it.
struct Counted<R> {
    inner: R,
    taken: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.taken.set(self.taken.get() + n as u64);
        Ok(n)
    }
}

fn read_span(
    item: &InputItem,
    format: TableFormat,
    input: &TabularInput,
    span: Span,
    sink: &mut dyn FnMut(RecordBatch, u64) -> Result<(), String>,
) -> Result<u64, String> {
    let Span { first, count, offset } = span;
    let schema = input.read_schema();
    let batch_size = count.map_or(READ_BATCH_ROWS, |n| n.clamp(1, READ_BATCH_ROWS as u64) as usize);
    // The bytes a reader may take: a whole file within the cap (one byte
    // more shows it grew), a range to the file's end (its rows bound it).
    let start = offset.unwrap_or(0);
    let end = if offset.is_some() { u64::MAX } else { input.max_file_bytes.saturating_add(1) };
    let taken = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let counted =
        |r: Box<dyn Read + Send>| BufReader::with_capacity(READ_BUFFER, Counted { inner: r, taken: taken.clone() });
    let mut got = 0u64;
    match format {
        TableFormat::Csv => {
            let (schema, header) = input.csv_layout(item)?;
            let mut b = arrow_csv::ReaderBuilder::new(schema)
                .with_batch_size(batch_size)
                .with_delimiter(input.read.delimiter.unwrap_or(b','));
            match offset {
                Some(_) => {
                    b = b.with_header(false);
                    if let Some(n) = count {
                        b = b.with_bounds(0, n as usize);
                    }
                }
                None => {
                    b = b.with_header(header);
                    if let Some(n) = count {
                        b = b.with_bounds(first as usize, (first + n) as usize);
                    }
                }
            }
            let reader = b.build(counted(input.open(item, start..end)?)).map_err(|e| e.to_string())?;
            for batch in reader {
                let batch = input.shape(batch.map_err(|e| e.to_string())?, item)?;
                got += batch.num_rows() as u64;
                sink(batch, start + taken.get())?;
            }
        }
        // JSON Lines rows may leave out keys: a missing key is a null, as
        // arrow-json reads it, so there is no per-file column check.
        TableFormat::JsonLines => {
            let skip = if offset.is_some() { 0 } else { first };
            // Converted columns are read as text, whatever JSON type the value has.
            let reader = arrow_json::ReaderBuilder::new(schema.clone())
                .with_batch_size(batch_size)
                .with_coerce_primitive(input.read.shaped())
                .build(counted(input.open(item, start..end)?))
                .map_err(|e| e.to_string())?;
            let mut skipped = 0u64;
            for b in reader {
                let mut b = b.map_err(|e| e.to_string())?;
                if skipped < skip {
                    let drop = (skip - skipped).min(b.num_rows() as u64);
                    skipped += drop;
                    b = b.slice(drop as usize, b.num_rows() - drop as usize);
                }
                if let Some(n) = count {
                    let want = (n - got).min(b.num_rows() as u64);
                    b = b.slice(0, want as usize);
                }
                got += b.num_rows() as u64;
                if b.num_rows() > 0 {
                    sink(input.shape(b, item)?, start + taken.get())?;
                }
                if count.is_some_and(|n| got >= n) {
                    break;
                }
            }
        }
        TableFormat::Parquet => {
            let mut b = input.parquet(item)?.with_batch_size(batch_size);
            let file_rows = b.metadata().file_metadata().num_rows().max(1) as u64;
            // Only the row groups that hold the rows, so a worker never
            // decodes a large file from its start to reach its mini-batch.
            let mut skip = first;
            if let Some(n) = count {
                let (mut start, mut groups, mut groups_first) = (0u64, Vec::new(), None);
                for (g, rg) in b.metadata().row_groups().iter().enumerate() {
                    let end = start + rg.num_rows().max(0) as u64;
                    if end > first && start < first + n {
                        groups_first.get_or_insert(start);
                        groups.push(g);
                    }
                    start = end;
                }
                skip = first - groups_first.unwrap_or(first);
                b = b.with_row_groups(groups).with_limit(n as usize);
            }
            b = b.with_offset(skip as usize);
            let reader = b.build().map_err(|e| e.to_string())?;
            for batch in reader {
                let batch = input.shape(conform(&batch.map_err(|e| e.to_string())?, &schema, input)?, item)?;
                got += batch.num_rows() as u64;
                let share = (item.size as u128 * (first + got) as u128 / file_rows as u128) as u64;
                sink(batch, share.min(item.size))?;
            }
        }
    }
    if let Some(n) = count
        && got < n
    {
        return Err(format!(
            "expected {n} rows from row {first} but the file holds only {got} there (did it change during the job?)"
        ));
    }
    Ok(got)
}

/// The most bytes a CSV header may take.
const HEADER_MAX: u64 = 1 << 20;

/// The column names in a CSV file's first line.
fn header_names(f: &mut impl Read, delimiter: u8) -> Result<Vec<String>, String> {
    let mut first = Vec::new();
    BufReader::new(f.by_ref().take(HEADER_MAX)).read_until(b'\n', &mut first).map_err(|e| e.to_string())?;
    if first.iter().all(u8::is_ascii_whitespace) {
        return Err("empty file: no header and no rows".into());
    }
    let own = arrow_csv::reader::Format::default()
        .with_header(true)
        .with_delimiter(delimiter)
        .infer_schema(first.as_slice(), Some(0))
        .map_err(|e| e.to_string())?
        .0;
    Ok(own.fields().iter().map(|f| f.name().clone()).collect())
}

/// A CSV file's header must name the job's columns, in order.
fn check_header(f: &mut impl Read, schema: &Schema, delimiter: u8) -> Result<(), String> {
    let got = header_names(f, delimiter)?;
    let got: Vec<&str> = got.iter().map(String::as_str).collect();
    let want: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    if got != want {
        let missing: Vec<&str> = want.iter().filter(|w| !got.contains(w)).copied().collect();
        let extra: Vec<&str> = got.iter().filter(|g| !want.contains(g)).copied().collect();
        return Err(format!(
            "header differs from the job's columns: {}",
            match (missing.is_empty(), extra.is_empty()) {
                (true, true) => "same columns in another order".to_string(),
                _ => format!("missing [{}], unexpected [{}]", missing.join(", "), extra.join(", ")),
            }
        ));
    }
    Ok(())
}

/// A batch in the job's schema: columns matched by name and cast.
fn conform(batch: &RecordBatch, schema: &SchemaRef, input: &TabularInput) -> Result<RecordBatch, String> {
    let mut cols = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let col = batch.column_by_name(field.name()).ok_or_else(|| {
            format!("has no column `{}` (the job's columns come from {})", field.name(), input.schema_source)
        })?;
        let col = if col.data_type() == field.data_type() {
            col.clone()
        } else {
            let opts = arrow_cast::CastOptions { safe: false, ..Default::default() };
            arrow_cast::cast_with_options(col, field.data_type(), &opts)
                .map_err(|e| format!("column `{}`: {e}", field.name()))?
        };
        cols.push(col);
    }
    let opts = arrow_array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(schema.clone(), cols, &opts).map_err(|e| e.to_string())
}

/// Reads a mini-batch's segments: the rows that could be read, with their
/// provenance, and the segments that could not. A file whose rows parse
/// but do not convert into the host's form (a column of a type the host
/// cannot take) fails those rows, with the conversion's message.
pub fn read_mini_batch(plan: &Plan, segments: &[Segment], input: &TabularInput) -> TabularRows {
    let planned = segments.iter().map(|s| s.rows.len()).sum::<Option<u64>>();
    let mut table = crate::encode::TableBuilder::new(&input.schema, planned.unwrap_or(0) as usize);
    let mut sizer = TableSizer {
        planned: planned.is_some(),
        total_bytes: segments.iter().map(|s| plan.items[s.file].size).sum(),
        done_bytes: 0,
    };
    let mut origins = sluice_job::RowOrigins::default();
    let mut failed = Vec::new();
    for seg in segments {
        let item = &plan.items[seg.file];
        let before = table.num_rows();
        // Each batch goes into the table as it is parsed; a batch that does
        // not convert stops the read (`unfit`), and the segment's rows fail
        // with the conversion's message.
        let mut unfit = None;
        let read = read_segment_with(item, &seg.rows, input, &mut |b, bytes| {
            sizer.make_room(&mut table, b.num_rows(), bytes);
            table.push(b).map_err(|message| {
                unfit = Some(message);
                String::new()
            })
        });
        sizer.done_bytes += item.size;
        let rows_of = |n: u64| -> Vec<u64> {
            match &seg.rows {
                RowSpan::All => (0..n).collect(),
                RowSpan::Range { start, .. } => (*start..start + n).collect(),
                RowSpan::Rows(r) => r.clone(),
            }
        };
        // Every row the segment was planned to hold, when the plan says.
        let planned_rows = || seg.rows.len().map(rows_of);
        if let Some(message) = unfit {
            table.truncate(before);
            failed.push(FailedRows { source: item.name.clone(), rows: planned_rows(), message });
            continue;
        }
        match read {
            Ok(0) if seg.rows == RowSpan::All => {
                let what = match input.format_of(&item.name) {
                    Some(TableFormat::Csv) => "no rows: the file holds only a header",
                    _ => "no rows: the file holds no table rows",
                };
                failed.push(FailedRows { source: item.name.clone(), rows: None, message: what.to_string() });
            }
            Ok(n) => origins.push_segment(&item.name, rows_of(n)),
            Err(message) => {
                table.truncate(before);
                match read_row_by_row(item, &seg.rows, input) {
                    // The file reads, but some rows do not parse: those rows
                    // fail, the others go on.
                    Ok((batch, good, bad)) => {
                        if !good.is_empty() {
                            match table.push(batch) {
                                Ok(()) => origins.push_segment(&item.name, good),
                                Err(message) => {
                                    table.truncate(before);
                                    failed.push(FailedRows { source: item.name.clone(), rows: Some(good), message });
                                }
                            }
                        }
                        for (row, message) in bad {
                            failed.push(FailedRows { source: item.name.clone(), rows: Some(vec![row]), message });
                        }
                    }
                    Err(_) => failed.push(FailedRows { source: item.name.clone(), rows: planned_rows(), message }),
                }
            }
        }
    }
    TabularRows { table: table.finish(), origins, failed }
}

/// Sizes a mini-batch's host table up front rather than letting it grow
/// by doubling (which leaves up to half of the mini-batch's largest
/// allocation unused, and copies it at each step): to the planned rows
/// when every segment's rows are known (row ranges), else (whole files,
/// `"N files"`) by extrapolating the rows per byte read so far to the
/// mini-batch's bytes. A wrong guess costs only address space (capacity
/// no row is written to is never touched), and the guess is bounded, so a
/// small first file before a large one cannot make it reserve much.
#[derive(Debug)]
struct TableSizer {
    planned: bool,
    total_bytes: u64,
    /// Bytes of the segments read before this one.
    done_bytes: u64,
}

impl TableSizer {
    /// Before `rows` more rows go in, `bytes` of the current item taken.
    fn make_room(&self, table: &mut crate::encode::TableBuilder, rows: usize, bytes: u64) {
        if self.planned {
            return;
        }
        let rows_after = (table.num_rows() + rows) as u128;
        // The reader runs up to a buffer ahead of what it parsed: count
        // that out, so the guess errs high (untouched) rather than low (a
        // second allocation and copy).
        let read = (self.done_bytes + bytes).saturating_sub(READ_BUFFER as u64).max(1) as u128;
        let guess = (rows_after * self.total_bytes as u128 / read).min(rows_after * 2 + 65_536);
        if guess > table.capacity() as u128 {
            table.reserve_total(guess as usize);
        }
    }
}

/// A segment whose rows did not all parse, read one row at a time: the
/// rows that parse (with their row numbers) and, for each that does not,
/// why. `Err` when the file itself cannot be read this way (Parquet, a
/// header that differs, an unreadable file): the whole segment fails.
#[allow(clippy::type_complexity)]
fn read_row_by_row(
    item: &InputItem,
    rows: &RowSpan,
    input: &TabularInput,
) -> Result<(RecordBatch, Vec<u64>, Vec<(u64, String)>), String> {
    let range = matches!(rows, RowSpan::Range { .. });
    check_item(item, input, !range)?;
    let format = input.format_of(&item.name).ok_or_else(|| unknown_format(&item.name))?;
    if format == TableFormat::Parquet {
        return Err("Parquet is read whole".into());
    }
    let (line_schema, header) = match format {
        TableFormat::Csv => input.csv_layout(item)?,
        _ => (input.read_schema(), false),
    };
    let quotes = input.quotes(format);
    // A row range: only its bytes, from its offset until its rows are in
    // (bounded by the segment, which planning kept within the cap). Any
    // other span: the file, which is within the cap.
    let (data, spans, first): (Vec<u8>, Vec<(u64, u64)>, u64) = match rows {
        RowSpan::Range { start, end, offset } => {
            let want = (end - start) as usize;
            let mut data = Vec::new();
            let mut spans = Vec::new();
            let mut rd = BufReader::with_capacity(SCAN_BUFFER, input.read_from(item, *offset)?);
            // Rescanned each time the bytes read double (and at the end), so
            // a long segment costs linear time, not one scan per refill.
            let mut next_scan = SCAN_BUFFER;
            loop {
                let got = rd.fill_buf().map_err(|e| format!("cannot read: {e}"))?;
                let eof = got.is_empty();
                let n = got.len();
                data.extend_from_slice(got);
                rd.consume(n);
                if !eof && data.len() < next_scan {
                    continue;
                }
                next_scan = data.len().saturating_mul(2);
                spans.clear();
                let mut keep = |o: u64, l: u64| {
                    spans.push((o, l));
                    ControlFlow::Continue(())
                };
                scan_rows(data.as_slice(), quotes, SCAN_BUFFER, &mut keep).map_err(|e| e.to_string())?;
                // The last span may be a row cut by the read: complete
                // only with more than `want` spans or at the end.
                if spans.len() > want || eof {
                    break;
                }
                if data.len() as u64 > input.max_file_bytes.saturating_mul(2).max(1 << 20) {
                    return Err("the segment's rows are gone: the file changed during the job".into());
                }
            }
            spans.truncate(want);
            (data, spans, *start)
        }
        _ => {
            let mut data = crate::inputs::read_whole(&*input.source, item, input.max_file_bytes, over_cap)?;
            if input.read.strip_bom && data.starts_with(BOM) {
                data.drain(..BOM.len());
            }
            let mut spans = line_spans(&data, quotes);
            if header && !spans.is_empty() {
                spans.remove(0);
            }
            (data, spans, 0)
        }
    };
    let wanted: Vec<u64> = match rows {
        RowSpan::All => (0..spans.len() as u64).collect(),
        RowSpan::Range { start, end, .. } => (*start..*end).collect(),
        RowSpan::Rows(r) => r.clone(),
    };
    let schema = input.schema.clone();
    let (mut parts, mut good, mut bad) = (Vec::new(), Vec::new(), Vec::new());
    for r in wanted {
        let Some(&(off, len)) = spans.get((r - first) as usize) else {
            bad.push((r, "the row is gone: the file changed during the job".to_string()));
            continue;
        };
        let line = &data[off as usize..(off + len) as usize];
        let parsed: Result<Vec<RecordBatch>, String> = match format {
            TableFormat::Csv => arrow_csv::ReaderBuilder::new(line_schema.clone())
                .with_header(false)
                .with_delimiter(input.read.delimiter.unwrap_or(b','))
                .build(line)
                .map_err(|e| e.to_string())
                .and_then(|rd| rd.collect::<Result<_, _>>().map_err(|e| e.to_string())),
            _ => arrow_json::ReaderBuilder::new(line_schema.clone())
                .with_coerce_primitive(input.read.shaped())
                .build(line)
                .map_err(|e| e.to_string())
                .and_then(|rd| rd.collect::<Result<_, _>>().map_err(|e| e.to_string())),
        };
        let parsed =
            parsed.and_then(|batches| batches.into_iter().map(|b| input.shape(b, item)).collect::<Result<Vec<_>, _>>());
        match parsed {
            Ok(batches) if batches.iter().map(RecordBatch::num_rows).sum::<usize>() == 1 => {
                parts.extend(batches);
                good.push(r);
            }
            Ok(_) => bad.push((r, "not one row".to_string())),
            Err(e) => bad.push((r, format!("cannot parse: {}", row_message(&e)))),
        }
    }
    let batch = arrow_select::concat::concat_batches(&schema, &parts).map_err(|e| e.to_string())?;
    Ok((batch, good, bad))
}

/// Arrow's parse message without the line number of the one-line parse
/// (the item's label says which row it is).
fn row_message(e: &str) -> String {
    e.replace(" for line 1,", ",").replace(" at line 1", "").replace("Csv error: ", "").replace("Parser error: ", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_spans_respect_quotes_and_skip_blank_lines() {
        let data = b"h1,h2\n1,\"a\nb\"\n\n2,c\r\n3,d";
        let spans = line_spans(data, true);
        let rows: Vec<&[u8]> = spans.iter().map(|&(o, l)| &data[o as usize..(o + l) as usize]).collect();
        assert_eq!(rows, [&b"h1,h2\n"[..], b"1,\"a\nb\"\n", b"2,c\r\n", b"3,d"]);
        assert_eq!(line_spans(b"{\"a\":\"x\\\"\"}\n{}\n", false).len(), 2);
    }

    #[test]
    fn a_run_of_rows_plans_as_its_rows_one_by_one() {
        // Parquet hands the planner all its rows at once; the mini-batches
        // must be those of the same rows given one at a time.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..300 {
            let cut = if next(2) == 0 { Cut::Rows(1 + next(50)) } else { Cut::Bytes(1 + next(400)) };
            let cap = 1 + next(500);
            let files: Vec<(u64, u64)> = (0..1 + next(4)).map(|_| (next(120), 1 + next(60))).collect();
            let (mut bulk, mut single) = (Cutter::new(cut, cap), Cutter::new(cut, cap));
            for (file, &(rows, len)) in files.iter().enumerate() {
                bulk.start_file(file);
                single.start_file(file);
                if rows > 0 {
                    bulk.rows(0, len, rows);
                }
                for r in 0..rows {
                    single.rows(r, len, 1);
                }
                if rows > 0 {
                    bulk.close_segment();
                    single.close_segment();
                } else {
                    bulk.drop_file();
                    single.drop_file();
                }
            }
            let (bulk, single) = (bulk.finish(), single.finish());
            assert_eq!(bulk, single, "{cut:?} cap {cap} files {files:?}");
            for b in &bulk {
                let rows: u64 = b.iter().map(|s| s.rows.len().unwrap_or(0)).sum();
                if let Cut::Rows(n) = cut {
                    assert!(rows <= n, "{rows} rows in a mini-batch of {n}");
                }
            }
        }
    }

    #[test]
    fn streaming_scan_matches_line_spans_across_refills() {
        let alphabet = b"ab,\"\n\r \n";
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for case in 0..300 {
            let len = case % 60;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize]
                })
                .collect();
            for quotes in [true, false] {
                let want = line_spans(&data, quotes);
                for buf in [1, 2, 3, 7, 64] {
                    let mut got = Vec::new();
                    scan_rows(data.as_slice(), quotes, buf, &mut |o, l| {
                        got.push((o, l));
                        ControlFlow::Continue(())
                    })
                    .unwrap();
                    assert_eq!(got, want, "{:?} quotes={quotes} buf={buf}", String::from_utf8_lossy(&data));
                }
            }
        }
    }
}
