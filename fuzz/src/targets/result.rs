//! The result checker (`BatchOutput::check_accounting`, `Table::validate`)
//! and the output encoders behind it.
//!
//! Input, through [`arbitrary`]: a result as a guest could return it: a
//! table of up to 4 columns of every type (names sometimes empty,
//! duplicated or full of separators and newlines; lengths and validity
//! masks usually right), row-items and item errors that usually account
//! for the items, and an item count.
//!
//! Properties: the checker never panics and accepts only what the
//! contract allows (an independent oracle, [`contract_holds`]); for an
//! accepted result with rows, the CSV, JSON Lines and Parquet encoders
//! never fail or panic, and the output file assembled from the part (by
//! the real `LocalOutput`) reads back to the same values, where the format
//! is lossless: CSV cannot tell a null text cell from an empty one, and
//! JSON has no NaN or infinity (written as null).

use arbitrary::{Result as AResult, Unstructured};
use sluice_io::encode::{Encode, into_table};
use sluice_io::{LocalOutput, OutputStore};
use sluice_job::spec::OutputFormat;
use sluice_job::{BatchOutput, Column, ColumnData, ItemError, Table};

pub fn run(data: &[u8]) -> Result<(), String> {
    if data.first() == Some(&b'{') {
        return match literal(data) {
            Some((out, items)) => check(&out, items),
            None => Ok(()),
        };
    }
    let mut u = Unstructured::new(data);
    let Ok((out, items)) = result(&mut u) else { return Ok(()) };
    check(&out, items)
}

/// A readable form for hand-written corpus files, JSON:
/// `{"items": 2, "num_rows": 2, "row_items": [0, 1], "errors": [[1, "bad"]],
/// "columns": [{"name": "p", "type": "f64", "values": [0.5, null],
/// "valid": [true, false]}]}` (`null` in `values`: NaN for floats).
fn literal(data: &[u8]) -> Option<(BatchOutput, usize)> {
    let j: serde_json::Value = serde_json::from_slice(data).ok()?;
    let us = |v: &serde_json::Value| v.as_u64().map(|x| x as usize);
    let items = us(&j["items"])?;
    let row_items = j["row_items"].as_array()?.iter().map(us).collect::<Option<Vec<_>>>()?;
    let num_rows = us(&j["num_rows"]).unwrap_or(row_items.len());
    let errors = j["errors"]
        .as_array()
        .map(|e| {
            e.iter().filter_map(|x| Some(ItemError { item: us(&x[0])?, message: x[1].as_str()?.to_string() })).collect()
        })
        .unwrap_or_default();
    let mut columns = Vec::new();
    for c in j["columns"].as_array()? {
        let v = c["values"].as_array()?;
        let f = |x: &serde_json::Value| x.as_f64().unwrap_or(f64::NAN);
        let data = match c["type"].as_str()? {
            "f32" => ColumnData::F32(v.iter().map(|x| f(x) as f32).collect()),
            "f64" => ColumnData::F64(v.iter().map(f).collect()),
            "s64" => ColumnData::S64(v.iter().map(|x| x.as_i64().unwrap_or(0)).collect()),
            "bool" => ColumnData::Bool(v.iter().map(|x| x.as_bool().unwrap_or(false)).collect()),
            _ => ColumnData::String(v.iter().map(|x| x.as_str().unwrap_or("").to_string()).collect()),
        };
        let valid = c["valid"].as_array().map(|v| v.iter().map(|x| x.as_bool().unwrap_or(true)).collect());
        columns.push(Column { name: c["name"].as_str()?.to_string(), data, valid });
    }
    Some((BatchOutput { rows: Table { num_rows, columns }, row_items, errors }, items))
}

fn name(u: &mut Unstructured, i: usize) -> AResult<String> {
    let pool = ["x", "", "a,b", "q\"q", "new\nline", " sp ", "é€", "x"];
    Ok(match u.int_in_range(0..=5)? {
        0 => pool[u.choose_index(pool.len())?].to_string(),
        1 => u.arbitrary()?,
        _ => format!("c{i}"),
    })
}

fn column(u: &mut Unstructured, i: usize, rows: usize) -> AResult<Column> {
    let len = if u.ratio(9, 10)? { rows } else { u.int_in_range(0..=rows + 2)? };
    let data =
        match u.int_in_range(0..=4)? {
            0 => ColumnData::F32((0..len).map(|_| u.arbitrary()).collect::<AResult<_>>()?),
            1 => ColumnData::F64(
                (0..len)
                    .map(|_| {
                        Ok(match u.int_in_range(0..=5)? {
                            0 => f64::NAN,
                            1 => f64::INFINITY,
                            2 => -0.0,
                            3 => 1e308,
                            _ => u.arbitrary::<f64>()?,
                        })
                    })
                    .collect::<AResult<_>>()?,
            ),
            2 => ColumnData::S64((0..len).map(|_| u.arbitrary()).collect::<AResult<_>>()?),
            3 => ColumnData::Bool((0..len).map(|_| u.arbitrary()).collect::<AResult<_>>()?),
            _ => {
                let pool = ["", "a", "a,b", "\"", "\n", "\r\n", " x ", "null", "NaN", "1", "é"];
                ColumnData::String(
                    (0..len)
                        .map(|_| {
                            if u.ratio(3, 4)? {
                                Ok(pool[u.choose_index(pool.len())?].to_string())
                            } else {
                                u.arbitrary()
                            }
                        })
                        .collect::<AResult<_>>()?,
                )
            }
        };
    let valid = if u.ratio(1, 3)? {
        let n = if u.ratio(9, 10)? { rows } else { u.int_in_range(0..=rows + 1)? };
        Some((0..n).map(|_| u.arbitrary()).collect::<AResult<_>>()?)
    } else {
        None
    };
    Ok(Column { name: name(u, i)?, data, valid })
}

/// A result and the number of items of its mini-batch.
pub fn result(u: &mut Unstructured) -> AResult<(BatchOutput, usize)> {
    let items = u.int_in_range(0..=6)?;
    // Usually each item has rows or an error; sometimes anything.
    let mut row_items = Vec::new();
    let mut errors = Vec::new();
    for i in 0..items {
        match u.int_in_range(0..=9)? {
            0..=5 => row_items.extend(std::iter::repeat_n(i, u.int_in_range(1..=2)?)),
            6..=8 => errors.push(ItemError { item: i, message: u.arbitrary()? }),
            _ => {}
        }
    }
    if u.ratio(1, 6)? {
        row_items.push(u.int_in_range(0..=items + 1)?);
    }
    if u.ratio(1, 6)? {
        errors.push(ItemError { item: u.int_in_range(0..=items + 1)?, message: String::new() });
    }
    let num_rows = if u.ratio(9, 10)? { row_items.len() } else { u.int_in_range(0..=8)? };
    let ncols = u.int_in_range(0..=4)?;
    let columns = (0..ncols).map(|i| column(u, i, num_rows)).collect::<AResult<_>>()?;
    Ok((BatchOutput { rows: Table { num_rows, columns }, row_items, errors }, items))
}

/// The contract of the WIT `batch-result`, written out independently of
/// the checker: equally long columns (and masks) with unique non-empty
/// names, rows only with at least one column, one row-item per row, each
/// item with rows or exactly one error.
pub fn contract_holds(out: &BatchOutput, items: usize) -> bool {
    let t = &out.rows;
    let mut names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    let unique = names.windows(2).all(|w| w[0] != w[1]) && !names.contains(&"");
    let shaped =
        t.columns.iter().all(|c| c.data.len() == t.num_rows && c.valid.as_ref().is_none_or(|v| v.len() == t.num_rows));
    let per_item = (0..items).all(|i| {
        let rows = out.row_items.iter().filter(|&&r| r == i).count();
        let errs = out.errors.iter().filter(|e| e.item == i).count();
        (rows > 0 && errs == 0) || (rows == 0 && errs == 1)
    });
    let in_range = out.row_items.iter().all(|&r| r < items) && out.errors.iter().all(|e| e.item < items);
    let has_columns = t.num_rows == 0 || !t.columns.is_empty();
    unique && shaped && has_columns && out.row_items.len() == t.num_rows && per_item && in_range
}

pub fn check(out: &BatchOutput, items: usize) -> Result<(), String> {
    let verdict = out.check_accounting(items);
    let oracle = contract_holds(out, items);
    match (&verdict, oracle) {
        (Ok(()), false) => {
            return Err(format!("accepted a result that breaks the contract: {out:?} for {items} items"));
        }
        (Err(e), true) => return Err(format!("refused a valid result ({e}): {out:?} for {items} items")),
        _ => {}
    }
    if verdict.is_err() || out.rows.num_rows == 0 {
        return Ok(());
    }
    for format in [OutputFormat::Csv, OutputFormat::JsonLines, OutputFormat::Parquet] {
        round_trip(&out.rows, format).map_err(|e| format!("{format:?}: {e}"))?;
    }
    Ok(())
}

/// Encodes `t` as a job would (header, one part per mini-batch, two
/// mini-batches here), assembles the file and reads it back.
fn round_trip(t: &Table, format: OutputFormat) -> Result<(), String> {
    let header = format.header(t).map_err(|e| format!("header failed: {e}"))?;
    let part = format.encode(t).map_err(|e| format!("encode failed: {e}"))?;
    if t.columns.is_empty() {
        return Ok(()); // rows without columns: nothing a file can hold
    }
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ext = match format {
        OutputFormat::Csv => "csv",
        OutputFormat::JsonLines => "jsonl",
        OutputFormat::Parquet => "parquet",
    };
    let path = dir.path().join(format!("out.{ext}"));
    let store = LocalOutput::with_format(&path, &dir.path().join("staged"), format).map_err(|e| e.to_string())?;
    store.stage(0, &part).map_err(|e| e.to_string())?;
    store.stage(1, &part).map_err(|e| e.to_string())?;
    store
        .assemble(&sluice_io::PartRef::plain(&[0, 1]), &header)
        .map_err(|e| format!("assembling the output failed: {e}"))?;
    let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
    let schema = sluice_io::encode::to_record_batch(t)?.schema();
    let batches: Vec<arrow_array::RecordBatch> = match format {
        OutputFormat::Csv => arrow_csv::ReaderBuilder::new(schema.clone())
            .with_header(true)
            .build(bytes.as_slice())
            .and_then(|r| r.collect())
            .map_err(|e| format!("reading the CSV back: {e}"))?,
        OutputFormat::JsonLines => arrow_json::ReaderBuilder::new(schema.clone())
            .build(bytes.as_slice())
            .and_then(|r| r.collect())
            .map_err(|e| format!("reading the JSON Lines back: {e}"))?,
        OutputFormat::Parquet => {
            let f = std::fs::File::open(&path).map_err(|e| e.to_string())?;
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                .and_then(|b| b.build())
                .map_err(|e| format!("reading the Parquet back: {e}"))?
                .collect::<Result<_, _>>()
                .map_err(|e| format!("reading the Parquet back: {e}"))?
        }
    };
    if format == OutputFormat::Csv {
        let names = csv::Reader::from_reader(bytes.as_slice()).headers().map_err(|e| e.to_string())?.clone();
        let want: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        if names.iter().collect::<Vec<_>>() != want {
            return Err(format!("the header reads back as {names:?}, not {want:?}"));
        }
    }
    let back = into_table(&schema, batches)?;
    let twice = Table {
        num_rows: t.num_rows * 2,
        columns: t
            .columns
            .iter()
            .map(|c| {
                let mut c2 = c.clone();
                append(&mut c2.data, &c.data);
                c2.valid = c.valid.as_ref().map(|v| [v.as_slice(), v.as_slice()].concat());
                c2
            })
            .collect(),
    };
    same(&twice, &back, format)
}

fn append(a: &mut ColumnData, b: &ColumnData) {
    match (a, b) {
        (ColumnData::F32(a), ColumnData::F32(b)) => a.extend_from_slice(b),
        (ColumnData::F64(a), ColumnData::F64(b)) => a.extend_from_slice(b),
        (ColumnData::S64(a), ColumnData::S64(b)) => a.extend_from_slice(b),
        (ColumnData::Bool(a), ColumnData::Bool(b)) => a.extend_from_slice(b),
        (ColumnData::String(a), ColumnData::String(b)) => a.extend_from_slice(b),
        _ => unreachable!("same column"),
    }
}

/// One cell, normalised for what `format` cannot tell apart.
#[derive(Debug, PartialEq)]
enum Cell {
    Null,
    Value(String),
}

fn cells(c: &Column, format: OutputFormat) -> Vec<Cell> {
    let n = c.data.len();
    (0..n)
        .map(|i| {
            if c.valid.as_ref().is_some_and(|v| !v[i]) {
                return match (&c.data, format) {
                    (ColumnData::String(_), OutputFormat::Csv) => Cell::Value(String::new()),
                    _ => Cell::Null,
                };
            }
            match &c.data {
                ColumnData::F32(v) if !v[i].is_finite() && format == OutputFormat::JsonLines => Cell::Null,
                ColumnData::F64(v) if !v[i].is_finite() && format == OutputFormat::JsonLines => Cell::Null,
                ColumnData::F32(v) => Cell::Value(format!("{:?}", v[i])),
                ColumnData::F64(v) => Cell::Value(format!("{:?}", v[i])),
                ColumnData::S64(v) => Cell::Value(v[i].to_string()),
                ColumnData::Bool(v) => Cell::Value(v[i].to_string()),
                ColumnData::String(v) => Cell::Value(v[i].clone()),
            }
        })
        .collect()
}

fn same(want: &Table, got: &Table, format: OutputFormat) -> Result<(), String> {
    if want.num_rows != got.num_rows || want.columns.len() != got.columns.len() {
        return Err(format!(
            "wrote {} rows x {} columns, read back {} x {}",
            want.num_rows,
            want.columns.len(),
            got.num_rows,
            got.columns.len()
        ));
    }
    for (w, g) in want.columns.iter().zip(&got.columns) {
        let (cw, cg) = (cells(w, format), cells(g, format));
        if w.name != g.name || cw != cg {
            return Err(format!("column `{}` wrote {cw:?}, read back `{}` {cg:?}", w.name, g.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator is not degenerate: random bytes give both results the
    /// checker refuses and results it accepts with rows (which reach the
    /// encoders and the round trip).
    #[test]
    fn random_inputs_reach_both_verdicts_and_the_encoders() {
        let mut rng = crate::Rng(3);
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..1000 {
            let n = rng.below(2048);
            let bytes = rng.bytes(n);
            let Ok((out, items)) = result(&mut Unstructured::new(&bytes)) else { continue };
            match out.check_accounting(items) {
                Ok(()) if out.rows.num_rows > 0 && !out.rows.columns.is_empty() => accepted += 1,
                Ok(()) => {}
                Err(_) => refused += 1,
            }
        }
        assert!(accepted > 100 && refused > 100, "accepted {accepted}, refused {refused}");
    }

    /// A checker that accepted a broken result would be caught by the
    /// oracle (here: an item with both rows and an error).
    #[test]
    fn the_oracle_refuses_what_the_contract_forbids() {
        let out = literal(br#"{"items": 1, "row_items": [0], "errors": [[0, "x"]], "columns": [{"name": "x", "type": "s64", "values": [1]}]}"#).unwrap();
        assert!(!contract_holds(&out.0, out.1));
        let ok = literal(br#"{"items": 2, "row_items": [0], "errors": [[1, "x"]], "columns": [{"name": "x", "type": "s64", "values": [1]}]}"#).unwrap();
        assert!(contract_holds(&ok.0, ok.1));
        assert!(check(&ok.0, ok.1).is_ok());
    }

    /// The round trip compares values: a table read back with a changed
    /// cell is reported.
    #[test]
    fn a_changed_value_fails_the_comparison() {
        let (out, _) =
            literal(br#"{"items": 1, "row_items": [0], "columns": [{"name": "x", "type": "f64", "values": [1.5]}]}"#)
                .unwrap();
        let mut other = out.rows.clone();
        other.columns[0].data = ColumnData::F64(vec![2.5]);
        assert!(same(&out.rows, &other, OutputFormat::Csv).is_err());
        assert!(same(&out.rows, &out.rows, OutputFormat::Csv).is_ok());
    }
}
