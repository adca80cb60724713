//! Shows that components built against an older compatible WIT (sluice:scorer@0.1.0, frozen in tests/programs/wit-0.1.0) still link and run: one row per file with its size, written against the raw 0.1.0 bindings.

#![allow(clippy::too_many_arguments)]

wit_bindgen::generate!({
    path: "wit-0.1.0",
    world: "scorer",
    generate_all,
});

use sluice::scorer::types::{Column, ColumnData, Items, Table};

struct Legacy;

impl Guest for Legacy {
    fn init(_config: Config) -> Result<(), Error> {
        sluice::scorer::log::log(sluice::scorer::log::Level::Info, "legacy 0.1.0 scorer up");
        Ok(())
    }

    fn run(batch: MiniBatch) -> Result<BatchResult, Error> {
        let Items::Files(files) = batch.items else {
            return Err(Error { message: "file input only".into() });
        };
        let n = files.len() as u32;
        let columns = vec![
            Column {
                name: "name".into(),
                data: ColumnData::String(files.iter().map(|f| f.name.clone()).collect()),
                valid: None,
            },
            Column {
                name: "bytes".into(),
                data: ColumnData::S64(files.iter().map(|f| f.data.len() as i64).collect()),
                valid: None,
            },
        ];
        Ok(BatchResult { rows: Table { num_rows: n, columns }, row_items: (0..n).collect(), errors: Vec::new() })
    }
}

export!(Legacy);

fn main() {}
