//! Shows that planning and reading tabular input do not need memory in proportion to the input:
//! the data maker and the planning probe behind `scripts/bench-large-input.sh`.
//!
//! Usage:
//! - `large_input csv INPUT_DIR OUT.csv --copies K`: one CSV file holding every row of the `*.csv`
//!   files in INPUT_DIR (sorted by name), K times over, under one header; the first column (`id`) is
//!   renumbered 0, 1, 2, ... so ids stay unique. Streams: memory is one line.
//! - `large_input parquet IN.csv OUT.parquet [--row-group-rows N]`: the same rows as one Parquet
//!   file (types inferred from the first 1,000 rows, row groups of N rows, default 131,072),
//!   streamed through arrow-csv in batches of 8,192 rows.
//! - `large_input narrow-parquet OUT.parquet --rows N [--row-group-rows M]`: a Parquet file of N rows
//!   of one small integer column (dictionary-encoded, so 100M rows take a few MB on disk): the input
//!   for "planning memory does not grow with rows".
//! - `large_input plan PATH --mini-batch-size SIZE`: lists PATH (a file or folder) as `mltable`
//!   input and plans it the way `sluice run` does (`sluice_io::plan_tabular`, default limits), then
//!   prints one JSON line: mini-batches, rows planned, seconds, and the process's peak RSS (VmHWM).
//!
//! Nothing here is timed by the test suite; see BENCHMARKS.md ("Inputs larger than memory").

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use arrow_array::{Int32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else { bail!("usage: large_input csv|parquet|narrow-parquet|plan ... (see the doc)") };
    let rest = &args[1..];
    match cmd.as_str() {
        "csv" => {
            let [input, out] = positional::<2>(rest)?;
            let copies: u64 = flag(rest, "--copies")?.unwrap_or(1);
            concat_csv(Path::new(&input), Path::new(&out), copies)
        }
        "parquet" => {
            let [input, out] = positional::<2>(rest)?;
            let group: usize = flag(rest, "--row-group-rows")?.unwrap_or(131_072);
            csv_to_parquet(Path::new(&input), Path::new(&out), group)
        }
        "narrow-parquet" => {
            let [out] = positional::<1>(rest)?;
            let rows: u64 = flag(rest, "--rows")?.context("--rows N is required")?;
            let group: usize = flag(rest, "--row-group-rows")?.unwrap_or(1 << 20);
            narrow_parquet(Path::new(&out), rows, group)
        }
        "plan" => {
            let [path] = positional::<1>(rest)?;
            let size: String = flag(rest, "--mini-batch-size")?.context("--mini-batch-size SIZE is required")?;
            plan(PathBuf::from(path), &size)
        }
        other => bail!("unknown command `{other}`: csv, parquet, narrow-parquet or plan"),
    }
}

/// The first `N` arguments that are not flags or flag values.
fn positional<const N: usize>(args: &[String]) -> anyhow::Result<[String; N]> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        if args[i].starts_with("--") {
            i += 2;
            continue;
        }
        out.push(args[i].clone());
        i += 1;
    }
    let n = out.len();
    out.try_into().map_err(|_| anyhow::anyhow!("expected {N} positional arguments, got {n}"))
}

fn flag<T: std::str::FromStr>(args: &[String], name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => {
            let v = args.get(i + 1).with_context(|| format!("{name} needs a value"))?;
            v.parse().map(Some).map_err(|e| anyhow::anyhow!("{name} {v}: {e}"))
        }
    }
}

fn csv_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{}: no .csv files", dir.display());
    }
    Ok(files)
}

fn concat_csv(dir: &Path, out: &Path, copies: u64) -> anyhow::Result<()> {
    let files = csv_files(dir)?;
    let mut w = BufWriter::with_capacity(1 << 20, File::create(out).with_context(|| format!("{}", out.display()))?);
    let mut header_written = false;
    let mut id = 0u64;
    let mut line = String::new();
    let mut ids = itoa::Buffer::new();
    for _ in 0..copies {
        for f in &files {
            let mut r = BufReader::with_capacity(1 << 20, File::open(f).with_context(|| format!("{}", f.display()))?);
            line.clear();
            r.read_line(&mut line)?;
            if !header_written {
                w.write_all(line.as_bytes())?;
                header_written = true;
            }
            loop {
                line.clear();
                if r.read_line(&mut line)? == 0 {
                    break;
                }
                let rest = line.split_once(',').map_or("\n", |(_, rest)| rest);
                w.write_all(ids.format(id).as_bytes())?;
                w.write_all(b",")?;
                w.write_all(rest.as_bytes())?;
                id += 1;
            }
        }
    }
    w.flush()?;
    eprintln!("{{\"rows\":{id},\"file\":\"{}\"}}", out.display());
    Ok(())
}

fn csv_to_parquet(input: &Path, out: &Path, group: usize) -> anyhow::Result<()> {
    let f = File::open(input).with_context(|| format!("{}", input.display()))?;
    let (schema, _) = arrow_csv::reader::Format::default()
        .with_header(true)
        .infer_schema(BufReader::new(f), Some(1000))
        .context("inferring the CSV's columns")?;
    let schema = Arc::new(schema);
    let reader = arrow_csv::ReaderBuilder::new(schema.clone())
        .with_header(true)
        .with_batch_size(8192)
        .build(BufReader::with_capacity(1 << 20, File::open(input)?))?;
    let props = parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(group)).build();
    let mut w = parquet::arrow::ArrowWriter::try_new(File::create(out)?, schema, Some(props))?;
    let mut rows = 0usize;
    for batch in reader {
        let batch = batch?;
        rows += batch.num_rows();
        w.write(&batch)?;
    }
    w.close()?;
    eprintln!("{{\"rows\":{rows},\"file\":\"{}\"}}", out.display());
    Ok(())
}

fn narrow_parquet(out: &Path, rows: u64, group: usize) -> anyhow::Result<()> {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
    let props = parquet::file::properties::WriterProperties::builder().set_max_row_group_row_count(Some(group)).build();
    let mut w = parquet::arrow::ArrowWriter::try_new(File::create(out)?, schema.clone(), Some(props))?;
    let chunk = 1u64 << 16;
    let mut done = 0u64;
    while done < rows {
        let n = chunk.min(rows - done);
        let col = Int32Array::from_iter_values((done..done + n).map(|i| (i % 7) as i32));
        w.write(&RecordBatch::try_new(schema.clone(), vec![Arc::new(col)])?)?;
        done += n;
    }
    w.close()?;
    eprintln!("{{\"rows\":{rows},\"file\":\"{}\"}}", out.display());
    Ok(())
}

fn plan(path: PathBuf, size: &str) -> anyhow::Result<()> {
    let kind =
        if path.is_dir() { sluice_job::spec::InputKind::UriFolder } else { sluice_job::spec::InputKind::UriFile };
    let spec = sluice_job::spec::InputSpec { name: "data".into(), kind, path: path.clone().into(), tabular: true };
    let size: sluice_job::size::MiniBatchSize = size.parse().map_err(|e| anyhow::anyhow!("--mini-batch-size: {e}"))?;
    let limits = sluice_job::spec::Limits::default();
    let start = Instant::now();
    let items = sluice_io::list_input(&spec)?;
    let (plan, _) =
        sluice_io::plan_tabular(std::sync::Arc::new(sluice_io::LocalSource), items, size, &[], limits.max_file_bytes)?;
    let secs = start.elapsed().as_secs_f64();
    let rows: u64 = plan.mini_batches.iter().filter_map(|b| b.rows).sum();
    println!(
        "{{\"path\":\"{}\",\"mini_batches\":{},\"rows\":{rows},\"seconds\":{secs:.3},\"peak_rss_kib\":{}}}",
        path.display(),
        plan.mini_batches.len(),
        peak_rss_kib()
    );
    Ok(())
}

/// The process's peak resident set (VmHWM), KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}
