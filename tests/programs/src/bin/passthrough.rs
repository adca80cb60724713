//! Shows the tabular contract: returns every row it receives, every column as delivered, plus `source_file` and `row_number` from the row provenance (for round trips, row spans and partitions).

use sluice_sdk::{BatchResult, Column, ColumnData, Config, Error, MiniBatch, Scorer, export_scorer};

struct Passthrough;

impl Scorer for Passthrough {
    fn init(_config: Config) -> Result<Self, Error> {
        Ok(Passthrough)
    }

    fn run(&mut self, batch: MiniBatch) -> Result<BatchResult, Error> {
        let rows = batch.rows().ok_or_else(|| Error::msg("passthrough needs tabular input"))?;
        let n = rows.rows.num_rows;
        let all: Vec<u32> = (0..n).collect();
        // A second pass over our own output replaces these two columns.
        let mut columns: Vec<Column> =
            rows.rows.columns.iter().filter(|c| c.name != "source_file" && c.name != "row_number").cloned().collect();
        columns.push(rows.source_column("source_file", &all));
        columns.push(Column::new("row_number", ColumnData::S64(rows.row_number.iter().map(|&r| r as i64).collect())));
        Ok(BatchResult::from_columns(all, columns, Vec::new()))
    }
}

export_scorer!(Passthrough);

fn main() {}
