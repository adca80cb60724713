//! Conveniences on the generated WIT types.

use crate::{Column, ColumnData, Config, Error, FileItem, Items, MiniBatch, Table};

impl Error {
    /// An error with this message.
    pub fn msg(message: impl std::fmt::Display) -> Error {
        Error { message: message.to_string() }
    }
}

impl From<String> for Error {
    fn from(message: String) -> Error {
        Error { message }
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Error {
        Error { message: message.to_string() }
    }
}

impl Config {
    /// A `task.config` value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.settings.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A `task.config` value that must be present.
    pub fn require(&self, key: &str) -> Result<&str, Error> {
        self.get(key).ok_or_else(|| Error::msg(format!("task.config.{key} is required")))
    }

    /// A `task.config` value parsed as `T`, or `default` when absent.
    pub fn parse_or<T: std::str::FromStr>(&self, key: &str, default: T) -> Result<T, Error>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e| Error::msg(format!("task.config.{key} = `{v}`: {e}"))),
        }
    }

    /// An `environment_variables` value.
    pub fn env(&self, key: &str) -> Option<&str> {
        self.environment.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

impl MiniBatch {
    /// The files of a file mini-batch (empty for tabular input).
    pub fn files(&self) -> &[FileItem] {
        match &self.items {
            Items::Files(f) => f,
            Items::Rows(_) => &[],
        }
    }

    /// The number of items (files or rows).
    pub fn len(&self) -> usize {
        match &self.items {
            Items::Files(f) => f.len(),
            Items::Rows(t) => t.rows.num_rows as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl MiniBatch {
    /// The rows of a tabular mini-batch (`None` for file input).
    pub fn rows(&self) -> Option<&crate::TableItems> {
        match &self.items {
            Items::Rows(t) => Some(t),
            Items::Files(_) => None,
        }
    }
}

impl crate::TableItems {
    /// The source file of row `i` (its path relative to the input).
    pub fn source_of(&self, i: usize) -> &str {
        &self.sources[self.row_source[i] as usize]
    }

    /// A text column holding the source file of each of `rows`.
    pub fn source_column(&self, name: &str, rows: &[u32]) -> Column {
        Column {
            name: name.to_string(),
            data: ColumnData::String(rows.iter().map(|&r| self.source_of(r as usize).to_string()).collect()),
            valid: None,
        }
    }
}

impl crate::BatchResult {
    /// A result built column by column: `columns` hold one value per entry
    /// of `row_items` (the input item of each output row).
    pub fn from_columns(
        row_items: Vec<u32>,
        columns: Vec<Column>,
        errors: Vec<crate::ItemError>,
    ) -> crate::BatchResult {
        crate::BatchResult { rows: Table { num_rows: row_items.len() as u32, columns }, row_items, errors }
    }
}

impl FileItem {
    /// The contents as UTF-8, or an error naming the file.
    pub fn text(&self) -> Result<&str, String> {
        std::str::from_utf8(&self.data).map_err(|e| format!("{} is not UTF-8 text: {e}", self.name))
    }
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

impl Column {
    pub fn is_null(&self, row: usize) -> bool {
        self.valid.as_ref().is_some_and(|v| !v[row])
    }

    pub fn f64s(&self) -> Option<&[f64]> {
        match &self.data {
            ColumnData::F64(v) => Some(v),
            _ => None,
        }
    }

    pub fn f32s(&self) -> Option<&[f32]> {
        match &self.data {
            ColumnData::F32(v) => Some(v),
            _ => None,
        }
    }

    pub fn s64s(&self) -> Option<&[i64]> {
        match &self.data {
            ColumnData::S64(v) => Some(v),
            _ => None,
        }
    }

    pub fn strings(&self) -> Option<&[String]> {
        match &self.data {
            ColumnData::String(v) => Some(v),
            _ => None,
        }
    }

    pub fn bools(&self) -> Option<&[bool]> {
        match &self.data {
            ColumnData::Bool(v) => Some(v),
            _ => None,
        }
    }
}
