//! `sluice new NAME --lang rust|python|js`: a scorer project that builds and
//! runs with the two commands its README gives. Every language gets the
//! tabular-classifier scorer (the Rust plugin's source, or its Python or
//! JavaScript port, copied from this checkout at build time), a `job.yaml`
//! over two of the bundled sample CSV files and the bundled model, and a
//! README. The SDKs live in the sluice checkout this binary was built from
//! (`--sdk-root`, `SLUICE_SDK_ROOT` to point elsewhere): a Rust project
//! depends on its `sdk/` by path, Python and JavaScript builds run its
//! `sluice-py` / `sluice-js`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::{Args, ValueEnum};

use crate::Failure;

#[derive(Args, Debug)]
pub struct NewArgs {
    /// The project's name (a folder of that name is made): lowercase
    /// letters, digits, `-` and `_`, starting with a letter.
    name: String,
    /// The scorer's language.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// Where to make the project folder (default: ./NAME).
    #[arg(long)]
    path: Option<PathBuf>,
    /// The sluice checkout holding the SDKs (env SLUICE_SDK_ROOT; default:
    /// the one this binary was built from).
    #[arg(long, env = "SLUICE_SDK_ROOT")]
    sdk_root: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

/// The sample data and model every project gets (examples/tabular).
const SAMPLE: [(&str, &[u8]); 7] = [
    ("data/part-00000.csv", include_bytes!("../../../examples/tabular/data/part-00000.csv")),
    ("data/part-00001.csv", include_bytes!("../../../examples/tabular/data/part-00001.csv")),
    ("model/MLmodel", include_bytes!("../../../examples/tabular/model/MLmodel")),
    ("model/model.onnx", include_bytes!("../../../examples/tabular/model/model.onnx")),
    ("model/features.json", include_bytes!("../../../examples/tabular/model/features.json")),
    ("model/python_env.yaml", include_bytes!("../../../examples/tabular/model/python_env.yaml")),
    ("model/requirements.txt", include_bytes!("../../../examples/tabular/model/requirements.txt")),
];

const JOB: &str = include_str!("../templates/job.yaml");
const README: &str = include_str!("../templates/README.md");
const RUST_SCORER: &str = include_str!("../../../plugins/tabular-classifier/src/lib.rs");
const PYTHON_SCORER: &str = include_str!("../../../plugins/tabular-classifier-py/score.py");
const JS_SCORER: &str = include_str!("../../../plugins/tabular-classifier-js/score.js");
/// The workspace's lock file, as a Rust project's own: its build resolves
/// the SDK's dependencies to the versions sluice is tested with (cargo
/// drops the entries the project does not use).
const LOCK: &str = include_str!("../../../Cargo.lock");

pub fn new(a: NewArgs) -> Result<ExitCode, Failure> {
    check_name(&a.name).map_err(Failure::Usage)?;
    let root = sdk_root(a.sdk_root.as_deref()).map_err(Failure::Usage)?;
    let dir = a.path.clone().unwrap_or_else(|| PathBuf::from(&a.name));
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(Failure::Usage(anyhow!("{}: already exists and is not empty", dir.display())));
    }
    let exe = std::env::current_exe().map_err(|e| Failure::Job(anyhow!("cannot find this sluice binary: {e}")))?;
    let project = Project::of(&a, &root, &exe);
    write(&dir, &project)
        .with_context(|| format!("cannot write the project {}", dir.display()))
        .map_err(Failure::Job)?;
    out!("made {} ({} scorer) in {}", a.name, project.lang, dir.display());
    out!("next, in {}:", dir.display());
    out!("  {}", project.build);
    out!("  {}", project.run);
    if let Some(first) = &project.first {
        out!("(once, first: {first})");
    }
    Ok(ExitCode::SUCCESS)
}

/// What differs between the languages.
struct Project {
    lang: &'static str,
    /// The scorer's source file and text.
    source: (&'static str, String),
    /// Other files (path, text).
    extra: Vec<(&'static str, String)>,
    /// `task.code`.
    code: String,
    build: String,
    run: String,
    /// A set-up command the build needs once, when it is missing.
    first: Option<String>,
    notes: String,
}

impl Project {
    fn of(a: &NewArgs, root: &Path, exe: &Path) -> Project {
        let run = format!("{} run job.yaml", sh(exe));
        match a.lang {
            Lang::Rust => {
                let krate = a.name.replace('-', "_");
                let manifest = format!(
                    "[package]\nname = \"{}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
                     [lib]\ncrate-type = [\"cdylib\"]\n\n\
                     [dependencies]\nsluice-sdk = {{ path = {} }}\n\n\
                     # A project of its own, not a member of an enclosing workspace.\n[workspace]\n",
                    a.name,
                    toml_string(&root.join("sdk")),
                );
                let first = (!has_wasm_target()).then(|| "rustup target add wasm32-wasip2".to_string());
                Project {
                    lang: "Rust",
                    source: ("src/lib.rs", RUST_SCORER.to_string()),
                    extra: vec![
                        ("Cargo.toml", manifest),
                        ("Cargo.lock", LOCK.to_string()),
                        (".gitignore", "/target\n/out\n".into()),
                    ],
                    code: format!("./target/wasm32-wasip2/release/{krate}.wasm"),
                    build: "cargo build --release --target wasm32-wasip2".into(),
                    run,
                    first,
                    notes: "- The first build compiles the SDK and wit-bindgen (about a minute); later \
                            builds take seconds.\n"
                        .into(),
                }
            }
            Lang::Python => {
                let py = root.join(".sluice/py-sdk/venv/bin/sluice-py");
                let first = (!py.is_file()).then(|| sh(&root.join("scripts/install-python-sdk.sh")));
                Project {
                    lang: "Python",
                    source: ("score.py", PYTHON_SCORER.to_string()),
                    extra: vec![(".gitignore", "/scorer.wasm\n/out\n".into())],
                    code: "./scorer.wasm".into(),
                    build: format!("{} build score.py -o scorer.wasm --sluice {}", sh(&py), sh(exe)),
                    run,
                    first,
                    notes: "- The guest is CPython 3.14 inside the component (componentize-py): pure-Python \
                            modules work, native extensions (numpy, pandas, sklearn) cannot be imported. \
                            Keep the numbers in the host: `Model.request().columns(...)` sends the \
                            mini-batch's columns to the model without copying them into Python.\n\
                            - The build also checks the component with `sluice validate`, which compiles \
                            it into the compile cache (~15 s the first time), so the run starts at once.\n"
                        .into(),
                }
            }
            Lang::Js => {
                let js = root.join("sdk/js/bin/sluice-js.mjs");
                let installed = root.join("sdk/js/node_modules/@bytecodealliance/componentize-js").is_dir();
                let first = (!installed).then(|| sh(&root.join("scripts/install-js-sdk.sh")));
                Project {
                    lang: "JavaScript",
                    source: ("score.js", JS_SCORER.to_string()),
                    extra: vec![(".gitignore", "/scorer.wasm\n/out\n".into())],
                    code: "./scorer.wasm".into(),
                    build: format!("node {} build score.js -o scorer.wasm --sluice {}", sh(&js), sh(exe)),
                    run,
                    first,
                    notes: "- The guest is SpiderMonkey inside the component (componentize-js 0.23, \
                            interpreted): `'sluice-sdk'` and relative paths are the only imports; Node.js \
                            built-ins and native packages do not exist in the sandbox. Keep the numbers in \
                            the host: `Model.request().columns(...)` sends the mini-batch's columns to the \
                            model without copying them into JavaScript.\n\
                            - The build also checks the component with `sluice validate`, which compiles \
                            it into the compile cache (~16 s the first time), so the run starts at once.\n"
                        .into(),
                }
            }
        }
    }
}

fn write(dir: &Path, p: &Project) -> anyhow::Result<()> {
    let readme = README
        .replace("@NAME@", &name_of(dir))
        .replace("@LANG@", p.lang)
        .replace("@BUILD@", &p.build)
        .replace("@RUN@", &p.run)
        .replace("@SOURCE@", p.source.0)
        .replace(
            "@NOTES@",
            &match &p.first {
                Some(f) => format!("{}- Once, before the first build: `{f}`.\n", p.notes),
                None => p.notes.clone(),
            },
        );
    let job = JOB.replace("@NAME@", &name_of(dir)).replace("@CODE@", &p.code);
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        ("README.md", readme.into_bytes()),
        ("job.yaml", job.into_bytes()),
        (p.source.0, p.source.1.clone().into_bytes()),
    ];
    files.extend(p.extra.iter().map(|(n, t)| (*n, t.clone().into_bytes())));
    files.extend(SAMPLE.iter().map(|(n, b)| (*n, b.to_vec())));
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("a file in the project"))
            .with_context(|| format!("cannot make {}", path.parent().unwrap().display()))?;
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn name_of(dir: &Path) -> String {
    dir.file_name().map_or_else(|| "scorer".into(), |n| n.to_string_lossy().into_owned())
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!(
            "project name `{}`: use 1-64 lowercase letters, digits, `-` and `_`, starting with a letter",
            sluice_job::text::escape_controls(name)
        );
    }
    Ok(())
}

/// The sluice checkout with the SDKs: the flag, else the one this binary
/// was built from.
fn sdk_root(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    let root = match flag {
        Some(r) => r.to_path_buf(),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
    };
    let root = std::path::absolute(&root).unwrap_or(root);
    if !root.join("sdk/Cargo.toml").is_file() {
        bail!(
            "{} holds no sluice SDKs (sdk/Cargo.toml): point --sdk-root (SLUICE_SDK_ROOT) at a sluice checkout",
            root.display()
        );
    }
    Ok(std::fs::canonicalize(&root).unwrap_or(root))
}

fn has_wasm_target() -> bool {
    std::process::Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == "wasm32-wasip2"))
        .unwrap_or(true)
}

/// `p` as one shell word.
fn sh(p: &Path) -> String {
    let s = p.display().to_string();
    if s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:@".contains(c)) {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `p` as a TOML basic string.
fn toml_string(p: &Path) -> String {
    let s = p.display().to_string();
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_shell_words() {
        assert!(check_name("my-scorer_2").is_ok());
        for bad in ["", "2x", "My", "a b", "a/b", "x\u{1b}[31m"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert_eq!(sh(Path::new("/a/b-c.py")), "/a/b-c.py");
        assert_eq!(sh(Path::new("/a b/it's")), r"'/a b/it'\''s'");
        assert_eq!(toml_string(Path::new(r#"/x"y"#)), r#""/x\"y""#);
    }
}
