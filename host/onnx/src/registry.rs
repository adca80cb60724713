//! The models a job grants, loaded once per process and run through pools of ONNX Runtime sessions.
//!
//! Why pools: ort rc.15's `Session::run` takes `&mut Session` (ONNX Runtime's `Run` is not reliably
//! thread-safe), so a single session would serialise every scorer instance behind one lock. Instead
//! each model keeps up to `pool_size` sessions (one per scorer instance), created lazily from the model
//! bytes held in memory; a run checks one out, runs without any lock held, and gives it back. A run
//! that finds all `pool_size` sessions busy waits (on a condition variable, until its deadline).
//!
//! Sessions of one model share pre-packed weights (ONNX Runtime's prepacked-weights container), so the
//! extra sessions cost little beyond their working memory.
//!
//! Limits:
//! - The whole `.onnx` file is read into memory and kept there (new sessions are built from it);
//!   models with external data files (weights beside the `.onnx`, used for models over 2 GB) are not
//!   supported.
//! - Inputs and outputs are dense f32/f64/s64/s32/u8 tensors (see [`crate::tensor`]); every model input
//!   is required (ONNX Runtime does not list initializer-backed inputs).
//! - All of a model's outputs are computed on every run; `outputs` only selects which are converted
//!   and returned. (Selecting outputs in ort makes its `RunOptions` `!Sync`, and the deadline thread
//!   needs to share them.)

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights};
use ort::session::{RunOptions, Session, SessionInputValue};
use ort::value::{DynValue, PrimitiveTensorElementType, Tensor as OrtTensor, TensorElementType, ValueType};
use sha2::{Digest, Sha256};

use crate::error::{NameKind, OnnxError};
use crate::runtime;
use crate::tensor::{ElementType, ModelInfo, Tensor, TensorData, TensorInfo};
use crate::watchdog::{self, Armed};

/// A model a job grants: the name scorers use, and where it is on this machine.
///
/// `path` is either an `.onnx` file or an MLflow model folder whose `MLmodel` file has an `onnx`
/// flavor (`flavors: onnx: data: model.onnx`); the flavor's `data` names the file inside the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelGrant {
    /// The name scorers ask for the model by; a job grants each name once.
    pub name: String,
    /// The `.onnx` file or MLflow model folder on this machine.
    pub path: PathBuf,
}

/// How models are run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryOptions {
    /// Threads ONNX Runtime may use inside one run (intra-op). Default 1: scorer instances already
    /// run in parallel.
    pub intra_op_threads: usize,
    /// Most sessions per model, normally the number of scorer instances. 0 is taken as 1.
    pub pool_size: usize,
    /// Most bytes one input or output tensor may have.
    pub max_tensor_bytes: u64,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions { intra_op_threads: 1, pool_size: 1, max_tensor_bytes: 64 << 20 }
    }
}

/// Every model a job grants, loaded. `Send + Sync`; share it as an `Arc`.
pub struct ModelRegistry {
    models: BTreeMap<String, Arc<Model>>,
}

impl fmt::Debug for ModelRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelRegistry").field("models", &self.models.values().collect::<Vec<_>>()).finish()
    }
}

impl ModelRegistry {
    /// Loads every granted model: resolves its path, reads and hashes its bytes, and creates its first
    /// session (which checks that it is a valid model and gives its signature). Loads ONNX Runtime
    /// first, but only when there is something to load.
    pub fn load(grants: &[ModelGrant], opts: RegistryOptions) -> Result<ModelRegistry, OnnxError> {
        let mut models = BTreeMap::new();
        if grants.is_empty() {
            return Ok(ModelRegistry { models });
        }
        runtime::init_runtime(None)?;
        for grant in grants {
            if models.contains_key(&grant.name) {
                return Err(OnnxError::ModelLoad {
                    path: grant.path.clone(),
                    message: format!("model name `{}` is granted twice", grant.name),
                });
            }
            let model = Model::load(grant, &opts)?;
            tracing::debug!(model = %grant.name, path = %model.path.display(), hash = %model.hash, "loaded ONNX model");
            models.insert(grant.name.clone(), Arc::new(model));
        }
        Ok(ModelRegistry { models })
    }

    /// Names of the granted models, sorted.
    pub fn names(&self) -> Vec<String> {
        self.models.keys().cloned().collect()
    }

    /// The granted model called `name`, or [`OnnxError::UnknownModel`] with the granted names.
    pub fn get(&self, name: &str) -> Result<Arc<Model>, OnnxError> {
        self.models
            .get(name)
            .cloned()
            .ok_or_else(|| OnnxError::UnknownModel { name: name.to_owned(), granted: self.names() })
    }
}

/// Finds the `.onnx` file of a grant: the path itself, or the file an MLflow folder's `onnx` flavor names.
pub fn resolve_model_file(path: &Path) -> Result<PathBuf, OnnxError> {
    let err = |message: String| OnnxError::ModelLoad { path: path.to_path_buf(), message };
    let meta = std::fs::metadata(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    if !meta.is_dir() {
        return Ok(path.to_path_buf());
    }
    let mlmodel = path.join("MLmodel");
    let text = match std::fs::read_to_string(&mlmodel) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(err("a model folder must hold an MLflow `MLmodel` file; this one has none".to_owned()));
        }
        Err(e) => return Err(err(format!("cannot read {}: {e}", mlmodel.display()))),
    };
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).map_err(|e| err(format!("MLmodel is not valid YAML: {e}")))?;
    let flavors = doc.get("flavors").and_then(serde_yaml_ng::Value::as_mapping);
    let onnx = flavors.and_then(|f| f.get("onnx")).ok_or_else(|| {
        let names: Vec<String> =
            flavors.map(|f| f.keys().filter_map(|k| k.as_str().map(str::to_owned)).collect()).unwrap_or_default();
        let convertible = names.iter().any(|n| matches!(n.as_str(), "sklearn" | "xgboost" | "lightgbm"));
        err(format!(
            "MLmodel has no `onnx` flavor (flavors: {}); only ONNX models can be granted{}",
            if names.is_empty() { "none".to_owned() } else { names.join(", ") },
            if convertible {
                ": add one with `sluice-py convert-model FOLDER` (the Python SDK: \
                 .sluice/py-sdk/venv/bin/sluice-py), which converts the model and checks its predictions"
            } else {
                ""
            }
        ))
    })?;
    let data = onnx
        .get("data")
        .and_then(serde_yaml_ng::Value::as_str)
        .ok_or_else(|| err("MLmodel's `onnx` flavor has no `data` entry naming the model file".to_owned()))?;
    let relative = Path::new(data);
    if relative.is_absolute() || relative.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return Err(err(format!("MLmodel's onnx `data: {data}` must be a path inside the model folder")));
    }
    let file = path.join(relative);
    if !file.is_file() {
        return Err(err(format!("MLmodel's onnx flavor names `{data}`, which is not in the folder")));
    }
    Ok(file)
}

/// One loaded model and its pool of sessions.
pub struct Model {
    name: String,
    /// The `.onnx` file (resolved from an MLflow folder if that was granted).
    path: PathBuf,
    hash: String,
    info: ModelInfo,
    max_tensor_bytes: u64,
    bytes: Vec<u8>,
    settings: SessionSettings,
    pool: Pool,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("hash", &self.hash)
            .field("info", &self.info)
            .field("bytes", &self.bytes.len())
            .field("sessions", &self.session_count())
            .field("pool_size", &self.pool.size)
            .finish()
    }
}

/// How every session of a model is built.
struct SessionSettings {
    intra_op_threads: usize,
    prepacked: PrepackedWeights,
}

impl SessionSettings {
    fn build(&self, bytes: &[u8]) -> Result<Session, String> {
        let environment = runtime::environment().ok_or("ONNX Runtime is not loaded")?;
        Session::builder(environment)
            .map_err(message)?
            // No CPU arena: the arena keeps the largest run's tensors for the
            // session's life, per session (one per scorer instance); without
            // it a run's buffers are freed when it ends (peak RSS -2.5 MiB on
            // the tabular benchmark, CPU time unchanged; BENCHMARKS.md).
            .with_execution_providers([ort::ep::CPU::default().with_arena_allocator(false).build()])
            .map_err(message)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(message)?
            .with_intra_threads(self.intra_op_threads.max(1))
            .map_err(message)?
            .with_inter_threads(1)
            .map_err(message)?
            .with_parallel_execution(false)
            .map_err(message)?
            // spinning threads burn CPU between runs; scorer instances share few cores
            .with_intra_op_spinning(false)
            .map_err(message)?
            .with_prepacked_weights(&self.prepacked)
            .map_err(message)?
            .commit_from_memory(bytes)
            .map_err(message)
    }
}

impl Model {
    fn load(grant: &ModelGrant, opts: &RegistryOptions) -> Result<Model, OnnxError> {
        let path = resolve_model_file(&grant.path)?;
        let err = |message: String| OnnxError::ModelLoad { path: path.clone(), message };
        // A FIFO or device would block the read forever: only regular files.
        match std::fs::metadata(&path) {
            Ok(m) if !m.is_file() => return Err(err("not a regular file; a model must be an .onnx file".into())),
            _ => {}
        }
        let bytes = std::fs::read(&path).map_err(|e| err(format!("cannot read it: {e}")))?;
        let hash = hex::encode(Sha256::digest(&bytes));
        let settings = SessionSettings { intra_op_threads: opts.intra_op_threads, prepacked: PrepackedWeights::new() };
        let first = settings.build(&bytes).map_err(|e| err(format!("not a valid ONNX model: {e}")))?;
        let info = ModelInfo {
            inputs: first.inputs().iter().map(|o| TensorInfo::from_outlet(o.name(), o.dtype())).collect(),
            outputs: first.outputs().iter().map(|o| TensorInfo::from_outlet(o.name(), o.dtype())).collect(),
        };
        Ok(Model {
            name: grant.name.clone(),
            path,
            hash,
            info,
            max_tensor_bytes: opts.max_tensor_bytes,
            bytes,
            settings,
            pool: Pool::new(first, opts.pool_size.max(1)),
        })
    }

    /// The name the job granted it under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `.onnx` file loaded.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SHA-256 of the `.onnx` file, lowercase hex.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The model's inputs and outputs, as read from its `.onnx` file when loaded.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// Sessions created so far (never more than the pool size).
    pub fn session_count(&self) -> usize {
        self.pool.lock().created
    }

    /// Runs the model. `inputs` must give every model input once; `outputs` picks outputs by name
    /// (empty: all, in model order). Everything is checked before ONNX Runtime sees it. With a
    /// `deadline`, the run is stopped when it passes (also while waiting for a free session) and the
    /// result is [`OnnxError::Timeout`].
    pub fn run(
        &self,
        inputs: Vec<(String, Tensor)>,
        outputs: &[String],
        deadline: Option<Instant>,
    ) -> Result<Vec<(String, Tensor)>, OnnxError> {
        let started = Instant::now();
        let wanted = self.check_outputs(outputs)?;
        let inputs = self.check_inputs(inputs)?;

        let values = inputs
            .into_iter()
            .map(|(name, tensor)| Ok((Cow::Owned(name), SessionInputValue::Owned(to_ort(tensor)?))))
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| self.runtime_error(e))?;

        let timeout =
            || OnnxError::Timeout { model: self.name.clone(), elapsed_ms: started.elapsed().as_millis() as u64 };
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(timeout());
        }
        let mut session = self.checkout(deadline).map_err(|e| e.unwrap_or_else(timeout))?;
        let armed = Armed::new(RunOptions::new().map_err(|e| self.runtime_error(e))?);
        let _watch = deadline.map(|d| watchdog::watch(&armed, d)).transpose()?;

        let mut results = session
            .run_with_options(values, &armed.options)
            .map_err(|e| if armed.fired() { timeout() } else { self.runtime_error(e) })?;
        wanted
            .into_iter()
            .map(|index| {
                let name = &self.info.outputs[index].name;
                let value = results.remove(name).ok_or_else(|| self.runtime_error(format!("no output `{name}`")))?;
                Ok((name.clone(), self.output_tensor(name, &value)?))
            })
            .collect()
    }

    /// Indices of the wanted outputs.
    fn check_outputs(&self, outputs: &[String]) -> Result<Vec<usize>, OnnxError> {
        if outputs.is_empty() {
            return Ok((0..self.info.outputs.len()).collect());
        }
        let mut wanted = Vec::with_capacity(outputs.len());
        for name in outputs {
            let index =
                self.info.outputs.iter().position(|o| &o.name == name).ok_or_else(|| OnnxError::UnknownName {
                    model: self.name.clone(),
                    kind: NameKind::Output,
                    name: name.clone(),
                    known: self.info.outputs.iter().map(|o| o.name.clone()).collect(),
                })?;
            if wanted.contains(&index) {
                return Err(self.invalid(format!("output `{name}` is asked for twice")));
            }
            wanted.push(index);
        }
        Ok(wanted)
    }

    /// Checks names, types, shapes and sizes against the model's inputs; returns the inputs unchanged.
    fn check_inputs(&self, inputs: Vec<(String, Tensor)>) -> Result<Vec<(String, Tensor)>, OnnxError> {
        let mut given: HashSet<&str> = HashSet::with_capacity(inputs.len());
        for (name, tensor) in &inputs {
            let info = self.info.inputs.iter().find(|i| &i.name == name).ok_or_else(|| OnnxError::UnknownName {
                model: self.name.clone(),
                kind: NameKind::Input,
                name: name.clone(),
                known: self.info.inputs.iter().map(|i| i.name.clone()).collect(),
            })?;
            if !given.insert(name) {
                return Err(self.invalid(format!("input `{name}` is given twice")));
            }
            let got_type = tensor.data.element_type();
            if got_type != info.element_type {
                return Err(OnnxError::TypeMismatch {
                    model: self.name.clone(),
                    name: name.clone(),
                    expected: format!("a {} tensor", info.element_type),
                    got: format!("a {got_type} tensor"),
                });
            }
            let got: Vec<i64> = tensor.shape.iter().map(|&d| i64::try_from(d).unwrap_or(i64::MAX)).collect();
            let shape_error = |reason: String| OnnxError::ShapeMismatch {
                model: self.name.clone(),
                name: name.clone(),
                expected: info.shape.clone(),
                got: got.clone(),
                reason,
            };
            if got.len() != info.shape.len() {
                return Err(shape_error(format!("rank {} where the model has rank {}", got.len(), info.shape.len())));
            }
            if let Some(axis) = info.shape.iter().zip(&got).position(|(&want, &have)| want >= 0 && want != have) {
                return Err(shape_error(format!("dim {axis} must be {}", info.shape[axis])));
            }
            let elements = tensor.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
            if elements != Some(tensor.data.len()) {
                return Err(shape_error(format!(
                    "the data has {} elements, the shape needs {}",
                    tensor.data.len(),
                    elements.map_or_else(|| "more than fit in memory".to_owned(), |n| n.to_string())
                )));
            }
            self.check_size(name, tensor.data.byte_size())?;
        }
        if let Some(missing) = self.info.inputs.iter().find(|i| !given.contains(i.name.as_str())) {
            return Err(self.invalid(format!(
                "input `{}` ({} {}) is required but not given",
                missing.name,
                missing.element_type,
                crate::error::Dims(&missing.shape)
            )));
        }
        Ok(inputs)
    }

    fn check_size(&self, name: &str, bytes: u64) -> Result<(), OnnxError> {
        if bytes > self.max_tensor_bytes {
            return Err(OnnxError::TooLarge {
                model: self.name.clone(),
                name: name.to_owned(),
                bytes,
                limit: self.max_tensor_bytes,
            });
        }
        Ok(())
    }

    /// Copies an output out of ONNX Runtime's memory (the one copy).
    fn output_tensor(&self, name: &str, value: &DynValue) -> Result<Tensor, OnnxError> {
        let unsupported = |got: String| OnnxError::TypeMismatch {
            model: self.name.clone(),
            name: name.to_owned(),
            expected: "an output of type f32, f64, s64, s32 or u8 (the types sluice supports)".to_owned(),
            got: format!("{got}, which is not supported"),
        };
        let ty = match value.dtype() {
            ValueType::Tensor { ty, .. } => *ty,
            other => return Err(unsupported(TensorInfo::from_outlet(name, other).element_type.to_string())),
        };
        fn copy<T: PrimitiveTensorElementType + Copy>(value: &DynValue) -> ort::Result<(Vec<usize>, Vec<T>)> {
            let (shape, data) = value.try_extract_tensor::<T>()?;
            Ok((shape.iter().map(|&d| d.max(0) as usize).collect(), data.to_vec()))
        }
        let bytes = value.dtype().tensor_shape().and_then(|s| ty.byte_size(s.num_elements())).map_or(0, |b| b as u64);
        self.check_size(name, bytes)?;
        let converted = match ty {
            TensorElementType::Float32 => copy::<f32>(value).map(|(s, d)| Tensor::new(s, TensorData::F32(d))),
            TensorElementType::Float64 => copy::<f64>(value).map(|(s, d)| Tensor::new(s, TensorData::F64(d))),
            TensorElementType::Int64 => copy::<i64>(value).map(|(s, d)| Tensor::new(s, TensorData::I64(d))),
            TensorElementType::Int32 => copy::<i32>(value).map(|(s, d)| Tensor::new(s, TensorData::I32(d))),
            TensorElementType::Uint8 => copy::<u8>(value).map(|(s, d)| Tensor::new(s, TensorData::U8(d))),
            other => return Err(unsupported(format!("a {} tensor", ElementType::from(other)))),
        };
        converted.map_err(|e| self.runtime_error(e))
    }

    /// A session to run on: an idle one, else a new one while fewer than the pool size exist, else the
    /// next one given back. `Err(None)` when the deadline passes first.
    fn checkout(&self, deadline: Option<Instant>) -> Result<PooledSession<'_>, Option<OnnxError>> {
        let mut state = self.pool.lock();
        loop {
            if let Some(session) = state.idle.pop() {
                return Ok(PooledSession { pool: &self.pool, session: Some(session) });
            }
            if state.created < self.pool.size {
                state.created += 1;
                drop(state);
                return match self.settings.build(&self.bytes) {
                    Ok(session) => Ok(PooledSession { pool: &self.pool, session: Some(session) }),
                    Err(e) => {
                        self.pool.lock().created -= 1;
                        self.pool.available.notify_one();
                        Err(Some(self.runtime_error(format!("cannot create another session: {e}"))))
                    }
                };
            }
            state = match deadline {
                None => self.pool.available.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(None);
                    }
                    self.pool.available.wait_timeout(state, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0
                }
            };
        }
    }

    fn invalid(&self, message: String) -> OnnxError {
        OnnxError::InvalidInput { model: self.name.clone(), message }
    }

    fn runtime_error(&self, message: impl fmt::Display) -> OnnxError {
        OnnxError::Runtime(format!("model `{}`: {message}", self.name))
    }
}

fn message<R>(e: ort::Error<R>) -> String {
    e.to_string()
}

/// Builds an ort tensor that owns the caller's `Vec` (no copy).
fn to_ort(tensor: Tensor) -> Result<DynValue, String> {
    fn owned<T: PrimitiveTensorElementType + std::fmt::Debug + Clone + 'static>(
        shape: Vec<usize>,
        data: Vec<T>,
    ) -> Result<DynValue, String> {
        OrtTensor::from_array((shape, data)).map(|t| t.into_dyn()).map_err(|e| e.to_string())
    }
    match tensor.data {
        TensorData::F32(data) => owned(tensor.shape, data),
        TensorData::F64(data) => owned(tensor.shape, data),
        TensorData::I64(data) => owned(tensor.shape, data),
        TensorData::I32(data) => owned(tensor.shape, data),
        TensorData::U8(data) => owned(tensor.shape, data),
    }
}

struct PoolState {
    idle: Vec<Session>,
    created: usize,
}

struct Pool {
    size: usize,
    state: Mutex<PoolState>,
    available: Condvar,
}

impl Pool {
    fn new(first: Session, size: usize) -> Pool {
        Pool { size, state: Mutex::new(PoolState { idle: vec![first], created: 1 }), available: Condvar::new() }
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A checked-out session; goes back to the pool when dropped (also on panic).
struct PooledSession<'a> {
    pool: &'a Pool,
    session: Option<Session>,
}

impl std::ops::Deref for PooledSession<'_> {
    type Target = Session;
    fn deref(&self) -> &Session {
        self.session.as_ref().expect("a pooled session is present until dropped")
    }
}

impl std::ops::DerefMut for PooledSession<'_> {
    fn deref_mut(&mut self) -> &mut Session {
        self.session.as_mut().expect("a pooled session is present until dropped")
    }
}

impl Drop for PooledSession<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            self.pool.lock().idle.push(session);
            self.pool.available.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str, mlmodel: Option<&str>, files: &[&str]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sluice-onnx-mlflow-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(text) = mlmodel {
            std::fs::write(dir.join("MLmodel"), text).unwrap();
        }
        for f in files {
            std::fs::write(dir.join(f), b"x").unwrap();
        }
        dir
    }

    fn load_error(path: &Path) -> String {
        match resolve_model_file(path) {
            Err(e @ OnnxError::ModelLoad { .. }) => {
                let message = e.to_string();
                assert!(message.contains(&path.display().to_string()), "{message}");
                message
            }
            other => panic!("expected ModelLoad, got {other:?}"),
        }
    }

    #[test]
    fn mlflow_onnx_flavor() {
        let text = "artifact_path: model\nflavors:\n  onnx:\n    code: null\n    data: model.onnx\n    onnx_version: 1.19.0\n  python_function:\n    data: model.onnx\n    loader_module: mlflow.onnx\n";
        let dir = folder("good", Some(text), &["model.onnx"]);
        assert_eq!(resolve_model_file(&dir).unwrap(), dir.join("model.onnx"));
        // a file is taken as is
        assert_eq!(resolve_model_file(&dir.join("model.onnx")).unwrap(), dir.join("model.onnx"));
    }

    #[test]
    fn mlflow_errors_name_the_problem() {
        let dir = folder("none", None, &[]);
        assert!(load_error(&dir).contains("MLmodel"));

        let sklearn = "flavors:\n  python_function:\n    loader_module: mlflow.sklearn\n  sklearn:\n    pickled_model: model.pkl\n";
        let dir = folder("sklearn", Some(sklearn), &["model.pkl"]);
        let message = load_error(&dir);
        assert!(message.contains("no `onnx` flavor") && message.contains("sklearn"), "{message}");
        assert!(message.contains("sluice-py convert-model FOLDER"), "{message}");

        let dir = folder("missing", Some("flavors:\n  onnx:\n    data: model.onnx\n"), &[]);
        assert!(load_error(&dir).contains("`model.onnx`, which is not in the folder"));

        let dir = folder("nodata", Some("flavors:\n  onnx:\n    onnx_version: 1.19.0\n"), &[]);
        assert!(load_error(&dir).contains("no `data` entry"));

        let dir = folder("escape", Some("flavors:\n  onnx:\n    data: ../model.onnx\n"), &[]);
        assert!(load_error(&dir).contains("inside the model folder"));

        let dir = folder("yaml", Some("flavors: [unclosed\n"), &[]);
        assert!(load_error(&dir).contains("not valid YAML"));

        assert!(load_error(&dir.join("absent.onnx")).contains("cannot read it"));
    }
}
