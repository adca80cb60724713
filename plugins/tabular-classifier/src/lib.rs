//! Shows native ONNX scoring of tabular input: feature columns go from the host's copy of the mini-batch straight into a granted classifier, and its outputs come back as `prediction` and `probability` columns; rows it cannot score become item errors.
//!
//! `task.config` keys (all optional):
//! - `model`: the granted model's name (default: the only one granted);
//! - `features`: comma-separated feature columns, in the model's order
//!   (default: the model's inputs when it takes one input per feature,
//!   else every numeric column except the id column, in input order);
//! - `id_column` (default `id`);
//! - `label_output`, `probability_output`: the model outputs to use
//!   (default: `label` and `probabilities`, else the first integer and the
//!   first float output).

use sluice_sdk::onnx::{ElementType, Model, OutputSelect, host_batch};
use sluice_sdk::{BatchResult, Config, Error, ItemError, MiniBatch, Scorer, export_scorer, info};

struct Classifier {
    model: Model,
    /// Feature columns from config, or found on the first mini-batch.
    features: Option<Vec<String>>,
    id_column: String,
    label: String,
    probability: String,
}

impl Scorer for Classifier {
    fn init(config: Config) -> Result<Self, Error> {
        let name = match config.get("model") {
            Some(m) => m.to_string(),
            None => match Model::granted().as_slice() {
                [one] => one.clone(),
                [] => return Err(Error::msg("no model granted: add an mlflow_model or custom_model input")),
                many => {
                    return Err(Error::msg(format!(
                        "several models granted ({}): set task.config.model",
                        many.join(", ")
                    )));
                }
            },
        };
        let model = Model::load(&name)?;
        let info = model.info();
        let pick =
            |key: &str, default: &str, want: fn(&ElementType) -> bool| -> Result<String, Error> {
                if let Some(v) = config.get(key) {
                    return Ok(v.to_string());
                }
                if info.output(default).is_some() {
                    return Ok(default.to_string());
                }
                info.outputs.iter().find(|o| want(&o.element_type)).map(|o| o.name.clone()).ok_or_else(|| {
                    Error::msg(format!("model `{name}` has no `{default}` output: set task.config.{key}"))
                })
            };
        let label = pick("label_output", "label", |t| matches!(t, ElementType::S64 | ElementType::S32))?;
        let probability =
            pick("probability_output", "probabilities", |t| matches!(t, ElementType::F32 | ElementType::F64))?;
        let features = config
            .get("features")
            .map(|f| f.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect::<Vec<_>>());
        let id_column = config.get("id_column").unwrap_or("id").to_string();
        // Only the id crosses into the guest; features stay in the host.
        host_batch::deliver_columns(std::slice::from_ref(&id_column));
        info!("tabular-classifier: model {name}, outputs {label} and {probability}");
        Ok(Classifier { model, features, id_column, label, probability })
    }

    fn run(&mut self, batch: MiniBatch) -> Result<BatchResult, Error> {
        let rows = batch.rows().ok_or_else(|| Error::msg("tabular-classifier needs tabular input (type: mltable)"))?;
        let n = rows.rows.num_rows as usize;
        let all_fail = |message: String| {
            let errors = (0..n as u32).map(|item| ItemError { item, message: message.clone() }).collect();
            BatchResult::from_columns(Vec::new(), Vec::new(), errors)
        };
        let features = match self.features(&host_batch::columns()) {
            Ok(f) => f,
            Err(why) => return Ok(all_fail(why)),
        };
        let id = rows
            .rows
            .column(&self.id_column)
            .ok_or_else(|| Error::msg(format!("no `{}` column (set task.config.id_column)", self.id_column)))?;

        // Rows with a null feature or id cannot be scored: item errors.
        let mut check = features.clone();
        check.push(self.id_column.clone());
        let bad = host_batch::null_rows(&check)?;
        let mut errors = Vec::new();
        let mut good = Vec::with_capacity(n);
        if bad.is_empty() {
            good.extend(0..n as u32);
        } else {
            // Rare: find which columns are empty in which rows.
            let mut empty: Vec<Vec<&str>> = vec![Vec::new(); n];
            for c in &check {
                for r in host_batch::null_rows(std::slice::from_ref(c))? {
                    empty[r as usize].push(c);
                }
            }
            for (r, cols) in empty.iter().enumerate() {
                if cols.is_empty() {
                    good.push(r as u32);
                } else {
                    let message = format!("empty value in {}: this row cannot be scored", cols.join(", "));
                    errors.push(ItemError { item: r as u32, message });
                }
            }
        }
        if good.is_empty() {
            return Ok(BatchResult::from_columns(Vec::new(), Vec::new(), errors));
        }

        let selection = if good.len() == n { None } else { Some(good.as_slice()) };
        let mut request = self.model.request();
        let info = self.model.info();
        if info.inputs.len() == 1 {
            request = request.columns(&info.inputs[0].name, &features, selection);
        } else {
            for f in &features {
                request = request.columns(f, std::slice::from_ref(f), selection);
            }
        }
        let result = request
            .to_column(&self.label, "prediction", OutputSelect::Whole)
            .to_column(&self.probability, "probability", OutputSelect::Max)
            .run();
        let scored = match result {
            Ok(r) => r,
            Err(e) => {
                let message = format!("the model could not score this row: {e}");
                errors.extend(good.iter().map(|&item| ItemError { item, message: message.clone() }));
                errors.sort_by_key(|e| e.item);
                return Ok(BatchResult::from_columns(Vec::new(), Vec::new(), errors));
            }
        };
        let mut columns = Vec::with_capacity(4);
        columns.push(id.take(&good));
        columns.extend(scored.columns);
        columns.push(rows.source_column("source_file", &good));
        Ok(BatchResult::from_columns(good, columns, errors))
    }
}

impl Classifier {
    /// The feature columns, checked against the mini-batch's columns.
    fn features(&mut self, columns: &[(String, String)]) -> Result<Vec<String>, String> {
        let info = self.model.info();
        let features = match &self.features {
            Some(f) => f.clone(),
            None if info.inputs.len() > 1 => info.inputs.iter().map(|i| i.name.clone()).collect(),
            None => columns
                .iter()
                .filter(|(name, ty)| *name != self.id_column && matches!(ty.as_str(), "f32" | "f64" | "s64" | "bool"))
                .map(|(name, _)| name.clone())
                .collect(),
        };
        let missing: Vec<&str> =
            features.iter().filter(|f| !columns.iter().any(|(c, _)| c == *f)).map(String::as_str).collect();
        if !missing.is_empty() {
            return Err(format!("missing feature columns: {}", missing.join(", ")));
        }
        if info.inputs.len() == 1
            && let Some(k) = info.inputs[0].width()
            && k != features.len()
        {
            return Err(format!(
                "the model's input `{}` takes {k} features but {} feature columns were found ({}); set task.config.features",
                info.inputs[0].name,
                features.len(),
                features.join(", ")
            ));
        }
        if self.features.is_none() {
            info!("tabular-classifier: {} feature columns: {}", features.len(), features.join(", "));
            self.features = Some(features.clone());
        }
        Ok(features)
    }
}

export_scorer!(Classifier);
