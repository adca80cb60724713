//! The wasmtime engine of a job and the compiled, linked scorer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_job::Limits;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::{Scorer, ScorerPre};
use crate::compile::{CompileLimits, Compiler};
use crate::host_state::HostState;
use crate::world::LIFECYCLE_PREFIX;

/// How often the epoch advances: the granularity of wall-clock deadlines.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

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
}

/// One wasmtime engine for a job: pooling allocator sized to the job's
/// instances, fuel and epoch interruption on, async support so a guest
/// waiting in a host call can be abandoned at its deadline.
pub struct ScorerEngine {
    engine: Engine,
    linker: Linker<HostState>,
    stop_ticker: Arc<AtomicBool>,
    compiler: Compiler,
    limits: CompileLimits,
}

impl std::fmt::Debug for ScorerEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScorerEngine").finish_non_exhaustive()
    }
}

impl ScorerEngine {
    /// An engine for up to `instances` live instances at once with `limits`
    /// (the stack cap is engine-wide, so one engine per job).
    pub fn new(limits: &Limits, instances: u32) -> Result<ScorerEngine, EngineError> {
        let mut pool = PoolingAllocationConfig::new();
        // A Rust component built for wasm32-wasip2 has a handful of core
        // instances (main module plus shims); leave room for other toolchains.
        let slots = instances.max(1) + 1;
        pool.total_component_instances(slots)
            .max_core_instances_per_component(32)
            .total_core_instances(slots * 32)
            .max_memories_per_component(4)
            .total_memories(slots * 4)
            .max_tables_per_component(8)
            .total_tables(slots * 8)
            .total_stacks(slots)
            .max_memory_size(limits.memory_bytes as usize);

        let mut config = compile_config(limits.max_wasm_stack);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(EngineError::Config)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(EngineError::Config)?;
        Scorer::add_to_linker::<_, HasSelf<HostState>>(&mut linker, |s| s).map_err(EngineError::Config)?;

        let stop_ticker = Arc::new(AtomicBool::new(false));
        let (e, stop) = (engine.clone(), stop_ticker.clone());
        std::thread::Builder::new()
            .name("sluice-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    e.increment_epoch();
                }
            })
            .map_err(|e| EngineError::Config(e.into()))?;
        Ok(ScorerEngine {
            engine,
            linker,
            stop_ticker,
            compiler: Compiler::Discover,
            limits: CompileLimits::new(limits),
        })
    }

    /// Where this engine compiles scorers (default [`Compiler::Discover`]).
    pub fn with_compiler(mut self, compiler: Compiler) -> ScorerEngine {
        self.compiler = compiler;
        self
    }

    /// Reads, checks, compiles (or loads from `cache_dir`) and links a
    /// scorer. In order, each refusing before the next costs anything: the
    /// file's type and size (`limits.max_scorer_mb`), its imports and
    /// exports by name (the check `validate` prints), the compile in the
    /// compiler child (`limits.compile_memory_mb`, `limits.compile_timeout_s`),
    /// then wasmtime's link and type check. Only a component that compiled
    /// gets a cache entry.
    pub fn load(&self, path: &Path, cache_dir: Option<&Path>) -> Result<ScorerComponent, EngineError> {
        let bytes = crate::compile::read_scorer(path, self.limits.max_scorer_bytes)?;
        self.load_bytes(path, &bytes, cache_dir)
    }

    /// [`ScorerEngine::load`] of bytes already in memory (`path` names them
    /// in messages).
    pub fn load_bytes(
        &self,
        path: &Path,
        bytes: &[u8],
        cache_dir: Option<&Path>,
    ) -> Result<ScorerComponent, EngineError> {
        if bytes.len() as u64 > self.limits.max_scorer_bytes {
            return Err(EngineError::TooLarge {
                path: path.to_path_buf(),
                size: Some(bytes.len() as u64),
                cap_mb: self.limits.max_scorer_bytes >> 20,
            });
        }
        let names = self.names(path, bytes)?;
        if !names.problems.is_empty() {
            return Err(EngineError::Names { path: path.to_path_buf(), problems: names.problems });
        }
        let hash = crate::cache::wasm_hash(bytes);
        let (component, cached) =
            crate::cache::load_or_compile(&self.engine, path, &hash, cache_dir, || self.compile(path, bytes))?;
        let world = |source| EngineError::World { path: path.to_path_buf(), source };
        let instance_pre = self.linker.instantiate_pre(&component).map_err(world)?;
        let pre = ScorerPre::new(instance_pre).map_err(world)?;
        let lifecycle = lifecycle_export(&self.engine, &component);
        Ok(ScorerComponent { engine: self.engine.clone(), pre, lifecycle, hash, from_cache: cached })
    }

    /// The name check of [`crate::world`], with a file name on failure.
    fn names(&self, path: &Path, bytes: &[u8]) -> Result<crate::world::Names, EngineError> {
        crate::world::check(bytes).map_err(|reason| EngineError::NotComponent { path: path.to_path_buf(), reason })
    }

    /// The precompiled artifact of `bytes`, from the compiler child (or
    /// this process for [`Compiler::InProcess`]).
    fn compile(&self, path: &Path, bytes: &[u8]) -> Result<Vec<u8>, EngineError> {
        match self.compiler.program()? {
            Some(program) => crate::compile::compile_in_child(&program, path, bytes, &self.limits),
            None => self
                .engine
                .precompile_component(bytes)
                .map_err(|source| EngineError::Compile { path: path.to_path_buf(), source }),
        }
    }
}

/// The settings that decide what compiled code looks like (and so the
/// engine's compatibility hash): the job's engine adds the pooling
/// allocator to them; the compiler child (`sluice __compile-component`)
/// uses them as they are, so its artifacts load in the job's engine.
pub(crate) fn compile_config(max_wasm_stack: usize) -> Config {
    let mut config = Config::new();
    config
        .consume_fuel(true)
        .epoch_interruption(true)
        .wasm_component_model(true)
        .max_wasm_stack(max_wasm_stack)
        // The fiber stack must hold the wasm stack plus the host's frames.
        .async_stack_size(max_wasm_stack + (1 << 20));
    config
}

/// What `sluice validate` reports about a component.
#[derive(Debug, Clone)]
pub struct Validation {
    /// Each import and whether the host provides it (`None`) or why not.
    pub imports: Vec<(String, Option<String>)>,
    /// Each export and what sluice does with it.
    pub exports: Vec<(String, String)>,
    /// Everything that stops the component from running, in words; empty
    /// when it fits the world.
    pub problems: Vec<String>,
    /// sha256 of the `.wasm`.
    pub hash: String,
}

impl ScorerEngine {
    /// Checks a component against the host's world without running it:
    /// the file bounds and the name check [`ScorerEngine::load`] makes;
    /// only when the names fit, the compile (in the compiler child, with
    /// its limits; its result is not cached) and wasmtime's link and type
    /// check.
    pub fn validate(&self, path: &Path) -> Result<Validation, EngineError> {
        let bytes = crate::compile::read_scorer(path, self.limits.max_scorer_bytes)?;
        let hash = crate::cache::wasm_hash(&bytes);
        let crate::world::Names { imports, exports, mut problems } = self.names(path, &bytes)?;
        if problems.is_empty() {
            let artifact = self.compile(path, &bytes)?;
            // SAFETY: see `cache::deserialize`.
            let component = unsafe { crate::cache::deserialize(&self.engine, &artifact) }
                .map_err(|source| EngineError::Artifact { path: path.to_path_buf(), source })?;
            // Names fit: let wasmtime check every type.
            match self.linker.instantiate_pre(&component) {
                Err(e) => problems.push(format!("does not link: {e:#}")),
                Ok(pre) => {
                    if let Err(e) = ScorerPre::new(pre) {
                        problems.push(format!("exports do not match the world: {e:#}"));
                    }
                }
            }
        }
        Ok(Validation { imports, exports, problems, hash })
    }
}

/// The name of the `lifecycle` export, if the component has one (a
/// component built against any 0.1.x version of the WIT).
fn lifecycle_export(engine: &Engine, c: &Component) -> Option<String> {
    c.component_type().exports(engine).map(|(n, _)| n).find(|n| n.starts_with(LIFECYCLE_PREFIX)).map(str::to_string)
}

impl Drop for ScorerEngine {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// A compiled scorer linked against the host, ready to instantiate many
/// times (wasmtime's `InstancePre`).
pub struct ScorerComponent {
    pub(crate) engine: Engine,
    pub(crate) pre: ScorerPre<HostState>,
    /// The `lifecycle` export's full name, when the component has one.
    pub(crate) lifecycle: Option<String>,
    /// sha256 of the `.wasm` bytes.
    pub hash: String,
    /// Whether the compiled code came from the on-disk cache.
    pub from_cache: bool,
}

impl std::fmt::Debug for ScorerComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScorerComponent").field("hash", &self.hash).field("lifecycle", &self.lifecycle).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(component (type (instance)) (import "NAME" (instance (type 0))))`.
    fn importing(name: &str) -> Vec<u8> {
        let mut c = vec![0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];
        c.extend_from_slice(&[0x07, 0x03, 0x01, 0x42, 0x00]);
        let mut import = vec![0x01, 0x00, name.len() as u8];
        import.extend_from_slice(name.as_bytes());
        import.extend_from_slice(&[0x05, 0x00]);
        c.push(0x0a);
        c.push(import.len() as u8);
        c.extend_from_slice(&import);
        c
    }

    #[test]
    fn every_linked_interface_passes_the_name_check_at_any_compatible_version() {
        let sluice = crate::world::SLUICE_INTERFACES.map(|i| format!("sluice:scorer/{i}"));
        for iface in crate::world::WASI_INTERFACES.iter().copied().chain(sluice.iter().map(String::as_str)) {
            let versions = if iface.starts_with("wasi:") { ["0.2.0", "0.2.12"] } else { ["0.1.0", "0.1.1"] };
            for v in versions {
                let name = format!("{iface}@{v}");
                assert_eq!(crate::world::host_provides(&name), None, "{name}");
            }
        }
    }

    /// wasmtime's linker alone accepts an import of an instance it does not
    /// define when the instance type has no functions or resources (only
    /// types): that is how a component importing `sluice:scorer/types@0.2.0`
    /// used to run. The name check, before any compile, refuses it.
    #[test]
    fn the_linker_lets_an_undefined_types_only_instance_through_and_the_name_check_does_not() {
        let engine = ScorerEngine::new(&Limits::default(), 1).unwrap();
        for name in ["sluice:scorer/types@0.2.0", "wasi:http/types@0.2.0", "wasi:nn/inference@0.2.0"] {
            let c = Component::new(&engine.engine, importing(name)).unwrap();
            assert!(engine.linker.instantiate_pre(&c).is_ok(), "wasmtime links an empty `{name}`");
            let names = crate::world::check(&importing(name)).unwrap();
            assert_eq!(names.imports.len(), 1);
            assert!(names.imports[0].1.is_some(), "{name}: {:?}", names.imports);
            assert!(names.problems[0].starts_with(&format!("import `{name}`: ")), "{:?}", names.problems);
        }
    }

    #[test]
    fn the_compiler_child_config_has_the_job_engine_compatibility_hash() {
        use std::hash::{Hash, Hasher};
        let hash = |e: &Engine| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            e.precompile_compatibility_hash().hash(&mut h);
            h.finish()
        };
        let limits = Limits { max_wasm_stack: 512 << 10, ..Limits::default() };
        let job = ScorerEngine::new(&limits, 8).unwrap();
        let child = Engine::new(&compile_config(limits.max_wasm_stack)).unwrap();
        assert_eq!(hash(&job.engine), hash(&child));
        // The artifact of one loads in the other.
        let c = child.precompile_component(&importing("wasi:cli/stdout@0.2.0")).unwrap();
        // SAFETY: made by `precompile_component` just above.
        unsafe { crate::cache::deserialize(&job.engine, &c) }.unwrap();
    }
}
