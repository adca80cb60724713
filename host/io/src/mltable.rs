//! `mltable` folders with an `MLTable` file, read the way Azure reads them.
//!
//! An `mltable` input folder (local or a prefix on object storage) whose
//! listing holds a file named exactly `MLTable` at its root is planned from
//! that file instead of from every file in the folder: [`MlTable::parse`]
//! reads it once, at plan time, and [`MlTable::select`] picks the data files
//! from the listing; [`MlTable::shape`] turns the columns the files hold into
//! the job's columns and the [`ReadOptions`] the readers in `tabular.rs`
//! follow. A folder without an `MLTable` file is read as before.
//!
//! What is understood (anything else is an [`MlTableError`] naming the
//! file, the key and the problem; an unknown or unsupported transformation
//! names itself):
//!
//! - top-level keys `type` (`mltable`), `paths`, `transformations`, and
//!   `$schema`, `traits`, `metadata` (accepted, not used);
//! - `paths`: `file`, `folder` (every file below it) and `pattern` (a glob:
//!   `*` and `?` within one name, `[abc]`, `[a-z]`, `[!a]`, and `**` for any
//!   number of folders), each relative to the MLTable file. They are matched
//!   against the input's listing, never against the filesystem, so a path
//!   cannot reach outside the input folder (`..` that leaves it, absolute
//!   paths and URLs are errors). The data files are those matched, each once,
//!   in the listing's sorted order (the `MLTable` file itself never);
//! - the read transformations `read_delimited` (`delimiter`, one byte;
//!   `header`: `no_header`, `from_first_file`, `all_files_same_headers`
//!   (the default), `all_files_different_headers`; `encoding`: `utf8`,
//!   `ascii`, `utf8bom`; `empty_as_string`, `include_path_column`,
//!   `path_column`, `support_multi_line`, `infer_column_types`, and
//!   `partition_size`, accepted and not used), `read_parquet` and
//!   `read_json_lines` (`include_path_column`, `path_column`; JSON Lines
//!   also `encoding` and `invalid_lines: error`). Without one, each file is
//!   read by its extension, as in a folder without an MLTable file;
//! - the column transformations `keep_columns`, `drop_columns`,
//!   `convert_column_types` (`int`, `float`, `boolean` with `true_values`,
//!   `false_values`, `mismatch_as`; `string`; `datetime` with `formats`)
//!   and `take`, applied in the order written.
//!
//! Limits (what an MLTable file can make the host do): the file itself is
//! read only up to [`MAX_MLTABLE_BYTES`]; at most [`MAX_PATHS`] `paths`
//! entries and [`MAX_TRANSFORMATIONS`] transformations; a path or pattern
//! of at most [`MAX_PATH_BYTES`] bytes; at most [`MAX_COLUMNS`] columns
//! (the union of all files' headers included); the YAML's nesting is
//! checked before it is parsed (`check_spec_shape`). A pattern is compiled
//! by `globset` and matched against each listed name once, in time linear
//! in the name.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray};
use arrow_schema::DataType;
use serde_yaml_ng::Value;
use sluice_job::InputItem;

use crate::tabular::TableFormat;

/// The name of the file that makes a folder an MLTable (no extension).
pub const MLTABLE_FILE: &str = "MLTable";
/// The most bytes of an `MLTable` file that are read; a larger one is an error.
pub const MAX_MLTABLE_BYTES: u64 = 1 << 20;
/// The most entries of `paths`.
pub const MAX_PATHS: usize = 256;
/// The most entries of `transformations`.
pub const MAX_TRANSFORMATIONS: usize = 64;
/// The longest path or pattern in `paths`, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;
/// The most columns a table may have (and columns one transformation may name).
pub const MAX_COLUMNS: usize = 10_000;

/// Why an `MLTable` file cannot be used; the job fails before any mini-batch runs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MlTableError {
    /// The file cannot be read (or is over [`MAX_MLTABLE_BYTES`]).
    #[error("{file}: cannot read the MLTable file: {message}")]
    Read {
        /// The MLTable file, as listed.
        file: String,
        /// Why.
        message: String,
    },
    /// The file is not YAML, or not a mapping.
    #[error("{file}: not a valid MLTable file: {message}")]
    Yaml {
        /// The MLTable file.
        file: String,
        /// The YAML parser's message.
        message: String,
    },
    /// A key has a value that cannot be used.
    #[error("{file}: `{key}`: {problem}")]
    Invalid {
        /// The MLTable file.
        file: String,
        /// The key at fault, as a path (`transformations[0].read_delimited.header`).
        key: String,
        /// What is wrong, and what would be right.
        problem: String,
    },
    /// A transformation, option or value Azure has that sluice does not do.
    #[error("{file}: `{key}`: {what} is not supported; {supported}")]
    Unsupported {
        /// The MLTable file.
        file: String,
        /// The key at fault.
        key: String,
        /// What is not supported.
        what: String,
        /// What is.
        supported: String,
    },
}

/// How a CSV file's first line is taken (`read_delimited.header`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HeaderMode {
    /// No MLTable: every file has a header naming the job's columns, in
    /// order (checked; a file whose header differs fails its rows).
    #[default]
    Checked,
    /// `no_header`: no file has a header; the columns are `Column1`, `Column2`, ...
    NoHeader,
    /// `from_first_file`: the first file's first line is the header; every
    /// line of the other files is data.
    FromFirstFile,
    /// `all_files_same_headers`: the first file's header names the columns;
    /// the first line of every other file is skipped (not checked).
    SameHeaders,
    /// `all_files_different_headers`: each file has its own header; the
    /// columns are the union of them by name, in order of first appearance,
    /// and a file's rows have nulls in the columns it lacks.
    DifferentHeaders,
}

/// What a cell of a `mismatch_as` boolean conversion becomes when it is neither true nor false.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mismatch {
    /// The row fails (an `INPUT_ERROR` naming the value).
    Error,
    /// `true`.
    True,
    /// `false`.
    False,
}

/// A column conversion of `convert_column_types`. The column is read as
/// text and converted by the host; an empty cell becomes a null (except
/// for `string`), a cell that does not convert fails its row.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Conversion {
    /// `int`: a 64-bit integer (`s64`).
    Int,
    /// `float`: a 64-bit float (`f64`).
    Float,
    /// `boolean`: the values that mean true and false, and what other values become.
    Boolean {
        /// Values that mean true (exact match).
        true_values: Vec<String>,
        /// Values that mean false (exact match).
        false_values: Vec<String>,
        /// What any other value becomes.
        mismatch: Mismatch,
    },
    /// `string`: the text as the file has it (no type inference).
    String,
    /// `datetime`: parsed with the first of `formats` (strftime) that fits,
    /// or, without formats, as ISO 8601 / RFC 3339 (a date alone is
    /// midnight); handed on as ISO 8601 text, `2024-01-31T08:00:00`
    /// (fractional seconds when there are some; an offset converted to UTC).
    DateTime {
        /// strftime formats, tried in order.
        formats: Vec<String>,
    },
}

impl Conversion {
    /// The column type a converted column has in the job's columns.
    pub fn kind(&self) -> ColumnKind {
        match self {
            Conversion::Int => ColumnKind::Int64,
            Conversion::Float => ColumnKind::Float64,
            Conversion::Boolean { .. } => ColumnKind::Boolean,
            Conversion::String | Conversion::DateTime { .. } => ColumnKind::Utf8,
        }
    }
}

/// The column types a job's columns may have (those the scorer's columns
/// take), for options that travel to cluster nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ColumnKind {
    /// `s64`.
    Int64,
    /// `f32`.
    Float32,
    /// `f64`.
    Float64,
    /// `bool`.
    Boolean,
    /// `string`.
    Utf8,
}

impl ColumnKind {
    /// The Arrow type.
    pub fn data_type(self) -> DataType {
        match self {
            ColumnKind::Int64 => DataType::Int64,
            ColumnKind::Float32 => DataType::Float32,
            ColumnKind::Float64 => DataType::Float64,
            ColumnKind::Boolean => DataType::Boolean,
            ColumnKind::Utf8 => DataType::Utf8,
        }
    }

    /// The kind of an Arrow type already normalised to one of the five (anything else is text).
    pub fn of(t: &DataType) -> ColumnKind {
        match t {
            DataType::Int64 => ColumnKind::Int64,
            DataType::Float32 => ColumnKind::Float32,
            DataType::Float64 => ColumnKind::Float64,
            DataType::Boolean => ColumnKind::Boolean,
            _ => ColumnKind::Utf8,
        }
    }
}

/// How the tabular readers read a job's files. The default is a folder
/// without an MLTable file (each file by its extension, CSV with a checked
/// header, the job's columns read directly); an MLTable sets the rest. It
/// is fixed at plan time and travels to cluster nodes with the job.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReadOptions {
    /// The MLTable file the options come from and the SHA-256 of its bytes.
    pub mltable: Option<(String, String)>,
    /// Every file is read as this format (a read transformation), whatever its extension.
    pub format: Option<TableFormat>,
    /// The CSV field delimiter (`,` when `None`).
    pub delimiter: Option<u8>,
    /// How CSV headers are taken.
    pub header: HeaderMode,
    /// The first data file (its header is the job's with `from_first_file`).
    pub first_file: Option<String>,
    /// `support_multi_line: false`: every line break ends a CSV record,
    /// one inside quotes too.
    pub line_records: bool,
    /// `encoding: utf8bom`: a UTF-8 byte order mark at a file's start is skipped.
    pub strip_bom: bool,
    /// `empty_as_string`: an empty CSV text cell is an empty string, not a null.
    pub empty_as_string: bool,
    /// `include_path_column`: this column (Azure's `Path`) holds each row's
    /// file, its name relative to the input folder.
    pub path_column: Option<String>,
    /// The columns read from the files and the type each is read as (CSV:
    /// every column, in the file's order; Parquet and JSON Lines: the ones
    /// the job uses). Empty: the job's columns are read directly.
    pub file_columns: Vec<(String, ColumnKind)>,
    /// Columns converted after reading (each read as text).
    pub conversions: Vec<(String, Conversion)>,
    /// `take`: the rows of the whole table are limited to the first this many.
    pub take: Option<u64>,
}

impl ReadOptions {
    /// Whether rows are reshaped after parsing (an MLTable planned the job).
    pub fn shaped(&self) -> bool {
        !self.file_columns.is_empty()
    }
}

/// One entry of `paths`, relative to the MLTable file, `/`-separated, normalised.
#[derive(Debug, Clone, PartialEq)]
pub enum PathEntry {
    /// `file:` one file.
    File(String),
    /// `folder:` every file below the folder (`""`: the whole input).
    Folder(String),
    /// `pattern:` the files whose names match.
    Pattern(Glob),
}

/// The read transformation of an MLTable.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadSpec {
    /// Which reader.
    pub format: TableFormat,
    /// CSV delimiter.
    pub delimiter: u8,
    /// CSV header mode.
    pub header: HeaderMode,
    /// `utf8bom`.
    pub strip_bom: bool,
    /// CSV `empty_as_string`.
    pub empty_as_string: bool,
    /// CSV `support_multi_line`.
    pub multi_line: bool,
    /// CSV `infer_column_types` (false: every column is text).
    pub infer_types: bool,
    /// The path column's name, with `include_path_column`.
    pub path_column: Option<String>,
    /// The key of the read transformation, for messages.
    pub key: String,
}

/// A column transformation, with its key.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// `keep_columns`.
    Keep(Vec<String>),
    /// `drop_columns`.
    Drop(Vec<String>),
    /// `convert_column_types`: columns and what they become.
    Convert(Vec<(Vec<String>, Conversion)>),
}

/// A parsed `MLTable` file.
#[derive(Debug, Clone, PartialEq)]
pub struct MlTable {
    /// The file's name as listed (for messages).
    pub file: String,
    /// SHA-256 of its bytes, hex.
    pub hash: String,
    /// `paths`, each with its key.
    pub paths: Vec<(String, PathEntry)>,
    /// The read transformation, if any.
    pub read: Option<ReadSpec>,
    /// The column transformations in order, each with its key.
    pub steps: Vec<(String, Step)>,
    /// The smallest `take`.
    pub take: Option<u64>,
}

/// The job's columns an MLTable gives, and how to read them.
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// The job's columns and their types, in order.
    pub columns: Vec<(String, ColumnKind)>,
    /// The options for the readers.
    pub options: ReadOptions,
}

const TRANSFORMATIONS: &str = "supported transformations: read_delimited, read_parquet, read_json_lines, \
                               keep_columns, drop_columns, convert_column_types, take";

struct Ctx<'a> {
    file: &'a str,
}

impl Ctx<'_> {
    fn invalid(&self, key: &str, problem: impl Into<String>) -> MlTableError {
        MlTableError::Invalid { file: self.file.to_string(), key: key.to_string(), problem: problem.into() }
    }

    fn unsupported(&self, key: &str, what: impl Into<String>, supported: impl Into<String>) -> MlTableError {
        MlTableError::Unsupported {
            file: self.file.to_string(),
            key: key.to_string(),
            what: what.into(),
            supported: supported.into(),
        }
    }

    /// A mapping's entries with string keys, or an error naming `key`.
    fn mapping<'v>(&self, key: &str, v: &'v Value) -> Result<Vec<(&'v str, &'v Value)>, MlTableError> {
        let Value::Mapping(m) = v else {
            return Err(self.invalid(key, format!("expected a mapping, found {}", kind(v))));
        };
        m.iter()
            .map(|(k, v)| match k.as_str() {
                Some(k) => Ok((k, v)),
                None => Err(self.invalid(key, format!("a key must be a string, found {}", kind(k)))),
            })
            .collect()
    }

    fn string(&self, key: &str, v: &Value) -> Result<String, MlTableError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(self.invalid(key, format!("expected a string, found {}", kind(other)))),
        }
    }

    fn boolean(&self, key: &str, v: &Value) -> Result<bool, MlTableError> {
        match v {
            Value::Bool(b) => Ok(*b),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
            other => Err(self.invalid(key, format!("expected true or false, found {}", shown(other)))),
        }
    }

    /// A column name or a list of them.
    fn columns(&self, key: &str, v: &Value) -> Result<Vec<String>, MlTableError> {
        let names = match v {
            Value::Sequence(s) => {
                if s.len() > MAX_COLUMNS {
                    return Err(self.invalid(key, format!("more than {MAX_COLUMNS} columns")));
                }
                s.iter().enumerate().map(|(i, x)| self.string(&format!("{key}[{i}]"), x)).collect::<Result<_, _>>()?
            }
            Value::Null => Vec::new(),
            other => vec![self.string(key, other)?],
        };
        if names.is_empty() {
            return Err(self.invalid(key, "names no column"));
        }
        Ok(names)
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("`{}`", sluice_job::text::guest_text(s, 80)),
        Value::Number(n) => format!("`{n}`"),
        other => kind(other).to_string(),
    }
}

/// One of `options` for `key`, or an error listing them.
fn one_of<'o>(ctx: &Ctx<'_>, key: &str, value: &str, options: &[&'o str]) -> Result<&'o str, MlTableError> {
    options
        .iter()
        .find(|o| **o == value)
        .copied()
        .ok_or_else(|| ctx.invalid(key, format!("`{value}`: expected one of {}", options.join(", "))))
}

fn unknown_key(ctx: &Ctx<'_>, key: &str, name: &str, known: &[&str]) -> MlTableError {
    ctx.invalid(&format!("{key}.{name}"), format!("unknown key `{name}` (known: {})", known.join(", ")))
}

impl MlTable {
    /// Parses the bytes of the MLTable file `file` (its name as listed).
    pub fn parse(file: &str, bytes: &[u8]) -> Result<MlTable, MlTableError> {
        use sha2::Digest;
        let ctx = Ctx { file };
        if bytes.len() as u64 > MAX_MLTABLE_BYTES {
            return Err(MlTableError::Read {
                file: file.to_string(),
                message: format!("{} bytes, over the cap of {MAX_MLTABLE_BYTES} bytes on an MLTable file", bytes.len()),
            });
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|e| MlTableError::Yaml { file: file.to_string(), message: format!("not UTF-8 text ({e})") })?;
        // Too deep a nesting costs the YAML parser more than linear time.
        sluice_job::spec::check_spec_shape(text)
            .map_err(|message| MlTableError::Yaml { file: file.to_string(), message })?;
        let doc: Value = serde_yaml_ng::from_str(text)
            .map_err(|e| MlTableError::Yaml { file: file.to_string(), message: e.to_string() })?;
        let top = match &doc {
            Value::Mapping(_) => ctx.mapping("(top level)", &doc)?,
            other => {
                return Err(MlTableError::Yaml {
                    file: file.to_string(),
                    message: format!("expected a mapping with `paths`, found {}", kind(other)),
                });
            }
        };
        let mut table = MlTable {
            file: file.to_string(),
            hash: hex::encode(sha2::Sha256::digest(bytes)),
            paths: Vec::new(),
            read: None,
            steps: Vec::new(),
            take: None,
        };
        let mut saw_paths = false;
        for (k, v) in top {
            match k {
                "$schema" | "traits" | "metadata" => {}
                "type" => {
                    if v.as_str() != Some("mltable") {
                        return Err(ctx.invalid("type", format!("{}: expected `mltable`", shown(v))));
                    }
                }
                "paths" => {
                    saw_paths = true;
                    table.paths = parse_paths(&ctx, v)?;
                }
                "transformations" => parse_transformations(&ctx, v, &mut table)?,
                other => {
                    return Err(ctx.invalid(
                        other,
                        format!(
                            "unknown key `{other}` (an MLTable file has type, paths, transformations, traits, \
                             metadata)"
                        ),
                    ));
                }
            }
        }
        if !saw_paths || table.paths.is_empty() {
            return Err(ctx.invalid("paths", "missing: an MLTable file names its data (file, folder or pattern)"));
        }
        Ok(table)
    }

    /// The indices of the data files among the listed `items` (the input
    /// folder's listing, in its sorted order): each matched file once, in
    /// that order. A `file` that is not there, or a `folder` or `pattern`
    /// that matches nothing, is an error naming it.
    pub fn select(&self, items: &[InputItem]) -> Result<Vec<usize>, MlTableError> {
        let ctx = Ctx { file: &self.file };
        let mut keep = vec![false; items.len()];
        let data = |i: &InputItem| i.name != MLTABLE_FILE;
        for (key, entry) in &self.paths {
            let mut any = false;
            match entry {
                PathEntry::File(p) => {
                    if p == MLTABLE_FILE {
                        return Err(ctx.invalid(key, "names the MLTable file itself, which is not data"));
                    }
                    for (i, it) in items.iter().enumerate() {
                        if it.name == *p {
                            keep[i] = true;
                            any = true;
                        }
                    }
                    if !any {
                        let folder = format!("{p}/");
                        return Err(if items.iter().any(|i| i.name.starts_with(&folder)) {
                            ctx.invalid(key, format!("`{p}` is a folder: use `folder: ./{p}`"))
                        } else {
                            ctx.invalid(key, format!("`{p}`: no such file in the input folder"))
                        });
                    }
                }
                PathEntry::Folder(p) => {
                    let prefix = if p.is_empty() { String::new() } else { format!("{p}/") };
                    for (i, it) in items.iter().enumerate() {
                        if data(it) && it.name.starts_with(&prefix) {
                            keep[i] = true;
                            any = true;
                        }
                    }
                    if !any {
                        return Err(ctx.invalid(key, format!("`{}`: no data files in this folder", show_path(p))));
                    }
                }
                PathEntry::Pattern(g) => {
                    for (i, it) in items.iter().enumerate() {
                        if data(it) && g.matches(&it.name) {
                            keep[i] = true;
                            any = true;
                        }
                    }
                    if !any {
                        return Err(ctx.invalid(key, format!("`{}` matches no file in the input folder", g.text)));
                    }
                }
            }
        }
        Ok(keep.iter().enumerate().filter(|(_, k)| **k).map(|(i, _)| i).collect())
    }

    /// How the files are read, before their columns are known (the read
    /// transformation's options; `first_file` is the first data file).
    pub fn layout(&self, first_file: Option<&str>) -> ReadOptions {
        let mut options = ReadOptions {
            mltable: Some((self.file.clone(), self.hash.clone())),
            first_file: first_file.map(str::to_string),
            take: self.take,
            ..ReadOptions::default()
        };
        if let Some(r) = &self.read {
            options.format = Some(r.format);
            options.delimiter = Some(r.delimiter);
            options.header = r.header;
            options.line_records = r.format == TableFormat::Csv && !r.multi_line;
            options.strip_bom = r.strip_bom;
            options.empty_as_string = r.empty_as_string;
            options.path_column = r.path_column.clone();
        }
        options
    }

    /// The job's columns and the readers' options, from the columns the
    /// files hold (`file_columns`, as read: the first file's, or the union
    /// of all headers) and the transformations, applied in order. A column
    /// a transformation names that is not there is an error naming it.
    pub fn shape(
        &self,
        file_columns: &[(String, ColumnKind)],
        first_file: Option<&str>,
    ) -> Result<Shape, MlTableError> {
        let ctx = Ctx { file: &self.file };
        if file_columns.len() > MAX_COLUMNS {
            return Err(ctx.invalid("paths", format!("the files have more than {MAX_COLUMNS} columns")));
        }
        let mut cols: Vec<(String, ColumnKind)> = file_columns.to_vec();
        let mut options = self.layout(first_file);
        if let (Some(r), Some(p)) = (&self.read, &options.path_column) {
            if cols.iter().any(|(c, _)| c == p) {
                return Err(ctx.invalid(
                    &format!("{}.path_column", r.key),
                    format!("the files already have a column `{p}`: name the path column otherwise"),
                ));
            }
            cols.push((p.clone(), ColumnKind::Utf8));
        }
        let known = |cols: &[(String, ColumnKind)], key: &str, name: &str| -> Result<usize, MlTableError> {
            cols.iter().position(|(c, _)| c == name).ok_or_else(|| {
                let names: Vec<&str> = cols.iter().take(50).map(|(c, _)| c.as_str()).collect();
                ctx.invalid(key, format!("no column `{name}` (the table has {})", names.join(", ")))
            })
        };
        let mut conversions: Vec<(String, Conversion)> = Vec::new();
        for (key, step) in &self.steps {
            match step {
                Step::Keep(names) => {
                    for n in names {
                        known(&cols, key, n)?;
                    }
                    cols.retain(|(c, _)| names.contains(c));
                }
                Step::Drop(names) => {
                    for n in names {
                        known(&cols, key, n)?;
                    }
                    cols.retain(|(c, _)| !names.contains(c));
                }
                Step::Convert(list) => {
                    for (names, conv) in list {
                        for n in names {
                            let at = known(&cols, key, n)?;
                            cols[at].1 = conv.kind();
                            conversions.retain(|(c, _)| c != n);
                            conversions.push((n.clone(), conv.clone()));
                        }
                    }
                }
            }
        }
        if cols.is_empty() {
            return Err(ctx.invalid("transformations", "no column is left"));
        }
        conversions.retain(|(c, _)| cols.iter().any(|(k, _)| k == c));
        let used = |name: &str| cols.iter().any(|(c, _)| c == name);
        let converted = |name: &str| conversions.iter().any(|(c, _)| c == name);
        let csv = self.read.as_ref().is_none_or(|r| r.format == TableFormat::Csv);
        // CSV is read by position: every column, the ones not used as text
        // (they never fail a row). Parquet and JSON Lines by name: only
        // the ones used. A converted column is read as text and converted.
        options.file_columns = file_columns
            .iter()
            .filter(|(c, _)| csv || used(c))
            .map(|(c, k)| (c.clone(), if !used(c) || converted(c) { ColumnKind::Utf8 } else { *k }))
            .collect();
        if options.file_columns.is_empty() {
            // Only the path column is used: read one column for the row count.
            if let Some(first) = file_columns.first() {
                options.file_columns.push((first.0.clone(), ColumnKind::Utf8));
            }
        }
        options.conversions = conversions;
        Ok(Shape { columns: cols, options })
    }
}

fn show_path(p: &str) -> String {
    if p.is_empty() { "./".to_string() } else { format!("./{p}") }
}

fn parse_paths(ctx: &Ctx<'_>, v: &Value) -> Result<Vec<(String, PathEntry)>, MlTableError> {
    let Value::Sequence(list) = v else {
        return Err(ctx.invalid("paths", format!("expected a list of file, folder or pattern, found {}", kind(v))));
    };
    if list.len() > MAX_PATHS {
        return Err(ctx.invalid("paths", format!("{} entries, over the limit of {MAX_PATHS}", list.len())));
    }
    let mut out = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let key = format!("paths[{i}]");
        let m = ctx.mapping(&key, e)?;
        if m.len() != 1 {
            return Err(ctx.invalid(&key, "expected exactly one of file, folder, pattern"));
        }
        let (k, v) = m[0];
        let key = format!("{key}.{k}");
        let text = ctx.string(&key, v)?;
        let segments = normalise(ctx, &key, &text)?;
        let entry = match k {
            "file" => {
                if segments.is_empty() {
                    return Err(ctx.invalid(&key, "names no file"));
                }
                PathEntry::File(segments.join("/"))
            }
            "folder" => PathEntry::Folder(segments.join("/")),
            "pattern" => PathEntry::Pattern(
                Glob::new(&segments, text.clone())
                    .map_err(|why| ctx.invalid(&key, format!("`{text}` is not a glob pattern: {why}")))?,
            ),
            other => {
                return Err(ctx.invalid(&key, format!("unknown key `{other}` (a path is a file, folder or pattern)")));
            }
        };
        out.push((key, entry));
    }
    Ok(out)
}

/// A path relative to the MLTable file as its `/`-separated names: `.` and
/// empty names dropped, `..` going up, never above the input folder.
fn normalise(ctx: &Ctx<'_>, key: &str, text: &str) -> Result<Vec<String>, MlTableError> {
    if text.len() > MAX_PATH_BYTES {
        return Err(ctx.invalid(key, format!("{} bytes long, over the limit of {MAX_PATH_BYTES}", text.len())));
    }
    let scheme = text.split_once(':').is_some_and(|(s, _)| {
        s.len() > 1 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if text.contains("://") || scheme {
        return Err(ctx.unsupported(
            key,
            format!("`{}`: a URL", sluice_job::text::guest_text(text, 120)),
            "paths are relative to the MLTable file, inside the input folder (point the input itself at the \
             storage URL)",
        ));
    }
    if text.starts_with('/') {
        return Err(ctx.invalid(key, format!("`{text}` is absolute: paths are relative to the MLTable file")));
    }
    let mut out: Vec<String> = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.pop().is_none() {
                    return Err(ctx.invalid(key, format!("`{text}` leaves the input folder")));
                }
            }
            p => out.push(p.to_string()),
        }
    }
    Ok(out)
}

fn parse_transformations(ctx: &Ctx<'_>, v: &Value, table: &mut MlTable) -> Result<(), MlTableError> {
    let list = match v {
        Value::Sequence(l) => l.as_slice(),
        Value::Null => &[],
        other => {
            return Err(ctx.invalid("transformations", format!("expected a list, found {}", kind(other))));
        }
    };
    if list.len() > MAX_TRANSFORMATIONS {
        return Err(
            ctx.invalid("transformations", format!("{} entries, over the limit of {MAX_TRANSFORMATIONS}", list.len()))
        );
    }
    let null = Value::Null;
    for (i, t) in list.iter().enumerate() {
        let at = format!("transformations[{i}]");
        // `- read_parquet` (a name alone) or `- read_parquet: {...}`.
        let (name, args) = match t {
            Value::String(s) => (s.as_str(), &null),
            Value::Mapping(_) => {
                let m = ctx.mapping(&at, t)?;
                if m.len() != 1 {
                    return Err(ctx.invalid(&at, "expected one transformation per entry"));
                }
                m[0]
            }
            other => return Err(ctx.invalid(&at, format!("expected a transformation, found {}", kind(other)))),
        };
        let key = format!("{at}.{name}");
        match name {
            "read_delimited" | "read_parquet" | "read_json_lines" => {
                if table.read.is_some() {
                    return Err(ctx.invalid(&key, "a second read transformation (an MLTable has one)"));
                }
                if !table.steps.is_empty() || table.take.is_some() {
                    return Err(ctx.invalid(&key, "a read transformation must come first"));
                }
                table.read = Some(parse_read(ctx, &key, name, args)?);
            }
            "keep_columns" => table.steps.push((key.clone(), Step::Keep(ctx.columns(&key, args)?))),
            "drop_columns" => table.steps.push((key.clone(), Step::Drop(ctx.columns(&key, args)?))),
            "convert_column_types" => {
                let c = parse_conversions(ctx, &key, args)?;
                table.steps.push((key, Step::Convert(c)));
            }
            "take" => {
                let v = match args {
                    Value::Mapping(_) => {
                        let m = ctx.mapping(&key, args)?;
                        match m.as_slice() {
                            [("count", v)] => *v,
                            _ => return Err(ctx.invalid(&key, "expected a row count (`take: 100`)")),
                        }
                    }
                    v => v,
                };
                let n = v
                    .as_u64()
                    .ok_or_else(|| ctx.invalid(&key, format!("{}: expected a row count (`take: 100`)", shown(v))))?;
                table.take = Some(table.take.map_or(n, |t| t.min(n)));
            }
            other => {
                return Err(ctx.unsupported(&key, format!("the transformation `{other}`"), TRANSFORMATIONS));
            }
        }
    }
    Ok(())
}

fn parse_read(ctx: &Ctx<'_>, key: &str, name: &str, args: &Value) -> Result<ReadSpec, MlTableError> {
    let format = match name {
        "read_delimited" => TableFormat::Csv,
        "read_parquet" => TableFormat::Parquet,
        _ => TableFormat::JsonLines,
    };
    let mut r = ReadSpec {
        format,
        delimiter: b',',
        header: HeaderMode::SameHeaders,
        strip_bom: false,
        empty_as_string: false,
        multi_line: false,
        infer_types: true,
        path_column: None,
        key: key.to_string(),
    };
    let entries = match args {
        Value::Null => Vec::new(),
        _ => ctx.mapping(key, args)?,
    };
    let known: &[&str] = match format {
        TableFormat::Csv => &[
            "delimiter",
            "header",
            "encoding",
            "empty_as_string",
            "include_path_column",
            "path_column",
            "support_multi_line",
            "infer_column_types",
            "partition_size",
        ],
        TableFormat::Parquet => &["include_path_column", "path_column"],
        TableFormat::JsonLines => {
            &["include_path_column", "path_column", "encoding", "invalid_lines", "partition_size"]
        }
    };
    let (mut include_path, mut path_column) = (false, "Path".to_string());
    for (k, v) in entries {
        let kk = format!("{key}.{k}");
        if !known.contains(&k) {
            return Err(unknown_key(ctx, key, k, known));
        }
        match k {
            "delimiter" => {
                let d = ctx.string(&kk, v)?;
                if d.len() != 1 {
                    return Err(ctx.unsupported(
                        &kk,
                        format!("the delimiter {}", shown(v)),
                        "a delimiter is one byte (`,`, `;`, `|`, a tab: \"\\t\")",
                    ));
                }
                r.delimiter = d.as_bytes()[0];
                if matches!(r.delimiter, b'"' | b'\n' | b'\r') {
                    return Err(ctx.invalid(&kk, "a quote or a line break cannot be the delimiter"));
                }
            }
            "header" => {
                let h = ctx.string(&kk, v)?;
                r.header = match one_of(
                    ctx,
                    &kk,
                    &h,
                    &["no_header", "from_first_file", "all_files_same_headers", "all_files_different_headers"],
                )? {
                    "no_header" => HeaderMode::NoHeader,
                    "from_first_file" => HeaderMode::FromFirstFile,
                    "all_files_same_headers" => HeaderMode::SameHeaders,
                    _ => HeaderMode::DifferentHeaders,
                };
            }
            "encoding" => {
                let e = ctx.string(&kk, v)?;
                match e.as_str() {
                    "utf8" | "ascii" => {}
                    "utf8bom" => r.strip_bom = true,
                    "iso88591" | "latin1" | "utf16" | "utf32" | "windows1252" => {
                        return Err(ctx.unsupported(
                            &kk,
                            format!("the encoding `{e}`"),
                            "sluice reads utf8, utf8bom and ascii: convert the files to UTF-8",
                        ));
                    }
                    _ => {
                        one_of(
                            ctx,
                            &kk,
                            &e,
                            &["utf8", "iso88591", "latin1", "ascii", "utf16", "utf32", "utf8bom", "windows1252"],
                        )?;
                    }
                }
            }
            "empty_as_string" => r.empty_as_string = ctx.boolean(&kk, v)?,
            "include_path_column" => include_path = ctx.boolean(&kk, v)?,
            "path_column" => {
                path_column = ctx.string(&kk, v)?;
                if path_column.is_empty() {
                    return Err(ctx.invalid(&kk, "an empty column name"));
                }
            }
            "support_multi_line" => r.multi_line = ctx.boolean(&kk, v)?,
            "infer_column_types" => r.infer_types = ctx.boolean(&kk, v)?,
            "partition_size" => {
                v.as_u64().ok_or_else(|| ctx.invalid(&kk, format!("{}: expected a number of bytes", shown(v))))?;
            }
            "invalid_lines" => {
                let s = ctx.string(&kk, v)?;
                match one_of(ctx, &kk, &s, &["error", "drop"])? {
                    "error" => {}
                    _ => {
                        return Err(ctx.unsupported(
                            &kk,
                            "`invalid_lines: drop`",
                            "`error` (a line that is not JSON fails as an INPUT_ERROR item error naming its file \
                             and row)",
                        ));
                    }
                }
            }
            _ => unreachable!("checked against `known`"),
        }
    }
    if include_path {
        r.path_column = Some(path_column);
    }
    Ok(r)
}

fn parse_conversions(ctx: &Ctx<'_>, key: &str, v: &Value) -> Result<Vec<(Vec<String>, Conversion)>, MlTableError> {
    let Value::Sequence(list) = v else {
        return Err(ctx.invalid(key, format!("expected a list of {{columns, column_type}}, found {}", kind(v))));
    };
    if list.len() > MAX_COLUMNS {
        return Err(ctx.invalid(key, format!("more than {MAX_COLUMNS} entries")));
    }
    let mut out = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let at = format!("{key}[{i}]");
        let (mut columns, mut conv) = (None, None);
        for (k, v) in ctx.mapping(&at, e)? {
            let kk = format!("{at}.{k}");
            match k {
                "columns" => columns = Some(ctx.columns(&kk, v)?),
                "column_type" => conv = Some(parse_column_type(ctx, &kk, v)?),
                other => return Err(unknown_key(ctx, &at, other, &["columns", "column_type"])),
            }
        }
        let columns = columns.ok_or_else(|| ctx.invalid(&at, "missing `columns`"))?;
        let conv = conv.ok_or_else(|| ctx.invalid(&at, "missing `column_type`"))?;
        out.push((columns, conv));
    }
    Ok(out)
}

const COLUMN_TYPES: &str = "column types: int, float, boolean, string, datetime";

fn parse_column_type(ctx: &Ctx<'_>, key: &str, v: &Value) -> Result<Conversion, MlTableError> {
    let null = Value::Null;
    let (name, args) = match v {
        Value::String(s) => (s.as_str(), &null),
        Value::Mapping(_) => {
            let m = ctx.mapping(key, v)?;
            if m.len() != 1 {
                return Err(ctx.invalid(key, "expected one column type"));
            }
            m[0]
        }
        other => return Err(ctx.invalid(key, format!("expected a column type, found {}", kind(other)))),
    };
    let kk = format!("{key}.{name}");
    let entries = match args {
        Value::Null => Vec::new(),
        _ => ctx.mapping(&kk, args)?,
    };
    let no_options = |entries: &[(&str, &Value)]| match entries.first() {
        Some((k, _)) => Err(unknown_key(ctx, &kk, k, &[])),
        None => Ok(()),
    };
    Ok(match name {
        "int" => {
            no_options(&entries)?;
            Conversion::Int
        }
        "float" => {
            no_options(&entries)?;
            Conversion::Float
        }
        "string" => {
            no_options(&entries)?;
            Conversion::String
        }
        "boolean" => {
            let mut true_values = vec!["True".to_string(), "true".to_string(), "1".to_string()];
            let mut false_values = vec!["False".to_string(), "false".to_string(), "0".to_string()];
            let mut mismatch = Mismatch::Error;
            for (k, v) in entries {
                let kv = format!("{kk}.{k}");
                match k {
                    "true_values" => true_values = ctx.columns(&kv, v)?,
                    "false_values" => false_values = ctx.columns(&kv, v)?,
                    "mismatch_as" => {
                        let s = ctx.string(&kv, v)?;
                        mismatch = match one_of(ctx, &kv, &s, &["error", "true", "false"])? {
                            "error" => Mismatch::Error,
                            "true" => Mismatch::True,
                            _ => Mismatch::False,
                        };
                    }
                    other => return Err(unknown_key(ctx, &kk, other, &["true_values", "false_values", "mismatch_as"])),
                }
            }
            Conversion::Boolean { true_values, false_values, mismatch }
        }
        "datetime" => {
            let mut formats = Vec::new();
            for (k, v) in entries {
                let kv = format!("{kk}.{k}");
                match k {
                    "formats" => formats = ctx.columns(&kv, v)?,
                    other => return Err(unknown_key(ctx, &kk, other, &["formats"])),
                }
            }
            for (i, f) in formats.iter().enumerate() {
                if chrono::format::StrftimeItems::new(f).any(|i| i == chrono::format::Item::Error) {
                    return Err(ctx.invalid(&format!("{kk}.formats[{i}]"), format!("`{f}` is not a strftime format")));
                }
            }
            Conversion::DateTime { formats }
        }
        other => return Err(ctx.unsupported(&kk, format!("the column type `{other}`"), COLUMN_TYPES)),
    })
}

/// A `pattern` of `paths`, matched by `globset` against listed names
/// (`/`-separated): `*`, `?` and `[...]` never cross a `/`; `**` stands for
/// any number of folders. globset compiles a pattern to an automaton, so a
/// match is linear in the name whatever the pattern.
#[derive(Debug, Clone)]
pub struct Glob {
    matcher: globset::GlobMatcher,
    /// The pattern as written.
    pub text: String,
}

impl PartialEq for Glob {
    fn eq(&self, other: &Glob) -> bool {
        self.text == other.text
    }
}

impl Glob {
    /// The pattern of `segments` (normalised: no `.`, `..` resolved), or
    /// globset's reason it is not one (an unclosed `[`, say).
    fn new(segments: &[String], text: String) -> Result<Glob, String> {
        let glob = globset::GlobBuilder::new(&segments.join("/"))
            .literal_separator(true)
            .backslash_escape(true)
            .build()
            .map_err(|e| e.kind().to_string())?;
        Ok(Glob { matcher: glob.compile_matcher(), text })
    }

    /// Whether `name` (a listed name, `/`-separated) matches.
    pub fn matches(&self, name: &str) -> bool {
        self.matcher.is_match(name)
    }
}

/// Converts one column as `conv` says (`column` names it in messages).
/// The values are taken as text (a non-text column is cast to text
/// first); an empty or null cell is a null (`string`: an empty string
/// stays one).
pub fn convert(array: &ArrayRef, conv: &Conversion, column: &str) -> Result<ArrayRef, String> {
    let text = if array.data_type() == &DataType::Utf8 {
        array.clone()
    } else {
        arrow_cast::cast(array, &DataType::Utf8).map_err(|e| format!("column `{column}`: {e}"))?
    };
    let s = text.as_any().downcast_ref::<StringArray>().expect("cast to Utf8 gives a StringArray");
    let cell = |i: usize| if s.is_null(i) { None } else { Some(s.value(i)) };
    let bad =
        |v: &str, what: &str| format!("column `{column}`: `{}` is not {what}", sluice_job::text::guest_text(v, 80));
    let n = s.len();
    Ok(match conv {
        Conversion::String => text,
        Conversion::Int => {
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                out.push(match cell(i).map(str::trim) {
                    None | Some("") => None,
                    Some(v) => Some(parse_int(v).ok_or_else(|| bad(v, "an int"))?),
                });
            }
            Arc::new(Int64Array::from(out))
        }
        Conversion::Float => {
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                out.push(match cell(i).map(str::trim) {
                    None | Some("") => None,
                    Some(v) => Some(v.parse::<f64>().map_err(|_| bad(v, "a float"))?),
                });
            }
            Arc::new(Float64Array::from(out))
        }
        Conversion::Boolean { true_values, false_values, mismatch } => {
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                out.push(match cell(i) {
                    None | Some("") => None,
                    Some(v) if true_values.iter().any(|t| t == v) => Some(true),
                    Some(v) if false_values.iter().any(|f| f == v) => Some(false),
                    Some(v) => match mismatch {
                        Mismatch::True => Some(true),
                        Mismatch::False => Some(false),
                        Mismatch::Error => return Err(bad(v, "a boolean (true_values / false_values)")),
                    },
                });
            }
            Arc::new(BooleanArray::from(out))
        }
        Conversion::DateTime { formats } => {
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                out.push(match cell(i).map(str::trim) {
                    None | Some("") => None,
                    Some(v) => Some(
                        parse_datetime(v, formats)
                            .ok_or_else(|| {
                                if formats.is_empty() {
                                    bad(v, "a datetime (ISO 8601; give `formats` for others)")
                                } else {
                                    bad(v, &format!("a datetime in the formats {}", formats.join(", ")))
                                }
                            })?
                            .format("%Y-%m-%dT%H:%M:%S%.f")
                            .to_string(),
                    ),
                });
            }
            Arc::new(StringArray::from(out))
        }
    })
}

fn parse_int(v: &str) -> Option<i64> {
    v.parse::<i64>().ok().or_else(|| {
        // `3.0`: an integral float is an int.
        let f = v.parse::<f64>().ok()?;
        (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
    })
}

fn parse_datetime(v: &str, formats: &[String]) -> Option<chrono::NaiveDateTime> {
    use chrono::{NaiveDate, NaiveDateTime};
    if formats.is_empty() {
        if let Ok(d) = arrow_cast::parse::string_to_datetime(&chrono::Utc, v) {
            return Some(d.naive_utc());
        }
        return NaiveDate::parse_from_str(v, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0));
    }
    formats.iter().find_map(|f| {
        NaiveDateTime::parse_from_str(v, f)
            .ok()
            .or_else(|| NaiveDate::parse_from_str(v, f).ok().and_then(|d| d.and_hms_opt(0, 0, 0)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<MlTable, MlTableError> {
        MlTable::parse("MLTable", text.as_bytes())
    }

    fn items(names: &[&str]) -> Vec<InputItem> {
        names
            .iter()
            .map(|n| InputItem { name: n.to_string(), path: n.into(), size: 1, modified_ns: 0, refused: None })
            .collect()
    }

    fn selected(t: &MlTable, names: &[&str]) -> Vec<String> {
        let it = items(names);
        t.select(&it).unwrap().into_iter().map(|i| it[i].name.clone()).collect()
    }

    fn glob(p: &str) -> Glob {
        let ctx = Ctx { file: "MLTable" };
        Glob::new(&normalise(&ctx, "k", p).unwrap(), p.to_string()).unwrap()
    }

    #[test]
    fn globs_match_name_by_name() {
        assert!(glob("./*.csv").matches("a.csv"));
        assert!(!glob("./*.csv").matches("sub/a.csv"));
        assert!(glob("**/*.csv").matches("a.csv"));
        assert!(glob("**/*.csv").matches("x/y/a.csv"));
        assert!(glob("data/**/part-?.csv").matches("data/2024/01/part-3.csv"));
        assert!(!glob("data/**/part-?.csv").matches("data/2024/01/part-33.csv"));
        assert!(glob("p[0-9][!x].csv").matches("p1a.csv"));
        assert!(!glob("p[0-9][!x].csv").matches("p1x.csv"));
        assert!(glob("[]]*").matches("]a"));
        assert!(Glob::new(&["a[b".into()], "a[b".into()).is_err(), "an unclosed class is refused");
        assert!(glob("*a*b*c*").matches("xxaxxbxxcxx"));
        assert!(!glob("*a*b*c*").matches("xxaxxbxx"));
        assert!(glob("sub/../*.csv").matches("a.csv"));
        // Adversarial: many stars against a long name stays quick.
        let long = "a".repeat(4000);
        assert!(!glob(&format!("{}b", "*a".repeat(200))).matches(&long));
    }

    #[test]
    fn paths_select_sorted_unique_data_files() {
        let t = parse(
            "paths:\n  - pattern: ./*.csv\n  - file: ./b.csv\n  - folder: ./sub\ntransformations:\n  - read_delimited\n",
        )
        .unwrap();
        let names = ["MLTable", "a.csv", "b.csv", "notes.txt", "sub/c.tsv", "sub/deep/d.csv"];
        assert_eq!(selected(&t, &names), ["a.csv", "b.csv", "sub/c.tsv", "sub/deep/d.csv"]);
        let all = parse("paths:\n  - folder: ./\n").unwrap();
        assert_eq!(selected(&all, &names), ["a.csv", "b.csv", "notes.txt", "sub/c.tsv", "sub/deep/d.csv"]);
        let star = parse("paths:\n  - pattern: '*'\n").unwrap();
        assert_eq!(selected(&star, &names), ["a.csv", "b.csv", "notes.txt"]);
    }

    #[test]
    fn a_deeply_nested_mltable_is_refused_before_it_is_parsed() {
        // The message is the shape check's: the YAML parser never saw it.
        let e = parse(&"[".repeat(500_000)).unwrap_err().to_string();
        assert!(e.contains("nested deeper than 64"), "{e}");
    }

    #[test]
    fn bad_paths_are_errors_naming_the_key() {
        let e = |text: &str, names: &[&str]| -> String {
            match parse(text) {
                Err(e) => e.to_string(),
                Ok(t) => t.select(&items(names)).unwrap_err().to_string(),
            }
        };
        let names = ["MLTable", "a.csv", "sub/b.csv"];
        assert_eq!(
            e("paths:\n  - file: ./nope.csv\n", &names),
            "MLTable: `paths[0].file`: `nope.csv`: no such file in the input folder"
        );
        assert!(e("paths:\n  - file: ./sub\n", &names).contains("is a folder: use `folder: ./sub`"));
        assert!(e("paths:\n  - pattern: ./*.parquet\n", &names).contains("matches no file"));
        assert!(e("paths:\n  - file: ../secret.csv\n", &names).contains("leaves the input folder"));
        assert!(e("paths:\n  - file: /etc/passwd\n", &names).contains("is absolute"));
        let url = e("paths:\n  - file: https://example.com/x.csv\n", &names);
        assert!(
            url.starts_with("MLTable: `paths[0].file`: `https://example.com/x.csv`: a URL is not supported"),
            "{url}"
        );
        assert!(e("paths:\n  - file: azureml://datastores/x/paths/a.csv\n", &names).contains("a URL"));
        assert!(e("paths:\n  - file: MLTable\n", &names).contains("the MLTable file itself"));
        assert!(e("paths:\n  - files: a.csv\n", &names).contains("unknown key `files`"));
        assert!(e("transformations: []\n", &names).contains("`paths`: missing"));
        assert!(e("paths: [{file: a.csv}]\nbogus: 1\n", &names).contains("`bogus`: unknown key"));
        let many = format!("paths:\n{}", "  - file: a.csv\n".repeat(MAX_PATHS + 1));
        assert!(e(&many, &names).contains("over the limit of 256"));
        assert!(e("paths: [", &names).contains("not a valid MLTable file"));
        let big = vec![b' '; MAX_MLTABLE_BYTES as usize + 1];
        assert!(MlTable::parse("MLTable", &big).unwrap_err().to_string().contains("over the cap"));
    }

    #[test]
    fn transformations_parse_with_azure_defaults() {
        let t = parse(
            "type: mltable\npaths: [{file: a.csv}]\ntransformations:\n  - read_delimited:\n      delimiter: ';'\n      \
             header: no_header\n      encoding: utf8bom\n      include_path_column: true\n      \
             support_multi_line: True\n      partition_size: 100\n  - drop_columns: Column2\n  - take: 5\n  - take: 9\n",
        )
        .unwrap();
        let r = t.read.clone().unwrap();
        assert_eq!((r.format, r.delimiter, r.header), (TableFormat::Csv, b';', HeaderMode::NoHeader));
        assert!(r.strip_bom && r.multi_line && !r.empty_as_string && r.infer_types);
        assert_eq!(r.path_column.as_deref(), Some("Path"));
        assert_eq!(t.take, Some(5));
        assert_eq!(t.steps, [("transformations[1].drop_columns".to_string(), Step::Drop(vec!["Column2".into()]))]);
        let p = parse("paths: [{pattern: '*.parquet'}]\ntransformations: [read_parquet]\n").unwrap();
        assert_eq!(p.read.unwrap().format, TableFormat::Parquet);
        let d = parse("paths: [{file: a.csv}]\ntransformations: [read_delimited]\n").unwrap().read.unwrap();
        assert_eq!((d.delimiter, d.header, d.multi_line), (b',', HeaderMode::SameHeaders, false));
    }

    #[test]
    fn unsupported_transformations_and_options_name_themselves() {
        let e = |t: &str| parse(&format!("paths: [{{file: a.csv}}]\ntransformations:\n{t}")).unwrap_err().to_string();
        assert_eq!(
            e("  - read_delimited\n  - filter: 'col(\"a\") > 1'\n"),
            format!(
                "MLTable: `transformations[1].filter`: the transformation `filter` is not supported; {TRANSFORMATIONS}"
            )
        );
        assert!(e("  - take_random_sample: {probability: 0.5}\n").contains("`take_random_sample` is not supported"));
        assert!(e("  - read_delta_lake: {}\n").contains("`transformations[0].read_delta_lake`"));
        assert!(e("  - read_delimited: {encoding: latin1}\n").contains("the encoding `latin1` is not supported"));
        assert!(e("  - read_delimited: {encoding: klingon}\n").contains("expected one of utf8,"));
        assert!(e("  - read_delimited: {header: sometimes}\n").contains("`transformations[0].read_delimited.header`"));
        assert!(e("  - read_delimited: {delimiter: '::'}\n").contains("a delimiter is one byte"));
        assert!(e("  - read_delimited: {delimeter: ','}\n").contains("unknown key `delimeter`"));
        assert!(e("  - read_json_lines: {invalid_lines: drop}\n").contains("`invalid_lines: drop` is not supported"));
        assert!(e("  - take: 1\n  - read_parquet\n").contains("must come first"));
        assert!(e("  - read_parquet\n  - read_parquet\n").contains("a second read transformation"));
        assert!(e("  - take: -1\n").contains("expected a row count"));
        let c = e("  - convert_column_types:\n    - columns: a\n      column_type: decimal\n");
        assert!(c.contains("`transformations[0].convert_column_types[0].column_type.decimal`"), "{c}");
        assert!(c.contains("the column type `decimal` is not supported"), "{c}");
        let f = e("  - convert_column_types:\n    - columns: a\n      column_type: {datetime: {formats: ['%Q']}}\n");
        assert!(f.contains("is not a strftime format"), "{f}");
    }

    #[test]
    fn shape_applies_column_transformations_in_order() {
        let t = parse(
            "paths: [{file: a.csv}]\ntransformations:\n  - read_delimited: {include_path_column: true}\n  \
             - convert_column_types:\n    - columns: [a, b]\n      column_type: float\n    - columns: d\n      \
             column_type: {datetime: {formats: ['%d/%m/%Y']}}\n  - drop_columns: [b]\n  - keep_columns: [Path, a, c, d]\n",
        )
        .unwrap();
        let file =
            [("a", ColumnKind::Int64), ("b", ColumnKind::Int64), ("c", ColumnKind::Utf8), ("d", ColumnKind::Utf8)]
                .map(|(n, k)| (n.to_string(), k));
        let s = t.shape(&file, Some("a.csv")).unwrap();
        let cols: Vec<(&str, ColumnKind)> = s.columns.iter().map(|(n, k)| (n.as_str(), *k)).collect();
        // keep_columns keeps the table's order.
        assert_eq!(
            cols,
            [("a", ColumnKind::Float64), ("c", ColumnKind::Utf8), ("d", ColumnKind::Utf8), ("Path", ColumnKind::Utf8)]
        );
        // CSV reads every column by position; converted and unused ones as text.
        let read: Vec<(&str, ColumnKind)> = s.options.file_columns.iter().map(|(n, k)| (n.as_str(), *k)).collect();
        assert_eq!(
            read,
            [("a", ColumnKind::Utf8), ("b", ColumnKind::Utf8), ("c", ColumnKind::Utf8), ("d", ColumnKind::Utf8)]
        );
        let conv: Vec<&str> = s.options.conversions.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(conv, ["a", "d"]);
        assert_eq!(s.options.path_column.as_deref(), Some("Path"));
        let bad = parse("paths: [{file: a.csv}]\ntransformations:\n  - keep_columns: [a, zz]\n").unwrap();
        assert_eq!(
            bad.shape(&file, None).unwrap_err().to_string(),
            "MLTable: `transformations[0].keep_columns`: no column `zz` (the table has a, b, c, d)"
        );
        let clash = parse("paths: [{file: a.csv}]\ntransformations:\n  - read_delimited: {include_path_column: true, path_column: a}\n").unwrap();
        assert!(clash.shape(&file, None).unwrap_err().to_string().contains("already have a column `a`"));
    }

    #[test]
    fn conversions_convert_text_and_fail_on_bad_cells() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some("1"), None, Some(""), Some(" 7 "), Some("3.0")]));
        let got = convert(&a, &Conversion::Int, "n").unwrap();
        let want: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None, None, Some(7), Some(3)]));
        assert_eq!(&got, &want);
        let bad: ArrayRef = Arc::new(StringArray::from(vec!["1", "x"]));
        assert_eq!(convert(&bad, &Conversion::Int, "n").unwrap_err(), "column `n`: `x` is not an int");
        let b: ArrayRef = Arc::new(StringArray::from(vec![Some("yes"), Some("no"), Some("maybe"), None]));
        let conv = Conversion::Boolean {
            true_values: vec!["yes".into()],
            false_values: vec!["no".into()],
            mismatch: Mismatch::False,
        };
        let want: ArrayRef = Arc::new(BooleanArray::from(vec![Some(true), Some(false), Some(false), None]));
        assert_eq!(&convert(&b, &conv, "f").unwrap(), &want);
        let d: ArrayRef = Arc::new(StringArray::from(vec![Some("31/01/2024"), Some("")]));
        let conv = Conversion::DateTime { formats: vec!["%d/%m/%Y %H:%M".into(), "%d/%m/%Y".into()] };
        let want: ArrayRef = Arc::new(StringArray::from(vec![Some("2024-01-31T00:00:00"), None]));
        assert_eq!(&convert(&d, &conv, "d").unwrap(), &want);
        let iso: ArrayRef =
            Arc::new(StringArray::from(vec!["2024-01-31", "2024-01-31T08:30:00.5Z", "2024-01-31 08:30:00+01:00"]));
        let want: ArrayRef =
            Arc::new(StringArray::from(vec!["2024-01-31T00:00:00", "2024-01-31T08:30:00.500", "2024-01-31T07:30:00"]));
        assert_eq!(&convert(&iso, &Conversion::DateTime { formats: vec![] }, "d").unwrap(), &want);
        let nums: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        let want: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 2.0]));
        assert_eq!(&convert(&nums, &Conversion::Float, "x").unwrap(), &want);
    }
}
