//! Bounded reading and compiling of untrusted scorers: the size cap before
//! reading, the name check before compiling (the same for `validate` and
//! `run`), and the compile in a child process under memory and time
//! limits. Every test that could hang on a regression runs under a
//! watchdog.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use sluice_engine::{Compiler, EngineError, ScorerEngine};
use sluice_job::Limits;

use crate::helpers::*;

/// Runs `f` on a thread and fails the test if it takes longer than `secs`.
fn within<T: Send + 'static>(secs: u64, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(RecvTimeoutError::Timeout) => panic!("{what} did not finish within {secs} s"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// Runs the test CLI with `args`, killing it (and failing) after `secs`.
/// Returns the exit code, stdout and stderr.
fn cli(args: &[&std::ffi::OsStr], secs: u64) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"))
        .args(args)
        .env("SLUICE_CACHE_DIR", cache_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sluice {args:?} did not finish within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().unwrap();
    (status.code(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

fn engine(limits: &Limits) -> ScorerEngine {
    ScorerEngine::new(&sluice_engine::EngineConfig::for_job(limits, 1)).unwrap().with_compiler(compiler())
}

fn leb(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn section(id: u8, body: &[u8], out: &mut Vec<u8>) {
    out.push(id);
    leb(body.len(), out);
    out.extend_from_slice(body);
}

/// A core module of `n` empty functions: little wasm, much compiling.
fn many_functions(n: usize) -> Vec<u8> {
    let mut m = vec![0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    section(1, &[0x01, 0x60, 0x00, 0x00], &mut m);
    let mut funcs = Vec::new();
    leb(n, &mut funcs);
    funcs.resize(funcs.len() + n, 0x00);
    section(3, &funcs, &mut m);
    let mut code = Vec::new();
    leb(n, &mut code);
    for _ in 0..n {
        code.extend_from_slice(&[0x02, 0x00, 0x0b]);
    }
    section(10, &code, &mut m);
    m
}

/// The echo guest with a core module of 300,000 empty functions appended
/// (a module section after everything else shifts no index): the names fit
/// the world, so it gets as far as the compiler, which must compile the
/// extra module (~1.8 GB and 10-17 s in process before the bounds).
fn big_component(dir: &Path) -> PathBuf {
    let mut c = std::fs::read(ECHO).unwrap();
    section(1, &many_functions(300_000), &mut c);
    let p = dir.join("big.wasm");
    std::fs::write(&p, c).unwrap();
    p
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|rd| rd.map(|e| e.unwrap().path()).collect()).unwrap_or_default()
}

#[test]
fn a_component_too_big_to_compile_hits_the_memory_limit_and_leaves_no_cache_entry() {
    let dir = tempfile::tempdir().unwrap();
    let big = big_component(dir.path());
    let cache = dir.path().join("cache");
    let limits =
        Limits { compile_memory_bytes: 256 << 20, compile_timeout: Duration::from_secs(120), ..Limits::default() };
    let (err, took) = within(180, "the bounded compile", {
        let (big, cache) = (big.clone(), cache.clone());
        move || {
            let t = Instant::now();
            (engine(&limits).load(&big, Some(&cache)).unwrap_err(), t.elapsed())
        }
    });
    eprintln!("refused in {took:?}: {err}");
    assert!(matches!(err, EngineError::CompileMemory { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("big.wasm") && msg.contains("`limits.compile_memory_mb` = 256 MiB"), "{msg}");
    assert!(entries(&cache).is_empty(), "no cache entry: {:?}", entries(&cache));
}

#[test]
fn a_component_too_slow_to_compile_hits_the_timeout_and_leaves_no_cache_entry() {
    let dir = tempfile::tempdir().unwrap();
    let big = big_component(dir.path());
    let cache = dir.path().join("cache");
    let limits = Limits { compile_timeout: Duration::from_secs(1), ..Limits::default() };
    let (err, took) = within(60, "the bounded compile", {
        let (big, cache) = (big.clone(), cache.clone());
        move || {
            let t = Instant::now();
            (engine(&limits).load(&big, Some(&cache)).unwrap_err(), t.elapsed())
        }
    });
    assert!(matches!(err, EngineError::CompileTimeout { secs: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("`limits.compile_timeout_s` = 1 s"), "{err}");
    assert!(took < Duration::from_secs(10), "killed at the timeout, not at the end: {took:?}");
    assert!(entries(&cache).is_empty(), "no cache entry: {:?}", entries(&cache));

    // `sluice validate` compiles in the same child, with the same limit.
    let (code, out, err) = cli(&[os("validate"), big.as_os_str(), os("--compile-timeout"), os("1")], 60);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("`limits.compile_timeout_s` = 1 s"), "{out}{err}");
}

#[test]
fn a_scorer_over_max_scorer_mb_is_refused_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let sparse = dir.path().join("sparse.wasm");
    std::fs::File::create(&sparse).unwrap().set_len((1 << 30) + 1).unwrap();
    // Unreadable as well: where that is enforced (not root), the refusal
    // can only have come from the metadata.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&sparse, std::fs::Permissions::from_mode(0o000)).unwrap();
    let unreadable = std::fs::File::open(&sparse).is_err();
    let err = within(30, "the size check", {
        let sparse = sparse.clone();
        move || engine(&Limits::default()).load(&sparse, None).unwrap_err()
    });
    assert!(matches!(err, EngineError::TooLarge { .. }), "{err:?} (unreadable: {unreadable})");
    let msg = err.to_string();
    assert!(msg.contains("sparse.wasm") && msg.contains("1073741825 bytes"), "{msg}");
    assert!(msg.contains("`limits.max_scorer_mb` = 256 MiB"), "{msg}");

    // `validate` and a job refuse it the same way; a job's cap comes from its spec.
    let (code, out, err) = cli(&[os("validate"), sparse.as_os_str()], 30);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("`limits.max_scorer_mb` = 256 MiB"), "{err}");
    std::fs::set_permissions(&sparse, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::File::create(&sparse).unwrap().set_len(2 << 20).unwrap();
    let job = Job::new(&sparse.display().to_string()).file("a.txt", "x").set("limits.max_scorer_mb", "1");
    let e = sluice_runtime::run_job(&job.spec(), &job.options()).unwrap_err().to_string();
    assert!(e.contains("2097152 bytes, over `limits.max_scorer_mb` = 1 MiB"), "{e}");
}

#[test]
fn a_fifo_as_the_scorer_is_refused_not_waited_on() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.wasm");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo");
    let err = within(30, "loading a FIFO", {
        let fifo = fifo.clone();
        move || engine(&Limits::default()).load(&fifo, None).unwrap_err()
    });
    assert!(matches!(err, EngineError::NotRegular { .. }), "{err:?}");
    assert!(err.to_string().contains("pipe.wasm: the scorer is a named pipe (FIFO)"), "{err}");

    let (code, out, err) = cli(&[os("validate"), fifo.as_os_str()], 30);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("a named pipe (FIFO)"), "{err}");
    // A job spec naming it does not validate.
    let e = sluice_job::JobSpec::from_overrides(&[
        sluice_job::spec::Override::new("inputs.data.type", "uri_folder"),
        sluice_job::spec::Override::new("inputs.data.path", dir.path().display().to_string()),
        sluice_job::spec::Override::new("input_data", "${{inputs.data}}"),
        sluice_job::spec::Override::new("task.code", fifo.display().to_string()),
    ])
    .unwrap_err();
    assert!(e.to_string().contains("pipe.wasm: not a regular file"), "{e}");
}

/// `bytes` with every `from` replaced by `to` (same length, so every
/// length prefix stays right).
fn rename(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let (from, to) = (from.as_bytes(), to.as_bytes());
    let mut out = bytes.to_vec();
    let mut hits = 0;
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            hits += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(hits > 0, "{} not found", String::from_utf8_lossy(from));
    out
}

/// The problems `validate` lists (`  - ...` lines).
fn problems(validate_stdout: &str) -> Vec<String> {
    validate_stdout.lines().filter_map(|l| l.strip_prefix("  - ")).map(str::to_string).collect()
}

/// `sluice validate` and `sluice run` on the same component: validate's
/// exit code and stdout, run's exit code and stderr.
fn validate_and_run(wasm: &Path) -> ((Option<i32>, String), (Option<i32>, String)) {
    let (vcode, vout, verr) = cli(&[os("validate"), wasm.as_os_str()], 120);
    eprintln!("{vout}{verr}");
    let job = Job::new(ECHO).file("a.txt", "x");
    let (rcode, rout, rerr) = cli(
        &[
            os("run"),
            os("--input"),
            job.input().as_os_str(),
            os("--scorer"),
            wasm.as_os_str(),
            os("--job-dir"),
            job.job_dir().as_os_str(),
            os("-q"),
        ],
        120,
    );
    eprintln!("{rout}{rerr}");
    ((vcode, vout), (rcode, rerr))
}

#[test]
fn validate_and_run_refuse_a_sluice_scorer_0_2_0_component_with_the_same_words() {
    let dir = tempfile::tempdir().unwrap();
    // Only `types`: an interface of types alone, which wasmtime's linker
    // lets through undefined (so `run` used to link and run this).
    let bytes = rename(&std::fs::read(LEGACY).unwrap(), "sluice:scorer/types@0.1.0", "sluice:scorer/types@0.2.0");
    let wasm = dir.path().join("v020.wasm");
    std::fs::write(&wasm, &bytes).unwrap();

    let ((vcode, vout), (rcode, rerr)) = validate_and_run(&wasm);
    assert_eq!(vcode, Some(1), "{vout}");
    assert!(
        vout.contains(
            "MISSING  sluice:scorer/types@0.2.0: version 0.2.0: the host links sluice:scorer 0.1.3 (compatible: 0.1.x)"
        ),
        "{vout}"
    );
    let listed = problems(&vout);
    assert!(!listed.is_empty(), "{vout}");
    assert_eq!(rcode, Some(1), "{rerr}");
    assert!(rerr.contains("v020.wasm: the component does not fit the sluice:scorer world"), "{rerr}");
    for p in &listed {
        assert!(rerr.contains(p.as_str()), "run says what validate says: `{p}` not in {rerr}");
    }
}

#[test]
fn unlinked_wasi_interfaces_are_missing_in_validate_and_refused_by_run_before_compiling() {
    let dir = tempfile::tempdir().unwrap();
    let echo = std::fs::read(ECHO).unwrap();
    // Same-length renames of two imports the echo guest has.
    let bytes = rename(&echo, "wasi:cli/stderr@0.2.", "wasi:http/types@0.2.");
    let bytes = rename(&bytes, "wasi:cli/exit@0.2.", "wasi:nn/graph@0.2.");
    let wasm = dir.path().join("wants-http.wasm");
    std::fs::write(&wasm, &bytes).unwrap();

    let ((vcode, vout), (rcode, rerr)) = validate_and_run(&wasm);
    assert_eq!(vcode, Some(1), "{vout}");
    assert!(vout.contains("MISSING  wasi:http/types@0.2."), "{vout}");
    assert!(vout.contains("the host does not link `wasi:http/types`"), "{vout}");
    assert!(vout.contains("MISSING  wasi:nn/graph@0.2."), "{vout}");
    assert!(!vout.contains("ok       wasi:http") && !vout.contains("ok       wasi:nn"), "{vout}");
    assert!(vout.contains("ok       wasi:cli/stdout@0.2."), "the others stay ok: {vout}");
    assert_eq!(rcode, Some(1), "{rerr}");
    for p in problems(&vout) {
        assert!(rerr.contains(p.as_str()), "run says what validate says: `{p}` not in {rerr}");
    }

    // Before compiling: with no compiler to run, the refusal is the same.
    let no_compiler = ScorerEngine::new(&sluice_engine::EngineConfig::for_job(&Limits::default(), 1))
        .unwrap()
        .with_compiler(Compiler::Process(dir.path().join("no-such-compiler")));
    let err = no_compiler.load(&wasm, None).unwrap_err();
    assert!(matches!(err, EngineError::Names { .. }), "{err:?}");
    let err = no_compiler.validate(&wasm, None).unwrap();
    assert!(err.problems.iter().any(|p| p.contains("wasi:http/types")), "{:?}", err.problems);
    // ... and a component whose names fit does need it.
    let err = no_compiler.load(Path::new(ECHO), None).unwrap_err();
    assert!(matches!(err, EngineError::CompilerStart { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-compiler"), "{err}");
}

#[test]
fn the_compiler_child_artifact_loads_and_a_corrupt_component_is_refused_by_it() {
    // The echo guest through the child, without cache: what it writes
    // deserializes in the job's engine (same compatibility hash) and runs.
    let component = engine(&Limits::default()).load(Path::new(ECHO), None).unwrap();
    assert!(!component.from_cache);
    // Names that fit but code that does not validate: the child's wasmtime
    // refuses it, and the message says so.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(ECHO).unwrap();
    let mut bad_module = vec![0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    // A function section with one function of a type that does not exist.
    section(3, &[0x01, 0x05], &mut bad_module);
    section(1, &bad_module, &mut bytes);
    let wasm = dir.path().join("bad-code.wasm");
    std::fs::write(&wasm, &bytes).unwrap();
    let err = engine(&Limits::default()).load(&wasm, Some(&dir.path().join("cache"))).unwrap_err();
    assert!(matches!(err, EngineError::NotComponent { .. }), "{err:?}");
    assert!(err.to_string().contains("bad-code.wasm: not a valid WebAssembly component"), "{err}");
    assert!(entries(&dir.path().join("cache")).is_empty());
}
