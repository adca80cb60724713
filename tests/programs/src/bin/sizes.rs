//! Shows the cheapest possible scorer (one row per file: name and size), used by the benchmark to measure sluice's own per-file overhead.

use sluice_sdk::{BatchResult, Config, Error, MiniBatch, ResultBuilder, Scorer, export_scorer};

struct Sizes;

impl Scorer for Sizes {
    fn init(_config: Config) -> Result<Self, Error> {
        Ok(Sizes)
    }

    fn run(&mut self, batch: MiniBatch) -> Result<BatchResult, Error> {
        let mut out = ResultBuilder::new();
        for (i, file) in batch.files().iter().enumerate() {
            out.row(i).string("name", &file.name).s64("size", file.data.len() as i64);
        }
        Ok(out.finish())
    }
}

export_scorer!(Sizes);

fn main() {}
