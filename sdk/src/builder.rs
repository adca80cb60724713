//! Building a `batch-result` column by column, without the host ever
//! seeing one value per cell.

use crate::{BatchResult, Column, ColumnData, ItemError, Table};

/// Collects output rows (each tied to its input item) and item errors.
///
/// Columns are created on first use with the type of their first value;
/// a row that does not set a column gets a null there.
#[derive(Debug, Default)]
pub struct ResultBuilder {
    columns: Vec<Buf>,
    row_items: Vec<u32>,
    errors: Vec<ItemError>,
}

#[derive(Debug)]
struct Buf {
    name: String,
    data: ColumnData,
    valid: Vec<bool>,
    has_null: bool,
}

impl ResultBuilder {
    pub fn new() -> ResultBuilder {
        ResultBuilder::default()
    }

    /// Starts an output row for input item `item`.
    pub fn row(&mut self, item: usize) -> RowWriter<'_> {
        self.row_items.push(item as u32);
        RowWriter { b: self }
    }

    /// Marks input item `item` as failed with `message` (an item error: it
    /// counts towards `error_threshold` but does not fail the mini-batch).
    pub fn error(&mut self, item: usize, message: impl std::fmt::Display) -> &mut Self {
        self.errors.push(ItemError { item: item as u32, message: message.to_string() });
        self
    }

    /// The result to return from `run`.
    pub fn finish(mut self) -> BatchResult {
        let rows = self.row_items.len();
        for c in &mut self.columns {
            pad(c, rows);
        }
        BatchResult {
            rows: Table {
                num_rows: rows as u32,
                columns: self
                    .columns
                    .into_iter()
                    .map(|c| Column { name: c.name, data: c.data, valid: c.has_null.then_some(c.valid) })
                    .collect(),
            },
            row_items: self.row_items,
            errors: self.errors,
        }
    }

    fn column(&mut self, name: &str, empty: impl FnOnce() -> ColumnData) -> &mut Buf {
        let pos = match self.columns.iter().position(|c| c.name == name) {
            Some(p) => p,
            None => {
                self.columns.push(Buf { name: name.to_string(), data: empty(), valid: Vec::new(), has_null: false });
                self.columns.len() - 1
            }
        };
        let row = self.row_items.len() - 1;
        let c = &mut self.columns[pos];
        pad(c, row);
        c
    }
}

/// Fills a column with nulls up to `rows` values.
fn pad(c: &mut Buf, rows: usize) {
    while c.valid.len() < rows {
        c.has_null = true;
        c.valid.push(false);
        match &mut c.data {
            ColumnData::F32(v) => v.push(0.0),
            ColumnData::F64(v) => v.push(0.0),
            ColumnData::S64(v) => v.push(0),
            ColumnData::String(v) => v.push(String::new()),
            ColumnData::Bool(v) => v.push(false),
        }
    }
}

/// Sets the values of one output row.
#[derive(Debug)]
pub struct RowWriter<'a> {
    b: &'a mut ResultBuilder,
}

macro_rules! setter {
    ($fn:ident, $ty:ty, $variant:ident, $conv:expr) => {
        /// Sets column `name` of this row. Panics if the column already
        /// holds another type (a bug in the scorer).
        pub fn $fn(self, name: &str, value: $ty) -> Self {
            let c = self.b.column(name, || ColumnData::$variant(Vec::new()));
            let row = c.valid.len();
            match &mut c.data {
                ColumnData::$variant(v) if v.len() == row => {
                    v.push($conv(value));
                    c.valid.push(true);
                }
                ColumnData::$variant(_) => panic!("column `{name}` set twice in one row"),
                _ => panic!("column `{name}` already holds another type than {}", stringify!($variant)),
            }
            self
        }
    };
}

impl RowWriter<'_> {
    setter!(f32, f32, F32, |v| v);
    setter!(f64, f64, F64, |v| v);
    setter!(s64, i64, S64, |v| v);
    setter!(bool, bool, Bool, |v| v);
    setter!(string, &str, String, |v: &str| v.to_string());
}
