//! Reading and compiling an untrusted scorer within bounds.
//!
//! - Reading: a scorer that is not a regular file (a FIFO would block the
//!   reader forever, a device would never end) or is larger than
//!   `limits.max_scorer_mb` is refused from its metadata, before it is read;
//!   the read itself stops one byte past the cap, so a file that grows while
//!   it is read cannot get past it.
//! - Compiling: Cranelift's time and memory grow with the number of
//!   functions (300,000 empty functions, 1.1 MiB of wasm, take ~15 s and
//!   1.8 GB), so a scorer is compiled in a child process,
//!   `<compiler> __compile-component`, which reads the wasm on stdin and
//!   writes wasmtime's precompiled artifact on stdout, under an address
//!   space data limit (`RLIMIT_DATA` = `limits.compile_memory_mb`), a CPU
//!   limit (`RLIMIT_CPU` = `limits.compile_timeout_s` x cores) and a
//!   wall-clock timeout (`limits.compile_timeout_s`) after which the parent
//!   kills it. The parent loads the artifact with an engine of the same
//!   compatibility hash (wasmtime refuses an artifact of another one).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sluice_job::Limits;

use crate::error::EngineError;

/// The hidden subcommand of the `sluice` binary that compiles one component.
pub const COMPILE_SUBCOMMAND: &str = "__compile-component";

/// The compiler child's flag naming the compile cache folder, whose
/// per-function entries (`incremental/`) it reads and adds to.
pub(crate) const INCREMENTAL_FLAG: &str = "--incremental-cache";

/// The compiler child's exit code when wasmtime refuses the component (the
/// reason is on its stderr).
const REFUSED: u8 = 3;

/// How much of the compiler child's stderr is kept for messages.
const STDERR_KEEP: usize = 16 << 10;

/// The program [`Compiler::Discover`] uses when `SLUICE_COMPILER` is
/// unset: the CLI sets its own path when it starts.
static DEFAULT_PROGRAM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Makes `program` (an executable that answers `__compile-component`: the
/// `sluice` CLI, which calls this with its own path) the compiler that
/// [`Compiler::Discover`] finds when `SLUICE_COMPILER` is unset. Only the
/// first call counts.
pub fn set_default_compiler(program: PathBuf) {
    let _ = DEFAULT_PROGRAM.set(program);
}

/// Where scorers are compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Compiler {
    /// The program named by `SLUICE_COMPILER`, else the one given to
    /// [`set_default_compiler`] (the CLI gives its own path), else a
    /// `sluice` binary next to the running executable; found when a scorer
    /// is compiled.
    #[default]
    Discover,
    /// `PROGRAM __compile-component` in a child process with the compile
    /// limits: the `sluice` binary (the CLI passes its own path).
    Process(PathBuf),
    /// In this process, without memory, CPU or time limits: only for
    /// trusted components (unit tests, benchmarks of known guests).
    InProcess,
}

impl Compiler {
    /// The program to run, for [`Compiler::Discover`] and
    /// [`Compiler::Process`]; `None` for [`Compiler::InProcess`].
    pub fn program(&self) -> Result<Option<PathBuf>, EngineError> {
        match self {
            Compiler::InProcess => Ok(None),
            Compiler::Process(p) => Ok(Some(p.clone())),
            Compiler::Discover => {
                if let Some(p) = std::env::var_os("SLUICE_COMPILER").filter(|p| !p.is_empty()) {
                    return Ok(Some(PathBuf::from(p)));
                }
                if let Some(p) = DEFAULT_PROGRAM.get() {
                    return Ok(Some(p.clone()));
                }
                let exe = std::env::current_exe().unwrap_or_default();
                let sibling = exe.with_file_name(format!("sluice{}", std::env::consts::EXE_SUFFIX));
                if sibling.is_file() {
                    return Ok(Some(sibling));
                }
                Err(EngineError::NoCompiler { exe })
            }
        }
    }
}

/// The bounds of reading and compiling one scorer, from a job's
/// `limits.max_scorer_mb`, `limits.compile_memory_mb` and
/// `limits.compile_timeout_s`: they protect the host from a hostile
/// component before it runs, so each job (or an engine's default) sets them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompileBounds {
    /// `limits.max_scorer_mb`: the largest `.wasm` read.
    pub max_scorer_bytes: u64,
    /// `limits.compile_memory_mb`: the compiler child's `RLIMIT_DATA`.
    pub memory_bytes: u64,
    /// `limits.compile_timeout_s`: the compiler child's wall clock (and,
    /// times the cores, its CPU time).
    pub timeout: Duration,
}

impl CompileBounds {
    /// The compile bounds of a job's `limits`.
    pub fn of(l: &Limits) -> CompileBounds {
        CompileBounds {
            max_scorer_bytes: l.max_scorer_bytes,
            memory_bytes: l.compile_memory_bytes,
            timeout: l.compile_timeout,
        }
    }
}

/// [`CompileBounds`] and the engine's wasm stack (the compiler child's
/// configuration must match the engine's, or its artifact does not load
/// there).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CompileLimits {
    pub max_scorer_bytes: u64,
    pub memory_bytes: u64,
    pub timeout: Duration,
    pub max_wasm_stack: usize,
}

impl CompileLimits {
    /// `b` for an engine whose wasm stack is `engine_stack`
    /// (`EngineConfig::max_stack_bytes`).
    pub(crate) fn new(b: &CompileBounds, engine_stack: usize) -> CompileLimits {
        CompileLimits {
            max_scorer_bytes: b.max_scorer_bytes,
            memory_bytes: b.memory_bytes,
            timeout: b.timeout,
            max_wasm_stack: engine_stack,
        }
    }

    /// The CPU-seconds the child may use: the wall-clock timeout on every
    /// core (compilation is parallel), so the timeout is what normally ends
    /// a runaway compile and `RLIMIT_CPU` is the backstop.
    fn cpu_seconds(&self) -> (u64, usize) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        (self.timeout.as_secs().max(1) * cores as u64, cores)
    }
}

/// The settings that decide what compiled code looks like (and so the
/// engine's compatibility hash): the job's engine adds the pooling
/// allocator to them; the compiler child (`sluice __compile-component`)
/// uses them as they are, so its artifacts load in the job's engine.
pub(crate) fn compile_config(max_wasm_stack: usize) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config
        .consume_fuel(true)
        .epoch_interruption(true)
        .wasm_component_model(true)
        .max_wasm_stack(max_wasm_stack)
        // The fiber stack must hold the wasm stack plus the host's frames.
        .async_stack_size(max_wasm_stack + (1 << 20));
    config
}

const MIB: u64 = 1 << 20;

/// What a file that is not a regular file is, in words.
fn kind_of(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

fn check_metadata(path: &Path, meta: &std::fs::Metadata, cap: u64) -> Result<(), EngineError> {
    if !meta.is_file() {
        return Err(EngineError::NotRegular { path: path.to_path_buf(), kind: kind_of(meta.file_type()) });
    }
    if meta.len() > cap {
        return Err(EngineError::TooLarge { path: path.to_path_buf(), size: Some(meta.len()), cap_mb: cap / MIB });
    }
    Ok(())
}

/// Reads a scorer file: refused from its metadata, before any read, when it
/// is not a regular file or is over `cap` bytes, and read no further than
/// one byte past `cap` (a file growing meanwhile is refused too).
pub(crate) fn read_scorer(path: &Path, cap: u64) -> Result<Vec<u8>, EngineError> {
    use std::os::unix::fs::OpenOptionsExt;
    let read_err = |source| EngineError::Read { path: path.to_path_buf(), source };
    check_metadata(path, &std::fs::metadata(path).map_err(read_err)?, cap)?;
    // Non-blocking open: if the path was swapped for a FIFO since the
    // metadata check, opening it must not wait for a writer. The metadata
    // of what was opened is checked again.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    check_metadata(path, &meta, cap)?;
    read_capped(file, cap, meta.len()).map_err(read_err)?.ok_or(EngineError::TooLarge {
        path: path.to_path_buf(),
        size: None,
        cap_mb: cap / MIB,
    })
}

/// Everything `r` yields, or `None` when that is more than `cap` bytes
/// (reading stops at `cap + 1`).
pub(crate) fn read_capped(r: impl Read, cap: u64, hint: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut bytes = Vec::with_capacity(hint.min(cap) as usize);
    r.take(cap.saturating_add(1)).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= cap).then_some(bytes))
}

/// Compiles `bytes` in `program __compile-component` under `limits` and
/// returns the precompiled artifact. No file is written: the caller caches
/// the artifact only once it has loaded it.
pub(crate) fn compile_in_child(
    program: &Path,
    path: &Path,
    bytes: &[u8],
    limits: &CompileLimits,
    cache_dir: Option<&Path>,
) -> Result<Vec<u8>, EngineError> {
    use std::os::unix::process::CommandExt;
    let (cpu_s, cores) = limits.cpu_seconds();
    let memory = limits.memory_bytes;
    let mut cmd = Command::new(program);
    cmd.arg(COMPILE_SUBCOMMAND)
        .arg("--max-wasm-stack")
        .arg(limits.max_wasm_stack.to_string())
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = cache_dir {
        cmd.arg(INCREMENTAL_FLAG).arg(dir);
    }
    // SAFETY: the closure runs in the forked child before exec and only
    // makes raw system calls (setrlimit, prctl): no allocation, no locks.
    unsafe {
        cmd.pre_exec(move || {
            use rustix::process::{Resource, Rlimit, setrlimit};
            let limit = |n: u64| Rlimit { current: Some(n), maximum: Some(n) };
            // RLIMIT_DATA, not RLIMIT_AS: it counts the memory the
            // compiler writes (heap, anonymous mappings), not address
            // space reserved and never touched.
            setrlimit(Resource::Data, limit(memory))?;
            // Soft: SIGXCPU; a second later, hard: SIGKILL.
            setrlimit(Resource::Cpu, Rlimit { current: Some(cpu_s), maximum: Some(cpu_s + 1) })?;
            setrlimit(Resource::Core, limit(0))?;
            #[cfg(target_os = "linux")]
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            Ok(())
        });
    }
    let mut child =
        cmd.spawn().map_err(|source| EngineError::CompilerStart { program: program.to_path_buf(), source })?;
    let deadline = Instant::now() + limits.timeout;
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let (status, timed_out, artifact, err_text) = std::thread::scope(|s| {
        // A child that fails early stops reading: the write then fails with
        // EPIPE, which only means the child has something to say.
        s.spawn(move || {
            let _ = stdin.write_all(bytes);
        });
        // The artifact cannot be larger than what the child could write.
        let out = s.spawn(move || read_capped(&mut stdout, memory, 0));
        let err = s.spawn(move || {
            let mut keep = Vec::new();
            let _ = (&mut stderr).take(STDERR_KEEP as u64).read_to_end(&mut keep);
            let _ = std::io::copy(&mut stderr, &mut std::io::sink());
            String::from_utf8_lossy(&keep).trim().to_string()
        });
        let (status, timed_out) = wait_until(&mut child, deadline);
        let artifact = out.join().unwrap_or(Ok(None));
        let err_text = err.join().unwrap_or_default();
        (status, timed_out, artifact, err_text)
    });
    let status = status.map_err(|source| EngineError::CompilerStart { program: program.to_path_buf(), source })?;
    let path = path.to_path_buf();
    if timed_out {
        return Err(EngineError::CompileTimeout { path, secs: limits.timeout.as_secs() });
    }
    if status.success() {
        return match artifact {
            Ok(Some(a)) if !a.is_empty() => Ok(a),
            _ => Err(EngineError::CompilerFailed {
                path,
                program: program.to_path_buf(),
                status: "exited 0 without a complete artifact".into(),
                stderr: err_text,
            }),
        };
    }
    Err(classify(status, err_text, path, program, limits.memory_bytes / MIB, cpu_s, cores))
}

/// Waits for `child` until `deadline`, then kills it. Returns its status
/// and whether the deadline killed it.
fn wait_until(child: &mut std::process::Child, deadline: Instant) -> (std::io::Result<ExitStatus>, bool) {
    let mut nap = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return (Ok(status), false),
            Ok(None) => {}
            Err(e) => return (Err(e), false),
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            return (child.wait(), true);
        }
        std::thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(20));
    }
}

/// Names the limit a failed compile ran into, from how the child ended.
fn classify(
    status: ExitStatus,
    stderr: String,
    path: PathBuf,
    program: &Path,
    memory_mb: u64,
    cpu_s: u64,
    cores: usize,
) -> EngineError {
    use std::os::unix::process::ExitStatusExt;
    // Rust aborts with "memory allocation of N bytes failed" when malloc
    // fails; wasmtime reports a refused mmap as ENOMEM (os error 12).
    let out_of_memory = ["memory allocation of", "os error 12", "Cannot allocate memory", "out of memory"]
        .iter()
        .any(|m| stderr.contains(m));
    if out_of_memory {
        return EngineError::CompileMemory { path, mb: memory_mb };
    }
    match (status.code(), status.signal()) {
        (_, Some(s)) if s == rustix::process::Signal::XCPU.as_raw() => EngineError::CompileCpu { path, cpu_s, cores },
        // The hard CPU limit (a second past the soft one) is a SIGKILL,
        // as is the kernel's OOM killer; say both.
        (_, Some(s)) if s == rustix::process::Signal::KILL.as_raw() => EngineError::CompilerFailed {
            path,
            program: program.to_path_buf(),
            status: format!(
                "killed (SIGKILL): past {cpu_s} CPU-seconds (limits.compile_timeout_s x {cores} cores) or out of memory"
            ),
            stderr,
        },
        (Some(c), _) if c == i32::from(REFUSED) => EngineError::NotComponent { path, reason: stderr },
        _ => EngineError::CompilerFailed { path, program: program.to_path_buf(), status: status.to_string(), stderr },
    }
}

/// The body of `sluice __compile-component --max-wasm-stack BYTES
/// [--incremental-cache DIR]`: reads a component on stdin, compiles it with
/// the job engine's settings (on-demand instance allocation: the
/// compatibility hash does not depend on it, and nothing is instantiated
/// here; the incremental cache does not change the code either) and writes
/// the artifact on stdout. With a cache folder, Cranelift reuses and adds
/// per-function entries there ([`crate::cache`]). Exit 0; 3 with the reason
/// on stderr when wasmtime refuses the component; 1 when the engine cannot
/// be made or stdout written.
pub fn compiler_child_main(max_wasm_stack: usize, cache_dir: Option<&Path>) -> std::process::ExitCode {
    use std::process::ExitCode;
    let mut bytes = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut bytes) {
        eprintln!("cannot read the component on stdin: {e}");
        return ExitCode::from(1);
    }
    let mut config = compile_config(max_wasm_stack);
    let functions = cache_dir.map(|dir| std::sync::Arc::new(crate::cache::FunctionCache::new(dir)));
    if let Some(f) = &functions
        && let Err(e) = config.enable_incremental_compilation(f.clone())
    {
        eprintln!("cannot enable the incremental compile cache: {e:#}");
        return ExitCode::from(1);
    }
    let engine = match wasmtime::Engine::new(&config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot configure the wasm engine: {e:#}");
            return ExitCode::from(1);
        }
    };
    let artifact = match engine.precompile_component(&bytes) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::from(REFUSED);
        }
    };
    drop(bytes);
    // Only a compile that succeeded adds per-function entries; one that
    // cannot write them still delivers its artifact.
    if let Some(f) = &functions
        && let Err(e) = f.write_new()
    {
        eprintln!("warning: cannot write the incremental compile cache: {e}");
    }
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(&artifact).and_then(|()| out.flush()) {
        eprintln!("cannot write the compiled component: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_stops_one_byte_past_the_cap() {
        let data = vec![7u8; 1000];
        assert_eq!(read_capped(&data[..], 1000, 0).unwrap().unwrap().len(), 1000);
        assert!(read_capped(&data[..], 999, 0).unwrap().is_none());
        // An endless reader (a file that keeps growing) ends at the cap.
        assert!(read_capped(std::io::repeat(1), 4096, 0).unwrap().is_none());
    }

    #[test]
    fn non_regular_and_oversized_files_are_refused_from_metadata() {
        let dir = std::env::temp_dir();
        let e = read_scorer(&dir, 1 << 20).unwrap_err().to_string();
        assert!(e.contains("a directory"), "{e}");
        let f = dir.join(format!("sluice-sparse-{}.wasm", std::process::id()));
        let file = std::fs::File::create(&f).unwrap();
        file.set_len(3 << 20).unwrap();
        let e = read_scorer(&f, 1 << 20).unwrap_err().to_string();
        let _ = std::fs::remove_file(&f);
        assert!(e.contains("limits.max_scorer_mb") && e.contains("3145728 bytes"), "{e}");
    }
}
