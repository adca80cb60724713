//! Shows the smallest useful scorer: one output row per input file (name, bytes, lines, sha256).

use sha2::{Digest, Sha256};
use sluice_sdk::{BatchResult, Config, Error, MiniBatch, ResultBuilder, Scorer, export_scorer};

struct FileStats;

impl Scorer for FileStats {
    fn init(_config: Config) -> Result<Self, Error> {
        Ok(FileStats)
    }

    fn run(&mut self, batch: MiniBatch) -> Result<BatchResult, Error> {
        let mut out = ResultBuilder::new();
        for (i, file) in batch.files().iter().enumerate() {
            let lines = file.data.iter().filter(|&&b| b == b'\n').count()
                + usize::from(!file.data.is_empty() && !file.data.ends_with(b"\n"));
            out.row(i)
                .string("name", &file.name)
                .s64("bytes", file.data.len() as i64)
                .s64("lines", lines as i64)
                .string("sha256", &hex::encode(Sha256::digest(&file.data)));
        }
        Ok(out.finish())
    }
}

export_scorer!(FileStats);
