//! Shows a scorer writing files into a `uri_folder` output, Azure's `--out ${{outputs.X}}`: for each input file `STEM.txt` it writes `OUT/STEM.txt` (the text upper-cased) and, with `task.config.nested = yes`, `OUT/by-stem/STEM/part-0.txt` too; a file `big-N.txt` makes it write N bytes; when the read-only mount `/control` holds a file `fail`, every `run()` fails after writing; a file `wait.txt` makes its `run()` wait, after writing, until `/control/go` exists; `task.config.nonce = yes` adds `OUT/nonce-STEM-RANDOM.txt` (a name no other try repeats), `task.config.summary = yes` writes `OUT/summary.txt` holding the file's name in every `run()`; `deep-N.txt` nests N folders, `clash-file.txt` writes a file `OUT/clash`, `clash-dir.txt` a file inside a folder `OUT/clash`; `fill.txt` writes until a write fails (or forever).

use sluice_sdk::{BatchResult, Config, Error, MiniBatch, ResultBuilder, Scorer, export_scorer};

struct Writer {
    out: String,
    nested: bool,
    nonce: bool,
    summary: bool,
}

impl Scorer for Writer {
    fn init(config: Config) -> Result<Self, Error> {
        let mut args = config.arguments.iter();
        let mut out = None;
        while let Some(flag) = args.next() {
            match flag.as_str() {
                "--out" => out = args.next().cloned(),
                other => return Err(Error::msg(format!("unknown argument {other}"))),
            }
        }
        let out = out.ok_or_else(|| Error::msg("--out PATH is required"))?;
        let yes = |k: &str| config.get(k) == Some("yes");
        Ok(Writer { out, nested: yes("nested"), nonce: yes("nonce"), summary: yes("summary") })
    }

    fn run(&mut self, batch: MiniBatch) -> Result<BatchResult, Error> {
        let mut rows = ResultBuilder::new();
        for (i, f) in batch.files().iter().enumerate() {
            let stem = f.name.trim_end_matches(".txt").replace('/', "_");
            let text = String::from_utf8_lossy(&f.data).to_uppercase();
            let body = match stem.strip_prefix("big-").and_then(|n| n.parse::<usize>().ok()) {
                Some(n) => vec![b'x'; n],
                None => text.into_bytes(),
            };
            let path = format!("{}/{stem}.txt", self.out);
            std::fs::write(&path, &body).map_err(|e| Error::msg(format!("{path}: {e}")))?;
            if self.nested {
                let dir = format!("{}/by-stem/{stem}", self.out);
                std::fs::create_dir_all(&dir).map_err(|e| Error::msg(format!("{dir}: {e}")))?;
                std::fs::write(format!("{dir}/part-0.txt"), &f.name).map_err(|e| Error::msg(e.to_string()))?;
            }
            if self.nonce {
                use std::hash::{BuildHasher, Hasher};
                let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
                std::fs::write(format!("{}/nonce-{stem}-{random:016x}.txt", self.out), "")
                    .map_err(|e| Error::msg(e.to_string()))?;
            }
            if self.summary {
                std::fs::write(format!("{}/summary.txt", self.out), &f.name).map_err(|e| Error::msg(e.to_string()))?;
            }
            if let Some(n) = stem.strip_prefix("deep-").and_then(|n| n.parse::<usize>().ok()) {
                let dir = format!("{}/{}", self.out, vec!["d"; n].join("/"));
                std::fs::create_dir_all(&dir).map_err(|e| Error::msg(e.to_string()))?;
                std::fs::write(format!("{dir}/bottom.txt"), "").map_err(|e| Error::msg(e.to_string()))?;
            }
            if stem == "fill" {
                use std::io::Write;
                let mut f =
                    std::fs::File::create(format!("{}/fill.bin", self.out)).map_err(|e| Error::msg(e.to_string()))?;
                let chunk = vec![b'f'; 1 << 16];
                while f.write_all(&chunk).is_ok() {}
                return Err(Error::msg("a write failed"));
            }
            match stem.as_str() {
                "clash-file" => std::fs::write(format!("{}/clash", self.out), "a file"),
                "clash-dir" => std::fs::create_dir_all(format!("{}/clash", self.out))
                    .and_then(|()| std::fs::write(format!("{}/clash/x.txt", self.out), "in a folder")),
                _ => Ok(()),
            }
            .map_err(|e| Error::msg(e.to_string()))?;
            rows.row(i).string("name", &f.name).s64("bytes", body.len() as i64);
        }
        if batch.files().iter().any(|f| f.name == "wait.txt") {
            while !std::path::Path::new("/control/go").exists() {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        if std::path::Path::new("/control/fail").exists() {
            return Err(Error::msg("asked to fail after writing"));
        }
        Ok(rows.finish())
    }
}

export_scorer!(Writer);

fn main() {}
