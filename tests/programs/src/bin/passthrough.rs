//! Shows the tabular contract: returns every row it receives, every column as delivered, plus `source_file` and `row_number` from the row provenance (for round trips, row spans and partitions); with `task.config.host_columns`, the host builds those columns instead (`batch.add-result-column`), and `probe` tries its bounds; `pick` passes the even rows through by selection and fails the odd ones, `drop` adds a column and then fails every row.

use sluice_sdk::onnx::host_batch::{self, ResultSource};
use sluice_sdk::{
    BatchResult, Column, ColumnData, Config, Error, ItemError, MiniBatch, Scorer, Table, export_scorer, info,
};

struct Passthrough {
    /// `task.config.host_columns`: unset (the guest builds the columns),
    /// `yes` (the host does, with no row origins delivered and an empty
    /// `row-items`), `probe` (bad calls and the column bound, logged),
    /// `short` (an added column shorter than the result), `pick` (even
    /// rows by selection, odd rows item errors), `drop` (an added column,
    /// then every row an item error).
    host: Option<String>,
}

impl Scorer for Passthrough {
    fn init(config: Config) -> Result<Self, Error> {
        let host = config.get("host_columns").map(str::to_string);
        if host.is_some() {
            // Nothing crosses into the guest but the row count.
            host_batch::deliver_columns(&[]);
            host_batch::deliver_row_origins(false);
        }
        Ok(Passthrough { host })
    }

    fn run(&mut self, batch: MiniBatch) -> Result<BatchResult, Error> {
        let rows = batch.rows().ok_or_else(|| Error::msg("passthrough needs tabular input"))?;
        let n = rows.rows.num_rows;
        let all: Vec<u32> = (0..n).collect();
        if self.host.is_some() && !(rows.rows.columns.is_empty() && rows.row_source.is_empty()) {
            return Err(Error::msg("columns or row origins were delivered after deliver_* said not to"));
        }
        match self.host.as_deref() {
            None => {
                // A second pass over our own output replaces these two columns.
                let mut columns: Vec<Column> = rows
                    .rows
                    .columns
                    .iter()
                    .filter(|c| c.name != "source_file" && c.name != "row_number")
                    .cloned()
                    .collect();
                columns.push(rows.source_column("source_file", &all));
                columns.push(Column::new(
                    "row_number",
                    ColumnData::S64(rows.row_number.iter().map(|&r| r as i64).collect()),
                ));
                Ok(BatchResult::from_columns(all, columns, Vec::new()))
            }
            Some("probe") => {
                let tries: [(&str, ResultSource, Option<&[u32]>); 3] = [
                    ("a", ResultSource::Column("no_such".into()), None),
                    ("b", ResultSource::RowNumber, Some(&[n])),
                    ("c", ResultSource::SourceFile, None),
                ];
                for (name, source, pick) in &tries {
                    match host_batch::add_result_column(name, source, *pick) {
                        Ok(()) => info!("probe {name}: ok"),
                        Err(e) => info!("probe {name}: {:?}: {}", e.code, e.message),
                    }
                }
                if let Err(e) = host_batch::add_result_column("c", &ResultSource::RowNumber, None) {
                    info!("probe again: {:?}: {}", e.code, e.message);
                }
                let mut added = 1;
                let full = loop {
                    if let Err(e) = host_batch::add_result_column(&format!("x{added}"), &ResultSource::RowNumber, None)
                    {
                        break format!("{:?}: {}", e.code, e.message);
                    }
                    added += 1;
                };
                info!("probe full after {added}: {full}");
                Ok(BatchResult::from_columns(all, Vec::new(), Vec::new()))
            }
            Some("short") => {
                // One row short of the result: the whole result is refused.
                host_batch::add_result_column("s", &ResultSource::RowNumber, Some(&all[..all.len().min(1)]))?;
                Ok(BatchResult::from_columns(all, Vec::new(), Vec::new()))
            }
            Some("pick") => {
                let even: Vec<u32> = all.iter().copied().filter(|r| r % 2 == 0).collect();
                for (name, _) in host_batch::columns() {
                    host_batch::add_result_column(&name, &ResultSource::Column(name.clone()), Some(&even))?;
                }
                host_batch::add_result_column("row_number", &ResultSource::RowNumber, Some(&even))?;
                let odd = all.iter().filter(|r| *r % 2 == 1).map(|&item| ItemError { item, message: "odd".into() });
                Ok(BatchResult::from_columns(even.clone(), Vec::new(), odd.collect()))
            }
            Some("drop") => {
                host_batch::add_result_column("row_number", &ResultSource::RowNumber, None)?;
                let errors = all.iter().map(|&item| ItemError { item, message: "dropped".into() }).collect();
                Ok(BatchResult::from_columns(Vec::new(), Vec::new(), errors))
            }
            Some(_) => {
                for (name, _) in host_batch::columns() {
                    if name != "source_file" && name != "row_number" {
                        host_batch::add_result_column(&name, &ResultSource::Column(name.clone()), None)?;
                    }
                }
                host_batch::add_result_column("source_file", &ResultSource::SourceFile, None)?;
                host_batch::add_result_column("row_number", &ResultSource::RowNumber, None)?;
                // One row per item, in order: `row-items` may stay empty.
                Ok(BatchResult {
                    rows: Table { num_rows: n, columns: Vec::new() },
                    row_items: Vec::new(),
                    errors: Vec::new(),
                })
            }
        }
    }
}

export_scorer!(Passthrough);

fn main() {}
