//! The job spec: YAML with the key names of an Azure ML `type: parallel`
//! job (so a spec written for Azure ML runs here unchanged; see
//! ARCHITECTURE.md, "Bird's-eye view"), validated into a [`JobSpec`]. Every error names the YAML path of the key
//! at fault; unknown keys get a did-you-mean hint. The raw structs hold every key of Azure's parallel job and
//! parallel component schemas (a component file runs as it is); keys with no meaning here are noted
//! ([`JobSpec::notes`]). Input and output ports and literal inputs are parsed in `spec/azure.rs`; `${{...}}`
//! in program arguments, config and environment values is resolved in `spec/bindings.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

pub use crate::location::Location;
use crate::size::MiniBatchSize;

mod azure;
#[cfg(test)]
mod azure_tests;
pub mod bindings;

use azure::{Notes, Port, RawOutput};
use bindings::{Binding, Bindings};

/// A spec that cannot run, with where and why.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {}{message}", if path.is_empty() { String::new() } else { format!("`{path}`: ") })]
pub struct SpecError {
    /// The spec file, or "command line".
    pub origin: String,
    /// The YAML path of the key at fault (`retry_settings.timeout`), empty
    /// when the error is about the whole document.
    pub path: String,
    /// What is wrong and, where there is one, the fix (a did-you-mean
    /// hint, the accepted range).
    pub message: String,
}

/// Where the input of a job comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputKind {
    /// A folder, listed recursively in sorted order; each file is an item.
    UriFolder,
    /// One file: a single item.
    UriFile,
}

/// The job's input (`inputs.NAME`, the one `input_data` names).
#[derive(Debug, Clone)]
pub struct InputSpec {
    /// The name under `inputs:`.
    pub name: String,
    /// Folder or single file; for `mltable`, taken from what the path is
    /// (for a URL, from its last name: one with an extension is a file).
    pub kind: InputKind,
    /// A local path, absolute (resolved against the spec's folder), that
    /// existed when the spec was validated; or an object-storage URL
    /// (`s3://bucket/prefix`, see [`Location`]), checked for shape only: a
    /// URL is first contacted when the input is listed.
    pub path: Location,
    /// `type: mltable`: the files are tables (CSV, Parquet, JSON Lines, by
    /// extension) and the items of a mini-batch are rows.
    pub tabular: bool,
}

/// A model the job grants to its scorer (`inputs.NAME` of `type:
/// mlflow_model` or `custom_model`): the guest loads it by `name` only.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// What the guest passes to the `onnx` import's `load`.
    pub name: String,
    /// An `.onnx` file or an MLflow model folder.
    pub path: PathBuf,
}

/// The format of `task.append_row_to`, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// `.csv`: a header line from the returned table's column names, then rows.
    Csv,
    /// `.jsonl` or `.ndjson`: one JSON object per row.
    JsonLines,
    /// `.parquet`: one row group per committed mini-batch.
    Parquet,
}

impl OutputFormat {
    /// By extension, case-insensitive; `None` for any other extension (the
    /// spec refuses it rather than guess).
    pub fn from_path(p: &Path) -> Option<OutputFormat> {
        match p.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(OutputFormat::Csv),
            "jsonl" | "ndjson" => Some(OutputFormat::JsonLines),
            "parquet" => Some(OutputFormat::Parquet),
            _ => None,
        }
    }

    /// By the extension of a path's or a URL's last name.
    pub fn from_location(l: &Location) -> Option<OutputFormat> {
        OutputFormat::from_path(Path::new(l.file_name()?))
    }
}

/// Where a job's rows go (`task.append_row_to`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutputSpec {
    /// A local path, absolute, written as `NAME.partial` and renamed into
    /// place when the job ends; or an object-storage URL naming the output
    /// object (`s3://bucket/out/result.csv`), written by a multipart upload
    /// that becomes visible whole when the job ends.
    pub path: Location,
    /// From `path`'s extension.
    pub format: OutputFormat,
}

/// A host folder granted read-only to every instance.
#[derive(Debug, Clone)]
pub struct Mount {
    /// Where the guest sees it (`/lookup`).
    pub guest_path: String,
    /// Absolute; the guest can read under it and nothing else.
    pub host_path: PathBuf,
}

/// A data input other than `input_data` (`inputs.NAME` of `type:
/// uri_folder`, `uri_file` or `mltable`, a local path), granted read-only
/// to every instance; `${{inputs.NAME}}` resolves to [`DataInput::guest_path`].
///
/// - A folder is mounted as it is at `/inputs/NAME` (it is also in
///   [`JobSpec::mounts`]).
/// - A file is seen at `/inputs/NAME/FILE` (its own file name), in a folder
///   that holds that file and nothing else. Mounting the file's parent
///   folder would hand the scorer every sibling file too, and WASI grants
///   folders, not files; so the runtime makes that folder in the job's own
///   directory (`grants/NAME/`) with a hard link to the file (a copy when
///   the file is on another filesystem) before any instance starts, and
///   mounts it. Its path is not in the spec (it depends on the job
///   directory); the guest path is, so the spec alone decides what the
///   scorer is told.
///
/// A folder holding an MLflow `MLmodel` with an `onnx` flavor, or holding
/// exactly one `.onnx` file and no `MLmodel`, and a `.onnx` file are also
/// granted as models by the input's name (see [`JobSpec::models`]), so
/// Azure's `score_model: {type: uri_folder, path: ...}` with `--model
/// ${{inputs.score_model}}` gives the scorer both the path and the model.
#[derive(Debug, Clone, PartialEq)]
pub struct DataInput {
    /// The name under `inputs:`.
    pub name: String,
    /// [`InputKind::UriFolder`] or [`InputKind::UriFile`], from what the path is.
    pub kind: InputKind,
    /// Absolute; a folder or a regular file when validated.
    pub host_path: PathBuf,
    /// Where the guest sees it: `/inputs/NAME`, or `/inputs/NAME/FILE` for a file.
    pub guest_path: String,
}

/// Where data inputs are mounted in the guest.
pub const INPUTS_GUEST_DIR: &str = "/inputs";

/// A `uri_folder` output the scorer writes files into (Azure's
/// `--model_folder ${{outputs.model_folder}}`): each try sees an empty
/// folder of its own at `/outputs/NAME`, writable; what a try that succeeds
/// wrote is staged with its mini-batch and committed with it (exactly once,
/// like rows), what a failed try wrote is discarded, and when the job ends
/// every committed file is moved into `host_path` (the runtime's
/// `folders` module).
#[derive(Debug, Clone, PartialEq)]
pub struct OutputFolder {
    /// The name under `outputs:`.
    pub name: String,
    /// Absolute: the local folder the committed files go into.
    pub host_path: PathBuf,
    /// `/outputs/NAME`: what `${{outputs.NAME}}` resolves to.
    pub guest_path: String,
}

/// Where output folders are mounted in the guest.
pub const OUTPUTS_GUEST_DIR: &str = "/outputs";

/// The most of an `MLmodel` file read to see whether it has an onnx flavor.
const MAX_MLMODEL_BYTES: u64 = 1 << 20;

impl DataInput {
    fn new(name: &str, kind: InputKind, host_path: PathBuf) -> DataInput {
        let dir = format!("{INPUTS_GUEST_DIR}/{name}");
        let guest_path = match (&kind, host_path.file_name()) {
            (InputKind::UriFile, Some(f)) => format!("{dir}/{}", f.to_string_lossy()),
            _ => dir,
        };
        DataInput { name: name.to_string(), kind, host_path, guest_path }
    }

    /// The guest folder this input is mounted as: `/inputs/NAME`.
    pub fn guest_dir(&self) -> String {
        format!("{INPUTS_GUEST_DIR}/{}", self.name)
    }

    /// The file name a file input has in its folder.
    pub fn file_name(&self) -> Option<&std::ffi::OsStr> {
        (self.kind == InputKind::UriFile).then(|| self.host_path.file_name()).flatten()
    }

    /// The model this input holds, if any (see the type's docs); a folder
    /// whose `MLmodel` cannot be read as one is noted and not granted.
    fn model(&self, notes: &mut Vec<String>) -> Option<ModelSpec> {
        let grant = |path: PathBuf| Some(ModelSpec { name: self.name.clone(), path });
        let is_onnx = |p: &Path| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx"));
        if self.kind == InputKind::UriFile {
            return if is_onnx(&self.host_path) { grant(self.host_path.clone()) } else { None };
        }
        let mlmodel = self.host_path.join("MLmodel");
        if mlmodel.is_file() {
            let mut text = String::new();
            let read = std::fs::File::open(&mlmodel)
                .and_then(|f| std::io::Read::read_to_string(&mut std::io::Read::take(f, MAX_MLMODEL_BYTES), &mut text));
            let doc: Option<Value> =
                read.ok().filter(|_| check_spec_shape(&text).is_ok()).and_then(|_| serde_yaml_ng::from_str(&text).ok());
            let onnx = doc.as_ref().and_then(|d| d.get("flavors")).and_then(|f| f.get("onnx")).is_some();
            if onnx {
                return grant(self.host_path.clone());
            }
            notes.push(format!(
                "inputs.{} holds an MLmodel without an onnx flavor: it is mounted at {}, not granted as a model",
                self.name, self.guest_path
            ));
            return None;
        }
        let onnx: Vec<PathBuf> = std::fs::read_dir(&self.host_path)
            .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| is_onnx(p) && p.is_file()).take(2).collect())
            .unwrap_or_default();
        match <[PathBuf; 1]>::try_from(onnx) {
            Ok([one]) => grant(one),
            Err(_) => None,
        }
    }
}

/// What `init(config)` receives; all explicit, never the host environment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScorerConfig {
    /// `task.config` keys and values, in spec order.
    pub settings: Vec<(String, String)>,
    /// `task.program_arguments`, split as a shell would.
    pub arguments: Vec<String>,
    /// `environment_variables`: passed in `config`, not as the instance's
    /// WASI environment (which stays empty).
    pub environment: Vec<(String, String)>,
}

/// Per-instance sandbox limits (`limits.*`). The defaults are meant to be
/// reached only by a runaway guest.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Linear memory per instance, in bytes (`limits.memory_mb`, default 512).
    pub memory_bytes: u64,
    /// Fuel (about one unit per wasm instruction) for each `init()` and each
    /// `run()` (`limits.fuel`, default 20 billion: tens of seconds of pure
    /// guest compute). Running out is a deterministic `TIMEOUT`.
    pub fuel: u64,
    /// Max wasm stack, bytes (`limits.max_wasm_stack_kb`, default 1024).
    pub max_wasm_stack: usize,
    /// Cap on one mini-batch's returned output (`limits.max_output_mb`,
    /// default 64); more fails the mini-batch as `INVALID_OUTPUT`.
    pub max_output_bytes: u64,
    /// Cap on guest log volume per mini-batch, all its tries (and the
    /// `init()` of instances made for it) together (`limits.max_log_kb`,
    /// default 1024); each line counts its text plus 64 bytes for the tags
    /// the host adds. Further lines are dropped with one notice.
    pub max_log_bytes: u64,
    /// Cap on one input file read whole (`limits.max_file_mb`, default 64):
    /// file input, tabular `"N files"` and `partition_keys`; a larger file is
    /// an item error naming the cap. For tabular row- or byte-sized
    /// mini-batches it caps each mini-batch's segment of a file instead, so
    /// a file of any size can run in bounded memory.
    pub max_file_bytes: u64,
    /// Cap on the inputs of one ONNX run together, and on each output
    /// (`limits.max_tensor_mb`, default 256), checked before the host
    /// stacks or copies anything; more is a `too-large` error.
    pub max_tensor_bytes: u64,
    /// Cap on the scorer `.wasm` file (`limits.max_scorer_mb`, default 256:
    /// componentize-py guests are 12-20 MiB). A larger file, or one that
    /// is not a regular file, is refused from its metadata before it is
    /// read; the job cannot run.
    pub max_scorer_bytes: u64,
    /// Memory (`RLIMIT_DATA`) of the child process that compiles the
    /// scorer (`limits.compile_memory_mb`, default 4096: meant to be reached
    /// only by a pathological component, e.g. hundreds of thousands of
    /// functions). Past it the compile stops, nothing is cached and the job
    /// cannot run.
    pub compile_memory_bytes: u64,
    /// Wall clock for compiling the scorer (`limits.compile_timeout_s`,
    /// default 300; a large componentize-py guest takes ~30 s). Past it the
    /// compiler child is killed, nothing is cached and the job cannot run.
    /// Its CPU time is capped at this many seconds per core.
    pub compile_timeout: Duration,
    /// What one mini-batch may write into the job's `uri_folder` outputs,
    /// all of them together, in bytes (`limits.max_folder_output_mb`,
    /// default 1024) and files (`limits.max_folder_output_files`, default
    /// 10,000). Past either the try fails as `INVALID_OUTPUT`.
    pub max_folder_output_bytes: u64,
    /// See [`Limits::max_folder_output_bytes`].
    pub max_folder_output_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 512 << 20,
            fuel: 20_000_000_000,
            max_wasm_stack: 1 << 20,
            max_output_bytes: 64 << 20,
            max_log_bytes: 1 << 20,
            max_file_bytes: 64 << 20,
            max_tensor_bytes: 256 << 20,
            max_scorer_bytes: 256 << 20,
            compile_memory_bytes: 4096 << 20,
            compile_timeout: Duration::from_secs(300),
            max_folder_output_bytes: 1024 << 20,
            max_folder_output_files: 10_000,
        }
    }
}

/// `logging_level`: the host's own tracing level for the job (guest log
/// lines are kept whatever it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoggingLevel {
    /// `DEBUG`.
    Debug,
    /// `INFO`, the default.
    Info,
    /// `WARNING` (or `WARN`).
    Warning,
}

/// A validated job: everything the planner and scheduler need.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// `name`, or the scorer's file stem: names the default job directory
    /// and tags every guest log line.
    pub name: String,
    /// What is scored (`input_data`).
    pub input: InputSpec,
    /// How the input is cut (`mini_batch_size`, default 10 files); rows
    /// only for tabular input.
    pub mini_batch_size: MiniBatchSize,
    /// Sandboxed instances running at once, one worker thread each
    /// (`max_concurrency_per_instance`, 1..=1024, default the cores); on a
    /// cluster, per node.
    pub max_concurrency: usize,
    /// Nodes that may take part (`resources.instance_count`, 1..=1024,
    /// default 1); more than 1 needs a cluster (`sluice run --cluster`).
    pub instance_count: u32,
    /// Tries after the first, each on a fresh instance
    /// (`retry_settings.max_retries`, 0..=100, default 3).
    pub max_retries: u32,
    /// Wall clock for one `run()` (and one `init()`), host calls included.
    pub timeout: Duration,
    /// Failed items tolerated; -1 = ignore.
    pub error_threshold: i64,
    /// Failed mini-batches tolerated; -1 = ignore.
    pub mini_batch_error_threshold: i64,
    /// Failed mini-batches allowed, percent of the whole plan (0..=100,
    /// default 100: never stops the job).
    pub allowed_failed_percent: u32,
    /// The host's tracing level.
    pub logging_level: LoggingLevel,
    /// Tabular input: one mini-batch per distinct tuple of these columns.
    pub partition_keys: Vec<String>,
    /// Models granted to the scorer, by name.
    pub models: Vec<ModelSpec>,
    /// ONNX Runtime intra-op threads per session (`onnx.intra_op_threads`,
    /// default 1: on a shared box more threads wait on each other).
    pub onnx_threads: usize,
    /// The scorer component (`task.code`, plus `task.entry_script` when
    /// `code` is a folder); absolute, a regular file when validated.
    pub scorer: PathBuf,
    /// Where returned rows go; `None`: rows are counted, not kept.
    pub append_row_to: Option<OutputSpec>,
    /// What every instance's `init` receives.
    pub config: ScorerConfig,
    /// Host folders granted read-only: `task.mounts`, then the data inputs
    /// that are folders (at `/inputs/NAME`).
    pub mounts: Vec<Mount>,
    /// Data inputs besides `input_data`, mounted read-only at
    /// `/inputs/NAME`; those that are files are not in `mounts`: the runtime
    /// gives each a folder of its own (see [`DataInput`]).
    pub data_inputs: Vec<DataInput>,
    /// `uri_folder` outputs the scorer writes files into, at
    /// `/outputs/NAME` (see [`OutputFolder`]).
    pub output_folders: Vec<OutputFolder>,
    /// The sandbox and resource caps.
    pub limits: Limits,
    /// One-line notes about accepted-but-ignored keys.
    pub notes: Vec<String>,
}

// ---- raw serde form ----------------------------------------------------

/// A YAML scalar read as text: `10`, `"10"` and `true` all become strings;
/// `kind` says which literal type the YAML value was (`string`, `integer`,
/// `number`, `boolean`).
#[derive(Debug, Clone)]
struct Scalar {
    text: String,
    kind: &'static str,
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar { text: v.to_string(), kind: "string" })
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar { text: v.to_string(), kind: "integer" })
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar { text: v.to_string(), kind: "integer" })
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar { text: v.to_string(), kind: "number" })
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar { text: v.to_string(), kind: "boolean" })
            }
        }
        d.deserialize_any(V)
    }
}

/// The top-level keys: Azure ML's parallel job (`_schema/job/parallel_job.py`
/// with `base_job.py` and `parameterized_parallel.py`) and parallel
/// component (`_schema/component/parallel_component.py` with
/// `component.py`) together, plus sluice's own (`allowed_failed_percent`,
/// `limits`, `onnx`). README.md, "Coming from Azure ML", says what each does.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    #[serde(rename = "$schema")]
    _schema: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    version: Option<Scalar>,
    display_name: Option<String>,
    description: Option<String>,
    experiment_name: Option<String>,
    tags: Option<BTreeMap<String, Option<Scalar>>>,
    properties: Option<BTreeMap<String, Option<Scalar>>>,
    is_deterministic: Option<bool>,
    #[serde(default)]
    inputs: BTreeMap<String, Value>,
    #[serde(default)]
    outputs: BTreeMap<String, Option<RawOutput>>,
    input_data: Option<String>,
    mini_batch_size: Option<Scalar>,
    partition_keys: Option<Vec<String>>,
    resources: Option<RawResources>,
    max_concurrency_per_instance: Option<i64>,
    retry_settings: Option<RawRetry>,
    error_threshold: Option<i64>,
    mini_batch_error_threshold: Option<i64>,
    allowed_failed_percent: Option<i64>,
    logging_level: Option<String>,
    task: Option<RawTask>,
    environment_variables: Option<BTreeMap<String, Scalar>>,
    compute: Option<Value>,
    identity: Option<Value>,
    services: Option<Value>,
    limits: Option<RawLimits>,
    onnx: Option<RawOnnx>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOnnx {
    intra_op_threads: Option<i64>,
}

/// `resources` (`_schema/job_resource_configuration.py`): only
/// `instance_count` has a meaning here.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResources {
    instance_count: Option<i64>,
    instance_type: Option<String>,
    max_instance_count: Option<i64>,
    locations: Option<Vec<String>>,
    shm_size: Option<Scalar>,
    docker_args: Option<Scalar>,
    properties: Option<Value>,
}

/// `retry_settings` (`_schema/component/retry_settings.py`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    max_retries: Option<i64>,
    timeout: Option<i64>,
}

/// `task` (`_schema/component/parallel_task.py`), plus sluice's `config`
/// and `mounts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    #[serde(rename = "type")]
    kind: Option<String>,
    code: Option<String>,
    entry_script: Option<String>,
    program_arguments: Option<String>,
    model: Option<String>,
    append_row_to: Option<String>,
    environment: Option<Value>,
    config: Option<BTreeMap<String, Scalar>>,
    mounts: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_mb: Option<i64>,
    fuel: Option<i64>,
    max_wasm_stack_kb: Option<i64>,
    max_output_mb: Option<i64>,
    max_log_kb: Option<i64>,
    max_file_mb: Option<i64>,
    max_tensor_mb: Option<i64>,
    max_scorer_mb: Option<i64>,
    compile_memory_mb: Option<i64>,
    compile_timeout_s: Option<i64>,
    max_folder_output_mb: Option<i64>,
    max_folder_output_files: Option<i64>,
}

// ---- loading -------------------------------------------------------------

/// One `key.path=value` override (a CLI flag), applied on top of the YAML.
#[derive(Debug, Clone)]
pub struct Override {
    /// The YAML path, dot-separated (`retry_settings.timeout`).
    pub path: String,
    /// Replaces whatever the YAML has there (creating the mappings above it).
    pub value: Value,
}

impl Override {
    /// `--set retry_settings.timeout=30`: the value is parsed as YAML, so
    /// numbers stay numbers.
    pub fn parse(s: &str) -> Result<Override, String> {
        let (k, v) =
            s.split_once('=').ok_or_else(|| format!("`{s}`: expected KEY=VALUE, e.g. retry_settings.timeout=30"))?;
        let value = serde_yaml_ng::from_str(v).unwrap_or_else(|_| Value::String(v.to_string()));
        Ok(Override { path: k.trim().to_string(), value })
    }

    /// An override built by code (a typed CLI flag), no parsing.
    pub fn new(path: impl Into<String>, value: impl Into<Value>) -> Override {
        Override { path: path.into(), value: value.into() }
    }
}

/// Where a spec came from, kept in the job directory (`spec.json`) so
/// `resume` and `replay` rebuild exactly the same job.
#[derive(Debug, Clone, serde::Serialize, Deserialize)]
pub struct SpecSource {
    /// The spec file, or "command line".
    pub origin: String,
    /// The YAML text (`{}` for flags only).
    pub text: String,
    /// What relative paths in the text are relative to (absolute).
    pub base: PathBuf,
    /// `--set`-style overrides: YAML path and YAML value.
    pub overrides: Vec<(String, String)>,
}

impl SpecSource {
    /// A spec file (or none: flags only) and the overrides on top of it.
    pub fn new(file: Option<&Path>, overrides: &[Override]) -> Result<SpecSource, SpecError> {
        let (origin, text, base) = match file {
            None => ("command line".to_string(), "{}".to_string(), PathBuf::from(".")),
            Some(path) => {
                let origin = path.display().to_string();
                let cannot = |e: std::io::Error| SpecError {
                    origin: origin.clone(),
                    path: String::new(),
                    message: format!("cannot read the job spec: {e}"),
                };
                // At most one byte past the cap: the shape check names it.
                let text = read_spec_text(path).map_err(cannot)?;
                let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
                let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
                (origin, text, base)
            }
        };
        let base = std::path::absolute(&base).unwrap_or(base);
        let overrides = overrides
            .iter()
            .map(|o| (o.path.clone(), serde_yaml_ng::to_string(&o.value).unwrap_or_default().trim_end().to_string()))
            .collect();
        Ok(SpecSource { origin, text, base, overrides })
    }

    /// `inputs.NAME.type` as the text and overrides say it (`None` when
    /// absent or unreadable): a cluster node uses it to tell a model input
    /// (shipped to it by hash) from a data input that holds a model (read
    /// where every node mounts it).
    pub fn input_type(&self, name: &str) -> Option<String> {
        let mut root: Value = serde_yaml_ng::from_str(&self.text).ok()?;
        for (k, v) in &self.overrides {
            let v = serde_yaml_ng::from_str::<Value>(v).unwrap_or(Value::String(v.clone()));
            set_path(&mut root, k, v).ok()?;
        }
        root.get("inputs")?.get(name)?.get("type")?.as_str().map(str::to_string)
    }

    /// The validated spec.
    pub fn spec(&self) -> Result<JobSpec, SpecError> {
        let overrides: Vec<Override> = self
            .overrides
            .iter()
            .map(|(k, v)| {
                Override::new(k.clone(), serde_yaml_ng::from_str::<Value>(v).unwrap_or(Value::String(v.clone())))
            })
            .collect();
        JobSpec::from_yaml(&self.text, &self.origin, &self.base, &overrides)
    }
}

/// The text of a YAML file a user gives (a spec, a component, a
/// pipeline), read at most one byte past [`MAX_SPEC_BYTES`], so a caller
/// (or [`check_spec_shape`]) can refuse a larger one without reading it all.
pub fn read_spec_text(path: &Path) -> std::io::Result<String> {
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(std::fs::File::open(path)?, MAX_SPEC_BYTES as u64 + 1),
        &mut text,
    )?;
    Ok(text)
}

/// The largest job spec sluice parses: real specs are a few KiB.
pub const MAX_SPEC_BYTES: usize = 1 << 20;

/// The deepest nesting of flow collections (`[`, `{`) or of block
/// sequences opened on one line (`- - -`) a spec may have: real specs nest
/// a handful of levels, and the YAML parser's cost grows faster than the
/// depth (100,000 nested `[` took 43 s to refuse).
pub const MAX_SPEC_DEPTH: usize = 64;

/// Refuses, before parsing, a spec too large or nested too deep (a quick
/// scan that skips quoted text and comments). Every YAML sluice reads from
/// a user or an input (a spec, a component, an `MLmodel`, an `MLTable`) is
/// checked with it first.
pub fn check_spec_shape(text: &str) -> Result<(), String> {
    if text.len() > MAX_SPEC_BYTES {
        return Err(format!("the spec is {} bytes; the most sluice reads is {} KiB", text.len(), MAX_SPEC_BYTES >> 10));
    }
    let deep = |line: usize| format!("line {line}: nested deeper than {MAX_SPEC_DEPTH} levels; a job spec needs a few");
    let (mut depth, mut line) = (0usize, 1usize);
    let mut quote: Option<u8> = None;
    let mut prev = b'\n';
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
        }
        match quote {
            Some(q) => {
                if c == b'\\' && q == b'"' {
                    i += 1;
                } else if c == q {
                    quote = None;
                }
            }
            None => match c {
                b'"' | b'\'' if !prev.is_ascii_alphanumeric() => quote = Some(c),
                b'#' if prev.is_ascii_whitespace() => {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                    continue;
                }
                b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_SPEC_DEPTH {
                        return Err(deep(line));
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
        prev = c;
        i += 1;
    }
    // Block sequences opened on one line: `- - - x`.
    for (n, l) in text.lines().enumerate() {
        let dashes = l.split(' ').take_while(|t| t.is_empty() || *t == "-").filter(|t| *t == "-").count();
        if dashes > MAX_SPEC_DEPTH {
            return Err(deep(n + 1));
        }
    }
    Ok(())
}

impl JobSpec {
    /// Reads and validates a spec file; relative paths in it are relative to
    /// the file's folder. `overrides` (CLI flags) win over the file.
    pub fn from_file(path: &Path, overrides: &[Override]) -> Result<JobSpec, SpecError> {
        SpecSource::new(Some(path), overrides)?.spec()
    }

    /// Builds a spec from CLI flags alone (no file); paths are relative to
    /// the current directory.
    pub fn from_overrides(overrides: &[Override]) -> Result<JobSpec, SpecError> {
        Self::from_yaml("{}", "command line", Path::new("."), overrides)
    }

    /// Parses YAML text. `origin` names it in errors; `base` anchors
    /// relative paths.
    pub fn from_yaml(text: &str, origin: &str, base: &Path, overrides: &[Override]) -> Result<JobSpec, SpecError> {
        let err =
            |path: &str, message: String| SpecError { origin: origin.to_string(), path: path.to_string(), message };
        check_spec_shape(text).map_err(|m| err("", m))?;
        let mut root: Value = serde_yaml_ng::from_str(text).map_err(|e| err("", format!("not valid YAML: {e}")))?;
        if root.is_null() {
            root = Value::Mapping(Mapping::new());
        }
        if !root.is_mapping() {
            return Err(err("", "the job spec must be a YAML mapping of keys".into()));
        }
        for o in overrides {
            set_path(&mut root, &o.path, o.value.clone()).map_err(|m| err(&o.path, m))?;
        }
        let raw: RawSpec = serde_path_to_error::deserialize(root).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            err(&path, improve_serde_message(&e.inner().to_string()))
        })?;
        validate(raw, origin, base)
    }
}

/// Sets `a.b.c` in a YAML mapping, creating intermediate mappings.
fn set_path(root: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let mut cur = root;
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err("an empty key in the path".into());
    }
    for (i, part) in parts.iter().enumerate() {
        let map = cur.as_mapping_mut().ok_or_else(|| format!("`{}` is not a mapping", parts[..i].join(".")))?;
        let key = Value::String(part.to_string());
        if i + 1 == parts.len() {
            map.insert(key, value);
            return Ok(());
        }
        if !map.contains_key(&key) {
            map.insert(key.clone(), Value::Mapping(Mapping::new()));
        }
        cur = map.get_mut(&key).expect("just inserted");
    }
    Ok(())
}

/// Turns serde's "unknown field `x`, expected one of `a`, `b`" into a
/// did-you-mean hint with the closest known key.
fn improve_serde_message(msg: &str) -> String {
    let Some(rest) = msg.strip_prefix("unknown field `") else {
        return msg.to_string();
    };
    let Some((field, tail)) = rest.split_once('`') else {
        return msg.to_string();
    };
    let known: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
    match did_you_mean(field, &known) {
        Some(k) => format!("unknown key `{field}`: did you mean `{k}`?"),
        None if known.is_empty() => format!("unknown key `{field}`"),
        None => format!("unknown key `{field}` (known keys: {})", known.join(", ")),
    }
}

/// The known name closest to `got`, when it is close enough to be a typo.
pub fn did_you_mean<'k>(got: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(got, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

fn validate(raw: RawSpec, origin: &str, base: &Path) -> Result<JobSpec, SpecError> {
    let err = |path: &str, message: String| SpecError { origin: origin.to_string(), path: path.to_string(), message };
    let resolve = |p: &str| {
        let p = PathBuf::from(p);
        normalize(if p.is_absolute() { p } else { base.join(p) })
    };
    let mut notes = Vec::new();
    let mut ignored = Notes::default();

    if let Some(kind) = &raw.kind
        && kind != "parallel"
    {
        return Err(err("type", format!("`{kind}`: sluice runs `type: parallel` jobs and components only")));
    }
    let _ = (&raw._schema, &raw.display_name, &raw.description);
    let metadata = "Azure ML metadata, not used when running here";
    for (key, present) in [
        ("version", raw.version.is_some()),
        ("experiment_name", raw.experiment_name.is_some()),
        ("tags", raw.tags.is_some()),
        ("properties", raw.properties.is_some()),
    ] {
        if present {
            ignored.ignored(key, metadata);
        }
    }
    if raw.is_deterministic.is_some() {
        ignored.ignored(
            "is_deterministic",
            "Azure reuses a deterministic component's earlier outputs; sluice resumes a job from its journal instead",
        );
    }
    if raw.identity.is_some() {
        ignored.ignored(
            "identity",
            "object storage is reached with the standard credential environment variables (README, \"Inputs and \
             outputs on object storage\")",
        );
    }
    if raw.services.is_some() {
        ignored.ignored("services", "a sandboxed scorer runs no interactive services");
    }

    // Every input, parsed (literal or data) and checked for its shape.
    let mut ports: BTreeMap<String, Port> = BTreeMap::new();
    for (name, v) in &raw.inputs {
        if !valid_port_name(name) {
            return Err(err(
                &format!("inputs.{name}"),
                "an input name must be letters, digits, `_` or `-` (it names the guest folder /inputs/NAME)".into(),
            ));
        }
        let port = azure::parse_input(name, v).map_err(|(p, m)| err(&p, m))?;
        if let Port::Data(d) = &port {
            if let Some(m) = &d.mode {
                ignored.ignored(
                    format!("inputs.{name}.mode ({m})"),
                    "a local path is read in place, read-only; a URL is read from the store",
                );
            }
            if d.datastore.is_some() {
                ignored.ignored(format!("inputs.{name}.datastore"), "a path is a local path or a storage URL");
            }
        }
        ports.insert(name.clone(), port);
    }
    for (name, o) in &raw.outputs {
        if let Some(o) = o {
            azure::check_output(name, o).map_err(|(p, m)| err(&p, m))?;
            if let Some(m) = &o.mode {
                ignored.ignored(format!("outputs.{name}.mode ({m})"), "outputs are written in place by the host");
            }
            for (k, present) in [("name", o.name.is_some()), ("version", o.version.is_some())] {
                if present {
                    ignored.ignored(format!("outputs.{name}.{k}"), "outputs are files, not registered Azure ML assets");
                }
            }
            if o.is_control.is_some() {
                ignored.ignored(format!("outputs.{name}.is_control"), "control outputs belong to pipelines");
            }
        }
    }

    // inputs / input_data
    let input_data = raw.input_data.as_deref().ok_or_else(|| {
        err(
            "input_data",
            "required: which input to split into mini-batches, e.g. `${{inputs.data}}` (or pass --input DIR)".into(),
        )
    })?;
    let input_name = binding(input_data, "inputs")
        .ok_or_else(|| err("input_data", format!("`{input_data}`: expected `${{{{inputs.NAME}}}}`")))?;
    let raw_input = match ports.get(input_name) {
        Some(Port::Data(d)) => d,
        Some(Port::Literal { .. }) => {
            return Err(err(
                "input_data",
                format!(
                    "`{input_data}` is a literal input; input_data must be a uri_folder, uri_file or mltable input"
                ),
            ));
        }
        None => {
            let known: Vec<&str> = ports.keys().map(String::as_str).collect();
            let hint = match did_you_mean(input_name, &known) {
                Some(k) => format!(": did you mean `${{{{inputs.{k}}}}}`?"),
                None => format!(" (inputs: {})", if known.is_empty() { "none".into() } else { known.join(", ") }),
            };
            return Err(err("input_data", format!("`{input_data}` names no input{hint}")));
        }
    };
    let ipath = format!("inputs.{input_name}");
    let raw_path = raw_input.path.as_deref().ok_or_else(|| {
        err(
            &raw_input.path_key,
            format!(
                "required: the data input_data splits into mini-batches; give it a path (`path: ./data`, or \
                 `--set {ipath}.path=DIR`)"
            ),
        )
    })?;
    let path_key = raw_input.path_key.clone();
    check_asset_path(raw_path).map_err(|m| err(&path_key, m))?;
    // A URL is checked for shape only (never contacted here); a local path
    // must exist, and its kind is checked against what it is.
    let (input_path, meta) = if Location::is_url(raw_path) {
        let url = Location::parse_url(raw_path).map_err(|m| err(&path_key, m))?;
        (url, None)
    } else {
        let p = resolve(raw_path);
        let meta = std::fs::metadata(&p).map_err(|e| err(&path_key, format!("{}: {e}", p.display())))?;
        (Location::Local(p), Some(meta))
    };
    // Without metadata (a URL), a last name with an extension is a file.
    let is_dir = match &meta {
        Some(m) => m.is_dir(),
        None => !raw_path.ends_with('/') && !input_path.file_name().is_some_and(|n| n.contains('.')),
    };
    let (kind, tabular) = match raw_input.kind.as_str() {
        "uri_folder" => (InputKind::UriFolder, false),
        "uri_file" => (InputKind::UriFile, false),
        "mltable" if is_dir => (InputKind::UriFolder, true),
        "mltable" => (InputKind::UriFile, true),
        other => {
            return Err(err(
                "input_data",
                format!("{ipath} is a model ({other}); input_data must be a uri_folder, uri_file or mltable input"),
            ));
        }
    };
    match (kind.clone(), &meta) {
        (InputKind::UriFolder, Some(m)) if !m.is_dir() => {
            return Err(err(
                &path_key,
                format!("{} is not a folder (use type: uri_file for one file)", input_path.display()),
            ));
        }
        (InputKind::UriFile, Some(m)) if !m.is_file() => {
            return Err(err(&path_key, format!("{} is not a file", input_path.display())));
        }
        (InputKind::UriFile, None) if input_path.file_name().is_none() => {
            return Err(err(&path_key, format!("{input_path}: a uri_file URL must name an object, not a bare bucket")));
        }
        _ => {}
    }

    // The other inputs: literals become values for `${{inputs.X}}`; data
    // inputs are mounted read-only at /inputs/NAME (and granted as models
    // when they hold one); mlflow_model / custom_model inputs are granted.
    let mut bindings = Bindings::default();
    let mut models = Vec::new();
    let mut data_inputs = Vec::new();
    for (name, port) in &ports {
        let key = format!("inputs.{name}");
        let d = match port {
            Port::Literal { value } => {
                let b = match value {
                    Some(v) => Binding::Value(v.clone()),
                    None => Binding::Missing,
                };
                bindings.inputs.insert(name.clone(), b);
                continue;
            }
            Port::Data(_) if name == input_name => {
                bindings.inputs.insert(
                    name.clone(),
                    Binding::Refused(format!(
                        "`${{{{inputs.{name}}}}}` is input_data: its items reach the scorer as mini-batches \
                         (run()), not as a path"
                    )),
                );
                continue;
            }
            Port::Data(d) => d,
        };
        let Some(path) = d.path.as_deref() else {
            if d.optional {
                bindings.inputs.insert(name.clone(), Binding::Missing);
                continue;
            }
            return Err(err(
                &d.path_key,
                format!(
                    "required: this {} input has no path and is not optional; give it one (`path:`, or `--set \
                     {key}.path=PATH`), or mark it `optional: true`",
                    d.kind
                ),
            ));
        };
        check_asset_path(path).map_err(|m| err(&d.path_key, m))?;
        match d.kind.as_str() {
            "mlflow_model" | "custom_model" => {
                if Location::is_url(path) {
                    return Err(err(
                        &d.path_key,
                        format!("`{path}`: models are read from local files; download it first"),
                    ));
                }
                let path = resolve(path);
                let ok = match d.kind.as_str() {
                    "mlflow_model" => path.join("MLmodel").is_file() || path.is_file(),
                    _ => path.is_file() || path.is_dir(),
                };
                if !ok {
                    let what = if d.kind == "mlflow_model" {
                        "is not an MLflow model folder (no MLmodel file)"
                    } else {
                        "does not exist"
                    };
                    return Err(err(&d.path_key, format!("{} {what}", path.display())));
                }
                bindings.inputs.insert(
                    name.clone(),
                    Binding::Refused(format!(
                        "`${{{{inputs.{name}}}}}` is a {} granted by name: the scorer loads it as `{name}` through \
                         the onnx import and sees no path; declare it `type: uri_folder` (or `uri_file` for one \
                         .onnx file) to have it mounted at /inputs/{name} as well",
                        d.kind
                    )),
                );
                models.push(ModelSpec { name: name.clone(), path });
            }
            _ => {
                if Location::is_url(path) {
                    return Err(err(
                        &d.path_key,
                        format!(
                            "`{path}`: only input_data is read from object storage; a {} input other than \
                             input_data is mounted into the scorer and must be a local path",
                            d.kind
                        ),
                    ));
                }
                let host_path = resolve(path);
                let meta = std::fs::metadata(&host_path)
                    .map_err(|e| err(&d.path_key, format!("{}: {e}", host_path.display())))?;
                let kind = match (d.kind.as_str(), meta.is_dir()) {
                    ("uri_folder", false) => {
                        return Err(err(
                            &d.path_key,
                            format!("{} is not a folder (use type: uri_file for one file)", host_path.display()),
                        ));
                    }
                    ("uri_file", true) => {
                        return Err(err(&d.path_key, format!("{} is not a file", host_path.display())));
                    }
                    (_, true) => InputKind::UriFolder,
                    (_, false) if meta.is_file() => InputKind::UriFile,
                    _ => {
                        return Err(err(&d.path_key, format!("{}: not a regular file", host_path.display())));
                    }
                };
                let input = DataInput::new(name, kind, host_path);
                if let Some(m) = input.model(&mut notes) {
                    models.push(m);
                }
                bindings.inputs.insert(name.clone(), Binding::Value(input.guest_path.clone()));
                data_inputs.push(input);
            }
        }
    }

    let mini_batch_size = match &raw.mini_batch_size {
        None => MiniBatchSize::default(),
        Some(Scalar { text: s, .. }) => {
            let size: MiniBatchSize = s.parse().map_err(|m| err("mini_batch_size", m))?;
            if matches!(size, MiniBatchSize::Rows(_)) && !tabular {
                return Err(err(
                    "mini_batch_size",
                    format!("`{s}`: rows need tabular input; {ipath} is a {}", raw_input.kind),
                ));
            }
            size
        }
    };

    let partition_keys = raw.partition_keys.clone().unwrap_or_default();
    if !partition_keys.is_empty() && !tabular {
        return Err(err(
            "partition_keys",
            format!(
                "partition keys need tabular input (type: mltable); {ipath} is a {}, which is split by files",
                raw_input.kind
            ),
        ));
    }
    if let Some(k) = partition_keys.iter().find(|k| k.is_empty()) {
        return Err(err("partition_keys", format!("`{k}`: a key must name a column")));
    }
    let onnx_threads = match raw.onnx.as_ref().and_then(|o| o.intra_op_threads) {
        None => 1,
        Some(n) => in_range(n, 1, 256).map_err(|m| err("onnx.intra_op_threads", m))? as usize,
    };

    let instance_count = match raw.resources.as_ref().and_then(|r| r.instance_count) {
        None => 1,
        Some(n) => in_range(n, 1, 1024).map_err(|m| err("resources.instance_count", m))? as u32,
    };
    if let Some(r) = &raw.resources {
        for (k, present) in [
            ("instance_type", r.instance_type.is_some()),
            ("max_instance_count", r.max_instance_count.is_some()),
            ("locations", r.locations.is_some()),
            ("shm_size", r.shm_size.is_some()),
            ("docker_args", r.docker_args.is_some()),
            ("properties", r.properties.is_some()),
        ] {
            if present {
                ignored.ignored(
                    format!("resources.{k}"),
                    "there is no VM or container to size: `limits.*` bound each sandboxed instance",
                );
            }
        }
    }

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let max_concurrency = match raw.max_concurrency_per_instance {
        None => cores,
        Some(n) => in_range(n, 1, 1024).map_err(|m| err("max_concurrency_per_instance", m))? as usize,
    };
    let retry = raw.retry_settings.as_ref();
    let max_retries = match retry.and_then(|r| r.max_retries) {
        None => 3,
        Some(n) => in_range(n, 0, 100).map_err(|m| err("retry_settings.max_retries", m))? as u32,
    };
    let timeout = match retry.and_then(|r| r.timeout) {
        None => 60,
        Some(n) => in_range(n, 1, 7 * 24 * 3600).map_err(|m| err("retry_settings.timeout", m))? as u64,
    };
    let error_threshold = match raw.error_threshold {
        None => -1,
        Some(n) => in_range(n, -1, i64::MAX).map_err(|m| err("error_threshold", m))?,
    };
    let mini_batch_error_threshold = match raw.mini_batch_error_threshold {
        None => -1,
        Some(n) => in_range(n, -1, i64::MAX).map_err(|m| err("mini_batch_error_threshold", m))?,
    };
    let allowed_failed_percent = match raw.allowed_failed_percent {
        None => 100,
        Some(n) => in_range(n, 0, 100).map_err(|m| err("allowed_failed_percent", m))? as u32,
    };
    let logging_level = match raw.logging_level.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("INFO") => LoggingLevel::Info,
        Some("DEBUG") => LoggingLevel::Debug,
        Some("WARNING") | Some("WARN") => LoggingLevel::Warning,
        Some(other) => {
            return Err(err("logging_level", format!("`{other}`: expected DEBUG, INFO or WARNING")));
        }
    };

    // task
    let task = raw
        .task
        .as_ref()
        .ok_or_else(|| err("task", "required: `task.code` names the scorer .wasm (or pass --scorer)".into()))?;
    match task.kind.as_deref() {
        None | Some("run_function") => {}
        Some(k @ ("function" | "model")) => {
            return Err(err(
                "task.type",
                format!("`{k}`: sluice runs `run_function` tasks (a scorer's init() and run()) only"),
            ));
        }
        Some(k) => return Err(err("task.type", format!("`{k}`: expected run_function"))),
    }
    if task.environment.is_some() {
        ignored.ignored("task.environment", "a .wasm scorer is self-contained");
    }
    if task.model.is_some() {
        ignored.ignored(
            "task.model",
            "a model reaches the scorer as an input (mlflow_model, custom_model, or a uri_folder holding one)",
        );
    }
    if raw.compute.is_some() {
        ignored.ignored("compute", "the job runs on this machine");
    }
    let scorer = match (&task.code, &task.entry_script) {
        (None, None) => {
            return Err(err("task.code", "required: the scorer .wasm component".into()));
        }
        (code, Some(entry)) => resolve(code.as_deref().unwrap_or(".")).join(entry),
        (Some(code), None) => resolve(code),
    };
    let scorer_key = if task.entry_script.is_some() { "task.entry_script" } else { "task.code" };
    if scorer.extension().and_then(|e| e.to_str()) != Some("wasm") {
        return Err(err(
            scorer_key,
            format!(
                "{}: the scorer must be a WebAssembly component (.wasm); build it with the sluice SDK",
                scorer.display()
            ),
        ));
    }
    match std::fs::metadata(&scorer) {
        Err(_) => return Err(err(scorer_key, format!("{}: no such file", scorer.display()))),
        // A FIFO or device would block or never end when read.
        Ok(m) if !m.is_file() => {
            return Err(err(scorer_key, format!("{}: not a regular file", scorer.display())));
        }
        Ok(_) => {}
    }
    let output_location = |p: &str, key: &str| -> Result<Location, SpecError> {
        if Location::is_url(p) {
            Location::parse_url(p).map_err(|m| err(key, m))
        } else {
            Ok(Location::Local(resolve(p)))
        }
    };
    let append_row_to = match &task.append_row_to {
        None => None,
        Some(a) => {
            let p = match binding(a, "outputs") {
                Some(out) => {
                    let o = match raw.outputs.get(out) {
                        Some(Some(o)) => o,
                        Some(None) => {
                            return Err(err(
                                &format!("outputs.{out}"),
                                "empty: give it a path, e.g. `{type: uri_file, path: ./scores.csv}`".into(),
                            ));
                        }
                        None => {
                            let known: Vec<&str> = raw.outputs.keys().map(String::as_str).collect();
                            let hint = match did_you_mean(out, &known) {
                                Some(k) => format!(": did you mean `${{{{outputs.{k}}}}}`?"),
                                None => String::new(),
                            };
                            return Err(err("task.append_row_to", format!("`{a}` names no output{hint}")));
                        }
                    };
                    let path = o.path.as_deref().ok_or_else(|| {
                        err(&format!("outputs.{out}.path"), "required: where to write the rows".into())
                    })?;
                    output_location(path, &format!("outputs.{out}.path"))?
                }
                None => output_location(a, "task.append_row_to")?,
            };
            let format = OutputFormat::from_location(&p).ok_or_else(|| {
                err(
                    "task.append_row_to",
                    format!("{}: the output file must end in .csv, .jsonl or .parquet", p.display()),
                )
            })?;
            Some(OutputSpec { path: p, format })
        }
    };
    // Outputs: the one append_row_to names is written by the host; a
    // uri_folder output with a local path is a folder the scorer writes
    // into; others are not written in this version.
    let row_output = task.append_row_to.as_deref().and_then(|a| binding(a, "outputs"));
    let mut output_folders = Vec::new();
    for (name, o) in &raw.outputs {
        if !valid_port_name(name) {
            return Err(err(
                &format!("outputs.{name}"),
                "an output name must be letters, digits, `_` or `-` (it names the guest folder /outputs/NAME)".into(),
            ));
        }
        let kind = o.as_ref().and_then(|o| o.kind.as_deref()).unwrap_or("uri_folder");
        let path = o.as_ref().and_then(|o| o.path.as_deref());
        if kind == "uri_folder" && Some(name.as_str()) != row_output {
            let key = format!("outputs.{name}.path");
            let binding = match path {
                Some(p) if Location::is_url(p) => Binding::Refused(format!(
                    "`{key}`: `{p}`: a uri_folder output the scorer writes is a local folder in this version"
                )),
                Some(p) => {
                    let host_path = resolve(p);
                    if host_path.exists() && !host_path.is_dir() {
                        return Err(err(&key, format!("{} is not a folder", host_path.display())));
                    }
                    // Two output folders, or one and the row output, must
                    // not hold one another: assembling one would move files
                    // into (or over) the other.
                    let rows = append_row_to.as_ref().and_then(|o| match &o.path {
                        Location::Local(p) => Some(("task.append_row_to".to_string(), p.clone())),
                        Location::Url(_) => None,
                    });
                    let others = output_folders
                        .iter()
                        .map(|f: &OutputFolder| (format!("outputs.{}.path", f.name), f.host_path.clone()))
                        .chain(rows);
                    for (other, q) in others {
                        if host_path.starts_with(&q) || q.starts_with(&host_path) {
                            return Err(err(
                                &key,
                                format!("{} and {other} ({}) hold one another", host_path.display(), q.display()),
                            ));
                        }
                    }
                    let guest_path = format!("{OUTPUTS_GUEST_DIR}/{name}");
                    output_folders.push(OutputFolder { name: name.clone(), host_path, guest_path: guest_path.clone() });
                    Binding::Value(guest_path)
                }
                None => {
                    notes.push(format!("outputs.{name} (uri_folder) has no `path`: the scorer cannot write it"));
                    Binding::Refused(format!(
                        "outputs.{name} (uri_folder) has no `path`: give it one (the folder the scorer's files go into)"
                    ))
                }
            };
            bindings.outputs.insert(name.clone(), binding);
            continue;
        }
        let why = if Some(name.as_str()) == row_output {
            format!(
                "`${{{{outputs.{name}}}}}` is task.append_row_to: the host writes the rows run() returns there; \
                 the scorer has no path to it"
            )
        } else {
            let why = format!(
                "outputs.{name} ({kind}): {kind} outputs are not writable by the scorer in this version; a \
                 scorer's results are the rows it returns, written to task.append_row_to"
            );
            notes.push(format!(
                "outputs.{name} ({kind}) is not written: only task.append_row_to's output is, in this version"
            ));
            why
        };
        bindings.outputs.insert(name.clone(), Binding::Refused(why));
    }
    let arguments = match &task.program_arguments {
        None => Vec::new(),
        Some(a) => {
            let key = "task.program_arguments";
            let text = bindings.substitute(a, true).map_err(|m| err(key, m))?;
            shell_words::split(&text).map_err(|e| err(key, format!("cannot split `{text}`: {e}")))?
        }
    };
    let scalars = |m: &Option<BTreeMap<String, Scalar>>, prefix: &str| -> Result<Vec<(String, String)>, SpecError> {
        m.iter()
            .flatten()
            .map(|(k, v)| {
                let text = bindings.substitute(&v.text, false).map_err(|m| err(&format!("{prefix}.{k}"), m))?;
                Ok((k.clone(), text))
            })
            .collect()
    };
    let config = ScorerConfig {
        settings: scalars(&task.config, "task.config")?,
        arguments,
        environment: scalars(&raw.environment_variables, "environment_variables")?,
    };
    let mut mounts = Vec::new();
    for (guest, host) in task.mounts.iter().flatten() {
        let key = format!("task.mounts.{guest}");
        if !guest.starts_with('/') {
            return Err(err(&key, "the guest path must be absolute, e.g. /lookup".into()));
        }
        let host_path = resolve(host);
        if !host_path.is_dir() {
            return Err(err(&key, format!("{} is not a folder", host_path.display())));
        }
        if let Some(f) = output_folders.iter().find(|f| overlaps(guest, &f.guest_path)) {
            return Err(err(
                &key,
                format!(
                    "{guest} overlaps {}, where outputs.{} is mounted: choose another guest path",
                    f.guest_path, f.name
                ),
            ));
        }
        if let Some(d) = data_inputs.iter().find(|d| overlaps(guest, &d.guest_dir())) {
            return Err(err(
                &key,
                format!(
                    "{guest} overlaps {}, where inputs.{} is mounted: choose another guest path",
                    d.guest_dir(),
                    d.name
                ),
            ));
        }
        mounts.push(Mount { guest_path: guest.clone(), host_path });
    }
    // Data folders are mounted as they are; a file gets a folder of its own
    // from the runtime (see [`DataInput`]).
    for d in data_inputs.iter().filter(|d| d.kind == InputKind::UriFolder) {
        mounts.push(Mount { guest_path: d.guest_path.clone(), host_path: d.host_path.clone() });
    }
    notes.extend(ignored.lines());

    let mut limits = Limits::default();
    if let Some(l) = &raw.limits {
        if let Some(n) = l.memory_mb {
            limits.memory_bytes = in_range(n, 1, 4096).map_err(|m| err("limits.memory_mb", m))? as u64 * (1 << 20);
        }
        if let Some(n) = l.fuel {
            limits.fuel = in_range(n, 1000, i64::MAX).map_err(|m| err("limits.fuel", m))? as u64;
        }
        if let Some(n) = l.max_wasm_stack_kb {
            limits.max_wasm_stack =
                in_range(n, 64, 64 * 1024).map_err(|m| err("limits.max_wasm_stack_kb", m))? as usize * 1024;
        }
        if let Some(n) = l.max_output_mb {
            limits.max_output_bytes =
                in_range(n, 1, 4096).map_err(|m| err("limits.max_output_mb", m))? as u64 * (1 << 20);
        }
        if let Some(n) = l.max_log_kb {
            limits.max_log_bytes = in_range(n, 1, 1 << 20).map_err(|m| err("limits.max_log_kb", m))? as u64 * 1024;
        }
        if let Some(n) = l.max_file_mb {
            limits.max_file_bytes = in_range(n, 1, 4096).map_err(|m| err("limits.max_file_mb", m))? as u64 * (1 << 20);
        }
        if let Some(n) = l.max_tensor_mb {
            limits.max_tensor_bytes =
                in_range(n, 1, 16384).map_err(|m| err("limits.max_tensor_mb", m))? as u64 * (1 << 20);
        }
        if let Some(n) = l.max_scorer_mb {
            limits.max_scorer_bytes =
                in_range(n, 1, 4096).map_err(|m| err("limits.max_scorer_mb", m))? as u64 * (1 << 20);
        }
        if let Some(n) = l.compile_memory_mb {
            limits.compile_memory_bytes =
                in_range(n, 64, 1 << 20).map_err(|m| err("limits.compile_memory_mb", m))? as u64 * (1 << 20);
        }
        if let Some(n) = l.compile_timeout_s {
            limits.compile_timeout =
                Duration::from_secs(in_range(n, 1, 24 * 3600).map_err(|m| err("limits.compile_timeout_s", m))? as u64);
        }
        if let Some(n) = l.max_folder_output_mb {
            limits.max_folder_output_bytes =
                in_range(n, 1, 1 << 20).map_err(|m| err("limits.max_folder_output_mb", m))? as u64 * (1 << 20);
        }
        if let Some(n) = l.max_folder_output_files {
            limits.max_folder_output_files =
                in_range(n, 1, 10_000_000).map_err(|m| err("limits.max_folder_output_files", m))? as u64;
        }
    }

    let name =
        raw.name.clone().unwrap_or_else(|| scorer.file_stem().and_then(|s| s.to_str()).unwrap_or("job").to_string());
    Ok(JobSpec {
        name,
        input: InputSpec { name: input_name.to_string(), kind, path: input_path, tabular },
        mini_batch_size,
        max_concurrency,
        instance_count,
        max_retries,
        timeout: Duration::from_secs(timeout),
        error_threshold,
        mini_batch_error_threshold,
        allowed_failed_percent,
        logging_level,
        partition_keys,
        models,
        onnx_threads,
        scorer,
        append_row_to,
        config,
        mounts,
        data_inputs,
        output_folders,
        limits,
        notes,
    })
}

/// A port (input, output) or step name is a folder name in the guest or a
/// job folder: `[A-Za-z0-9_-]+`, at most 255 bytes.
pub fn valid_port_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether guest path `a` is `b`, inside it, or holds it.
fn overlaps(a: &str, b: &str) -> bool {
    let (a, b) = (Path::new(a), Path::new(b));
    a.starts_with(b) || b.starts_with(a)
}

/// Refuses registered-asset references, which need an Azure ML workspace.
fn check_asset_path(p: &str) -> Result<(), String> {
    if p.starts_with("azureml:") {
        return Err(format!(
            "`{p}`: a registered Azure ML asset (`azureml:NAME:VERSION`) needs a workspace; give a local path or \
             a storage URL (s3://, az://, gs://)"
        ));
    }
    Ok(())
}

/// Removes `.` and `a/..` lexically, so paths in messages read as a user
/// would write them (`examples/out/x.csv`, not `examples/demo/../out/x.csv`).
fn normalize(p: PathBuf) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() { PathBuf::from(".") } else { out }
}

/// `${{inputs.data}}` -> `data` (for `kind` = "inputs").
fn binding<'a>(s: &'a str, kind: &str) -> Option<&'a str> {
    let inner = s.trim().strip_prefix("${{")?.strip_suffix("}}")?.trim();
    let name = inner.strip_prefix(kind)?.strip_prefix('.')?;
    (!name.is_empty()).then_some(name)
}

fn in_range(n: i64, lo: i64, hi: i64) -> Result<i64, String> {
    if n < lo || n > hi {
        if hi == i64::MAX {
            Err(format!("{n} is out of range: must be at least {lo}"))
        } else {
            Err(format!("{n} is out of range: must be between {lo} and {hi}"))
        }
    } else {
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> tempfile_lite::Dir {
        tempfile_lite::Dir::new()
    }

    /// A tiny temp dir helper (the job crate keeps its dependencies minimal).
    mod tempfile_lite {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "sluice-spec-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::SeqCst)
                ));
                std::fs::create_dir_all(p.join("data")).unwrap();
                std::fs::write(p.join("scorer.wasm"), b"\0asm").unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const BASE: &str = "
type: parallel
inputs:
  data: {type: uri_folder, path: ./data}
input_data: ${{inputs.data}}
task:
  code: ./scorer.wasm
";

    fn parse(dir: &tempfile_lite::Dir, extra: &str) -> Result<JobSpec, SpecError> {
        JobSpec::from_yaml(&format!("{BASE}{extra}"), "job.yaml", &dir.0, &[])
    }

    #[test]
    fn deep_or_huge_specs_are_refused_before_parsing() {
        let started = std::time::Instant::now();
        for text in ["[".repeat(100_000), "{a: ".repeat(100_000), format!("x:\n{}- 1\n", "- ".repeat(10_000))] {
            let e = JobSpec::from_yaml(&text, "deep.yaml", Path::new("."), &[]).unwrap_err();
            assert!(e.to_string().contains("nested deeper than 64 levels"), "{e}");
        }
        let e = JobSpec::from_yaml(&"#".repeat(2 << 20), "big.yaml", Path::new("."), &[]).unwrap_err();
        assert!(e.to_string().contains("the most sluice reads is 1024 KiB"), "{e}");
        assert!(started.elapsed().as_secs() < 5, "refusing took {:?}", started.elapsed());
        // Brackets in quoted text and comments are not nesting.
        let quoted = format!("name: \"{}\"  # {}\n", "[".repeat(100), "{".repeat(100));
        let e = JobSpec::from_yaml(&quoted, "q.yaml", Path::new("."), &[]).unwrap_err();
        assert!(!e.to_string().contains("nested deeper"), "{e}");
    }

    #[test]
    fn defaults_follow_the_design() {
        let d = setup();
        let s = parse(&d, "").unwrap();
        assert_eq!(s.mini_batch_size, MiniBatchSize::Count(10));
        assert_eq!(s.max_retries, 3);
        assert_eq!(s.timeout, Duration::from_secs(60));
        assert_eq!((s.error_threshold, s.mini_batch_error_threshold, s.allowed_failed_percent), (-1, -1, 100));
        assert_eq!(s.input.path, Location::Local(d.0.join("data")));
        assert!(s.append_row_to.is_none());
    }

    #[test]
    fn unknown_key_gets_did_you_mean_with_path() {
        let d = setup();
        let e = parse(&d, "retry_settings:\n  max_retrys: 2\n").unwrap_err();
        assert_eq!(e.path, "retry_settings.max_retrys");
        assert!(e.message.contains("did you mean `max_retries`"), "{e}");
        let e = parse(&d, "mini_batch_siz: 3\n").unwrap_err();
        assert!(e.message.contains("did you mean `mini_batch_size`"), "{e}");
        assert!(e.to_string().starts_with("job.yaml: "), "{e}");
    }

    #[test]
    fn compile_limits_have_defaults_ranges_and_hints() {
        let d = setup();
        let l = parse(&d, "").unwrap().limits;
        assert_eq!(
            (l.max_scorer_bytes, l.compile_memory_bytes, l.compile_timeout),
            (256 << 20, 4096 << 20, Duration::from_secs(300))
        );
        let l = parse(&d, "limits:\n  max_scorer_mb: 20\n  compile_memory_mb: 512\n  compile_timeout_s: 30\n")
            .unwrap()
            .limits;
        assert_eq!(
            (l.max_scorer_bytes, l.compile_memory_bytes, l.compile_timeout),
            (20 << 20, 512 << 20, Duration::from_secs(30))
        );
        let e = parse(&d, "limits:\n  compile_memory_mb: 8\n").unwrap_err();
        assert_eq!(e.path, "limits.compile_memory_mb");
        assert!(e.message.contains("between 64 and"), "{e}");
        let e = parse(&d, "limits:\n  max_scorer_mb: 0\n").unwrap_err();
        assert_eq!(e.path, "limits.max_scorer_mb");
        let e = parse(&d, "limits:\n  compile_timeout: 8\n").unwrap_err();
        assert!(e.message.contains("did you mean `compile_timeout_s`"), "{e}");
    }

    #[test]
    fn partition_keys_need_tabular_input() {
        let d = setup();
        let e = parse(&d, "partition_keys: [region]\n").unwrap_err();
        assert_eq!(e.path, "partition_keys");
        assert!(e.message.contains("need tabular input"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let d = setup();
        let e = parse(&d, "retry_settings:\n  timeout: soon\n").unwrap_err();
        assert_eq!(e.path, "retry_settings.timeout");
        assert!(e.message.contains("invalid type"), "{e}");
    }

    #[test]
    fn out_of_range_names_the_key_and_bounds() {
        let d = setup();
        let e = parse(&d, "allowed_failed_percent: 150\n").unwrap_err();
        assert_eq!(e.path, "allowed_failed_percent");
        assert!(e.message.contains("between 0 and 100"), "{e}");
        let e = parse(&d, "error_threshold: -2\n").unwrap_err();
        assert_eq!(e.path, "error_threshold");
        let e = parse(&d, "max_concurrency_per_instance: 0\n").unwrap_err();
        assert_eq!(e.path, "max_concurrency_per_instance");
    }

    #[test]
    fn outputs_binding_and_overrides() {
        let d = setup();
        let extra = "outputs:\n  scores: {type: uri_file, path: out/scores.csv}\ntask:\n  code: ./scorer.wasm\n  append_row_to: ${{outputs.scores}}\n  config: {threshold: 0.5}\n  program_arguments: --mode 'a b'\n";
        let text = format!("{}{extra}", BASE.replace("task:\n  code: ./scorer.wasm\n", ""));
        let s = JobSpec::from_yaml(&text, "job.yaml", &d.0, &[Override::parse("retry_settings.timeout=7").unwrap()])
            .unwrap();
        assert_eq!(
            s.append_row_to.unwrap(),
            OutputSpec { path: d.0.join("out/scores.csv").into(), format: OutputFormat::Csv }
        );
        assert_eq!(normalize(PathBuf::from("a/./b/../../c/d")), PathBuf::from("c/d"));
        assert_eq!(normalize(PathBuf::from("../x/../y")), PathBuf::from("../y"));
        assert_eq!(s.timeout, Duration::from_secs(7));
        assert_eq!(s.config.settings, vec![("threshold".to_string(), "0.5".to_string())]);
        assert_eq!(s.config.arguments, vec!["--mode", "a b"]);
    }

    #[test]
    fn missing_scorer_and_bad_output_extension() {
        let d = setup();
        let e = JobSpec::from_yaml(&BASE.replace("scorer.wasm", "nope.wasm"), "job.yaml", &d.0, &[]).unwrap_err();
        assert_eq!(e.path, "task.code");
        assert!(e.message.contains("no such file"));
        let e = parse(&d, "")
            .map(|_| ())
            .and_then(|_| {
                JobSpec::from_yaml(&format!("{BASE}  append_row_to: out.txt\n"), "job.yaml", &d.0, &[]).map(|_| ())
            })
            .unwrap_err();
        assert_eq!(e.path, "task.append_row_to");
    }

    #[test]
    fn object_storage_urls_are_checked_for_shape_without_contacting_them() {
        let d = setup();
        let url_job = |input: &str, kind: &str, out: &str| {
            let text = BASE.replace("{type: uri_folder, path: ./data}", &format!("{{type: {kind}, path: '{input}'}}"));
            JobSpec::from_yaml(&format!("{text}  append_row_to: '{out}'\n"), "job.yaml", &d.0, &[])
        };
        // No such bucket exists anywhere: validation never asks.
        let s = url_job("s3://nowhere/in/", "uri_folder", "s3://nowhere/out/result.parquet").unwrap();
        assert_eq!(s.input.path, Location::Url("s3://nowhere/in".into()));
        assert_eq!(s.input.kind, InputKind::UriFolder);
        let out = s.append_row_to.unwrap();
        assert_eq!(
            (out.path, out.format),
            (Location::Url("s3://nowhere/out/result.parquet".into()), OutputFormat::Parquet)
        );
        // mltable: a last name with an extension is one file, else a folder.
        let s = url_job("gs://b/t/rows.csv", "mltable", "out.csv").unwrap();
        assert_eq!((s.input.kind, s.input.tabular), (InputKind::UriFile, true));
        assert_eq!(url_job("az://c/tables", "mltable", "out.csv").unwrap().input.kind, InputKind::UriFolder);
        // A typo in the scheme names the key; so does a bad output URL.
        let e = url_job("s4://b/in", "uri_folder", "out.csv").unwrap_err();
        assert_eq!(e.path, "inputs.data.path");
        assert!(e.message.contains("unknown storage scheme `s4://`"), "{e}");
        let e = url_job("s3://b/in", "uri_folder", "s3:///x.csv").unwrap_err();
        assert_eq!(e.path, "task.append_row_to");
        let e = url_job("s3://b/in", "uri_folder", "s3://b/out/result.txt").unwrap_err();
        assert!(e.message.contains("must end in .csv"), "{e}");
        assert_eq!(url_job("s3://b", "uri_file", "out.csv").unwrap_err().path, "inputs.data.path");
    }
}
