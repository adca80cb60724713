//! Runs the fixture models (tests/fixtures, written by make_test_model.py) through ONNX Runtime.
//! Needs the library: run scripts/install-onnxruntime.sh first (found through the compiled-in
//! project folder, or SLUICE_ONNXRUNTIME).

use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use sluice_onnx::{
    ElementType, ErrorCode, ModelGrant, ModelRegistry, NameKind, OnnxError, RegistryOptions, Tensor, TensorData,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures")).join(name)
}

fn registry(opts: RegistryOptions) -> ModelRegistry {
    let grants = [
        ModelGrant { name: "double".into(), path: fixture("double_sum.onnx") },
        ModelGrant { name: "ints".into(), path: fixture("int_plus.onnx") },
        ModelGrant { name: "slow".into(), path: fixture("slow.onnx") },
        ModelGrant { name: "mlflow".into(), path: fixture("mlflow_model") },
    ];
    ModelRegistry::load(&grants, opts).unwrap_or_else(|e| panic!("{e}"))
}

fn f32s(shape: &[usize], data: Vec<f32>) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::F32(data))
}

fn x(rows: usize) -> (String, Tensor) {
    ("x".to_owned(), f32s(&[rows, 3], (0..rows * 3).map(|i| i as f32).collect()))
}

#[test]
fn runs_and_checks_values() {
    let reg = registry(RegistryOptions::default());
    assert_eq!(reg.names(), ["double", "ints", "mlflow", "slow"]);
    let model = reg.get("double").unwrap();
    assert_eq!(model.hash().len(), 64);
    let info = model.info();
    assert_eq!(info.inputs[0].name, "x");
    assert_eq!(info.inputs[0].element_type, ElementType::F32);
    assert_eq!(info.inputs[0].shape, [-1, 3]);
    assert_eq!(info.outputs.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(), ["y", "s"]);
    assert_eq!(info.outputs[1].shape, [-1]);

    let out = model.run(vec![x(2)], &[], None).unwrap();
    assert_eq!(out[0], ("y".to_owned(), f32s(&[2, 3], vec![0., 2., 4., 6., 8., 10.])));
    assert_eq!(out[1], ("s".to_owned(), f32s(&[2], vec![3., 12.])));

    // an empty batch is fine
    let out = model.run(vec![x(0)], &[], None).unwrap();
    assert_eq!(out[0].1, f32s(&[0, 3], vec![]));
    assert_eq!(out[1].1, f32s(&[0], vec![]));

    // selected outputs come back in the asked order
    let out = model.run(vec![x(1)], &["s".to_owned()], Some(Instant::now() + Duration::from_secs(30))).unwrap();
    assert_eq!(out, [("s".to_owned(), f32s(&[1], vec![3.]))]);

    let ints = reg.get("ints").unwrap();
    assert_eq!(ints.info().inputs[0].element_type.to_string(), "s64");
    assert_eq!(ints.info().outputs[1].element_type.to_string(), "s32");
    let out = ints.run(vec![("ids".into(), Tensor::new(vec![3], TensorData::I64(vec![1, 2, 3])))], &[], None).unwrap();
    assert_eq!(out[0].1, Tensor::new(vec![3], TensorData::I64(vec![2, 3, 4])));
    assert_eq!(out[1].1, Tensor::new(vec![], TensorData::I32(vec![3])));

    // the MLflow folder resolves to its model.onnx, same bytes as double_sum.onnx
    let mlflow = reg.get("mlflow").unwrap();
    assert_eq!(mlflow.path(), fixture("mlflow_model/model.onnx"));
    assert_eq!(mlflow.hash(), model.hash());

    let slow = reg.get("slow").unwrap();
    let out = slow.run(vec![("x".into(), f32s(&[1, 512], vec![1.0; 512]))], &[], None).unwrap();
    assert!(
        matches!(&out[0].1.data, TensorData::F32(v) if v.len() == 512 && v.iter().all(|&y| (y - 1.0).abs() < 1e-4))
    );
}

fn code_of(result: Result<Vec<(String, Tensor)>, OnnxError>) -> (ErrorCode, OnnxError) {
    let err = result.expect_err("expected an error");
    (err.code(), err)
}

#[test]
fn typed_errors() {
    let reg = registry(RegistryOptions { max_tensor_bytes: 1024, ..Default::default() });
    match reg.get("nope") {
        Err(e @ OnnxError::UnknownModel { .. }) => {
            assert_eq!(e.code(), ErrorCode::UnknownModel);
            assert!(e.to_string().contains("`nope`") && e.to_string().contains("double, ints"), "{e}");
        }
        other => panic!("expected UnknownModel, got {other:?}"),
    }
    let model = reg.get("double").unwrap();

    let (code, e) = code_of(model.run(vec![("z".into(), f32s(&[1, 3], vec![0.; 3]))], &[], None));
    assert_eq!(code, ErrorCode::UnknownName);
    assert!(matches!(&e, OnnxError::UnknownName { kind: NameKind::Input, name, .. } if name == "z"), "{e}");

    let (code, e) = code_of(model.run(vec![x(1)], &["y".into(), "t".into()], None));
    assert_eq!(code, ErrorCode::UnknownName);
    assert!(e.to_string().contains("no output named `t`") && e.to_string().contains("y, s"), "{e}");

    let (code, e) =
        code_of(model.run(vec![("x".into(), Tensor::new(vec![1, 3], TensorData::F64(vec![0.; 3])))], &[], None));
    assert_eq!(code, ErrorCode::TypeMismatch);
    assert!(e.to_string().contains("expected a f32 tensor, got a f64 tensor"), "{e}");

    let (code, e) = code_of(model.run(vec![("x".into(), f32s(&[2, 4], vec![0.; 8]))], &[], None));
    assert_eq!(code, ErrorCode::ShapeMismatch);
    assert!(e.to_string().contains("[2, 4]") && e.to_string().contains("[?, 3]"), "{e}");
    let (code, _) = code_of(model.run(vec![("x".into(), f32s(&[3], vec![0.; 3]))], &[], None));
    assert_eq!(code, ErrorCode::ShapeMismatch);
    let (code, e) = code_of(model.run(vec![("x".into(), f32s(&[2, 3], vec![0.; 5]))], &[], None));
    assert_eq!(code, ErrorCode::ShapeMismatch);
    assert!(e.to_string().contains("5 elements, the shape needs 6"), "{e}");

    // 1024-byte limit: 86 rows of 3 f32 = 1032 bytes
    let (code, e) = code_of(model.run(vec![x(86)], &[], None));
    assert_eq!(code, ErrorCode::TooLarge);
    assert!(e.to_string().contains("1032 bytes") && e.to_string().contains("max_tensor_mb (1024 bytes)"), "{e}");
    assert!(model.run(vec![x(85)], &[], None).is_ok());

    let (code, e) = code_of(model.run(vec![], &[], None));
    assert_eq!(code, ErrorCode::InvalidInput);
    assert!(e.to_string().contains("input `x` (f32 [?, 3]) is required"), "{e}");
    let (code, _) = code_of(model.run(vec![x(1), x(1)], &[], None));
    assert_eq!(code, ErrorCode::InvalidInput);
}

#[test]
fn bad_model_file_is_a_load_error() {
    let dir = std::env::temp_dir().join(format!("sluice-onnx-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.onnx");
    std::fs::write(&bad, b"this is not protobuf").unwrap();
    let err = ModelRegistry::load(&[ModelGrant { name: "bad".into(), path: bad.clone() }], RegistryOptions::default())
        .unwrap_err();
    assert!(matches!(&err, OnnxError::ModelLoad { path, .. } if path == &bad), "{err}");
    assert!(err.to_string().contains("not a valid ONNX model"), "{err}");
    assert_eq!(err.code(), ErrorCode::Runtime);

    let err = ModelRegistry::load(
        &[ModelGrant { name: "gone".into(), path: dir.join("gone.onnx") }],
        RegistryOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(&err, OnnxError::ModelLoad { .. }), "{err}");

    // nothing granted: no library needed, empty registry
    assert!(ModelRegistry::load(&[], RegistryOptions::default()).unwrap().names().is_empty());
}

#[test]
fn pool_runs_concurrently_within_its_size() {
    let reg = Arc::new(registry(RegistryOptions { pool_size: 2, ..Default::default() }));
    let slow = reg.get("slow").unwrap();
    assert_eq!(slow.session_count(), 1);

    // two runs at once on one model: the second gets its own session
    let start = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (slow, start) = (Arc::clone(&slow), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                slow.run(vec![("x".into(), f32s(&[32, 512], vec![1.0; 32 * 512]))], &[], None)
            })
        })
        .collect();
    for h in handles {
        let out = h.join().unwrap().unwrap();
        assert_eq!(out[0].1.shape, [32, 512]);
    }
    assert_eq!(slow.session_count(), 2);

    // many callers, still never more than pool_size sessions
    let double = reg.get("double").unwrap();
    let handles: Vec<_> = (0..6)
        .map(|t| {
            let double = Arc::clone(&double);
            std::thread::spawn(move || {
                for i in 0..20 {
                    let rows = 1 + (t + i) % 4;
                    let out = double.run(vec![x(rows)], &["s".into()], None).unwrap();
                    assert_eq!(out[0].1.shape, [rows]);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(double.session_count() <= 2, "{}", double.session_count());
}

/// The spin fixture alone (eight times slow.onnx's work per row; loaded
/// only where needed).
fn spin(opts: RegistryOptions) -> Arc<sluice_onnx::Model> {
    let grants = [ModelGrant { name: "spin".into(), path: fixture("spin.onnx") }];
    ModelRegistry::load(&grants, opts).unwrap_or_else(|e| panic!("{e}")).get("spin").unwrap()
}

fn spin_input(rows: usize) -> Vec<(String, Tensor)> {
    vec![("x".to_owned(), f32s(&[rows, 1024], vec![1.0; rows * 1024]))]
}

/// CPU time of the calling thread (Linux: the first field of
/// /proc/thread-self/schedstat, in nanoseconds).
fn thread_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    stat.split_whitespace().next().unwrap().parse::<f64>().unwrap() / 1e9
}

/// Seconds per row of an uncut spin run on one idle core of this machine,
/// measured once as the difference between a 40-row and an 8-row run (so
/// the fixed cost of a run, which a large run pays once, does not inflate
/// it) in CPU time of the thread running them (ONNX Runtime runs on the
/// caller's thread with one intra-op thread), so other load on the machine
/// neither inflates nor cancels it.
fn spin_seconds_per_row() -> f64 {
    static MEASURED: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *MEASURED.get_or_init(|| {
        let model = spin(RegistryOptions::default());
        let time = |rows| {
            let started = thread_cpu_seconds();
            model.run(spin_input(rows), &[], None).unwrap();
            thread_cpu_seconds() - started
        };
        let (small, large) = (time(8), time(40));
        (large - small) / 32.0
    })
}

/// Fails unless an uncut spin run of `rows` rows would take at least ten
/// times `deadline`: a test of a deadline must not pass or fail on whether
/// the run happens to finish first.
fn assert_outlasts_tenfold(rows: usize, deadline: Duration) {
    let uncut = spin_seconds_per_row() * rows as f64;
    assert!(
        uncut >= 10.0 * deadline.as_secs_f64(),
        "spin.onnx on {rows} rows runs ~{uncut:.2}s uncut, under 10x the {deadline:?} deadline: make it slower"
    );
}

#[test]
fn deadline_stops_a_long_run() {
    let slow = spin(RegistryOptions::default());
    let deadline = Duration::from_millis(100);
    assert_outlasts_tenfold(512, deadline);

    // already past: not even started
    let (code, e) = code_of(slow.run(spin_input(512), &[], Some(Instant::now())));
    assert_eq!(code, ErrorCode::Timeout, "{e}");

    // the watchdog terminates it mid-run (uncut, it takes 10x the deadline or more)
    let started = Instant::now();
    let (code, e) = code_of(slow.run(spin_input(512), &[], Some(Instant::now() + deadline)));
    let took = started.elapsed();
    assert_eq!(code, ErrorCode::Timeout, "{e}");
    assert!(took < Duration::from_secs(2), "terminate took {took:?}");
    assert!(matches!(e, OnnxError::Timeout { elapsed_ms, .. } if elapsed_ms >= 100), "{e:?}");
    assert!(e.to_string().contains("`spin` ran past its deadline"), "{e}");

    // the session is fine afterwards
    let out = slow.run(spin_input(1), &[], None).unwrap();
    assert_eq!(out[0].1.shape, [1, 1024]);
}

#[test]
fn waiting_for_a_busy_session_respects_the_deadline() {
    // One session, held by a run that its own deadline cuts after 1s (10x
    // or more short of finishing); a second run, with a 200ms deadline,
    // must give up after 200ms, long before the session is free.
    const BUSY_ROWS: usize = 4096;
    let busy_deadline = Duration::from_secs(1);
    assert_outlasts_tenfold(BUSY_ROWS, busy_deadline);
    let slow = spin(RegistryOptions { pool_size: 1, ..Default::default() });
    let (started_tx, started) = std::sync::mpsc::channel();
    let (done_tx, done) = std::sync::mpsc::channel();
    let busy = {
        let slow = Arc::clone(&slow);
        std::thread::spawn(move || {
            let input = spin_input(BUSY_ROWS);
            started_tx.send(()).unwrap();
            let r = slow.run(input, &[], Some(Instant::now() + busy_deadline));
            done_tx.send(()).unwrap();
            r
        })
    };
    started.recv().unwrap();
    // The busy run is now checking the session out. A probe that gets it
    // first runs its empty batch at once and leaves; probe until one finds
    // the session taken and waits.
    let probe_deadline = Duration::from_millis(200);
    let mut waited = None;
    for _ in 0..100 {
        let t = Instant::now();
        match slow.run(spin_input(0), &[], Some(t + probe_deadline)) {
            Ok(_) => {
                assert!(t.elapsed() < probe_deadline, "a probe ran after its deadline ({:?})", t.elapsed());
                continue;
            }
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::Timeout, "{e}");
                waited = Some(t.elapsed());
                break;
            }
        }
    }
    let waited = waited.expect("no probe ever found the one session busy");
    assert!(done.try_recv().is_err(), "the waiter returned only when the busy run ended ({waited:?})");
    assert!(waited >= probe_deadline && waited < busy_deadline, "waited {waited:?}");
    assert_eq!(busy.join().unwrap().unwrap_err().code(), ErrorCode::Timeout);
    assert_eq!(slow.session_count(), 1);
}
