//! The wasmtime engine of a job and the compiled, linked scorer.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sluice_job::Limits;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings::{Scorer, ScorerPre};
use crate::host_state::HostState;

/// The optional export interface holding `shutdown`, any 0.1.x version.
const LIFECYCLE_PREFIX: &str = "sluice:scorer/lifecycle@0.1.";

/// How often the epoch advances: the granularity of wall-clock deadlines.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot configure the wasm engine: {0:#}")]
    Config(wasmtime::Error),
    #[error("{path}: cannot read the scorer: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a valid WebAssembly component: {source:#}")]
    Compile { path: PathBuf, source: wasmtime::Error },
    #[error("{path}: the component does not fit the sluice:scorer world: {source:#}")]
    World { path: PathBuf, source: wasmtime::Error },
}

/// One wasmtime engine for a job: pooling allocator sized to the job's
/// instances, fuel and epoch interruption on, async support so a guest
/// waiting in a host call can be abandoned at its deadline.
pub struct ScorerEngine {
    engine: Engine,
    linker: Linker<HostState>,
    stop_ticker: Arc<AtomicBool>,
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

        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .wasm_component_model(true)
            .max_wasm_stack(limits.max_wasm_stack)
            // The fiber stack must hold the wasm stack plus the host's frames.
            .async_stack_size(limits.max_wasm_stack + (1 << 20))
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
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
        Ok(ScorerEngine { engine, linker, stop_ticker })
    }

    /// Compiles (or loads from `cache_dir`) and links a scorer. Fails with a
    /// message naming what the component lacks when it does not fit the
    /// world.
    pub fn load(&self, path: &Path, cache_dir: Option<&Path>) -> Result<ScorerComponent, EngineError> {
        let bytes = std::fs::read(path).map_err(|source| EngineError::Read { path: path.to_path_buf(), source })?;
        self.load_bytes(path, &bytes, cache_dir)
    }

    pub fn load_bytes(
        &self,
        path: &Path,
        bytes: &[u8],
        cache_dir: Option<&Path>,
    ) -> Result<ScorerComponent, EngineError> {
        let hash = crate::cache::wasm_hash(bytes);
        let (component, cached) = crate::cache::load_or_compile(&self.engine, bytes, &hash, cache_dir)
            .map_err(|source| EngineError::Compile { path: path.to_path_buf(), source })?;
        let world = |source| EngineError::World { path: path.to_path_buf(), source };
        let instance_pre = self.linker.instantiate_pre(&component).map_err(world)?;
        let pre = ScorerPre::new(instance_pre).map_err(world)?;
        let lifecycle = lifecycle_export(&self.engine, &component);
        Ok(ScorerComponent { engine: self.engine.clone(), pre, lifecycle, hash, from_cache: cached })
    }
}

/// The name of the `lifecycle` export, if the component has one (a
/// component built against any 0.1.x version of the WIT).
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

/// Interfaces the host provides: WASI 0.2 (as wasmtime-wasi links it) and
/// sluice's own at any 0.1.x version.
fn host_provides(import: &str) -> Option<String> {
    const SLUICE: [&str; 4] = ["types", "log", "onnx", "batch"];
    if let Some(rest) = import.strip_prefix("wasi:") {
        return match rest.split_once('@') {
            Some((_, v)) if v.starts_with("0.2.") => None,
            Some((_, v)) => Some(format!("the host provides WASI 0.2.x, not {v}")),
            None => Some("an unversioned WASI import: build with a WASI 0.2 toolchain (wasm32-wasip2)".into()),
        };
    }
    if let Some(rest) = import.strip_prefix("sluice:scorer/") {
        let (iface, version) = rest.split_once('@').unwrap_or((rest, ""));
        if !SLUICE.contains(&iface) {
            return Some(format!("the host has no `{iface}` interface (it has {})", SLUICE.join(", ")));
        }
        if !version.starts_with("0.1.") {
            return Some(format!("version {version}: the host links sluice:scorer 0.1.x"));
        }
        return None;
    }
    Some("the host provides only WASI 0.2 and sluice:scorer interfaces".into())
}

impl ScorerEngine {
    /// Checks a component against the host's world without running it:
    /// each import, each export, and whether wasmtime links it.
    pub fn validate(&self, path: &Path) -> Result<Validation, EngineError> {
        let bytes = std::fs::read(path).map_err(|source| EngineError::Read { path: path.to_path_buf(), source })?;
        let hash = crate::cache::wasm_hash(&bytes);
        let component = Component::new(&self.engine, &bytes)
            .map_err(|source| EngineError::Compile { path: path.to_path_buf(), source })?;
        let ty = component.component_type();
        let imports: Vec<(String, Option<String>)> =
            ty.imports(&self.engine).map(|(name, _)| (name.to_string(), host_provides(name))).collect();
        let mut exports = Vec::new();
        let mut has = (false, false);
        for (name, _) in ty.exports(&self.engine) {
            let what = match name {
                "init" => {
                    has.0 = true;
                    "called once per instance"
                }
                "run" => {
                    has.1 = true;
                    "called once per mini-batch"
                }
                n if n.starts_with(LIFECYCLE_PREFIX) => "optional: shutdown is called when an instance retires",
                _ => "not used by sluice",
            };
            exports.push((name.to_string(), what.to_string()));
        }
        let mut problems = Vec::new();
        for (name, why) in &imports {
            if let Some(why) = why {
                problems.push(format!("import `{name}`: {why}"));
            }
        }
        if !has.0 {
            problems.push("missing export `init: func(config: config) -> result<_, error>`".into());
        }
        if !has.1 {
            problems.push("missing export `run: func(batch: mini-batch) -> result<batch-result, error>`".into());
        }
        if problems.is_empty() {
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
