//! Shows the native bound for tabular scoring: the work of sluice's tabular-classifier job (CSV in,
//! ONNX classifier, `id,prediction,probability,source_file` out) in plain Rust, one process, no WASM.
//!
//! Usage: `tabular_bound INPUT_DIR MODEL_PATH OUTPUT.csv [--workers 2] [--files-per-batch 10]`
//!
//! The design (the fastest plain program we know for this work, see BENCHMARKS.md):
//! - `*.csv` in INPUT_DIR, sorted by name; `--workers` threads take `--files-per-batch` files at a
//!   time from an atomic counter (the mini-batch sluice would hand one instance), and score them one
//!   file at a time;
//! - ONNX Runtime is found the way sluice finds it (`sluice_onnx::init_runtime(None)`) and the model is
//!   loaded through sluice-onnx's registry with one session per worker (pool size = workers; intra-op
//!   1, inter-op 1, no spinning, graph optimisation All). MODEL_PATH is an `.onnx` file or an MLflow
//!   model folder;
//! - per file: read whole into the worker's reused buffer; arrow-csv, with the schema inferred once
//!   from the first file, decodes it into one record batch sized to the file (its line count); a
//!   `[rows, features]` f32 tensor from every column but `id`; one ONNX Runtime run; probability = the
//!   largest class probability;
//! - the worker formats the file's rows with itoa/ryu into an output buffer taken from a pool of
//!   reused buffers and sends it to one writer thread, which writes files in input order (header
//!   once) and gives the buffer back to the pool.
//!
//! A one-line JSON summary (rows, wall seconds, rows/s) goes to stderr. This is the ceiling the
//! sluice job is compared against in scripts/bench-tabular.sh (see BENCHMARKS.md).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Instant;

use anyhow::{Context, bail};
use arrow_array::{Array, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use sluice_onnx::{Model, ModelGrant, ModelRegistry, RegistryOptions, Tensor, TensorData};

/// Most rows in one record batch (a bigger file is decoded in several, each run separately).
const MAX_BATCH_ROWS: usize = 64 * 1024;
const ID: &str = "id";
const HEADER: &[u8] = b"id,prediction,probability,source_file\n";

struct Args {
    input: PathBuf,
    model: PathBuf,
    output: PathBuf,
    workers: usize,
    files_per_batch: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let usage = "usage: tabular_bound INPUT_DIR MODEL_PATH OUTPUT.csv [--workers N] [--files-per-batch K]";
    let mut positional = Vec::new();
    let mut workers = 2usize;
    let mut files_per_batch = 10usize;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--workers" => workers = it.next().context(usage)?.parse().context("--workers")?,
            "--files-per-batch" => files_per_batch = it.next().context(usage)?.parse().context("--files-per-batch")?,
            "-h" | "--help" => {
                println!("{usage}");
                std::process::exit(0);
            }
            s if s.starts_with("--") => bail!("unknown option {s}\n{usage}"),
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let [input, model, output]: [PathBuf; 3] = positional.try_into().map_err(|_| anyhow::anyhow!(usage))?;
    if workers == 0 || files_per_batch == 0 {
        bail!("--workers and --files-per-batch must be at least 1");
    }
    Ok(Args { input, model, output, workers, files_per_batch })
}

/// What every worker shares.
struct Job {
    schema: SchemaRef,
    /// Indices of the feature columns (every column but `id`) and of `id`.
    features: Vec<usize>,
    id: usize,
    model: Arc<Model>,
    inputs: Vec<String>,
    outputs: [String; 2],
    /// Output buffers the writer has finished with.
    free: Mutex<Vec<Vec<u8>>>,
    /// Set when a worker or the writer fails: everyone stops.
    failed: AtomicBool,
}

/// One scored file, for the writer: its index in input order, its rows and their CSV text.
type Scored = (usize, u64, Vec<u8>);

/// Keeps freed buffers in the process: the per-file buffers (the tensor, Arrow's columns, ORT's
/// outputs) are the same size file after file, and glibc's default of trimming the heap and
/// mapping big blocks afresh costs a page fault per 4 KiB of each (237k faults, 0.8 s of system
/// time per 1M rows without this).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    unsafe extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_THRESHOLD: i32 = -3;
    // SAFETY: mallopt only changes glibc malloc's tunables; called before any thread starts.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 256 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() -> anyhow::Result<()> {
    keep_freed_memory();
    let args = parse_args()?;
    let started = Instant::now();

    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.input)
        .with_context(|| format!("listing {}", args.input.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv") && p.is_file())
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no *.csv files in {}", args.input.display());
    }
    let batches = files.len().div_ceil(args.files_per_batch);

    sluice_onnx::init_runtime(None).context("loading ONNX Runtime")?;
    let model_file = sluice_onnx::resolve_model_file(&args.model)?;
    let registry = ModelRegistry::load(
        &[ModelGrant { name: "model".into(), path: model_file }],
        RegistryOptions { intra_op_threads: 1, pool_size: args.workers, ..RegistryOptions::default() },
    )?;
    let model = registry.get("model")?;
    let input_name = match model.info().inputs.as_slice() {
        [one] => one.name.clone(),
        other => bail!("the model must take one input, it takes {}", other.len()),
    };
    for want in ["label", "probabilities"] {
        if model.info().outputs.iter().all(|o| o.name != want) {
            bail!("the model has no `{want}` output");
        }
    }

    // The schema, inferred once from the first file (as sluice infers one schema per job).
    let first = File::open(&files[0]).with_context(|| format!("opening {}", files[0].display()))?;
    let (schema, _) = arrow_csv::reader::Format::default()
        .with_header(true)
        .infer_schema(std::io::BufReader::new(first), Some(1000))
        .with_context(|| format!("inferring the schema of {}", files[0].display()))?;
    let schema = Arc::new(schema);
    let id = schema.index_of(ID).with_context(|| format!("no `{ID}` column"))?;
    let features: Vec<usize> = (0..schema.fields().len()).filter(|&i| i != id).collect();
    let job = Job {
        schema,
        features,
        id,
        model,
        inputs: vec![input_name],
        outputs: ["label".to_string(), "probabilities".to_string()],
        free: Mutex::new(Vec::new()),
        failed: AtomicBool::new(false),
    };

    let mut out = File::create(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<Scored>();
    let rows = std::thread::scope(|s| -> anyhow::Result<u64> {
        let mut workers = Vec::new();
        for _ in 0..args.workers.min(batches) {
            let tx = tx.clone();
            let (job, next, files) = (&job, &next, &files);
            workers.push(s.spawn(move || -> anyhow::Result<()> {
                let mut buf = Vec::new();
                while !job.failed.load(Ordering::Relaxed) {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    let first = b * args.files_per_batch;
                    if first >= files.len() {
                        break;
                    }
                    for (i, path) in files.iter().enumerate().skip(first).take(args.files_per_batch) {
                        let mut text = job.free.lock().unwrap_or_else(|p| p.into_inner()).pop().unwrap_or_default();
                        text.clear();
                        let scored = score_file(job, path, &mut buf, &mut text);
                        let n = match scored {
                            Ok(n) => n,
                            Err(e) => {
                                job.failed.store(true, Ordering::Relaxed);
                                return Err(e.context(format!("scoring {}", path.display())));
                            }
                        };
                        if tx.send((i, n, text)).is_err() {
                            return Ok(()); // the writer failed; it says why
                        }
                    }
                }
                Ok(())
            }));
        }
        drop(tx);
        // The writer: files in input order; files finished early wait here.
        let writer = s.spawn(|| -> anyhow::Result<u64> {
            let result = (|| {
                out.write_all(HEADER)?;
                let mut pending = BTreeMap::new();
                let (mut written, mut rows) = (0usize, 0u64);
                for (i, n, text) in rx {
                    pending.insert(i, (n, text));
                    while let Some((n, text)) = pending.remove(&written) {
                        out.write_all(&text)?;
                        job.free.lock().unwrap_or_else(|p| p.into_inner()).push(text);
                        rows += n;
                        written += 1;
                    }
                }
                if written != files.len() && !job.failed.load(Ordering::Relaxed) {
                    bail!("only {written} of {} files were written", files.len());
                }
                out.sync_all().ok();
                Ok(rows)
            })();
            if result.is_err() {
                job.failed.store(true, Ordering::Relaxed);
            }
            result
        });
        for w in workers {
            w.join().map_err(|_| anyhow::anyhow!("a worker panicked"))??;
        }
        writer.join().map_err(|_| anyhow::anyhow!("the writer panicked"))?
    })?;

    let wall = started.elapsed().as_secs_f64();
    eprintln!(
        "{{\"bound\":\"tabular_bound\",\"files\":{},\"batches\":{batches},\"workers\":{},\"rows\":{rows},\"wall_s\":{wall:.3},\"rows_per_s\":{:.1}}}",
        files.len(),
        args.workers,
        rows as f64 / wall
    );
    Ok(())
}

/// Scores one file into `text` (its rows as CSV, no header); returns its row count. `buf` is the
/// worker's read buffer, reused from file to file.
fn score_file(job: &Job, path: &Path, buf: &mut Vec<u8>, text: &mut Vec<u8>) -> anyhow::Result<u64> {
    buf.clear();
    File::open(path)?.read_to_end(buf)?;
    let bytes = buf.as_slice();
    // Rows in the file (lines after the header), so that one record batch holds the whole file:
    // arrow-csv allocates `batch_size` rows up front, so it is not set beyond what is there.
    let mut lines = memchr::memchr_iter(b'\n', bytes).count();
    if !bytes.is_empty() && !bytes.ends_with(b"\n") {
        lines += 1;
    }
    let batch_size = lines.saturating_sub(1).clamp(1, MAX_BATCH_ROWS);
    let reader =
        arrow_csv::ReaderBuilder::new(job.schema.clone()).with_header(true).with_batch_size(batch_size).build(bytes)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let name = csv_field(&name);
    let mut rows = 0u64;
    for batch in reader {
        rows += score_batch(job, &batch?, &name, text)?;
    }
    Ok(rows)
}

/// A CSV field: as is, or quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_owned() }
}

/// Scores one record batch and appends its rows to `text`.
fn score_batch(job: &Job, batch: &RecordBatch, name: &str, text: &mut Vec<u8>) -> anyhow::Result<u64> {
    let n = batch.num_rows();
    let k = job.features.len();
    let mut x = vec![0f32; n * k];
    for (j, &c) in job.features.iter().enumerate() {
        let col = batch.column(c);
        if col.null_count() > 0 {
            bail!("column `{}` has empty values", job.schema.field(c).name());
        }
        match col.data_type() {
            DataType::Float64 => {
                let a = col.as_any().downcast_ref::<Float64Array>().context("f64 column")?;
                for (row, v) in x.chunks_exact_mut(k).zip(a.values()) {
                    row[j] = *v as f32;
                }
            }
            DataType::Int64 => {
                let a = col.as_any().downcast_ref::<Int64Array>().context("i64 column")?;
                for (row, v) in x.chunks_exact_mut(k).zip(a.values()) {
                    row[j] = *v as f32;
                }
            }
            other => bail!("column `{}` is {other}, not a number", job.schema.field(c).name()),
        }
    }
    let ids = batch.column(job.id);
    if ids.null_count() > 0 {
        bail!("column `{ID}` has empty values");
    }
    let ids = ids.as_any().downcast_ref::<Int64Array>().context("the `id` column must hold integers")?;

    let input = Tensor::new(vec![n, k], TensorData::F32(x));
    let outputs = job.model.run(vec![(job.inputs[0].clone(), input)], &job.outputs, None)?;
    let mut label = None;
    let mut proba = None;
    for (name, t) in outputs {
        match (name.as_str(), t.data) {
            ("label", TensorData::I64(v)) => label = Some(v),
            ("probabilities", TensorData::F32(v)) => proba = Some((t.shape, v)),
            (other, data) => bail!("output `{other}` has unexpected type {}", data.element_type()),
        }
    }
    let label = label.context("no label output")?;
    let (shape, proba) = proba.context("no probabilities output")?;
    let classes = shape.get(1).copied().unwrap_or(1).max(1);
    if label.len() != n || proba.len() != n * classes {
        bail!("the model returned {} labels and {} probabilities for {n} rows", label.len(), proba.len());
    }

    text.reserve(n * (name.len() + 32));
    let mut int = itoa::Buffer::new();
    let mut float = ryu::Buffer::new();
    for ((id, label), p) in ids.values().iter().zip(&label).zip(proba.chunks_exact(classes)) {
        let best = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        text.extend_from_slice(int.format(*id).as_bytes());
        text.push(b',');
        text.extend_from_slice(int.format(*label).as_bytes());
        text.push(b',');
        text.extend_from_slice(float.format(best).as_bytes());
        text.push(b',');
        text.extend_from_slice(name.as_bytes());
        text.push(b'\n');
    }
    Ok(n as u64)
}
