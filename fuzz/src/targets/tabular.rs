//! The tabular planner and readers (`plan_tabular`, `read_mini_batch` and
//! its conversion into the host's table) over arbitrary file bytes.
//!
//! Input, through [`arbitrary`]: one to three files, each `.csv`, `.jsonl`
//! or `.parquet` (sometimes another extension), whose bytes are either
//! arbitrary or a generated table (quoted fields, embedded newlines, blank
//! lines, nulls, ragged rows; Parquet written by the real writer) with
//! arbitrary corruption; a mini-batch size (rows, bytes or files),
//! sometimes partition keys, and sometimes a tiny `max_file_mb`-style cap.
//!
//! Properties: nothing panics; every planned row is either read or an item
//! error, exactly once, and when planning counted a mini-batch's rows the
//! reader accounts for exactly that many; no row is planned into two
//! mini-batches; the rows handed on have one provenance entry each and
//! form a table of the job's columns whose columns all have its rows.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arbitrary::{Result as AResult, Unstructured};
use sluice_io::tabular::read_mini_batch;
use sluice_job::plan::RowSpan;
use sluice_job::size::MiniBatchSize;
use sluice_job::spec::{InputKind, InputSpec};

pub fn run(data: &[u8]) -> Result<(), String> {
    let case = match literal(data) {
        Some(c) => c,
        None => match Case::arbitrary(&mut Unstructured::new(data)) {
            Ok(c) => c,
            Err(_) => return Ok(()),
        },
    };
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    for (name, bytes) in &case.files {
        std::fs::write(dir.path().join(name), bytes).map_err(|e| format!("write: {e}"))?;
    }
    check(dir.path(), &case)
}

/// One generated job input.
#[derive(Debug)]
pub struct Case {
    pub files: Vec<(String, Vec<u8>)>,
    pub size: MiniBatchSize,
    pub keys: Vec<String>,
    pub max_file_bytes: u64,
}

/// A readable form for hand-written corpus files:
///
/// ```text
/// #tabular 2 rows            (any mini_batch_size; then optional keys)
/// #keys a
/// #file a.csv
/// a,b
/// 1,x
/// #file b.jsonl
/// {"a": 2, "b": "y"}
/// ```
fn literal(data: &[u8]) -> Option<Case> {
    let text = std::str::from_utf8(data).ok()?;
    let rest = text.strip_prefix("#tabular ")?;
    let (size, mut body) = rest.split_once('\n')?;
    let size: MiniBatchSize = size.trim().parse().ok()?;
    let mut keys = Vec::new();
    if let Some(r) = body.strip_prefix("#keys ") {
        let (k, b) = r.split_once('\n')?;
        keys = k.split(',').map(|s| s.trim().to_string()).collect();
        body = b;
    }
    let mut files = Vec::new();
    for (i, chunk) in body.split("#file ").skip(1).enumerate() {
        let (name, content) = chunk.split_once('\n').unwrap_or((chunk, ""));
        // A plain file name in the temp folder, unique, whatever a mutation did.
        let name: String = name.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '.').take(32).collect();
        files.push((format!("{i}-{name}"), content.as_bytes().to_vec()));
    }
    Some(Case { files, size, keys, max_file_bytes: 64 << 20 })
}

const COLUMNS: [&str; 4] = ["a", "b", "c", "a b"];

impl Case {
    fn arbitrary(u: &mut Unstructured) -> AResult<Case> {
        let n = u.int_in_range(1..=3)?;
        let mut files = Vec::new();
        for i in 0..n {
            let ext = ["csv", "jsonl", "parquet", "csv", "jsonl", "txt"][u.choose_index(6)?];
            let bytes = match u.int_in_range(0..=3)? {
                0 => u.arbitrary::<Vec<u8>>()?,
                _ => {
                    let mut b = generated(u, ext)?;
                    corrupt(u, &mut b)?;
                    b
                }
            };
            files.push((format!("f{i}.{ext}"), bytes));
        }
        let size = match u.int_in_range(0..=3)? {
            0 => MiniBatchSize::Rows(u.int_in_range(0..=5)?),
            1 => MiniBatchSize::Bytes(u.int_in_range(0..=200)?),
            2 => MiniBatchSize::Files(u.int_in_range(0..=2)?),
            _ => MiniBatchSize::Count(u.int_in_range(1..=3)?),
        };
        let keys = if u.ratio(1, 5)? {
            vec![if u.ratio(4, 5)? { COLUMNS[u.choose_index(COLUMNS.len())?].to_string() } else { u.arbitrary()? }]
        } else {
            Vec::new()
        };
        let max_file_bytes = if u.ratio(1, 8)? { u.int_in_range(0..=64)? } else { 64 << 20 };
        Ok(Case { files, size, keys, max_file_bytes })
    }
}

/// A cell of text that stresses CSV and JSON: quotes, separators,
/// newlines, blanks, numbers that overflow.
fn cell(u: &mut Unstructured) -> AResult<String> {
    let pool = [
        "",
        "1",
        "-2",
        "3.5",
        "1e309",
        "NaN",
        "true",
        "x",
        "\"q\"",
        "a,b",
        "line\nbreak",
        " ",
        "\r",
        "99999999999999999999",
        "2024-01-01",
        "null",
    ];
    Ok(if u.ratio(4, 5)? { pool[u.choose_index(pool.len())?].to_string() } else { u.arbitrary::<String>()? })
}

/// A table in the file's format, usually well formed.
fn generated(u: &mut Unstructured, ext: &str) -> AResult<Vec<u8>> {
    let ncols = u.int_in_range(1..=3)?;
    let cols: Vec<&str> = COLUMNS[..ncols].to_vec();
    let nrows = u.int_in_range(0..=12)?;
    let mut rows = Vec::new();
    for _ in 0..nrows {
        let mut r = Vec::new();
        for _ in 0..ncols {
            r.push(cell(u)?);
        }
        if u.ratio(1, 10)? {
            r.pop();
        }
        rows.push(r);
    }
    Ok(match ext {
        "parquet" => parquet(u, &cols, &rows)?,
        "jsonl" => {
            let mut s = String::new();
            for r in &rows {
                let obj: serde_json::Map<String, serde_json::Value> = cols
                    .iter()
                    .zip(r)
                    .map(|(c, v)| {
                        let j = serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.clone()));
                        (c.to_string(), j)
                    })
                    .collect();
                s.push_str(&serde_json::Value::Object(obj).to_string());
                s.push('\n');
                if u.ratio(1, 10)? {
                    s.push('\n');
                }
            }
            s.into_bytes()
        }
        _ => {
            let mut w = csv::WriterBuilder::new().flexible(true).from_writer(Vec::new());
            let _ = w.write_record(&cols);
            for r in &rows {
                let _ = w.write_record(r);
            }
            w.into_inner().unwrap_or_default()
        }
    })
}

/// A Parquet file from the real writer: each column typed from its cells
/// (all numbers: f64; else text), with nulls for empty cells.
fn parquet(u: &mut Unstructured, cols: &[&str], rows: &[Vec<String>]) -> AResult<Vec<u8>> {
    use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray};
    let mut arrays: Vec<(String, ArrayRef)> = Vec::new();
    for (j, c) in cols.iter().enumerate() {
        let cells: Vec<Option<&str>> =
            rows.iter().map(|r| r.get(j).map(String::as_str).filter(|s| !s.is_empty())).collect();
        let nums: Option<Vec<Option<f64>>> = cells
            .iter()
            .map(|c| match c {
                None => Some(None),
                Some(s) => s.parse().ok().map(Some),
            })
            .collect();
        let a: ArrayRef = match nums {
            Some(n) if u.ratio(1, 2)? => Arc::new(Float64Array::from(n)),
            _ => Arc::new(StringArray::from(cells.clone())),
        };
        arrays.push((c.to_string(), a));
    }
    let Ok(batch) = RecordBatch::try_from_iter(arrays) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    let Ok(mut w) = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None) else { return Ok(out) };
    let _ = w.write(&batch);
    let _ = w.close();
    Ok(out)
}

/// Flips, cuts or duplicates bytes, sometimes.
fn corrupt(u: &mut Unstructured, b: &mut Vec<u8>) -> AResult<()> {
    if b.is_empty() || u.ratio(1, 2)? {
        return Ok(());
    }
    for _ in 0..u.int_in_range(1..=3)? {
        let i = u.choose_index(b.len())?;
        match u.int_in_range(0..=3)? {
            0 => b[i] = u.arbitrary()?,
            1 => b.truncate(i.max(1)),
            2 => {
                let tail = b[i..].to_vec();
                b.extend(tail);
            }
            _ => b.insert(i, [b'"', b'\n', b',', 0xff][u.choose_index(4)?]),
        }
    }
    Ok(())
}

/// Plans `dir` as the job would and reads every mini-batch, checking the
/// accounting (see the module doc).
pub fn check(dir: &std::path::Path, case: &Case) -> Result<(), String> {
    let spec =
        InputSpec { name: "data".into(), kind: InputKind::UriFolder, path: dir.to_path_buf().into(), tabular: true };
    let items = sluice_io::list_input(&spec).map_err(|e| format!("listing: {e}"))?;
    let Ok((plan, input)) = sluice_io::plan_tabular(
        std::sync::Arc::new(sluice_io::LocalSource),
        items,
        case.size,
        &case.keys,
        case.max_file_bytes,
    ) else {
        return Ok(()); // a refused input (no readable table, unknown key) is an answer
    };
    check_plan(&plan, &input)
}

/// Reads every mini-batch of `plan` and checks the accounting.
pub fn check_plan(plan: &sluice_job::Plan, input: &sluice_io::TabularInput) -> Result<(), String> {
    let mut planned_anywhere: BTreeSet<(usize, u64)> = BTreeSet::new();
    for mb in &plan.mini_batches {
        let rows = read_mini_batch(plan, &mb.segments, input);
        // The rows handed on (a file whose rows do not convert into the
        // host's form is among the failed rows, not in the table).
        let got = rows.table.num_rows;
        let o = &rows.origins;
        if o.source.len() != got || o.row.len() != got {
            return Err(format!(
                "mini-batch {}: {got} rows read but {} sources and {} row numbers",
                mb.index,
                o.source.len(),
                o.row.len()
            ));
        }
        if let Some(&s) = o.source.iter().find(|&&s| s as usize >= o.sources.len()) {
            return Err(format!("mini-batch {}: row source {s} of {} sources", mb.index, o.sources.len()));
        }
        // Every row read or failed, per file name, exactly once.
        let mut seen: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for (&s, &n) in o.source.iter().zip(&o.row) {
            seen.entry(o.sources[s as usize].as_str()).or_default().push(n);
        }
        let mut whole_file_failures = 0u64;
        for f in &rows.failed {
            match &f.rows {
                Some(r) => seen.entry(f.source.as_str()).or_default().extend(r),
                None => whole_file_failures += 1,
            }
        }
        let accounted: u64 = seen.values().map(|v| v.len() as u64).sum();
        for seg in &mb.segments {
            let name = plan.items[seg.file].name.as_str();
            let want: Vec<u64> = match &seg.rows {
                RowSpan::All => continue,
                RowSpan::Range { start, end, .. } => (*start..*end).collect(),
                RowSpan::Rows(r) => r.clone(),
            };
            for &r in &want {
                if !planned_anywhere.insert((seg.file, r)) {
                    return Err(format!("{name} row {r} is planned into two mini-batches"));
                }
            }
            let mut have = seen.get(name).cloned().unwrap_or_default();
            have.sort_unstable();
            let mut want = want;
            want.sort_unstable();
            if have != want {
                return Err(format!(
                    "mini-batch {}: {name}: planned rows {:?} but read or failed {:?} (failed: {:?})",
                    mb.index, want, have, rows.failed
                ));
            }
        }
        for seg in mb.segments.iter().filter(|s| s.rows == RowSpan::All) {
            let name = plan.items[seg.file].name.as_str();
            if let Some(have) = seen.get(name) {
                let mut h = have.clone();
                h.sort_unstable();
                if h != (0..h.len() as u64).collect::<Vec<_>>() {
                    return Err(format!(
                        "mini-batch {}: whole file {name} gave rows {h:?}, not 0..n once each",
                        mb.index
                    ));
                }
            }
        }
        if let Some(n) = mb.rows
            && accounted + whole_file_failures != n
        {
            return Err(format!(
                "mini-batch {} was planned with {n} rows but {got} were read and {} failed ({whole_file_failures} whole files)",
                mb.index,
                accounted - got as u64
            ));
        }
        let table = &rows.table;
        if table.columns.len() != input.schema.fields().len() {
            return Err(format!(
                "read_mini_batch gave {} rows x {} columns for {got} rows of {} columns",
                table.num_rows,
                table.columns.len(),
                input.schema.fields().len()
            ));
        }
        // Lengths only: `Table::validate` also wants unique names, which
        // output tables need but input tables do not have (a CSV header may
        // repeat a name; the guest then sees two columns of that name).
        for c in &table.columns {
            if c.data.len() != table.num_rows || c.valid.as_ref().is_some_and(|v| v.len() != table.num_rows) {
                return Err(format!(
                    "read_mini_batch gave column `{}` of {} values for {} rows",
                    c.name,
                    c.data.len(),
                    table.num_rows
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator is not degenerate: a fair share of random inputs plan
    /// into mini-batches with rows to read.
    #[test]
    fn random_inputs_often_plan_rows() {
        let mut rng = crate::Rng(5);
        let mut planned = 0;
        for _ in 0..300 {
            let n = rng.below(4096);
            let bytes = rng.bytes(n);
            let Ok(case) = Case::arbitrary(&mut Unstructured::new(&bytes)) else { continue };
            let dir = tempfile::tempdir().unwrap();
            for (name, b) in &case.files {
                std::fs::write(dir.path().join(name), b).unwrap();
            }
            let spec =
                InputSpec { name: "d".into(), kind: InputKind::UriFolder, path: dir.path().into(), tabular: true };
            let items = sluice_io::list_input(&spec).unwrap();
            if let Ok((plan, _)) = sluice_io::plan_tabular(
                std::sync::Arc::new(sluice_io::LocalSource),
                items,
                case.size,
                &case.keys,
                case.max_file_bytes,
            ) && plan.mini_batches.iter().any(|m| m.rows.unwrap_or(0) > 0)
            {
                planned += 1;
            }
        }
        assert!(planned > 60, "{planned} of 300 planned rows");
    }

    /// The accounting check is real: a plan claiming more rows than its
    /// mini-batch accounts for is reported.
    #[test]
    fn a_row_count_that_disagrees_is_reported() {
        let case = literal(b"#tabular 1 rows\n#file a.csv\na\n1\n2\n").unwrap();
        let dir = tempfile::tempdir().unwrap();
        for (name, b) in &case.files {
            std::fs::write(dir.path().join(name), b).unwrap();
        }
        let spec = InputSpec { name: "d".into(), kind: InputKind::UriFolder, path: dir.path().into(), tabular: true };
        let items = sluice_io::list_input(&spec).unwrap();
        let (mut plan, input) =
            sluice_io::plan_tabular(std::sync::Arc::new(sluice_io::LocalSource), items, case.size, &[], 1 << 20)
                .unwrap();
        assert_eq!(plan.mini_batches.len(), 2);
        assert!(check_plan(&plan, &input).is_ok());
        plan.mini_batches[0].rows = Some(2);
        let e = check_plan(&plan, &input).unwrap_err();
        assert!(e.contains("planned with 2 rows"), "{e}");
    }
}
