//! `sluice new`: a project in each language builds and runs with exactly
//! the two commands its README gives, and its output is the Rust plugin's
//! on the same rows; `sluice cache list|gc|clear` over a real cache.
//!
//! The README's commands run as written, through `sh`, in the project
//! folder. A Rust project's `target/` is linked to one kept under the
//! workspace's `target/new-projects`, so only the first run on a machine
//! compiles the SDK and wit-bindgen (~1 min on 2 cores); a Python or
//! JavaScript project's build is one componentize-py / componentize-js
//! run (~10-20 s CPU) whose compile then hits the tests' compile cache
//! (the same interpreter functions as the examples' components).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::helpers::*;

fn sluice() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"));
    c.env("SLUICE_CACHE_DIR", cache_dir());
    c
}

fn said(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The commands of the README's first `sh` block.
fn readme_commands(project: &Path) -> Vec<String> {
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    let block = readme.split("```sh\n").nth(1).expect("a ```sh block").split("```").next().unwrap();
    block.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_string).collect()
}

/// Makes a project, runs its README's commands and returns the output
/// file's bytes.
fn make_and_run(lang: &str, name: &str, setup: impl FnOnce(&Path)) -> (tempfile::TempDir, Vec<u8>) {
    let tmp = tempfile::tempdir().unwrap();
    let project = tmp.path().join(name);
    let o = sluice().args(["new", name, "--lang", lang, "--path"]).arg(&project).output().unwrap();
    assert!(o.status.success(), "{}", said(&o));
    assert!(said(&o).contains(&format!("made {name}")), "{}", said(&o));
    setup(&project);
    let commands = readme_commands(&project);
    assert_eq!(commands.len(), 2, "{commands:?}");
    for c in &commands {
        let o = Command::new("sh")
            .args(["-c", c])
            .current_dir(&project)
            .env("SLUICE_CACHE_DIR", cache_dir())
            .env("SLUICE_DATA_DIR", tmp.path().join("data"))
            .output()
            .unwrap();
        assert!(o.status.success(), "`{c}` failed in {}:\n{}", project.display(), said(&o));
    }
    let out = std::fs::read(project.join("out/predictions.csv")).expect("the job's output");
    (tmp, out)
}

/// The Rust plugin's output on a project's job (its own data and model).
fn plugin_output(project_job: &Path) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("want.csv");
    let o = sluice()
        .arg("run")
        .arg(project_job)
        .args(["--scorer", TABULAR_CLASSIFIER, "--output"])
        .arg(&out)
        .arg("--job-dir")
        .arg(tmp.path().join("job"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", said(&o));
    std::fs::read(out).unwrap()
}

fn check_output(tmp: &tempfile::TempDir, name: &str, got: &[u8]) {
    let want = plugin_output(&tmp.path().join(name).join("job.yaml"));
    let text = String::from_utf8_lossy(got);
    assert_eq!(text.lines().count(), 501, "a header and the 500 sample rows:\n{text}");
    assert!(got == want.as_slice(), "the project's output differs from tabular-classifier's:\n{text}");
}

#[test]
fn a_new_rust_project_builds_and_runs_with_its_readme_commands() {
    let shared = repo("target/new-projects/rust-target");
    std::fs::create_dir_all(&shared).unwrap();
    let (tmp, got) = make_and_run("rust", "my-scorer", |p| {
        std::os::unix::fs::symlink(&shared, p.join("target")).unwrap();
        let manifest = std::fs::read_to_string(p.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("sluice-sdk = { path = "), "{manifest}");
        assert!(std::fs::read_to_string(p.join("job.yaml")).unwrap().contains("release/my_scorer.wasm"));
    });
    check_output(&tmp, "my-scorer", &got);
}

#[test]
fn a_new_python_project_builds_and_runs_with_its_readme_commands() {
    let (tmp, got) = make_and_run("python", "py-scorer", |p| {
        assert!(p.join("score.py").is_file() && p.join("model/model.onnx").is_file());
    });
    check_output(&tmp, "py-scorer", &got);
}

#[test]
fn a_new_javascript_project_builds_and_runs_with_its_readme_commands() {
    let (tmp, got) = make_and_run("js", "js-scorer", |p| {
        assert!(p.join("score.js").is_file() && p.join("data/part-00001.csv").is_file());
    });
    check_output(&tmp, "js-scorer", &got);
}

#[test]
fn new_refuses_bad_names_and_existing_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let o = sluice().args(["new", "My Scorer", "--path"]).arg(tmp.path().join("x")).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert!(said(&o).contains("project name `My Scorer`"), "{}", said(&o));
    std::fs::write(tmp.path().join("keep.txt"), "mine").unwrap();
    let o = sluice().args(["new", "x", "--path"]).arg(tmp.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert!(said(&o).contains("already exists and is not empty"), "{}", said(&o));
    assert_eq!(std::fs::read_to_string(tmp.path().join("keep.txt")).unwrap(), "mine");
    let o = sluice().args(["new", "x", "--sdk-root"]).arg(tmp.path()).arg("--path").arg(tmp.path().join("y")).output();
    let o = o.unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert!(said(&o).contains("holds no sluice SDKs"), "{}", said(&o));
}

fn cache_cmd(dir: &Path, args: &[&str]) -> String {
    let o = sluice().arg("cache").args(args).arg("--cache-dir").arg(dir).output().unwrap();
    assert!(o.status.success(), "{}", said(&o));
    said(&o)
}

#[test]
fn validate_compiles_into_the_cache_and_the_cache_commands_show_and_trim_it() {
    let tmp = tempfile::tempdir().unwrap();
    let cache: PathBuf = tmp.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::write(cache.join("mine.txt"), "not the cache's").unwrap();
    for guest in [FILE_STATS, ECHO] {
        let o = sluice().args(["validate", guest, "--cache-dir"]).arg(&cache).output().unwrap();
        assert!(o.status.success(), "{}", said(&o));
    }
    // A run after validate compiles nothing.
    let o = sluice().args(["compile", FILE_STATS, "--cache-dir"]).arg(&cache).output().unwrap();
    assert!(said(&o).contains("is already compiled"), "{}", said(&o));
    let list = cache_cmd(&cache, &["list"]);
    assert_eq!(list.matches("  scorer sha256 ").count(), 2, "{list}");
    assert!(list.contains("cap 4096.0 MiB"), "{list}");
    // The least recently used entry goes first: file-stats was used last.
    let stats_hash = {
        let o = sluice().args(["validate", FILE_STATS, "--no-cache"]).output().unwrap();
        said(&o).split("sha256 ").nth(1).unwrap()[..16].to_string()
    };
    let gc = cache_cmd(&cache, &["gc", "--max-mb", "0"]);
    assert!(gc.contains("evicted 2 files"), "{gc}");
    assert!(cache_cmd(&cache, &["list"]).contains("total 0.0 MiB in 0 files"));
    let _ = sluice().args(["validate", ECHO, "--cache-dir"]).arg(&cache).output().unwrap();
    let _ = sluice().args(["validate", FILE_STATS, "--cache-dir"]).arg(&cache).output().unwrap();
    let sizes: Vec<u64> = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".cwasm"))
        .map(|e| e.metadata().unwrap().len())
        .collect();
    // Room for the larger entry alone: the older one (echo) goes.
    let keep_mb = *sizes.iter().max().unwrap() as f64 / f64::from(1 << 20) + 1e-6;
    let o = sluice().args(["cache", "gc", "--max-mb", &format!("{keep_mb:.7}"), "--cache-dir"]).arg(&cache).output();
    assert!(said(&o.unwrap()).contains("evicted 1 files"));
    let list = cache_cmd(&cache, &["list"]);
    assert!(list.contains(&stats_hash), "the entry used last stays:\n{list}");
    let clear = cache_cmd(&cache, &["clear"]);
    assert!(clear.contains("removed 1 files"), "{clear}");
    assert!(cache.join("mine.txt").is_file(), "clear removes only the cache's own files");
}
