//! Shows what a hostile tabular scorer can try against the host's own imports (`onnx`, `batch`, `log`), one attack per job (`task.config.attack`); each must end as a typed error or a failed mini-batch with a reason, never a host panic or a host allocation beyond its limits.

use sluice_sdk::bindings::sluice::scorer::onnx as raw;
use sluice_sdk::onnx::{Model, OnnxError, OutputSelect, host_batch};
use sluice_sdk::{BatchResult, Config, Error, MiniBatch, ResultBuilder, Scorer, export_scorer};

struct Attack {
    attack: String,
}

fn code(e: &OnnxError) -> &'static str {
    e.code.as_str()
}

/// The model's 30 features: the mini-batch's columns but `id`.
fn features(batch: &MiniBatch) -> Vec<String> {
    batch
        .rows()
        .map(|t| t.rows.columns.iter().map(|c| c.name.clone()).filter(|n| n != "id").take(30).collect())
        .unwrap_or_default()
}

/// Runs one attack; `Ok` is what the host answered, as (code, message).
fn attack(name: &str, batch: &MiniBatch) -> Result<(String, String), Error> {
    let rows = batch.len();
    let answer = |r: Result<String, OnnxError>| match r {
        Ok(m) => Ok(("ok".to_string(), m)),
        Err(e) => Ok((code(&e).to_string(), e.message)),
    };
    let m = Model::load("model").map_err(|e| Error::msg(e.message))?;
    let f = features(batch);
    match name {
        // A scorer that filtered every row out: zero rows, 30 columns.
        "zero-rows" => answer(
            m.request()
                .columns("input", &f, Some(&[]))
                .fetch("label")
                .run()
                .map(|r| format!("{} tensors", r.tensors.len())),
        ),
        // 8 inputs of the same name, each 240 MB stacked (row 0, two
        // million times, from one 8 MB list).
        "dup-inputs" => {
            let picked = vec![0u32; 2_000_000];
            let mut req = m.request();
            for _ in 0..8 {
                req = req.columns("input", &f, Some(&picked));
            }
            answer(req.run().map(|_| "ran".into()))
        }
        // 8 inputs the model does not have, as large.
        "unknown-inputs" => {
            let picked = vec![0u32; 2_000_000];
            let mut req = m.request();
            for i in 0..8 {
                req = req.columns(&format!("x{i}"), &f, Some(&picked));
            }
            answer(req.run().map(|_| "ran".into()))
        }
        // Row 0, 3 million times: 360 MB stacked from a 12 MB list.
        "big-rows" => {
            let picked = vec![0u32; 3_000_000];
            answer(m.request().columns("input", &f, Some(&picked)).run().map(|_| "ran".into()))
        }
        // 200 columns of one output over 200,000 rows: 320 MB of columns.
        "to-columns-flood" => {
            let picked = vec![0u32; 200_000];
            let mut req = m.request().columns("input", &f, Some(&picked));
            for c in 0..200 {
                req = req.to_column("label", &format!("c{c}"), OutputSelect::Whole);
            }
            answer(req.run().map(|r| format!("{} columns", r.columns.len())))
        }
        // One column name a million times.
        "null-flood" => {
            let names = vec![f[0].clone(); 1_000_000];
            answer(host_batch::null_rows(&names).map(|n| format!("{} null rows", n.len())))
        }
        // Models until the host's handle table is full.
        "handles" => {
            let mut held = Vec::new();
            for _ in 0..20_000 {
                match Model::load("model") {
                    Ok(h) => held.push(h),
                    Err(e) => {
                        return Ok((code(&e).to_string(), format!("after {} handles: {}", held.len(), e.message)));
                    }
                }
            }
            Ok(("ok".into(), format!("held {}", held.len())))
        }
        // A handle the host never gave out.
        "forge" => {
            // SAFETY: deliberately unsound: the host must refuse it.
            let forged = unsafe { raw::Model::from_handle(12345) };
            let info = forged.info();
            Ok(("ok".into(), info.name))
        }
        other => Ok(("none".into(), format!("unknown attack {other} over {rows} rows"))),
    }
}

impl Scorer for Attack {
    fn init(config: Config) -> Result<Self, Error> {
        Ok(Attack { attack: config.get("attack").unwrap_or("none").to_string() })
    }

    fn run(&mut self, batch: MiniBatch) -> Result<BatchResult, Error> {
        let n = batch.len();
        let (c, m) = attack(&self.attack, &batch)?;
        let mut out = ResultBuilder::new();
        for i in 0..n {
            out.row(i).string("code", &c).string("message", &m);
        }
        Ok(out.finish())
    }
}

export_scorer!(Attack);

fn main() {}
