//! Shows every typed error of the `onnx` interface: each input file names a probe (its stem); the row says which error code the host returned (`ok` when the run succeeded) and its message. The model is the one granted as `model` (a classifier taking `input` f32 [N,30]) unless the probe says otherwise. With `task.config.into_result`, a tabular mini-batch instead probes `run-into-result` and gives tabular-classifier's columns, all added by the host.

use sluice_sdk::onnx::host_batch::{self, ResultSource};
use sluice_sdk::onnx::{Model, OnnxError, OutputSelect, Tensor, TensorData};
use sluice_sdk::{BatchResult, Config, Error, MiniBatch, ResultBuilder, Scorer, Table, export_scorer, info};

struct Probe {
    /// `task.config.into_result`: probe `run-into-result` on tabular rows.
    into_result: bool,
}

/// `run-into-result`'s refusals, logged, then tabular-classifier's output
/// (id, prediction, probability, source_file) with every column added by
/// the host and an empty `row-items` (one row per item, in order).
fn into_result(n: u32) -> Result<BatchResult, Error> {
    let m = Model::load("model")?;
    let say = |what: &str, r: Result<u32, OnnxError>| match r {
        Ok(rows) => info!("into-result {what}: ok {rows}"),
        Err(e) => info!("into-result {what}: {}: {}", code(&e), e.message),
    };
    // tabular-classifier's default features: every column but the id.
    let features: Vec<String> = host_batch::columns().into_iter().map(|(c, _)| c).filter(|c| c != "id").collect();
    let req = || m.request().columns("input", &features, None);
    say("fetch", req().fetch("label").to_column("label", "prediction", OutputSelect::Whole).run_into_result());
    say("no columns", req().run_into_result());
    host_batch::add_result_column("id", &ResultSource::Column("id".into()), None)?;
    // A failed run adds nothing: the columns below are the only ones.
    say("unknown output", req().to_column("nope", "prediction", OutputSelect::Whole).run_into_result());
    say("taken name", req().to_column("label", "id", OutputSelect::Whole).run_into_result());
    say(
        "scored",
        req()
            .to_column("label", "prediction", OutputSelect::Whole)
            .to_column("probabilities", "probability", OutputSelect::Max)
            .run_into_result(),
    );
    host_batch::add_result_column("source_file", &ResultSource::SourceFile, None)?;
    Ok(BatchResult { rows: Table { num_rows: n, columns: Vec::new() }, row_items: Vec::new(), errors: Vec::new() })
}

fn code(e: &OnnxError) -> &'static str {
    e.code.as_str()
}

fn zeros(rows: usize) -> Tensor {
    Tensor::f32(&[rows, 30], vec![0.0; rows * 30])
}

fn probe(name: &str) -> Result<String, OnnxError> {
    if name == "unknown-model" {
        Model::load("no-such-model")?;
        return Ok("loaded".into());
    }
    if name == "runtime-failure" {
        // Valid for every check before the run; ONNX Runtime cannot make
        // pairs of 3 values.
        let m = Model::load("pairs")?;
        m.request().tensor("x", Tensor::f32(&[1, 3], vec![1.0, 2.0, 3.0])).run()?;
        return Ok("ran".into());
    }
    if name == "slow" {
        let m = Model::load("slow")?;
        // On the spin fixture: 20s or more uncut on one thread, 10x and more the deadlines that cut it.
        let r = m.request().tensor("x", Tensor::f32(&[4096, 1024], vec![1.0; 4096 * 1024])).fetch("y").run()?;
        return Ok(format!("{} values", r.tensors[0].tensor.f32s().map_or(0, <[f32]>::len)));
    }
    let m = Model::load("model")?;
    let req = m.request();
    let r = match name {
        "ok" => req.tensor("input", zeros(2)).run()?,
        "columns-ok" => req
            .columns("input", &(0..30).map(|i| format!("f{i}")).collect::<Vec<_>>(), None)
            .to_column("label", "prediction", OutputSelect::Whole)
            .to_column("probabilities", "probability", OutputSelect::Max)
            .run()?,
        "unknown-input" => req.tensor("nope", zeros(1)).run()?,
        "unknown-output" => req.tensor("input", zeros(1)).fetch("nope").run()?,
        "type-mismatch" => {
            req.tensor("input", Tensor { shape: vec![1, 30], data: TensorData::F64(vec![0.0; 30]) }).run()?
        }
        "shape-mismatch" => req.tensor("input", Tensor::f32(&[2, 3], vec![0.0; 6])).run()?,
        "count-mismatch" => req.tensor("input", Tensor::f32(&[1, 30], vec![0.0; 29])).run()?,
        "too-large" => req.tensor("input", zeros(20_000)).run()?,
        "column-source-in-file-mode" => req.columns("input", &["a".to_string()], None).run()?,
        "bad-select" => req.tensor("input", zeros(1)).to_column("probabilities", "p", OutputSelect::Index(7)).run()?,
        other => return Ok(format!("unknown probe {other}")),
    };
    let shapes: Vec<String> = r.tensors.iter().map(|t| format!("{}{:?}", t.name, t.tensor.shape)).collect();
    let cols: Vec<String> = r.columns.iter().map(|c| c.name.clone()).collect();
    Ok(format!("tensors {} columns {}", shapes.join(" "), cols.join(" ")))
}

impl Scorer for Probe {
    fn init(config: Config) -> Result<Self, Error> {
        let into_result = config.get("into_result").is_some();
        if into_result {
            host_batch::deliver_columns(&[]);
            host_batch::deliver_row_origins(false);
            let m = Model::load("model")?;
            let r =
                m.request().columns("input", &["f0".to_string()], None).to_column("label", "p", OutputSelect::Whole);
            match r.run_into_result() {
                Ok(rows) => info!("into-result in init: ok {rows}"),
                Err(e) => info!("into-result in init: {}: {}", code(&e), e.message),
            }
        }
        Ok(Probe { into_result })
    }

    fn run(&mut self, batch: MiniBatch) -> Result<BatchResult, Error> {
        let mut out = ResultBuilder::new();
        if let Some(rows) = batch.rows() {
            // Tabular: column sources, on every row of the mini-batch; with a
            // `mean` model granted, columns x0..x2 through it (a model that is
            // not row-wise: one value per column), reporting what came back.
            let n = rows.rows.num_rows as usize;
            if self.into_result {
                if !rows.row_source.is_empty() || !rows.row_number.is_empty() || !rows.rows.columns.is_empty() {
                    return Err(Error::msg("columns or row origins were delivered after deliver_* said not to"));
                }
                return into_result(n as u32);
            }
            if let Ok(mean) = Model::load("mean") {
                let cols = ["x0", "x1", "x2"].map(String::from);
                let (c, m) =
                    match mean.request().columns("x", &cols, None).to_column("y", "y", OutputSelect::Whole).run() {
                        Ok(r) => match &r.columns[0].data {
                            sluice_sdk::ColumnData::F32(v) => ("ok", format!("{} values: {v:?}", v.len())),
                            _ => ("ok", "not f32".to_string()),
                        },
                        Err(e) => (code(&e), e.message),
                    };
                for i in 0..n {
                    out.row(i).string("probe", "columns-mean").string("code", c).string("message", &m);
                }
                return Ok(out.finish());
            }
            let (c, m) = match probe("columns-ok") {
                Ok(m) => ("ok", m),
                Err(e) => (code(&e), e.message),
            };
            for i in 0..n {
                out.row(i).string("probe", "columns-ok").string("code", c).string("message", &m);
            }
            return Ok(out.finish());
        }
        for (i, file) in batch.files().iter().enumerate() {
            let stem = file.name.split('.').next().unwrap_or("");
            let (c, m) = match probe(stem) {
                Ok(m) => ("ok", m),
                Err(e) => (code(&e), e.message),
            };
            out.row(i).string("probe", stem).string("code", c).string("message", &m);
        }
        Ok(out.finish())
    }
}

export_scorer!(Probe);

fn main() {}
