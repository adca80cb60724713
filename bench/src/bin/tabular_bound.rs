//! Shows the native bound for tabular scoring: the work of sluice's tabular-classifier job (CSV in,
//! ONNX classifier, `id,prediction,probability,source_file` out) in plain Rust, one process, no WASM.
//!
//! Usage: `tabular_bound INPUT_DIR MODEL_PATH OUTPUT.csv [--workers 2] [--files-per-batch 10]`
//!
//! - `*.csv` in INPUT_DIR, sorted by name, cut into batches of `--files-per-batch` files;
//! - `--workers` threads pull batches from an atomic counter; ONNX Runtime is found the way sluice
//!   finds it (`sluice_onnx::init_runtime(None)`) and the model is loaded through sluice-onnx's
//!   registry with one session per worker (pool size = workers; intra-op 1, inter-op 1, no spinning,
//!   graph optimisation All). MODEL_PATH is an `.onnx` file or an MLflow model folder;
//! - per file: read whole into the worker's reused buffer, then arrow-csv with the schema inferred once
//!   from the first file, one record batch per file
//!   (batch size = the file's rows, at most 65,536), a `[rows, features]` f32 tensor from every column
//!   but `id`, one run; probability = the largest class probability;
//! - each batch's rows are CSV-encoded by arrow-csv in the worker and written by the main thread in
//!   input (batch) order, header once.
//!
//! A one-line JSON summary (rows, wall seconds, rows/s) goes to stderr. This is the ceiling the
//! sluice job is compared against in scripts/bench-tabular.sh (see BENCHMARKS.md).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, bail};
use arrow_array::{Array, ArrayRef, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use sluice_onnx::{Model, ModelGrant, ModelRegistry, RegistryOptions, Tensor, TensorData};

const MAX_BATCH_ROWS: usize = 64 * 1024;
const ID: &str = "id";

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
    input_name: String,
    out_schema: SchemaRef,
}

fn main() -> anyhow::Result<()> {
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
    let batches: Vec<&[PathBuf]> = files.chunks(args.files_per_batch).collect();

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
    let out_schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("prediction", DataType::Int64, false),
        Field::new("probability", DataType::Float32, false),
        Field::new("source_file", DataType::Utf8, false),
    ]));
    let job = Job { schema, features, id, model, input_name, out_schema: out_schema.clone() };

    let out = File::create(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, out);
    {
        let mut header = arrow_csv::WriterBuilder::new().with_header(true).build(&mut out);
        header.write(&RecordBatch::new_empty(out_schema))?;
    }

    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::channel::<(usize, anyhow::Result<(u64, Vec<u8>)>)>();
    let mut rows = 0u64;
    std::thread::scope(|s| -> anyhow::Result<()> {
        for _ in 0..args.workers.min(batches.len()) {
            let tx = tx.clone();
            let (job, next, batches) = (&job, &next, &batches);
            s.spawn(move || {
                let mut buf = Vec::new();
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= batches.len() {
                        break;
                    }
                    let result = score_batch(job, batches[b], &mut buf);
                    let failed = result.is_err();
                    if tx.send((b, result)).is_err() || failed {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Write in batch order; batches finished early wait here.
        let mut pending = BTreeMap::new();
        let mut written = 0usize;
        for (b, result) in rx {
            pending.insert(b, result?);
            while let Some((n, bytes)) = pending.remove(&written) {
                out.write_all(&bytes)?;
                rows += n;
                written += 1;
            }
        }
        if written != batches.len() {
            bail!("only {written} of {} batches were written", batches.len());
        }
        Ok(())
    })?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all().ok();

    let wall = started.elapsed().as_secs_f64();
    eprintln!(
        "{{\"bound\":\"tabular_bound\",\"files\":{},\"batches\":{},\"workers\":{},\"rows\":{rows},\"wall_s\":{wall:.3},\"rows_per_s\":{:.1}}}",
        files.len(),
        batches.len(),
        args.workers,
        rows as f64 / wall
    );
    Ok(())
}

/// Scores one batch of files; returns its row count and its rows as CSV (no header).
fn score_batch(job: &Job, files: &[PathBuf], buf: &mut Vec<u8>) -> anyhow::Result<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rows = 0u64;
    let mut writer = arrow_csv::WriterBuilder::new().with_header(false).build(&mut out);
    for path in files {
        for batch in score_file(job, path, buf).with_context(|| format!("scoring {}", path.display()))? {
            rows += batch.num_rows() as u64;
            writer.write(&batch)?;
        }
    }
    drop(writer);
    Ok((rows, out))
}

/// `buf` is the worker's read buffer, reused from file to file.
fn score_file(job: &Job, path: &Path, buf: &mut Vec<u8>) -> anyhow::Result<Vec<RecordBatch>> {
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
    let mut scored = Vec::new();
    for batch in reader {
        scored.push(score_record_batch(job, &batch?, &name)?);
    }
    Ok(scored)
}

fn score_record_batch(job: &Job, batch: &RecordBatch, name: &str) -> anyhow::Result<RecordBatch> {
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
                for (i, v) in a.values().iter().enumerate() {
                    x[i * k + j] = *v as f32;
                }
            }
            DataType::Int64 => {
                let a = col.as_any().downcast_ref::<Int64Array>().context("i64 column")?;
                for (i, v) in a.values().iter().enumerate() {
                    x[i * k + j] = *v as f32;
                }
            }
            other => bail!("column `{}` is {other}, not a number", job.schema.field(c).name()),
        }
    }
    let input = Tensor::new(vec![n, k], TensorData::F32(x));
    let outputs = job.model.run(
        vec![(job.input_name.clone(), input)],
        &["label".to_string(), "probabilities".to_string()],
        None,
    )?;
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
    let best: Float32Array =
        proba.chunks_exact(classes).map(|row| row.iter().copied().fold(f32::NEG_INFINITY, f32::max)).collect();
    let columns: Vec<ArrayRef> = vec![
        batch.column(job.id).clone(),
        Arc::new(Int64Array::from(label)),
        Arc::new(best),
        Arc::new(StringArray::from(vec![name; n])),
    ];
    Ok(RecordBatch::try_new(job.out_schema.clone(), columns)?)
}
