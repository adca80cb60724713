//! Builds the guest programs (tests/programs and the example plugins) to
//! `wasm32-wasip2` components, the way wasmtime builds its test-programs,
//! and passes their paths to the tests as `SLUICE_GUEST_<NAME>`.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest.parent().unwrap().to_path_buf();
    // A target folder of its own: the outer cargo holds a lock on the main one.
    let target =
        std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target")).join("guests");
    for dir in ["tests/programs", "plugins", "sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target)
        .args(["-p", "sluice-test-programs", "-p", "file-stats", "-p", "csv-validate", "-p", "tabular-classifier"]);
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("cannot run cargo to build the guest programs");
    assert!(
        status.success(),
        "building the guest programs failed; is the wasm32-wasip2 target installed? (`rustup target add wasm32-wasip2`, which scripts/test.sh does)"
    );
    let out = target.join("wasm32-wasip2").join("release");
    for (var, file) in [
        ("ADVERSARY", "adversary.wasm"),
        ("ECHO", "echo.wasm"),
        ("FILE_STATS", "file_stats.wasm"),
        ("CSV_VALIDATE", "csv_validate.wasm"),
        ("TABULAR_CLASSIFIER", "tabular_classifier.wasm"),
        ("PASSTHROUGH", "passthrough.wasm"),
        ("ONNX_PROBE", "onnx_probe.wasm"),
        ("LEGACY", "legacy.wasm"),
        ("HOST_ATTACK", "host_attack.wasm"),
        ("FLAKY", "flaky.wasm"),
        ("IMPORT_FUZZ", "import_fuzz.wasm"),
        ("READER", "reader.wasm"),
        ("FOLDER_WRITER", "folder_writer.wasm"),
        ("CONCAT", "concat.wasm"),
    ] {
        let p = out.join(file);
        assert!(p.is_file(), "{} was not built", p.display());
        println!("cargo:rustc-env=SLUICE_GUEST_{var}={}", p.display());
    }
}
