//! Azure ML's input and output ports as Azure writes them, and the keys
//! sluice accepts from Azure's schemas without a meaning here.
//!
//! The key sets follow the azure-ai-ml schemas (`_schema/component/
//! input_output.py` for component ports, `_schema/job/input_output_entry.py`
//! for job inputs and outputs): a job or component file may say either, so
//! an input port here takes the union of the two (`type`, `path`, `mode`,
//! `datastore`, `description`, `optional`, `default`, `value`, `min`, `max`,
//! `enum`) and an output port `type`, `path`, `mode`, `description`, `name`,
//! `version`, `is_control`. Any other key is an unknown key with a
//! did-you-mean hint, as everywhere in the spec.
//!
//! An input is a **literal** (`type: string|integer|number|boolean`, or a
//! bare YAML value) or **data** (`uri_folder`, `uri_file`, `mltable`,
//! `mlflow_model`, `custom_model`). A literal's value is checked against its
//! type, `min`, `max` and `enum` here; what data inputs become (the job's
//! input, mounts, model grants) is decided by the spec's `validate`.

use serde::Deserialize;
use serde_yaml_ng::Value;

use super::{Scalar, did_you_mean, improve_serde_message};

/// Literal input types (Azure's `ComponentParameterTypes`).
pub(super) const LITERAL_TYPES: [&str; 4] = ["string", "integer", "number", "boolean"];

/// Data input types sluice reads.
pub(super) const DATA_TYPES: [&str; 5] = ["uri_folder", "uri_file", "mltable", "mlflow_model", "custom_model"];

/// Output types of Azure's `OutputSchema` and `PrimitiveOutputSchema`.
const OUTPUT_TYPES: [&str; 10] = [
    "uri_file",
    "uri_folder",
    "mltable",
    "custom_model",
    "mlflow_model",
    "triton_model",
    "string",
    "integer",
    "number",
    "boolean",
];

/// Azure's `InputOutputModes`, plus `link` (component ports): every mode is
/// accepted and noted; a local path is read in place either way.
const MODES: [&str; 9] =
    ["ro_mount", "rw_mount", "mount", "download", "upload", "direct", "eval_mount", "eval_download", "link"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    #[serde(rename = "type")]
    kind: Option<String>,
    path: Option<String>,
    mode: Option<String>,
    datastore: Option<String>,
    #[allow(dead_code, reason = "documentation only, as in Azure")]
    description: Option<String>,
    optional: Option<bool>,
    default: Option<Scalar>,
    value: Option<Scalar>,
    min: Option<Scalar>,
    max: Option<Scalar>,
    #[serde(rename = "enum")]
    choices: Option<Vec<Scalar>>,
}

/// A raw output port (`outputs.NAME`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOutput {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub path: Option<String>,
    pub mode: Option<String>,
    #[allow(dead_code, reason = "documentation only, as in Azure")]
    pub description: Option<String>,
    pub name: Option<String>,
    pub version: Option<Scalar>,
    pub is_control: Option<bool>,
}

/// One `inputs.NAME`, parsed.
#[derive(Debug)]
pub(super) enum Port {
    /// A literal: its value as text (`None`: optional, without a value).
    Literal { value: Option<String> },
    /// Data: a path (or none, when the port is optional and has none).
    Data(DataPort),
}

/// A data input port.
#[derive(Debug)]
pub(super) struct DataPort {
    /// One of [`DATA_TYPES`].
    pub kind: String,
    /// `path`, or a data port's `default`.
    pub path: Option<String>,
    /// The key the path came from (`inputs.NAME.path` or `.default`).
    pub path_key: String,
    pub mode: Option<String>,
    pub datastore: Option<String>,
    pub optional: bool,
}

/// An error at a YAML key path.
pub(super) type KeyError = (String, String);

/// Parses `inputs.NAME`: a mapping (a port) or a bare value (a literal).
pub(super) fn parse_input(name: &str, v: &Value) -> Result<Port, KeyError> {
    let key = format!("inputs.{name}");
    let raw: RawPort = match v {
        Value::Mapping(_) => serde_path_to_error::deserialize(v.clone()).map_err(|e| {
            let sub = e.path().to_string();
            let path = if sub == "." { key.clone() } else { format!("{key}.{sub}") };
            (path, improve_serde_message(&e.inner().to_string()))
        })?,
        Value::Null => {
            return Err((
                key,
                "empty: give a data input (`{type: uri_folder, path: ./data}`) or a literal value".into(),
            ));
        }
        Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            let text = scalar_text(v);
            return Ok(Port::Literal { value: Some(text) });
        }
        _ => {
            return Err((key, "expected a mapping (`{type: ..., path: ...}`) or a literal value".into()));
        }
    };
    let kind = match raw.kind.as_deref() {
        Some(k) => k.to_string(),
        // Azure's default for a port with a path is a folder; a port with
        // only a value is a literal of that value's kind.
        None if raw.path.is_some() => "uri_folder".into(),
        None => match raw.value.as_ref().or(raw.default.as_ref()) {
            Some(s) => s.kind.to_string(),
            None => {
                return Err((
                    format!("{key}.type"),
                    "required: a data type (uri_folder, uri_file, mltable, mlflow_model, custom_model) with a \
                     path, or a literal type (string, integer, number, boolean) with a value"
                        .into(),
                ));
            }
        },
    };
    if let Some(m) = &raw.mode
        && !MODES.contains(&m.as_str())
    {
        return Err((format!("{key}.mode"), one_of(m, &MODES)));
    }
    if LITERAL_TYPES.contains(&kind.as_str()) {
        for (k, present) in
            [("path", raw.path.is_some()), ("mode", raw.mode.is_some()), ("datastore", raw.datastore.is_some())]
        {
            if present {
                return Err((
                    format!("{key}.{k}"),
                    format!("a `{kind}` input is a literal: it takes `value` or `default`, not `{k}`"),
                ));
            }
        }
        return literal(&key, &kind, &raw).map(|value| Port::Literal { value });
    }
    if kind == "triton_model" {
        return Err((
            format!("{key}.type"),
            "`triton_model`: sluice runs ONNX models only (an mlflow_model with an onnx flavor, or a custom_model \
             .onnx file)"
                .into(),
        ));
    }
    if !DATA_TYPES.contains(&kind.as_str()) {
        let all: Vec<&str> = DATA_TYPES.iter().chain(LITERAL_TYPES.iter()).copied().collect();
        return Err((format!("{key}.type"), one_of(&kind, &all)));
    }
    for (k, present) in [
        ("value", raw.value.is_some()),
        ("min", raw.min.is_some()),
        ("max", raw.max.is_some()),
        ("enum", raw.choices.is_some()),
    ] {
        if present {
            return Err((
                format!("{key}.{k}"),
                format!("`{k}` applies to literal inputs; a `{kind}` input takes a path"),
            ));
        }
    }
    let (path, path_key) = match (&raw.path, &raw.default) {
        (Some(p), _) => (Some(p.clone()), format!("{key}.path")),
        (None, Some(d)) => (Some(d.text.clone()), format!("{key}.default")),
        (None, None) => (None, format!("{key}.path")),
    };
    Ok(Port::Data(DataPort {
        kind,
        path,
        path_key,
        mode: raw.mode,
        datastore: raw.datastore,
        optional: raw.optional.unwrap_or(false),
    }))
}

/// Checks an output port's type and mode.
pub(super) fn check_output(name: &str, o: &RawOutput) -> Result<(), KeyError> {
    let key = format!("outputs.{name}");
    if let Some(k) = &o.kind
        && !OUTPUT_TYPES.contains(&k.as_str())
    {
        return Err((format!("{key}.type"), one_of(k, &OUTPUT_TYPES)));
    }
    if let Some(m) = &o.mode
        && !MODES.contains(&m.as_str())
    {
        return Err((format!("{key}.mode"), one_of(m, &MODES)));
    }
    Ok(())
}

/// A literal's value, checked: `value` wins over `default`; `None` when the
/// input is optional and has neither.
fn literal(key: &str, kind: &str, raw: &RawPort) -> Result<Option<String>, KeyError> {
    let (value, vkey) = match (&raw.value, &raw.default) {
        (Some(v), _) => (v, format!("{key}.value")),
        (None, Some(d)) => (d, format!("{key}.default")),
        (None, None) if raw.optional == Some(true) => return Ok(None),
        (None, None) => {
            return Err((
                format!("{key}.value"),
                format!(
                    "required: this {kind} input has no value and is not optional; give it one (`value:` or \
                     `default:`, or `--set {key}.value=VALUE`), or mark it `optional: true`"
                ),
            ));
        }
    };
    let text = value.text.trim().to_string();
    let number = |s: &Scalar, at: &str| -> Result<f64, KeyError> {
        match kind {
            "integer" => s
                .text
                .trim()
                .parse::<i64>()
                .map(|n| n as f64)
                .map_err(|_| (at.to_string(), format!("`{}` is not an integer", s.text))),
            _ => match s.text.trim().parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(n),
                _ => Err((at.to_string(), format!("`{}` is not a number", s.text))),
            },
        }
    };
    let text = match kind {
        "integer" | "number" => {
            let n = number(value, &vkey)?;
            let min = raw.min.as_ref().map(|m| number(m, &format!("{key}.min"))).transpose()?;
            let max = raw.max.as_ref().map(|m| number(m, &format!("{key}.max"))).transpose()?;
            if let (Some(lo), Some(hi)) = (min, max)
                && lo > hi
            {
                return Err((format!("{key}.min"), format!("min {lo} is above max {hi}")));
            }
            if let Some(lo) = min
                && n < lo
            {
                return Err((
                    vkey,
                    format!("{text} is below the input's min {}", raw.min.as_ref().map_or("", |m| &m.text)),
                ));
            }
            if let Some(hi) = max
                && n > hi
            {
                return Err((
                    vkey,
                    format!("{text} is above the input's max {}", raw.max.as_ref().map_or("", |m| &m.text)),
                ));
            }
            text
        }
        "boolean" => match text.to_ascii_lowercase().as_str() {
            t @ ("true" | "false") => t.to_string(),
            _ => return Err((vkey, format!("`{text}` is not a boolean: expected true or false"))),
        },
        _ => {
            for k in [("min", &raw.min), ("max", &raw.max)] {
                if k.1.is_some() {
                    return Err((format!("{key}.{}", k.0), format!("`{}` applies to integer and number inputs", k.0)));
                }
            }
            value.text.clone()
        }
    };
    if let Some(choices) = &raw.choices {
        let names: Vec<&str> = choices.iter().map(|c| c.text.as_str()).collect();
        if !names.contains(&text.as_str()) {
            return Err((vkey, format!("`{text}` is not allowed: {}", one_of_list(&text, &names))));
        }
    }
    Ok(Some(text))
}

/// A bare YAML scalar as text.
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

fn one_of(got: &str, known: &[&str]) -> String {
    format!("`{got}`: {}", one_of_list(got, known))
}

fn one_of_list(got: &str, known: &[&str]) -> String {
    match did_you_mean(got, known) {
        Some(k) => format!("did you mean `{k}`? (expected one of {})", known.join(", ")),
        None => format!("expected one of {}", known.join(", ")),
    }
}

/// Notes for keys Azure has and sluice accepts without a meaning here: each
/// reason once, naming every key it applies to, in the order first seen.
#[derive(Debug, Default)]
pub(super) struct Notes(Vec<(String, Vec<String>)>);

impl Notes {
    /// `key` is accepted and ignored, because `reason`.
    pub fn ignored(&mut self, key: impl Into<String>, reason: &str) {
        let key = key.into();
        match self.0.iter_mut().find(|(r, _)| r == reason) {
            Some((_, keys)) => {
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            None => self.0.push((reason.to_string(), vec![key])),
        }
    }

    /// One line per reason: `a, b are ignored: reason`.
    pub fn lines(self) -> Vec<String> {
        self.0
            .into_iter()
            .map(|(reason, keys)| {
                let verb = if keys.len() == 1 { "is" } else { "are" };
                format!("{} {verb} ignored: {reason}", keys.join(", "))
            })
            .collect()
    }
}
