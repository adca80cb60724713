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
        /// holds another type or was already set in this row (bugs in the
        /// scorer, reported with this message).
        pub fn $fn(self, name: &str, value: $ty) -> Self {
            let row = self.b.row_items.len() - 1;
            let c = self.b.column(name, || ColumnData::$variant(Vec::new()));
            if c.valid.len() != row {
                panic!("column `{name}` set twice in one row");
            }
            match &mut c.data {
                ColumnData::$variant(v) => v.push($conv(value)),
                _ => panic!("column `{name}` already holds another type than {}", stringify!($variant)),
            }
            c.valid.push(true);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_typed_columns_with_nulls_for_unset_cells() {
        let mut b = ResultBuilder::new();
        b.row(0).string("name", "a").s64("n", 1);
        b.row(2).string("name", "c");
        b.error(1, "bad");
        b.row(3).s64("n", 4).f64("score", 0.5);
        let r = b.finish();
        assert_eq!(r.rows.num_rows, 3);
        assert_eq!(r.row_items, vec![0, 2, 3]);
        assert_eq!(r.errors.len(), 1);
        let col = |n: &str| r.rows.columns.iter().find(|c| c.name == n).unwrap();
        assert!(matches!(&col("name").data, ColumnData::String(v) if v.len() == 3));
        assert_eq!(col("name").valid, Some(vec![true, true, false]));
        assert!(matches!(&col("n").data, ColumnData::S64(v) if *v == vec![1, 0, 4]));
        assert_eq!(col("n").valid, Some(vec![true, false, true]));
        assert_eq!(col("score").valid, Some(vec![false, false, true]));
    }

    #[test]
    fn a_column_without_nulls_has_no_mask() {
        let mut b = ResultBuilder::new();
        b.row(0).bool("ok", true);
        b.row(1).bool("ok", false);
        assert_eq!(b.finish().rows.columns[0].valid, None);
    }

    #[test]
    #[should_panic(expected = "column `x` set twice in one row")]
    fn setting_a_cell_twice_is_a_bug_not_a_ragged_column() {
        let mut b = ResultBuilder::new();
        b.row(0).s64("x", 1).s64("x", 2);
    }

    #[test]
    #[should_panic(expected = "already holds another type")]
    fn changing_a_column_type_is_a_bug() {
        let mut b = ResultBuilder::new();
        b.row(0).s64("x", 1);
        b.row(1).string("x", "one");
    }
}
