//! Data that crosses the scorer boundary, in host form: tables of bulk typed
//! columns (the WIT `table`), per-item errors and a mini-batch's output.

/// The values of one column, one typed vector each (never one enum per cell).
#[derive(Debug, Clone, PartialEq)]
pub enum ColumnData {
    /// WIT `f32` values.
    F32(Vec<f32>),
    /// WIT `f64` values.
    F64(Vec<f64>),
    /// WIT `s64` values.
    S64(Vec<i64>),
    /// WIT `string` values.
    String(Vec<String>),
    /// WIT `bool` values.
    Bool(Vec<bool>),
}

impl ColumnData {
    /// The number of values.
    pub fn len(&self) -> usize {
        match self {
            ColumnData::F32(v) => v.len(),
            ColumnData::F64(v) => v.len(),
            ColumnData::S64(v) => v.len(),
            ColumnData::String(v) => v.len(),
            ColumnData::Bool(v) => v.len(),
        }
    }

    /// Whether the column has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The type's name as the WIT and error messages spell it.
    pub fn type_name(&self) -> &'static str {
        match self {
            ColumnData::F32(_) => "f32",
            ColumnData::F64(_) => "f64",
            ColumnData::S64(_) => "s64",
            ColumnData::String(_) => "string",
            ColumnData::Bool(_) => "bool",
        }
    }

    /// Approximate bytes held, for the output cap.
    pub fn byte_size(&self) -> usize {
        match self {
            ColumnData::F32(v) => v.len() * 4,
            ColumnData::F64(v) => v.len() * 8,
            ColumnData::S64(v) => v.len() * 8,
            ColumnData::String(v) => v.iter().map(|s| s.len() + 8).sum(),
            ColumnData::Bool(v) => v.len(),
        }
    }
}

/// The static type name for a name read back from a file (`"f64"`...);
/// unknown names map to `"string"`.
pub fn type_name(name: &str) -> &'static str {
    match name {
        "f32" => "f32",
        "f64" => "f64",
        "s64" => "s64",
        "bool" => "bool",
        _ => "string",
    }
}

/// `(name, type)` of each column of a table.
pub type Schema = Vec<(String, &'static str)>;

/// A named column; `valid` is `None` when there are no nulls, else one flag
/// per row (`false` = null).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The column's name, unique in its table.
    pub name: String,
    /// The values, one per row (a null's slot holds a default).
    pub data: ColumnData,
    /// Per row, whether it is set; `None` when no value is null.
    pub valid: Option<Vec<bool>>,
}

/// A table of equally long columns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Table {
    /// The number of rows every column has.
    pub num_rows: usize,
    /// The columns, in order.
    pub columns: Vec<Column>,
}

impl Table {
    /// Checks that every column (and validity mask) has `num_rows` entries
    /// and that names are unique; the message names the offending column.
    pub fn validate(&self) -> Result<(), String> {
        // Rows without columns would fix the job's output to no columns
        // (and a CSV to one empty-named column): every later mini-batch
        // with real columns would then fail.
        if self.columns.is_empty() && self.num_rows > 0 {
            return Err(format!("the result has {} rows but no columns", self.num_rows));
        }
        let mut seen = std::collections::HashSet::new();
        for c in &self.columns {
            if c.name.is_empty() {
                return Err("an output column has an empty name".into());
            }
            if !seen.insert(c.name.as_str()) {
                return Err(format!("output column `{}` appears twice", c.name));
            }
            if c.data.len() != self.num_rows {
                return Err(format!(
                    "output column `{}` has {} values but the table has {} rows",
                    c.name,
                    c.data.len(),
                    self.num_rows
                ));
            }
            if let Some(v) = &c.valid
                && v.len() != self.num_rows
            {
                return Err(format!(
                    "output column `{}` has a validity mask of {} entries for {} rows",
                    c.name,
                    v.len(),
                    self.num_rows
                ));
            }
        }
        Ok(())
    }

    /// Approximate bytes held, for the output cap.
    pub fn byte_size(&self) -> usize {
        self.columns.iter().map(|c| c.name.len() + c.data.byte_size() + c.valid.as_ref().map_or(0, Vec::len)).sum()
    }

    /// `(name, type)` of each column: the schema every mini-batch of a job
    /// must agree on to share one output file.
    pub fn schema(&self) -> Schema {
        self.columns.iter().map(|c| (c.name.clone(), c.data.type_name())).collect()
    }
}

/// An input item the scorer (or the host, before the scorer saw it) could
/// not handle. `item` indexes the mini-batch's items.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemError {
    /// Index of the item in the mini-batch.
    pub item: usize,
    /// Why it failed (guest text, bounded when it was lifted).
    pub message: String,
}

/// What one successful `run()` produced, checked against its mini-batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchOutput {
    /// The rows returned.
    pub rows: Table,
    /// The input item of each output row.
    pub row_items: Vec<usize>,
    /// The items that failed, at most one error each.
    pub errors: Vec<ItemError>,
}

impl BatchOutput {
    /// Checks the result accounts for every one of `items` input items
    /// exactly once: at least one row or exactly one error, never both.
    /// `Err` is the `INVALID_OUTPUT` detail.
    pub fn check_accounting(&self, items: usize) -> Result<(), String> {
        self.rows.validate()?;
        if self.row_items.len() != self.rows.num_rows {
            return Err(format!(
                "row-items has {} entries for {} output rows",
                self.row_items.len(),
                self.rows.num_rows
            ));
        }
        let mut has_rows = vec![false; items];
        for &i in &self.row_items {
            if i >= items {
                return Err(format!("an output row names item {i}, but the mini-batch has {items} items"));
            }
            has_rows[i] = true;
        }
        let mut has_error = vec![false; items];
        for e in &self.errors {
            if e.item >= items {
                return Err(format!("an item error names item {}, but the mini-batch has {items} items", e.item));
            }
            if has_error[e.item] {
                return Err(format!("item {} has more than one item error", e.item));
            }
            if has_rows[e.item] {
                return Err(format!("item {} has both output rows and an item error", e.item));
            }
            has_error[e.item] = true;
        }
        let missing: Vec<usize> = (0..items).filter(|&i| !has_rows[i] && !has_error[i]).collect();
        if !missing.is_empty() {
            let shown: Vec<String> = missing.iter().take(10).map(usize::to_string).collect();
            return Err(format!(
                "{} of {items} input items are unaccounted for (no row and no item error): items {}{}",
                missing.len(),
                shown.join(", "),
                if missing.len() > 10 { ", ..." } else { "" }
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(rows: usize, row_items: Vec<usize>, errors: Vec<usize>) -> BatchOutput {
        BatchOutput {
            rows: Table {
                num_rows: rows,
                columns: vec![Column { name: "x".into(), data: ColumnData::S64(vec![0; rows]), valid: None }],
            },
            row_items,
            errors: errors.into_iter().map(|item| ItemError { item, message: "bad".into() }).collect(),
        }
    }

    #[test]
    fn accounting_accepts_rows_or_errors() {
        assert!(out(3, vec![0, 0, 2], vec![1]).check_accounting(3).is_ok());
    }

    #[test]
    fn accounting_rejects_missing_items() {
        let e = out(1, vec![0], vec![]).check_accounting(3).unwrap_err();
        assert!(e.contains("2 of 3 input items are unaccounted"), "{e}");
    }

    #[test]
    fn accounting_rejects_row_and_error_for_one_item() {
        let e = out(1, vec![0], vec![0]).check_accounting(1).unwrap_err();
        assert!(e.contains("both"), "{e}");
    }

    #[test]
    fn rows_without_columns_are_refused() {
        let mut o = out(2, vec![0, 1], vec![]);
        o.rows.columns.clear();
        assert_eq!(o.check_accounting(2).unwrap_err(), "the result has 2 rows but no columns");
        // No rows and no columns (every item an error) is fine.
        assert!(out(0, vec![], vec![0]).check_accounting(1).is_ok());
    }

    #[test]
    fn accounting_rejects_out_of_range_and_ragged() {
        assert!(out(1, vec![5], vec![]).check_accounting(1).is_err());
        let mut o = out(2, vec![0, 0], vec![]);
        o.rows.columns[0].data = ColumnData::S64(vec![1]);
        assert!(o.check_accounting(1).unwrap_err().contains("has 1 values"));
    }
}

/// One input file handed to the scorer.
#[derive(Debug, Clone, PartialEq)]
pub struct FileInput {
    /// Path relative to the input folder.
    pub name: String,
    /// The file's bytes.
    pub data: Vec<u8>,
}

/// The items of a file mini-batch as the scorer receives them (tabular
/// rows reach the engine as its `HostRows`: a [`Table`] and its
/// [`RowOrigins`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Items {
    /// One file per item.
    Files(Vec<FileInput>),
}

impl Items {
    /// The number of items.
    pub fn len(&self) -> usize {
        match self {
            Items::Files(f) => f.len(),
        }
    }

    /// Whether the mini-batch has no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A mini-batch as handed to one `run()`.
#[derive(Debug, Clone, PartialEq)]
pub struct MiniBatchInput {
    /// The mini-batch's stable id.
    pub id: String,
    /// What the scorer receives.
    pub items: Items,
}

/// Where each row of a tabular mini-batch came from: row `i` is row
/// `row[i]` (0-based, header excluded) of the file `sources[source[i]]`.
/// The one provenance type of the reader's output, the engine's rows, the
/// guest's `table-items` and the job directory's row labels.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RowOrigins {
    /// Source names (relative paths) of the files the rows came from, each
    /// once per segment read.
    pub sources: Vec<String>,
    /// Per row: index into `sources`.
    pub source: Vec<u32>,
    /// Per row: 0-based row number in its file (header excluded).
    pub row: Vec<u64>,
}

impl RowOrigins {
    /// Appends the rows `rows` of the file `name` (one new entry of
    /// `sources`, even when the name is already there: a segment each).
    pub fn push_segment(&mut self, name: &str, rows: impl IntoIterator<Item = u64>) {
        let src = self.sources.len() as u32;
        self.sources.push(name.to_string());
        let before = self.row.len();
        self.row.extend(rows);
        self.source.resize(self.source.len() + (self.row.len() - before), src);
    }

    /// Rows described.
    pub fn len(&self) -> usize {
        self.row.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.row.is_empty()
    }

    /// The source name of row `i`.
    pub fn source_of(&self, i: usize) -> Option<&str> {
        self.sources.get(*self.source.get(i)? as usize).map(String::as_str)
    }

    /// What messages call row `i`: `file.csv row 12` ([`row_label`]);
    /// `row {i}` for an index past the rows.
    pub fn label(&self, i: usize) -> String {
        match (self.source_of(i), self.row.get(i)) {
            (Some(s), Some(&n)) => row_label(s, n),
            _ => format!("row {i}"),
        }
    }
}

/// What messages and reports call row `row` (0-based, header excluded) of
/// the file `source`: `file.csv row 12`.
pub fn row_label(source: &str, row: u64) -> String {
    format!("{source} row {row}")
}

#[cfg(test)]
mod origin_tests {
    use super::*;

    #[test]
    fn segments_and_labels() {
        let mut o = RowOrigins::default();
        o.push_segment("a.csv", 0..2);
        o.push_segment("b.csv", [7, 9]);
        o.push_segment("a.csv", std::iter::empty());
        assert_eq!(o.len(), 4);
        assert_eq!(o.source, [0, 0, 1, 1]);
        assert_eq!(o.sources.len(), 3);
        assert_eq!(o.label(1), "a.csv row 1");
        assert_eq!(o.label(3), "b.csv row 9");
        assert_eq!(o.label(4), "row 4");
        assert_eq!(row_label("c.jsonl", 12), "c.jsonl row 12");
    }
}
