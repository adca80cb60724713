//! Shows what a scorer sees of the folders and files a job grants it: `init` takes its `program_arguments` as
//! pairs (`--read PATH`, `--list DIR`, `--write PATH`); each `run()` returns one row per input file with the
//! file's `name` and, in `seen`, the outcome of every pair in order, joined by ` | `: a file's trimmed text, a
//! folder's sorted entry names joined by `,`, `written`, or `error: ...` when the sandbox refused.

use sluice_sdk::{BatchResult, Config, Error, MiniBatch, ResultBuilder, Scorer, export_scorer};

struct Reader {
    actions: Vec<(String, String)>,
}

impl Scorer for Reader {
    fn init(config: Config) -> Result<Self, Error> {
        let mut actions = Vec::new();
        let mut args = config.arguments.iter();
        while let Some(flag) = args.next() {
            let path = args.next().ok_or_else(|| Error::msg(format!("{flag} needs a path")))?;
            match flag.as_str() {
                "--read" | "--list" | "--write" => actions.push((flag.clone(), path.clone())),
                other => return Err(Error::msg(format!("unknown argument {other}"))),
            }
        }
        Ok(Reader { actions })
    }

    fn run(&mut self, batch: MiniBatch) -> Result<BatchResult, Error> {
        let seen: Vec<String> = self
            .actions
            .iter()
            .map(|(flag, path)| {
                let outcome = match flag.as_str() {
                    "--read" => std::fs::read_to_string(path).map(|t| t.trim().to_string()),
                    "--list" => std::fs::read_dir(path).and_then(|rd| {
                        let mut names = rd
                            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                            .collect::<Result<Vec<_>, _>>()?;
                        names.sort();
                        Ok(names.join(","))
                    }),
                    _ => std::fs::write(path, "written by the scorer").map(|()| "written".to_string()),
                };
                outcome.unwrap_or_else(|e| format!("error: {:?}", e.kind()))
            })
            .collect();
        let seen = seen.join(" | ");
        let mut out = ResultBuilder::new();
        for (i, file) in batch.files().iter().enumerate() {
            out.row(i).string("name", &file.name).string("seen", &seen);
        }
        Ok(out.finish())
    }
}

export_scorer!(Reader);

fn main() {}
