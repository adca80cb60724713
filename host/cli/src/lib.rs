//! `sluice`: the command line, thin over `sluice-runtime`. A library so
//! the integration tests can build the same CLI into their own binary.

#![warn(missing_docs)]

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use sluice_job::JobSpec;
use sluice_job::spec::{Override, SpecSource};
use sluice_runtime::jobs::JobIndex;
use std::sync::Arc;

use sluice_runtime::{
    Backends, CancelToken, JobResult, JobStatus, Observers, ProgressMode, ProgressObserver, RunOptions,
};

/// `println!` for anything that may hold text a guest or an input file
/// name controls: control characters (newlines, ESC/OSC sequences, bidi
/// overrides) are escaped, so nothing printed can redraw the terminal or
/// forge a line (a fake "completed" summary).
macro_rules! out {
    () => {
        println!()
    };
    ($($t:tt)*) => {
        println!("{}", sluice_job::text::escape_controls(&format!($($t)*)))
    };
}

/// `eprintln!` with the same escaping as [`out!`].
macro_rules! err_out {
    ($($t:tt)*) => {
        eprintln!("{}", sluice_job::text::escape_controls(&format!($($t)*)))
    };
}

mod commands;
mod components;
mod new;
mod pipeline;

/// Batch scoring with sandboxed WebAssembly scorers (Azure ML parallel-job
/// semantics).
#[derive(Parser, Debug)]
#[command(name = "sluice", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a job from a YAML spec, from flags, or both (flags win). In an
    /// existing job directory (--job-dir), resumes it.
    Run(Box<RunArgs>),
    /// Resume a job: skip the mini-batches it committed, run the rest.
    Resume(commands::ResumeArgs),
    /// The jobs on this machine.
    #[command(subcommand)]
    Jobs(commands::JobsCommand),
    /// Run one mini-batch of a job again, alone, and print its rows, item
    /// errors and guest log.
    Replay(commands::ReplayArgs),
    /// Check a scorer component against the host's world: imports,
    /// exports, and what is missing or mismatched.
    Validate(commands::ValidateArgs),
    /// Precompile a scorer into the compiled-component cache.
    Compile(commands::CompileArgs),
    /// Make a scorer project (Rust, Python or JavaScript) with a job on
    /// bundled sample data, ready to build and run.
    New(new::NewArgs),
    /// Show or trim the compiled-component cache (least recently used
    /// entries go first past SLUICE_CACHE_MAX_MB).
    #[command(subcommand)]
    Cache(commands::CacheCommand),
    /// The local component registry: store a component YAML under
    /// NAME@VERSION, list and show stored ones (jobs run them as
    /// azureml:NAME:VERSION).
    #[command(subcommand)]
    Components(components::ComponentsCommand),
    /// Serve the jobs of a cluster: take their mini-batches from NATS
    /// JetStream, run them on this node's instances, report back.
    Worker(commands::WorkerArgs),
    /// Internal: compile the component on stdin to a precompiled artifact
    /// on stdout. sluice runs itself this way, in a child process with the
    /// compile limits (limits.compile_memory_mb, limits.compile_timeout_s).
    #[command(name = "__compile-component", hide = true)]
    CompileComponent {
        /// The job engine's wasm stack cap, bytes (limits.max_wasm_stack_kb).
        #[arg(long)]
        max_wasm_stack: usize,
        /// The compile cache folder whose per-function entries to use.
        #[arg(long = "incremental-cache")]
        incremental_cache: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The job spec (Azure ML `type: parallel` keys), or a stored
    /// component: azureml:NAME:VERSION, azureml:NAME@latest, NAME@VERSION.
    spec: Option<PathBuf>,
    /// A folder of input files, or one file (inputs.data, type uri_folder
    /// or uri_file; mltable with --tabular); or an object-storage URL
    /// (s3://bucket/prefix, az://, gs://): a prefix, or one object when its
    /// last name has an extension.
    #[arg(long)]
    input: Option<PathBuf>,
    /// The input is tables (CSV, Parquet, JSON Lines): mini-batches of rows
    /// (inputs.data.type: mltable).
    #[arg(long)]
    tabular: bool,
    /// NAME=PATH: grants an ONNX model (an MLflow model folder or an .onnx
    /// file) to the scorer, which loads it by NAME (inputs.NAME); repeatable.
    #[arg(long = "model", value_name = "NAME=PATH")]
    model: Vec<String>,
    /// Columns whose distinct values each make a mini-batch, comma-separated
    /// (partition_keys; tabular input).
    #[arg(long, value_delimiter = ',')]
    partition_keys: Vec<String>,
    /// ONNX Runtime threads per session (onnx.intra_op_threads).
    #[arg(long, allow_negative_numbers = true)]
    onnx_threads: Option<i64>,
    /// The scorer component (task.code).
    #[arg(long)]
    scorer: Option<PathBuf>,
    /// One file of all returned rows, .csv, .jsonl or .parquet
    /// (task.append_row_to); or an object-storage URL
    /// (s3://bucket/out/result.csv).
    #[arg(long)]
    output: Option<PathBuf>,
    /// "10", "10 files", "1000 rows" or "100MB" (mini_batch_size).
    #[arg(long)]
    mini_batch_size: Option<String>,
    /// Sandboxed instances (max_concurrency_per_instance).
    #[arg(long, allow_negative_numbers = true)]
    max_concurrency: Option<i64>,
    /// Retries after the first try (retry_settings.max_retries).
    #[arg(long, allow_negative_numbers = true)]
    max_retries: Option<i64>,
    /// Seconds per run() call (retry_settings.timeout).
    #[arg(long, allow_negative_numbers = true)]
    timeout: Option<i64>,
    /// Failed items tolerated, -1 = ignore (error_threshold).
    #[arg(long, allow_negative_numbers = true)]
    error_threshold: Option<i64>,
    /// Failed mini-batches tolerated, -1 = ignore (mini_batch_error_threshold).
    #[arg(long, allow_negative_numbers = true)]
    mini_batch_error_threshold: Option<i64>,
    /// Failed mini-batches allowed, percent of all (allowed_failed_percent).
    #[arg(long, allow_negative_numbers = true)]
    allowed_failed_percent: Option<i64>,
    /// DEBUG, INFO or WARNING (logging_level).
    #[arg(long)]
    logging_level: Option<String>,
    /// KEY=VALUE for init(config) (task.config.KEY); repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
    /// Arguments for init(config) (task.program_arguments).
    #[arg(long, allow_hyphen_values = true)]
    program_arguments: Option<String>,
    /// KEY=VALUE for init(config) (environment_variables.KEY); repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// GUEST_PATH=HOST_DIR granted read-only (task.mounts); repeatable.
    #[arg(long = "mount", value_name = "GUEST=HOST")]
    mount: Vec<String>,
    /// Memory cap per instance, MiB (limits.memory_mb).
    #[arg(long, allow_negative_numbers = true)]
    memory_mb: Option<i64>,
    /// Fuel per init()/run() call (limits.fuel).
    #[arg(long, allow_negative_numbers = true)]
    fuel: Option<i64>,
    /// Output cap per mini-batch, MiB (limits.max_output_mb).
    #[arg(long, allow_negative_numbers = true)]
    max_output_mb: Option<i64>,
    /// Guest log cap per instance, KiB (limits.max_log_kb).
    #[arg(long, allow_negative_numbers = true)]
    max_log_kb: Option<i64>,
    /// Input file size cap, MiB (limits.max_file_mb).
    #[arg(long, allow_negative_numbers = true)]
    max_file_mb: Option<i64>,
    /// Wasm stack cap, KiB (limits.max_wasm_stack_kb).
    #[arg(long, allow_negative_numbers = true)]
    max_wasm_stack_kb: Option<i64>,
    /// Scorer file size cap, MiB (limits.max_scorer_mb).
    #[arg(long, allow_negative_numbers = true)]
    max_scorer_mb: Option<i64>,
    /// Memory of the process compiling the scorer, MiB (limits.compile_memory_mb).
    #[arg(long, allow_negative_numbers = true)]
    compile_memory_mb: Option<i64>,
    /// Seconds to compile the scorer (limits.compile_timeout_s).
    #[arg(long, allow_negative_numbers = true)]
    compile_timeout: Option<i64>,
    /// Any spec key by its YAML path, e.g. --set retry_settings.timeout=30.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// The job directory (default: DATA_DIR/jobs/NAME-TIME).
    #[arg(long)]
    job_dir: Option<PathBuf>,
    /// Where sluice keeps jobs (env SLUICE_DATA_DIR).
    #[arg(long, env = "SLUICE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The compiled-component cache (env SLUICE_CACHE_DIR).
    #[arg(long, env = "SLUICE_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile the scorer without the cache.
    #[arg(long)]
    no_cache: bool,
    /// In an existing job directory: forget what an earlier run committed
    /// and start over (instead of resuming).
    #[arg(long)]
    restart: bool,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Where a job's mini-batches run: here, or on a cluster's nodes.
#[derive(Args, Debug, Clone)]
pub(crate) struct ClusterArgs {
    /// Run the job's mini-batches on the nodes (`sluice worker`) of the
    /// NATS JetStream cluster at this URL, nats://HOST:PORT (env
    /// SLUICE_CLUSTER); without it everything runs in this process.
    #[arg(long, env = "SLUICE_CLUSTER")]
    pub cluster: Option<String>,
    /// Cluster jobs: seconds a node may go silent on a mini-batch before it
    /// is taken for lost and the mini-batch runs elsewhere (NODE_LOST).
    #[arg(long, default_value_t = 30.0)]
    pub lease: f64,
}

impl Default for ClusterArgs {
    fn default() -> ClusterArgs {
        ClusterArgs { cluster: None, lease: 30.0 }
    }
}

/// Parses the process arguments and runs the command; the exit code is
/// 0 (completed), 1 (the job failed or could not run) or 2 (usage or spec
/// error).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Scorers are compiled by this same binary in a child process.
    if let Ok(exe) = std::env::current_exe() {
        sluice_engine::set_default_compiler(exe);
    }
    let outcome = match cli.command {
        Command::CompileComponent { max_wasm_stack, incremental_cache } => {
            return sluice_engine::compiler_child_main(max_wasm_stack, incremental_cache.as_deref());
        }
        Command::Run(args) => run_any(*args),
        Command::Resume(a) => commands::resume(a),
        Command::Jobs(c) => commands::jobs(c),
        Command::Replay(a) => commands::replay(a),
        Command::Validate(a) => commands::validate(a),
        Command::Compile(a) => commands::compile(a),
        Command::Cache(c) => commands::cache(c),
        Command::Components(c) => components::components(c),
        Command::New(a) => new::new(a),
        Command::Worker(a) => commands::worker(a),
    };
    match outcome {
        Ok(code) => code,
        Err(Failure::Usage(e)) => {
            err_out!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(Failure::Job(e)) => {
            err_out!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// 1 for a failed job, else 0.
/// Ctrl-C (SIGINT) or SIGTERM cancels the job gracefully; a second one
/// exits at once (exit code 130), leaving what is committed for `resume`.
fn cancel_on_signals(cancel: &CancelToken) -> Option<signal_hook::iterator::Handle> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot handle Ctrl-C (it will kill the job; `sluice resume` finishes it): {e}");
            return None;
        }
    };
    let handle = signals.handle();
    let cancel = cancel.clone();
    std::thread::Builder::new()
        .name("sluice-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if cancel.is_canceled() {
                    err_out!("second signal: stopping now (`sluice resume` finishes the job)");
                    std::process::exit(130);
                }
                let name = if sig == SIGINT { "SIGINT (Ctrl-C)" } else { "SIGTERM" };
                err_out!(
                    "{name}: canceling the job; mini-batches in flight get {}s to finish (again to stop now)",
                    cancel.grace().as_secs()
                );
                cancel.cancel(format!("canceled by {name}"));
            }
        })
        .ok()?;
    Some(handle)
}

fn exit_for(r: &JobResult) -> ExitCode {
    match r.status {
        JobStatus::Failed => ExitCode::from(1),
        JobStatus::Canceled => ExitCode::from(130),
        _ => ExitCode::SUCCESS,
    }
}

pub(crate) enum Failure {
    /// A bad flag or spec: exit code 2.
    Usage(anyhow::Error),
    /// The job could not run: exit code 1.
    Job(anyhow::Error),
}

fn absolute(p: &Path) -> String {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()).display().to_string()
}

/// A path made absolute, or a URL (`s3://...`) as given: the spec checks it.
fn absolute_or_url(p: &Path) -> String {
    match p.to_str() {
        Some(s) if sluice_job::spec::Location::is_url(s) => s.to_string(),
        _ => absolute(p),
    }
}

/// Every flag becomes an override of its spec key, so flags and YAML meet
/// in one validation with the same error messages.
fn overrides(a: &RunArgs) -> anyhow::Result<Vec<Override>> {
    let mut o = Vec::new();
    if let Some(p) = &a.input {
        let url = p.to_str().filter(|s| sluice_job::spec::Location::is_url(s));
        // A URL is not looked at here: one whose last name has an
        // extension is one object.
        let is_file = match url {
            Some(u) => {
                !u.ends_with('/')
                    && sluice_job::spec::Location::parse_url(u)
                        .is_ok_and(|l| l.file_name().is_some_and(|n| n.contains('.')))
            }
            None => p.is_file(),
        };
        let kind = match (a.tabular, is_file) {
            (true, _) => "mltable",
            (false, true) => "uri_file",
            (false, false) => "uri_folder",
        };
        o.push(Override::new("inputs.data.type", kind));
        o.push(Override::new("inputs.data.path", absolute_or_url(p)));
        o.push(Override::new("input_data", "${{inputs.data}}"));
    } else if a.tabular {
        o.push(Override::new("inputs.data.type", "mltable"));
    }
    for kv in &a.model {
        let (name, path) = kv.split_once('=').with_context(|| format!("--model {kv}: expected NAME=PATH"))?;
        let path = Path::new(path);
        let kind = if path.is_dir() { "mlflow_model" } else { "custom_model" };
        o.push(Override::new(format!("inputs.{name}.type"), kind));
        o.push(Override::new(format!("inputs.{name}.path"), absolute(path)));
    }
    if !a.partition_keys.is_empty() {
        let keys: Vec<serde_yaml_ng::Value> =
            a.partition_keys.iter().map(|k| serde_yaml_ng::Value::String(k.clone())).collect();
        o.push(Override::new("partition_keys", serde_yaml_ng::Value::Sequence(keys)));
    }
    if let Some(p) = &a.scorer {
        o.push(Override::new("task.code", absolute(p)));
    }
    if let Some(p) = &a.output {
        o.push(Override::new("task.append_row_to", absolute_or_url(p)));
    }
    if let Some(v) = &a.mini_batch_size {
        o.push(Override::new("mini_batch_size", v.as_str()));
    }
    if let Some(v) = &a.program_arguments {
        o.push(Override::new("task.program_arguments", v.as_str()));
    }
    if let Some(v) = &a.logging_level {
        o.push(Override::new("logging_level", v.as_str()));
    }
    let ints = [
        ("max_concurrency_per_instance", a.max_concurrency),
        ("retry_settings.max_retries", a.max_retries),
        ("retry_settings.timeout", a.timeout),
        ("error_threshold", a.error_threshold),
        ("mini_batch_error_threshold", a.mini_batch_error_threshold),
        ("allowed_failed_percent", a.allowed_failed_percent),
        ("limits.memory_mb", a.memory_mb),
        ("limits.fuel", a.fuel),
        ("limits.max_output_mb", a.max_output_mb),
        ("limits.max_log_kb", a.max_log_kb),
        ("limits.max_file_mb", a.max_file_mb),
        ("limits.max_wasm_stack_kb", a.max_wasm_stack_kb),
        ("limits.max_scorer_mb", a.max_scorer_mb),
        ("limits.compile_memory_mb", a.compile_memory_mb),
        ("limits.compile_timeout_s", a.compile_timeout),
        ("onnx.intra_op_threads", a.onnx_threads),
    ];
    for (key, v) in ints {
        if let Some(v) = v {
            o.push(Override::new(key, v));
        }
    }
    let pairs = |flag: &str, prefix: &str, list: &[String], o: &mut Vec<Override>| -> anyhow::Result<()> {
        for kv in list {
            let (k, v) = kv.split_once('=').with_context(|| format!("{flag} {kv}: expected KEY=VALUE"))?;
            o.push(Override::new(format!("{prefix}.{k}"), v));
        }
        Ok(())
    };
    pairs("--config", "task.config", &a.config, &mut o)?;
    pairs("--env", "environment_variables", &a.env, &mut o)?;
    for kv in &a.mount {
        let (g, h) = kv.split_once('=').with_context(|| format!("--mount {kv}: expected GUEST=HOST"))?;
        o.push(Override::new(format!("task.mounts.{g}"), absolute(Path::new(h))));
    }
    for s in &a.set {
        o.push(Override::parse(s).map_err(anyhow::Error::msg).context("--set")?);
    }
    Ok(o)
}

/// `--input` on a spec whose `input_data` names another port than `data`
/// (an Azure component's `input_data: ${{inputs.input_data}}`, say) fills
/// that port's `path`, keeping the type it declares, instead of adding a
/// port `data` beside it.
fn retarget_input(source: &mut SpecSource) {
    let Ok(doc) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&source.text) else { return };
    let Some(bound) = doc.get("input_data").and_then(|v| v.as_str()) else { return };
    let Some(port) = bound
        .trim()
        .strip_prefix("${{")
        .and_then(|s| s.strip_suffix("}}"))
        .and_then(|s| s.trim().strip_prefix("inputs."))
        .map(str::trim)
        .filter(|p| *p != "data")
    else {
        return;
    };
    let Some(declared) = doc.get("inputs").and_then(|i| i.get(port)) else { return };
    let keeps_type = declared.get("type").is_some();
    let port = port.to_string();
    source.overrides.retain(|(k, _)| k != "input_data" && !(keeps_type && k == "inputs.data.type"));
    for (k, _) in source.overrides.iter_mut() {
        if let Some(rest) = k.strip_prefix("inputs.data.") {
            *k = format!("inputs.{port}.{rest}");
        }
    }
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "sluice")
}

/// `sluice run`: a pipeline (`type: pipeline`) or a job.
fn run_any(a: RunArgs) -> Result<ExitCode, Failure> {
    if let Some(file) = a.spec.as_deref().filter(|p| p.is_file())
        && sluice_runtime::pipeline::is_pipeline_file(file)
    {
        // A pipeline's keys are in its file: flags that set a job's keys
        // would apply to no step in particular.
        if a.restart || a.cluster.cluster.is_some() || !overrides(&a).map_err(Failure::Usage)?.is_empty() {
            return Err(Failure::Usage(anyhow::anyhow!(
                "{}: a pipeline takes --job-dir, --data-dir, --cache-dir, --no-cache and -q; set job keys in its \
                 steps (and start over with another --job-dir)",
                file.display()
            )));
        }
        let data = data_dir(a.data_dir.as_deref());
        let index = JobIndex::new(&data);
        let cache = cache_dir(a.cache_dir.as_deref(), a.no_cache);
        return pipeline::run(file, a.job_dir.clone(), &data, cache, index, a.quiet);
    }
    run(a).map(|r| exit_for(&r))
}

fn run(a: RunArgs) -> Result<JobResult, Failure> {
    let o = overrides(&a).map_err(Failure::Usage)?;
    use sluice_runtime::components::{compose_job, compose_reference};
    let data = data_dir(a.data_dir.as_deref());
    // Not a file: maybe a component in the registry, run as a job of its
    // own here (its outputs and --set paths relative to this folder).
    let reference = a.spec.as_deref().filter(|p| !p.exists()).and_then(Path::to_str);
    let cwd = std::env::current_dir().map_err(|e| Failure::Usage(anyhow::anyhow!("the current folder: {e}")))?;
    let source = match reference.map(|r| compose_reference(r, &cwd, &data)).transpose() {
        Err(e) => return Err(Failure::Usage(e.into())),
        Ok(Some(Some(text))) => {
            let mut s = SpecSource::new(None, &o).map_err(|e| Failure::Usage(e.into()))?;
            (s.origin, s.text, s.base) = (reference.unwrap_or_default().to_string(), text, cwd);
            s
        }
        Ok(_) => {
            let mut s = SpecSource::new(a.spec.as_deref(), &o).map_err(|e| Failure::Usage(e.into()))?;
            // A job that names a component runs it with the job's keys over it.
            if let Some(file) = a.spec.as_deref()
                && let Some(text) = compose_job(file, &data).map_err(|e| Failure::Usage(e.into()))?
            {
                s.text = text;
            }
            s
        }
    };
    let mut source = source;
    if a.input.is_some() {
        retarget_input(&mut source);
    }
    let spec = source.spec().map_err(|e| Failure::Usage(e.into()))?;
    let index = JobIndex::new(&data_dir(a.data_dir.as_deref()));
    let job_dir = a.job_dir.clone().unwrap_or_else(|| {
        let stamp = humantime_stamp();
        index.default_jobs_dir().join(format!("{}-{stamp}", spec.name))
    });
    let cache_dir = cache_dir(a.cache_dir.as_deref(), a.no_cache);
    run_spec(&spec, source, job_dir, cache_dir, index, a.restart, a.quiet, &a.cluster)
}

/// Runs (or resumes) `spec` in `job_dir` and prints the summary.
#[allow(clippy::too_many_arguments, reason = "the run, resume and replay entry points each pass their own mix")]
pub(crate) fn run_spec(
    spec: &JobSpec,
    source: SpecSource,
    job_dir: PathBuf,
    cache_dir: Option<PathBuf>,
    index: JobIndex,
    restart: bool,
    quiet: bool,
    cluster: &ClusterArgs,
) -> Result<JobResult, Failure> {
    init_tracing(spec);
    if cluster.cluster.is_none() && spec.instance_count > 1 {
        return Err(Failure::Usage(anyhow::anyhow!(
            "`resources.instance_count`: {} nodes need a cluster: run with --cluster nats://HOST:PORT \
             (and `sluice worker` on each node), or use 1",
            spec.instance_count
        )));
    }
    if let (Some(_), Some(o)) = (&cluster.cluster, spec.output_folders.first()) {
        return Err(Failure::Usage(anyhow::anyhow!(
            "`outputs.{}`: a uri_folder output the scorer writes runs on one node in this version; run without \
             --cluster",
            o.name
        )));
    }
    if !(cluster.lease.is_finite() && (1.0..=3600.0).contains(&cluster.lease)) {
        return Err(Failure::Usage(anyhow::anyhow!("--lease {}: expected 1 to 3600 seconds", cluster.lease)));
    }
    let progress = if quiet {
        ProgressMode::Quiet
    } else if std::io::stderr().is_terminal() {
        ProgressMode::Bar
    } else {
        ProgressMode::Lines
    };
    let opts = RunOptions { restart, source: Some(source), cache_dir, ..RunOptions::new(job_dir) };
    let context = || format!("job `{}`", spec.name);
    let prepared = sluice_runtime::prepare_local(spec, &opts)
        .map_err(|e| Failure::Job(anyhow::Error::new(e).context(context())))?;
    let observers = Observers(vec![Arc::new(ProgressObserver::new(progress)), Arc::new(index)]);
    let cancel = CancelToken::default();
    let signals = cancel_on_signals(&cancel);
    let result = match &cluster.cluster {
        None => prepared.run(Backends::default(), &observers, &cancel),
        Some(url) => {
            let key = sluice_runtime::remote::job_key(&spec.name, &opts.job_dir);
            match prepared.ticket(&key) {
                Ok(ticket) => {
                    let dispatch = sluice_cluster::NatsDispatch::new(sluice_cluster::ClusterSettings {
                        url: url.clone(),
                        lease: std::time::Duration::from_secs_f64(cluster.lease),
                        instance_count: spec.instance_count,
                        max_concurrency: spec.max_concurrency as u32,
                    });
                    tracing::info!("running job {key} on the cluster at {url}");
                    if let Err(e) = sluice_runtime::JobDir::open(&opts.job_dir).write_cluster(url) {
                        tracing::warn!("{}: {}", e.path.display(), e.source);
                    }
                    prepared.run_on(&dispatch, ticket, &observers, &cancel)
                }
                Err(e) => Err(e),
            }
        }
    }
    .map_err(|e| Failure::Job(anyhow::Error::new(e).context(context())));
    if let Some(handle) = signals {
        handle.close();
    }
    let result = result?;
    print_summary(&result);
    Ok(result)
}

/// `--data-dir`, `$SLUICE_DATA_DIR` or the user's data folder.
pub(crate) fn data_dir(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| project_dirs().map(|d| d.data_dir().to_path_buf()))
        .unwrap_or_else(|| PathBuf::from(".sluice"))
}

/// `--cache-dir`, `$SLUICE_CACHE_DIR` or the user's cache folder; none
/// with `--no-cache`.
pub(crate) fn cache_dir(flag: Option<&Path>, no_cache: bool) -> Option<PathBuf> {
    if no_cache {
        return None;
    }
    flag.map(Path::to_path_buf).or_else(|| project_dirs().map(|d| d.cache_dir().join("compiled")))
}

/// `20261127-221020-3f2a`: sortable, readable, unique enough per second.
pub(crate) fn humantime_stamp() -> String {
    let now = std::time::SystemTime::now();
    let digits: String =
        humantime::format_rfc3339_seconds(now).to_string().chars().filter(char::is_ascii_digit).collect();
    let nanos = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{}-{}-{:04x}", &digits[..8], &digits[8..14], nanos & 0xffff)
}

/// Tracing for `sluice worker`: INFO from sluice's crates (SLUICE_LOG
/// overrides it), every line tagged with the node.
pub(crate) fn init_worker_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "warn,sluice_runtime=info,sluice_engine=info,sluice_io=info,sluice_cluster=info",
        )
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

pub(crate) fn init_tracing(spec: &JobSpec) {
    use sluice_job::spec::LoggingLevel;
    let level = match spec.logging_level {
        LoggingLevel::Debug => "debug",
        LoggingLevel::Info => "info",
        LoggingLevel::Warning => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "warn,sluice_runtime={level},sluice_engine={level},sluice_io={level},sluice_cluster={level}"
        ))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| sluice_runtime::LogWriter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

pub(crate) fn print_summary(r: &JobResult) {
    let status = match r.status {
        JobStatus::Completed => "completed",
        JobStatus::CompletedWithErrors => "completed with errors",
        JobStatus::Failed => "FAILED",
        JobStatus::Canceled => "CANCELED",
    };
    let m = &r.mini_batches;
    let i = &r.items;
    out!();
    out!("job {}: {status}", r.job);
    if let Some(reason) = &r.reason {
        out!("  reason:        {reason}");
    }
    out!(
        "  mini-batches:  {} total, {} succeeded, {} failed, {} retried, {} not run ({} tries){}",
        m.total,
        m.succeeded,
        m.failed,
        m.retried,
        m.not_run,
        m.tries,
        if m.resumed > 0 { format!("; {} committed by an earlier run", m.resumed) } else { String::new() }
    );
    out!("  items:         {} total, {} succeeded, {} failed, {} not run", i.total, i.succeeded, i.failed, i.not_run);
    let t = &r.timings;
    let rate = (i.succeeded + i.failed) as f64 / t.run_s.max(1e-6);
    out!(
        "  time:          {:.2}s (plan {:.2}s, compile {:.2}s, run {:.2}s; {rate:.0} items/s)",
        t.total_s,
        t.plan_s,
        t.compile_s,
        t.run_s
    );
    if let Some(out) = &r.output {
        out!("  output:        {out} ({} rows)", r.output_rows);
    }
    out!("  job directory: {}", r.job_dir);
    out!("  result:        {}/job_result.json", r.job_dir);
    for e in r.first_errors.iter().take(5) {
        let item = e.item.as_deref().map(|s| format!(" {s}")).unwrap_or_default();
        out!("  error: [{}] mini-batch {}{item}: {}", e.code, e.mini_batch, e.message);
    }
    if r.first_errors.len() > 5 {
        out!("  ... more errors in {}/job_result.json and processed_mini_batches.csv", r.job_dir);
    }
}
