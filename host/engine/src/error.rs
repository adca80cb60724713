//! Why a scorer cannot be loaded, checked or run on an engine. At the
//! bottom of the crate (beside `bindings`): the compiler, the cache and the
//! engine all return it.

use std::path::PathBuf;

/// Why a scorer cannot be loaded or checked. Each message names the file
/// and, for a bound, the `limits.*` key that sets it.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot configure the wasm engine: {0:#}")]
    Config(wasmtime::Error),
    #[error("{path}: cannot read the scorer: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: the scorer is {kind}, not a regular .wasm file; it is refused without reading it")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error(
        "{path}: the scorer is {}, over `limits.max_scorer_mb` = {cap_mb} MiB; it is refused without reading it whole",
        .size.map_or("larger than that".to_string(), |n| format!("{n} bytes"))
    )]
    TooLarge { path: PathBuf, size: Option<u64>, cap_mb: u64 },
    #[error("{path}: not a valid WebAssembly component: {reason}")]
    NotComponent { path: PathBuf, reason: String },
    #[error("{path}: not a valid WebAssembly component: {source:#}")]
    Compile { path: PathBuf, source: wasmtime::Error },
    /// The imports or exports do not fit the host's world (found without
    /// compiling; the same words `validate` prints).
    #[error("{path}: the component does not fit the sluice:scorer world: {}", .problems.join("; "))]
    Names { path: PathBuf, problems: Vec<String> },
    #[error("{path}: the component does not fit the sluice:scorer world: {source:#}")]
    World { path: PathBuf, source: wasmtime::Error },
    #[error(
        "{path}: compiling the scorer needed more than `limits.compile_memory_mb` = {mb} MiB; the compile was \
         stopped and nothing was cached"
    )]
    CompileMemory { path: PathBuf, mb: u64 },
    #[error(
        "{path}: compiling the scorer took longer than `limits.compile_timeout_s` = {secs} s; the compiler was \
         killed and nothing was cached"
    )]
    CompileTimeout { path: PathBuf, secs: u64 },
    #[error(
        "{path}: compiling the scorer used more than {cpu_s} CPU-seconds (`limits.compile_timeout_s` x {cores} \
         cores); the compiler was stopped and nothing was cached"
    )]
    CompileCpu { path: PathBuf, cpu_s: u64, cores: usize },
    #[error("{path}: the scorer compiler {program} failed ({status}): {stderr}")]
    CompilerFailed { path: PathBuf, program: PathBuf, status: String, stderr: String },
    #[error("cannot run the scorer compiler {program}: {source}")]
    CompilerStart { program: PathBuf, source: std::io::Error },
    #[error(
        "no scorer compiler: set SLUICE_COMPILER to the sluice binary, or install `sluice` next to {exe} \
         (scorers are compiled in a child process, `sluice __compile-component`)"
    )]
    NoCompiler { exe: PathBuf },
    #[error("{path}: the compiled component could not be loaded: {source:#}")]
    Artifact { path: PathBuf, source: wasmtime::Error },
    /// A job asks for more wasm stack than its engine was made with:
    /// wasmtime checks the stack against one engine-wide limit, so a job
    /// cannot raise it for itself.
    #[error(
        "`limits.max_wasm_stack_kb` = {asked_kb} KiB is over this engine's largest wasm stack, {max_kb} KiB \
         (`EngineConfig::max_stack_bytes`, engine-wide in wasmtime): lower it or run the job on an engine made \
         with `EngineConfig::for_job`"
    )]
    StackOverEngine { asked_kb: u64, max_kb: u64 },
    /// A job asks for more linear memory than its engine's pool slots hold.
    #[error(
        "`limits.memory_mb` = {asked_mb} MiB is over this engine's largest instance memory, {max_mb} MiB \
         (`EngineConfig::max_memory_bytes`, the size of its pooled memory slots): lower it or run the job on an \
         engine made with `EngineConfig::for_job`"
    )]
    MemoryOverEngine { asked_mb: u64, max_mb: u64 },
}
