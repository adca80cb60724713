//! The wasmtime engine (shared by every job it serves) and the compiled,
//! linked scorer.
//!
//! Where each limit lives: what must be the same for all the instances of
//! an engine is in [`EngineConfig`] (the pool's size, the wasm stack,
//! the largest memory slot, the default compile bounds); what a job sets
//! for itself is given when its scorer is loaded ([`ScorerEngine::load_for`]:
//! its compile bounds, checked to fit the engine) and when each instance is
//! made ([`crate::InstanceSettings::limits`]: memory, fuel, timeouts, log
//! volume, ONNX bounds, enforced per store).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_job::Limits;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::ScorerPre;
use crate::compile::{CompileBounds, CompileLimits, Compiler, compile_config};
use crate::error::EngineError;
use crate::store::StoreState;
use crate::world::LIFECYCLE_PREFIX;

/// How often the epoch advances: the granularity of wall-clock deadlines.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How an engine is made: what every job it serves shares. A job's own
/// limits are not here: memory, fuel, timeouts and the other
/// `limits.*` go with each instance ([`crate::InstanceSettings`]) and the
/// compile bounds with each load ([`ScorerEngine::load_for`]), each
/// within the maxima below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Live instances at once, all jobs together: the pooling allocator
    /// reserves this many instance slots (plus one spare) up front.
    pub pool_size: u32,
    /// The wasm stack, bytes, of every instance: wasmtime checks a guest's
    /// stack against one limit per engine (`Config::max_wasm_stack`), so
    /// this is both the largest `limits.max_wasm_stack_kb` a job on this
    /// engine may ask for and the stack its instances get. It also decides
    /// the compiled code's compatibility: the compiler child is started
    /// with it.
    pub max_stack_bytes: usize,
    /// The largest linear memory of any instance, bytes: the size of the
    /// pool's memory slots. Each job's `limits.memory_mb` caps its own
    /// instances below it, per store.
    pub max_memory_bytes: u64,
    /// The bounds [`ScorerEngine::load`] and [`ScorerEngine::validate`]
    /// read and compile a scorer under (`limits.max_scorer_mb`,
    /// `limits.compile_memory_mb`, `limits.compile_timeout_s` of
    /// [`EngineConfig::for_job`]'s job); [`ScorerEngine::load_for`] uses
    /// the job's own.
    pub compile_defaults: CompileBounds,
}

impl EngineConfig {
    /// An engine for one job: `concurrency` instances at once, its stack
    /// and memory as the engine's maxima, its compile bounds as the
    /// defaults. Exactly the engine a job had when engines were per job.
    pub fn for_job(limits: &Limits, concurrency: u32) -> EngineConfig {
        EngineConfig {
            pool_size: concurrency.max(1),
            max_stack_bytes: limits.max_wasm_stack,
            max_memory_bytes: limits.memory_bytes,
            compile_defaults: CompileBounds::of(limits),
        }
    }

    /// Whether a job with `limits` fits an engine made with this
    /// configuration: its stack and memory within the engine's maxima. A
    /// job asking for more gets an error naming its `limits.*` key.
    pub fn check(&self, limits: &Limits) -> Result<(), EngineError> {
        if limits.max_wasm_stack > self.max_stack_bytes {
            return Err(EngineError::StackOverEngine {
                asked_kb: limits.max_wasm_stack as u64 >> 10,
                max_kb: self.max_stack_bytes as u64 >> 10,
            });
        }
        if limits.memory_bytes > self.max_memory_bytes {
            return Err(EngineError::MemoryOverEngine {
                asked_mb: limits.memory_bytes >> 20,
                max_mb: self.max_memory_bytes >> 20,
            });
        }
        Ok(())
    }
}

/// One wasmtime engine, for one job or many: pooling allocator sized to
/// [`EngineConfig::pool_size`], fuel and epoch interruption on, async
/// support so a guest waiting in a host call can be abandoned at its
/// deadline. Instances of different jobs share it; each store carries its
/// job's limits.
pub struct ScorerEngine {
    engine: Engine,
    linker: Linker<StoreState>,
    stop_ticker: Arc<AtomicBool>,
    compiler: Compiler,
    config: EngineConfig,
}

impl std::fmt::Debug for ScorerEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScorerEngine").field("config", &self.config).finish_non_exhaustive()
    }
}

impl ScorerEngine {
    /// An engine made with `config` (for one job:
    /// `ScorerEngine::new(&EngineConfig::for_job(&limits, concurrency))`).
    pub fn new(config: &EngineConfig) -> Result<ScorerEngine, EngineError> {
        let mut pool = PoolingAllocationConfig::new();
        // Sized for the interpreter guests, measured on their components
        // (core modules instantiated, tables and their initial elements,
        // one memory each): a Rust scorer (wasm32-wasip2) has 3 modules and
        // 102 table elements; componentize-py 0.25.1, 14 modules and 5,776
        // elements (CPython's function table 5,680); componentize-js 0.23.0,
        // 4 modules and 7,732 (SpiderMonkey's 7,698). A table larger than
        // `table_elements` does not instantiate, so leave ~4x room.
        let slots = config.pool_size.max(1) + 1;
        pool.total_component_instances(slots)
            .max_core_instances_per_component(32)
            .total_core_instances(slots * 32)
            .max_memories_per_component(4)
            .total_memories(slots * 4)
            .max_tables_per_component(8)
            .total_tables(slots * 8)
            .table_elements(32_768)
            .total_stacks(slots)
            .max_memory_size(config.max_memory_bytes as usize);

        let mut wasm = compile_config(config.max_stack_bytes);
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wasm).map_err(EngineError::Config)?;
        let linker = crate::store::linker(&engine).map_err(EngineError::Config)?;

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
        Ok(ScorerEngine { engine, linker, stop_ticker, compiler: Compiler::Discover, config: config.clone() })
    }

    /// Where this engine compiles scorers (default [`Compiler::Discover`]).
    pub fn with_compiler(mut self, compiler: Compiler) -> ScorerEngine {
        self.compiler = compiler;
        self
    }

    /// How this engine was made.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The compile bounds of [`EngineConfig::compile_defaults`].
    fn default_bounds(&self) -> CompileLimits {
        CompileLimits::new(&self.config.compile_defaults, self.config.max_stack_bytes)
    }

    /// Reads, checks, compiles (or loads from `cache_dir`) and links a
    /// scorer under the engine's default compile bounds
    /// ([`EngineConfig::compile_defaults`]). In order, each refusing before
    /// the next costs anything: the file's type and size
    /// (`limits.max_scorer_mb`), its imports and exports by name (the check
    /// `validate` prints), the compile in the compiler child
    /// (`limits.compile_memory_mb`, `limits.compile_timeout_s`), then
    /// wasmtime's link and type check. Only a component that compiled gets
    /// a cache entry.
    pub fn load(&self, path: &Path, cache_dir: Option<&Path>) -> Result<ScorerComponent, EngineError> {
        let bounds = self.default_bounds();
        let bytes = crate::compile::read_scorer(path, bounds.max_scorer_bytes)?;
        self.load_with(path, &bytes, cache_dir, &bounds)
    }

    /// [`ScorerEngine::load`] for a job with its own `limits`: first
    /// checks that the job fits this engine ([`EngineConfig::check`]: its
    /// `limits.max_wasm_stack_kb` and `limits.memory_mb` within the
    /// engine's maxima), then reads and compiles under the job's
    /// `limits.max_scorer_mb`, `limits.compile_memory_mb` and
    /// `limits.compile_timeout_s`.
    pub fn load_for(
        &self,
        limits: &Limits,
        path: &Path,
        cache_dir: Option<&Path>,
    ) -> Result<ScorerComponent, EngineError> {
        self.config.check(limits)?;
        let bounds = CompileLimits::new(&CompileBounds::of(limits), self.config.max_stack_bytes);
        let bytes = crate::compile::read_scorer(path, bounds.max_scorer_bytes)?;
        self.load_with(path, &bytes, cache_dir, &bounds)
    }

    /// A WASI command component (a pipeline's `type: command` step), read,
    /// name-checked (`wasi:cli/run` exported, every import provided) and
    /// compiled under the job's limits like a scorer, through the same
    /// compile cache.
    pub fn load_command_for(
        &self,
        limits: &Limits,
        path: &Path,
        cache_dir: Option<&Path>,
    ) -> Result<crate::CommandComponent, EngineError> {
        self.config.check(limits)?;
        let bounds = CompileLimits::new(&CompileBounds::of(limits), self.config.max_stack_bytes);
        let bytes = crate::compile::read_scorer(path, bounds.max_scorer_bytes)?;
        let names = crate::world::check_command(&bytes)
            .map_err(|reason| EngineError::NotComponent { path: path.to_path_buf(), reason })?;
        if !names.problems.is_empty() {
            return Err(EngineError::Names { path: path.to_path_buf(), problems: names.problems });
        }
        let hash = crate::cache::wasm_hash(&bytes);
        let (component, cached) = crate::cache::load_or_compile(&self.engine, path, &hash, cache_dir, || {
            self.compile(path, &bytes, &bounds, cache_dir)
        })?;
        let world = |source| EngineError::World { path: path.to_path_buf(), source };
        let instance_pre = self.linker.instantiate_pre(&component).map_err(world)?;
        let pre = wasmtime_wasi::p2::bindings::CommandPre::new(instance_pre).map_err(world)?;
        Ok(crate::CommandComponent {
            engine: self.engine.clone(),
            config: self.config.clone(),
            pre,
            hash,
            from_cache: cached,
        })
    }

    /// [`ScorerEngine::load`] of bytes already in memory (`path` names them
    /// in messages).
    pub fn load_bytes(
        &self,
        path: &Path,
        bytes: &[u8],
        cache_dir: Option<&Path>,
    ) -> Result<ScorerComponent, EngineError> {
        self.load_with(path, bytes, cache_dir, &self.default_bounds())
    }

    fn load_with(
        &self,
        path: &Path,
        bytes: &[u8],
        cache_dir: Option<&Path>,
        bounds: &CompileLimits,
    ) -> Result<ScorerComponent, EngineError> {
        if bytes.len() as u64 > bounds.max_scorer_bytes {
            return Err(EngineError::TooLarge {
                path: path.to_path_buf(),
                size: Some(bytes.len() as u64),
                cap_mb: bounds.max_scorer_bytes >> 20,
            });
        }
        let names = self.names(path, bytes)?;
        if !names.problems.is_empty() {
            return Err(EngineError::Names { path: path.to_path_buf(), problems: names.problems });
        }
        let hash = crate::cache::wasm_hash(bytes);
        let (component, cached) = crate::cache::load_or_compile(&self.engine, path, &hash, cache_dir, || {
            self.compile(path, bytes, bounds, cache_dir)
        })?;
        let world = |source| EngineError::World { path: path.to_path_buf(), source };
        let instance_pre = self.linker.instantiate_pre(&component).map_err(world)?;
        let pre = ScorerPre::new(instance_pre).map_err(world)?;
        let lifecycle = lifecycle_export(&self.engine, &component);
        Ok(ScorerComponent {
            engine: self.engine.clone(),
            config: self.config.clone(),
            pre,
            lifecycle,
            hash,
            from_cache: cached,
        })
    }

    /// The name check of [`crate::world`], with a file name on failure.
    fn names(&self, path: &Path, bytes: &[u8]) -> Result<crate::world::Names, EngineError> {
        crate::world::check(bytes).map_err(|reason| EngineError::NotComponent { path: path.to_path_buf(), reason })
    }

    /// The precompiled artifact of `bytes`, from the compiler child (with
    /// the per-function cache of `cache_dir` for a component of at least
    /// 8 MiB, `cache::INCREMENTAL_MIN_BYTES`) or this process for
    /// [`Compiler::InProcess`] (no per-function cache).
    fn compile(
        &self,
        path: &Path,
        bytes: &[u8],
        bounds: &CompileLimits,
        cache_dir: Option<&Path>,
    ) -> Result<Vec<u8>, EngineError> {
        match self.compiler.program()? {
            Some(program) => {
                let functions = cache_dir.filter(|_| bytes.len() >= crate::cache::INCREMENTAL_MIN_BYTES);
                crate::compile::compile_in_child(&program, path, bytes, bounds, functions)
            }
            None => self
                .engine
                .precompile_component(bytes)
                .map_err(|source| EngineError::Compile { path: path.to_path_buf(), source }),
        }
    }
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
    /// its limits, through the compile cache of `cache_dir` like a run's,
    /// so a `run` after `validate` compiles nothing) and wasmtime's link
    /// and type check.
    pub fn validate(&self, path: &Path, cache_dir: Option<&Path>) -> Result<Validation, EngineError> {
        let bounds = self.default_bounds();
        let bytes = crate::compile::read_scorer(path, bounds.max_scorer_bytes)?;
        let hash = crate::cache::wasm_hash(&bytes);
        let crate::world::Names { imports, exports, mut problems } = self.names(path, &bytes)?;
        if problems.is_empty() {
            let (component, _) = crate::cache::load_or_compile(&self.engine, path, &hash, cache_dir, || {
                self.compile(path, &bytes, &bounds, cache_dir)
            })?;
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
    /// The configuration of the engine it was linked in: an instance's
    /// limits are checked against it.
    pub(crate) config: EngineConfig,
    pub(crate) pre: ScorerPre<StoreState>,
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
            let versions: &[&str] =
                if iface.starts_with("wasi:") { &["0.2.0", "0.2.12"] } else { &["0.1.0", "0.1.1", "0.1.2", "0.1.3"] };
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
        let engine = ScorerEngine::new(&EngineConfig::for_job(&Limits::default(), 1)).unwrap();
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
        let job = ScorerEngine::new(&EngineConfig::for_job(&limits, 8)).unwrap();
        let child = Engine::new(&compile_config(limits.max_wasm_stack)).unwrap();
        assert_eq!(hash(&job.engine), hash(&child));
        // The artifact of one loads in the other.
        let c = child.precompile_component(&importing("wasi:cli/stdout@0.2.0")).unwrap();
        // SAFETY: made by `precompile_component` just above.
        unsafe { crate::cache::deserialize(&job.engine, &c) }.unwrap();
    }
}
