//! Shows a pipeline's `type: command` step: a WASI command (`main`) that reads every file of `--in DIR` (sorted by name) and writes `--out DIR/all.txt`, one line per file, `NAME: TEXT`; `--fail` makes it exit with status 3 after writing.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let arg = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let (Some(input), Some(out)) = (arg("--in"), arg("--out")) else {
        eprintln!("usage: concat --in DIR --out DIR [--fail]");
        return ExitCode::from(2);
    };
    let mut names: Vec<String> = match std::fs::read_dir(&input) {
        Ok(rd) => rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(e) => {
            eprintln!("{input}: {e}");
            return ExitCode::from(2);
        }
    };
    names.sort();
    let mut all = String::new();
    for n in &names {
        let text = std::fs::read_to_string(format!("{input}/{n}")).unwrap_or_default();
        all.push_str(&format!("{n}: {}\n", text.trim()));
    }
    if let Err(e) = std::fs::write(format!("{out}/all.txt"), all) {
        eprintln!("{out}/all.txt: {e}");
        return ExitCode::from(2);
    }
    println!("concatenated {} files", names.len());
    if args.iter().any(|a| a == "--fail") {
        return ExitCode::from(3);
    }
    ExitCode::SUCCESS
}
