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

/// One engine serves two jobs with different limits: the memory cap is per
/// instance (the store's limiter), not per engine, so a guest handed a
/// 40 MiB file (it must hold it in its linear memory) runs out of memory
/// in the job capped at 32 MiB and succeeds in the one at 256 MiB, on the
/// same engine. A job asking for more than the engine's maxima is refused
/// with the `limits.*` key named.
#[test]
fn one_engine_serves_two_jobs_with_different_memory_caps() {
    use std::sync::Arc;

    use sluice_engine::{EngineConfig, GuestLog, InstanceSettings, Level, PreparedBatch};
    use sluice_job::ReasonCode;
    use sluice_job::data::{FileInput, Items, MiniBatchInput};

    struct NoLog;
    impl GuestLog for NoLog {
        fn line(&self, _: usize, _: Option<&str>, _: Level, _: &str) {}
    }

    let roomy = Limits { memory_bytes: 256 << 20, ..Limits::default() };
    let tight = Limits { memory_bytes: 32 << 20, ..Limits::default() };
    let config = EngineConfig::for_job(&roomy, 2);
    let engine = ScorerEngine::new(&config).unwrap().with_compiler(compiler());
    let settings = |limits: &Limits| InstanceSettings {
        limits: limits.clone(),
        timeout: std::time::Duration::from_secs(60),
        config: Default::default(),
        mounts: Vec::new(),
        writable: Vec::new(),
        halt: None,
        log: Arc::new(NoLog),
        instance_id: 0,
        models: None,
        log_budget: None,
        stop: None,
    };
    let batch = || {
        PreparedBatch::new(MiniBatchInput {
            id: "big".into(),
            items: Items::Files(vec![FileInput { name: "big.txt".into(), data: vec![b'x'; 40 << 20] }]),
        })
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async {
        let roomy_job = engine.load_for(&roomy, Path::new(ECHO), None).unwrap();
        let tight_job = engine.load_for(&tight, Path::new(ECHO), None).unwrap();

        let mut a = roomy_job.instantiate(settings(&roomy)).await.unwrap();
        let out = a.run(&batch()).await.unwrap();
        assert_eq!(out.row_items, [0], "the 256 MiB job scores the 40 MiB file");

        let mut b = tight_job.instantiate(settings(&tight)).await.unwrap();
        let f = b.run(&batch()).await.unwrap_err();
        assert_eq!(f.code, ReasonCode::Oom, "{}", f.message);
        assert!(f.message.contains("limits.memory_mb (32 MiB)"), "{}", f.message);

        // The roomy job's instance is untouched by the other's failure.
        assert_eq!(a.run(&batch()).await.unwrap().row_items, [0]);
    });

    // Over the engine's maxima: refused when loading, naming the key.
    let deep = Limits { max_wasm_stack: config.max_stack_bytes * 2, ..roomy.clone() };
    let e = engine.load_for(&deep, Path::new(ECHO), None).unwrap_err().to_string();
    assert!(e.contains("limits.max_wasm_stack_kb") && e.contains("2048 KiB"), "{e}");
    let big = Limits { memory_bytes: 512 << 20, ..roomy };
    let e = engine.load_for(&big, Path::new(ECHO), None).unwrap_err().to_string();
    assert!(e.contains("limits.memory_mb") && e.contains("512 MiB"), "{e}");
}
