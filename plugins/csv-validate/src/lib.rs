//! Shows item-level error handling: each CSV file is checked in the guest; empty files and files missing required columns become item errors, good files give one row with their row count.

use sluice_sdk::{BatchResult, Config, Error, MiniBatch, ResultBuilder, Scorer, export_scorer, info, warn};

struct CsvValidate {
    /// Columns every file must have (`task.config.required_columns`,
    /// comma-separated).
    required: Vec<String>,
}

impl Scorer for CsvValidate {
    fn init(config: Config) -> Result<Self, Error> {
        let required: Vec<String> = config
            .get("required_columns")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        info!("csv-validate: required columns {required:?}");
        Ok(CsvValidate { required })
    }

    fn run(&mut self, batch: MiniBatch) -> Result<BatchResult, Error> {
        let mut out = ResultBuilder::new();
        for (i, file) in batch.files().iter().enumerate() {
            match self.check(&file.data) {
                Ok((rows, columns)) => {
                    out.row(i).string("file", &file.name).s64("rows", rows as i64).s64("columns", columns as i64);
                }
                Err(why) => {
                    warn!("{}: {why}", file.name);
                    out.error(i, format!("{}: {why}", file.name));
                }
            }
        }
        Ok(out.finish())
    }
}

impl CsvValidate {
    /// Rows and columns of a good file, or why it is not.
    fn check(&self, data: &[u8]) -> Result<(usize, usize), String> {
        if data.iter().all(u8::is_ascii_whitespace) {
            return Err("empty file".into());
        }
        let mut reader = csv::Reader::from_reader(data);
        let headers = reader.headers().map_err(|e| format!("unreadable header: {e}"))?.clone();
        let missing: Vec<&str> =
            self.required.iter().filter(|c| !headers.iter().any(|h| h == c.as_str())).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(format!("missing required columns: {}", missing.join(", ")));
        }
        let mut rows = 0;
        for (n, record) in reader.records().enumerate() {
            record.map_err(|e| format!("row {}: {e}", n + 1))?;
            rows += 1;
        }
        if rows == 0 {
            return Err("header only, no rows".into());
        }
        Ok((rows, headers.len()))
    }
}

export_scorer!(CsvValidate);
