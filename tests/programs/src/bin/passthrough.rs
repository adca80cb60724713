//! Shows the tabular contract: returns every row it receives, every column as delivered, plus `source_file` and `row_number` from the row provenance (for round trips, row spans and partitions); with `task.config.host_columns`, the host builds those columns instead (`batch.add-result-column`), and `probe` tries its bounds.

use sluice_sdk::onnx::host_batch::{self, ResultSource};
use sluice_sdk::{BatchResult, Column, ColumnData, Config, Error, MiniBatch, Scorer, export_scorer, info};

struct Passthrough {
    /// `task.config.host_columns`: unset (the guest builds the columns),
    /// `yes` (the host does), `probe` (bad calls and the column bound,
    /// logged), `short` (an added column shorter than the result).
    host: Option<String>,
}

impl Scorer for Passthrough {
    fn init(config: Config) -> Result<Self, Error> {
        let host = config.get("host_columns").map(str::to_string);
        if host.is_some() {
            // Nothing crosses into the guest but the row count.
            host_batch::deliver_columns(&[]);
        }
        Ok(Passthrough { host })
    }

    fn run(&mut self, batch: MiniBatch) -> Result<BatchResult, Error> {
        let rows = batch.rows().ok_or_else(|| Error::msg("passthrough needs tabular input"))?;
        let n = rows.rows.num_rows;
        let all: Vec<u32> = (0..n).collect();
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
            Some(_) => {
                for (name, _) in host_batch::columns() {
                    if name != "source_file" && name != "row_number" {
                        host_batch::add_result_column(&name, &ResultSource::Column(name.clone()), None)?;
                    }
                }
                host_batch::add_result_column("source_file", &ResultSource::SourceFile, None)?;
                host_batch::add_result_column("row_number", &ResultSource::RowNumber, None)?;
                Ok(BatchResult::from_columns(all, Vec::new(), Vec::new()))
            }
        }
    }
}

export_scorer!(Passthrough);

fn main() {}
