//! Loading ONNX Runtime is process-global, so this binary has a single test that tries the failures
//! first (nothing loaded yet) and then the real library.

use std::path::PathBuf;

use sluice_onnx::{ErrorCode, OnnxError, init_runtime};

#[test]
fn bad_libraries_are_errors_then_the_real_one_loads() {
    let dir = std::env::temp_dir().join(format!("sluice-onnx-lib-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();

    // nothing there
    let bogus = dir.join("nowhere/libonnxruntime.so");
    match init_runtime(Some(&bogus)) {
        Err(e @ OnnxError::LibraryMissing { .. }) => {
            let message = e.to_string();
            assert!(message.contains(&bogus.display().to_string()), "{message}");
            assert!(message.contains("run scripts/install-onnxruntime.sh"), "{message}");
            assert_eq!(e.code(), ErrorCode::Runtime);
        }
        other => panic!("expected LibraryMissing, got {other:?}"),
    }

    // a file that is not a library
    std::fs::write(dir.join("libonnxruntime.so"), b"not an ELF file").unwrap();
    match init_runtime(Some(&dir)) {
        Err(OnnxError::LibraryLoad { path, message }) => {
            assert!(path.ends_with("libonnxruntime.so"), "{}", path.display());
            assert!(!message.is_empty());
        }
        other => panic!("expected LibraryLoad, got {other:?}"),
    }

    // a real shared library that is not ONNX Runtime
    if let Some(libm) = ["/lib/x86_64-linux-gnu/libm.so.6", "/usr/lib/x86_64-linux-gnu/libm.so.6", "/lib64/libm.so.6"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
    {
        match init_runtime(Some(&libm)) {
            Err(OnnxError::LibraryLoad { message, .. }) => assert!(message.contains("OrtGetApiBase"), "{message}"),
            other => panic!("expected LibraryLoad, got {other:?}"),
        }
    }

    // the real one (SLUICE_ONNXRUNTIME or the project folder), once; later calls return it
    let loaded = init_runtime(None).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.file_name().unwrap().to_string_lossy().starts_with("libonnxruntime"));
    assert_eq!(init_runtime(Some(&bogus)).unwrap(), loaded);
}
