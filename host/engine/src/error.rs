//! Why a scorer cannot be loaded, checked or run on an engine. At the
//! bottom of the crate (beside `bindings`): the compiler, the cache and the
//! engine all return it.

use std::path::PathBuf;

/// Why a scorer cannot be loaded or checked. Each message names the file
/// and, for a bound, the `limits.*` key that sets it.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// wasmtime refused the engine's configuration, or the linker or the epoch ticker could not be set up.
    #[error("cannot configure the wasm engine: {0:#}")]
    Config(wasmtime::Error),
    /// The scorer file could not be opened or read.
    #[error("{path}: cannot read the scorer: {source}")]
    Read {
        /// The scorer file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The scorer path is not a regular file (a directory, a FIFO, a device...); it is refused unread.
    #[error("{path}: the scorer is {kind}, not a regular .wasm file; it is refused without reading it")]
    NotRegular {
        /// The scorer path.
        path: PathBuf,
        /// What the path is instead, in words ("a directory").
        kind: &'static str,
    },
    /// The scorer file is over `limits.max_scorer_mb`; it is refused before being read whole.
    #[error(
        "{path}: the scorer is {}, over `limits.max_scorer_mb` = {cap_mb} MiB; it is refused without reading it whole",
        .size.map_or("larger than that".to_string(), |n| format!("{n} bytes"))
    )]
    TooLarge {
        /// The scorer file.
        path: PathBuf,
        /// Its size in bytes, when known; `None` when it grew past the cap while being read.
        size: Option<u64>,
        /// The cap, `limits.max_scorer_mb`, in MiB.
        cap_mb: u64,
    },
    /// The bytes are not a WebAssembly component (a core module, or malformed), found before compiling.
    #[error("{path}: not a valid WebAssembly component: {reason}")]
    NotComponent {
        /// The scorer file.
        path: PathBuf,
        /// What is wrong with it, in words.
        reason: String,
    },
    /// wasmtime could not compile the component (the in-process compile).
    #[error("{path}: not a valid WebAssembly component: {source:#}")]
    Compile {
        /// The scorer file.
        path: PathBuf,
        /// wasmtime's error.
        source: wasmtime::Error,
    },
    /// The imports or exports do not fit the host's world (found without
    /// compiling; the same words `validate` prints).
    #[error("{path}: the component does not fit the sluice:scorer world: {}", .problems.join("; "))]
    Names {
        /// The scorer file.
        path: PathBuf,
        /// One line per import or export that does not fit.
        problems: Vec<String>,
    },
    /// The names fit but wasmtime's link or type check of the compiled component failed.
    #[error("{path}: the component does not fit the sluice:scorer world: {source:#}")]
    World {
        /// The scorer file.
        path: PathBuf,
        /// wasmtime's link or type error.
        source: wasmtime::Error,
    },
    /// Compiling in the child needed more memory than `limits.compile_memory_mb`; nothing was cached.
    #[error(
        "{path}: compiling the scorer needed more than `limits.compile_memory_mb` = {mb} MiB; the compile was \
         stopped and nothing was cached"
    )]
    CompileMemory {
        /// The scorer file.
        path: PathBuf,
        /// The compiler child's memory limit, `limits.compile_memory_mb`, in MiB.
        mb: u64,
    },
    /// The compiler child ran past `limits.compile_timeout_s` of wall-clock time and was killed; nothing was cached.
    #[error(
        "{path}: compiling the scorer took longer than `limits.compile_timeout_s` = {secs} s; the compiler was \
         killed and nothing was cached"
    )]
    CompileTimeout {
        /// The scorer file.
        path: PathBuf,
        /// The wall-clock limit, `limits.compile_timeout_s`, in seconds.
        secs: u64,
    },
    /// The compiler child ran past its CPU-time limit (`limits.compile_timeout_s` scaled by the cores) and was
    /// stopped; nothing was cached.
    #[error(
        "{path}: compiling the scorer used more than {cpu_s} CPU-seconds (`limits.compile_timeout_s` x {cores} \
         cores); the compiler was stopped and nothing was cached"
    )]
    CompileCpu {
        /// The scorer file.
        path: PathBuf,
        /// The CPU-time limit the child ran under, in CPU-seconds.
        cpu_s: u64,
        /// The cores the limit was scaled by.
        cores: usize,
    },
    /// The compiler child ended badly for another reason: a crash, a kill (maybe the OOM killer), an
    /// unexpected exit code, or an exit 0 without a complete artifact.
    #[error("{path}: the scorer compiler {program} failed ({status}): {stderr}")]
    CompilerFailed {
        /// The scorer file.
        path: PathBuf,
        /// The compiler program that was run.
        program: PathBuf,
        /// How it ended, in words (exit status or signal).
        status: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// The compiler child could not be started or waited for.
    #[error("cannot run the scorer compiler {program}: {source}")]
    CompilerStart {
        /// The compiler program.
        program: PathBuf,
        /// The I/O error from spawning or waiting.
        source: std::io::Error,
    },
    /// No compiler program was found: `SLUICE_COMPILER` is unset and there is no `sluice` binary beside the
    /// current executable.
    #[error(
        "no scorer compiler: set SLUICE_COMPILER to the sluice binary, or install `sluice` next to {exe} \
         (scorers are compiled in a child process, `sluice __compile-component`)"
    )]
    NoCompiler {
        /// The current executable, beside which `sluice` was looked for.
        exe: PathBuf,
    },
    /// A compiled artifact (fresh from the compiler) could not be deserialized into a component.
    #[error("{path}: the compiled component could not be loaded: {source:#}")]
    Artifact {
        /// The scorer file the artifact was compiled from.
        path: PathBuf,
        /// wasmtime's error.
        source: wasmtime::Error,
    },
    /// A job asks for more wasm stack than its engine was made with:
    /// wasmtime checks the stack against one engine-wide limit, so a job
    /// cannot raise it for itself.
    #[error(
        "`limits.max_wasm_stack_kb` = {asked_kb} KiB is over this engine's largest wasm stack, {max_kb} KiB \
         (`EngineConfig::max_stack_bytes`, engine-wide in wasmtime): lower it or run the job on an engine made \
         with `EngineConfig::for_job`"
    )]
    StackOverEngine {
        /// The stack the job asked for, `limits.max_wasm_stack_kb`, in KiB.
        asked_kb: u64,
        /// The engine's largest wasm stack, in KiB.
        max_kb: u64,
    },
    /// A job asks for more linear memory than its engine's pool slots hold.
    #[error(
        "`limits.memory_mb` = {asked_mb} MiB is over this engine's largest instance memory, {max_mb} MiB \
         (`EngineConfig::max_memory_bytes`, the size of its pooled memory slots): lower it or run the job on an \
         engine made with `EngineConfig::for_job`"
    )]
    MemoryOverEngine {
        /// The memory the job asked for, `limits.memory_mb`, in MiB.
        asked_mb: u64,
        /// The engine's largest instance memory (its pool slot size), in MiB.
        max_mb: u64,
    },
}
