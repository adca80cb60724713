//! The engine facade: compile cache and world checks.

use std::path::Path;

use sluice_engine::ScorerEngine;
use sluice_job::Limits;

use crate::helpers::*;

#[test]
fn compiled_components_are_cached_and_a_damaged_entry_is_recompiled() {
    let cache = tempfile::tempdir().unwrap();
    let engine = ScorerEngine::new(&sluice_engine::EngineConfig::for_job(&Limits::default(), 1))
        .unwrap()
        .with_compiler(compiler());
    let first = engine.load(Path::new(ECHO), Some(cache.path())).unwrap();
    assert!(!first.from_cache);
    let second = engine.load(Path::new(ECHO), Some(cache.path())).unwrap();
    assert!(second.from_cache);
    assert_eq!(first.hash, second.hash);

    let entries: Vec<_> = std::fs::read_dir(cache.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 1);
    assert!(entries[0].file_name().unwrap().to_string_lossy().starts_with(&first.hash));
    std::fs::write(&entries[0], b"garbage").unwrap();
    let third = engine.load(Path::new(ECHO), Some(cache.path())).unwrap();
    assert!(!third.from_cache, "a damaged cache entry is not trusted");
}

#[test]
fn a_component_of_another_world_is_refused_with_what_it_lacks() {
    // A valid component that exports nothing sluice can call.
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("empty.wasm");
    // `(component)` in binary form: magic, component version/layer.
    std::fs::write(&wasm, [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00]).unwrap();
    let engine = ScorerEngine::new(&sluice_engine::EngineConfig::for_job(&Limits::default(), 1))
        .unwrap()
        .with_compiler(compiler());
    let err = engine.load(&wasm, None).unwrap_err().to_string();
    assert!(err.contains("does not fit the sluice:scorer world"), "{err}");
    assert!(err.contains("init"), "names the missing export: {err}");
}

#[test]
fn a_component_built_against_wit_0_1_0_still_links_and_runs() {
    let job = Job::new(LEGACY).file("a.txt", "abc").file("b.txt", "").output("csv");
    let r = job.run();
    assert_eq!((r.mini_batches.failed, r.items.succeeded), (0, 2));
    let (h, rows) = job.csv_rows();
    assert_eq!(h, ["name", "bytes"]);
    assert_eq!(rows, [["a.txt", "3"], ["b.txt", "0"]]);
}
