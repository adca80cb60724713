//! Azure ML pipeline jobs (`type: pipeline`): steps under `jobs:`, each a
//! job of its own in the pipeline's folder, run in dependency order.
//!
//! A step is a `type: parallel` job, written inline or naming a component
//! (`component: ./score.yml`, `azureml:NAME:VERSION`, `NAME@VERSION`; see
//! [`crate::components`]), with the step's keys over it. Its ports bind the
//! pipeline's with `${{parent.inputs.X}}` (the pipeline input's path or
//! value) and `${{parent.outputs.Z}}` (the pipeline output's path), and
//! another step's with `${{parent.jobs.S.outputs.Y}}` (S's output `Y`,
//! which makes S run first). An output without a path of its own is a
//! folder (or, for `uri_file`, a `.csv` file) under the pipeline's
//! `steps/STEP/outputs/`. Every binding is resolved here, into each step's
//! spec text, before any step runs: a step's job directory keeps that text
//! (`spec.json`), so a resume needs nothing but the pipeline folder.
//! `type: command` steps and other types are refused, naming the type.
//! What the pipeline may hold is bounded ([`MAX_STEPS`]); a cycle of
//! bindings is an error naming its steps.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use crate::components::{self, ComponentError};

/// The most steps a pipeline may have.
pub const MAX_STEPS: usize = 256;

/// Why a pipeline cannot run.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {}{message}", if key.is_empty() { String::new() } else { format!("`{key}`: ") })]
pub struct PipelineError {
    /// The pipeline file.
    pub file: PathBuf,
    /// The YAML path of the key at fault (`jobs.score.inputs.data`).
    pub key: String,
    /// What is wrong, and the fix where there is one.
    pub message: String,
}

/// One step, ready to run: its spec text and where its job goes.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PlannedStep {
    /// Its name under `jobs:`.
    pub name: String,
    /// The steps whose outputs it reads.
    pub after: Vec<String>,
    /// Its job spec, every binding resolved (paths absolute).
    pub text: String,
    /// `PIPELINE_DIR/steps/NAME/job`.
    pub job_dir: PathBuf,
}

/// A pipeline planned: its steps in an order that runs every step after
/// the ones it reads from (`pipeline.json` in its folder).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Planned {
    /// `name`, or the file's stem.
    pub name: String,
    /// The pipeline file.
    pub file: PathBuf,
    /// Its steps, each after the ones it reads from.
    pub steps: Vec<PlannedStep>,
}

/// Whether the YAML text is a pipeline job (`type: pipeline`).
pub fn is_pipeline(text: &str) -> bool {
    sluice_job::spec::check_spec_shape(text).is_ok()
        && serde_yaml_ng::from_str::<Value>(text)
            .ok()
            .is_some_and(|v| v.get("type").and_then(Value::as_str) == Some("pipeline"))
}

/// The keys of a pipeline job here (azure-ai-ml's `PipelineJobSchema`);
/// the ones without a meaning on one machine are accepted.
const PIPELINE_KEYS: &[&str] = &[
    "$schema",
    "type",
    "name",
    "display_name",
    "description",
    "experiment_name",
    "tags",
    "properties",
    "settings",
    "inputs",
    "outputs",
    "jobs",
    "compute",
    "identity",
    "services",
    "status",
];

/// Plans the pipeline in `file` for the folder `dir`.
pub fn plan(file: &Path, dir: &Path, data_dir: &Path) -> Result<Planned, PipelineError> {
    let fail = |key: &str, message: String| PipelineError { file: file.to_path_buf(), key: key.to_string(), message };
    let text = std::fs::read_to_string(file).map_err(|e| fail("", format!("cannot read it: {e}")))?;
    sluice_job::spec::check_spec_shape(&text).map_err(|m| fail("", m))?;
    let doc: Value = serde_yaml_ng::from_str(&text).map_err(|e| fail("", format!("not valid YAML: {e}")))?;
    let Value::Mapping(top) = &doc else { return Err(fail("", "expected a mapping of pipeline keys".into())) };
    for k in top.keys() {
        let k = k.as_str().unwrap_or("");
        if !PIPELINE_KEYS.contains(&k) {
            return Err(fail(k, format!("unknown key `{k}`{}", hint(k, PIPELINE_KEYS))));
        }
    }
    let base = file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    let name = top
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| file.file_stem().map_or("pipeline".into(), |s| s.to_string_lossy().into_owned()));

    // The pipeline's own ports: a data input's path made absolute, a
    // literal's value as written; an output's path.
    let parent_inputs = ports(top.get("inputs"), &base, "inputs").map_err(|(k, m)| fail(&k, m))?;
    let parent_outputs = ports(top.get("outputs"), &base, "outputs").map_err(|(k, m)| fail(&k, m))?;

    let Some(Value::Mapping(jobs)) = top.get("jobs") else {
        return Err(fail("jobs", "required: the pipeline's steps, by name".into()));
    };
    if jobs.len() > MAX_STEPS {
        return Err(fail("jobs", format!("{} steps; a pipeline has at most {MAX_STEPS}", jobs.len())));
    }
    let names: Vec<String> = jobs.keys().map(|k| k.as_str().unwrap_or("").to_string()).collect();
    let mut steps: BTreeMap<String, (Value, BTreeSet<String>)> = BTreeMap::new();
    for (k, step) in jobs {
        let step_name = k.as_str().unwrap_or("").to_string();
        let key = format!("jobs.{step_name}");
        if step_name.is_empty()
            || !step_name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            || step_name.len() > 255
        {
            return Err(fail(&key, "a step name is letters, digits, `_` or `-` (it names its folder)".into()));
        }
        let Value::Mapping(m) = step else { return Err(fail(&key, "expected the step's keys".into())) };
        match m.get("type").and_then(Value::as_str) {
            Some("parallel") => {}
            Some("command") => {
                return Err(fail(
                    &format!("{key}.type"),
                    "`command` steps (a WASI command component) are not run by this version; a pipeline's steps \
                     are `type: parallel` jobs"
                        .into(),
                ));
            }
            Some(other) => {
                return Err(fail(&format!("{key}.type"), format!("`{other}` steps cannot run here; use `parallel`")));
            }
            None => return Err(fail(&format!("{key}.type"), "required: `parallel`".into())),
        }
        // The step's job: its component under its own keys, or itself.
        let mut job = Value::Mapping(m.clone());
        if let Value::Mapping(j) = &mut job {
            for k in ["compute", "identity", "services"] {
                j.remove(k);
            }
        }
        let composed = if m.contains_key("component") {
            let text = components::compose_value(job, file, &base, data_dir).map_err(|e| comp(file, &key, e))?;
            serde_yaml_ng::from_str(&text).map_err(|e| fail(&key, format!("cannot read the composed step: {e}")))?
        } else {
            job
        };
        let mut after = BTreeSet::new();
        let resolved = bind(composed, &step_name, dir, &parent_inputs, &parent_outputs, &names, &mut after)
            .map_err(|(k, m)| fail(&format!("{key}.{k}"), m))?;
        steps.insert(step_name, (resolved, after));
    }
    // Outputs of one step read by another: their paths are the producer's.
    let outputs_of: BTreeMap<String, BTreeMap<String, String>> = steps
        .iter()
        .map(|(n, (v, _))| {
            let outs = v
                .get("outputs")
                .and_then(Value::as_mapping)
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, p)| Some((k.as_str()?.to_string(), p.get("path")?.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            (n.clone(), outs)
        })
        .collect();
    let order = topo(&steps).map_err(|cycle| {
        fail("jobs", format!("the steps read each other's outputs in a cycle: {}", cycle.join(" -> ")))
    })?;
    let mut planned = Vec::with_capacity(order.len());
    for n in order {
        let (mut v, after) = steps.remove(&n).expect("ordered from these steps");
        link(&mut v, &outputs_of).map_err(|(k, m)| fail(&format!("jobs.{n}.{k}"), m))?;
        if let Value::Mapping(m) = &mut v {
            // A pipeline step names no component any more, and is parallel.
            m.remove("component");
        }
        let text = serde_yaml_ng::to_string(&v).map_err(|e| fail(&format!("jobs.{n}"), e.to_string()))?;
        planned.push(PlannedStep {
            job_dir: dir.join("steps").join(&n).join("job"),
            name: n,
            after: after.into_iter().collect(),
            text,
        });
    }
    Ok(Planned { name, file: std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf()), steps: planned })
}

fn comp(file: &Path, key: &str, e: ComponentError) -> PipelineError {
    PipelineError { file: file.to_path_buf(), key: format!("{key}.component"), message: e.to_string() }
}

fn hint(k: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|c| (strsim::jaro_winkler(k, c), c))
        .filter(|(s, _)| *s > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map_or_else(String::new, |(_, c)| format!(": did you mean `{c}`?"))
}

/// What `${{parent.inputs.X}}` / `${{parent.outputs.X}}` stand for.
#[derive(Debug, Clone)]
enum Parent {
    /// A data port: its absolute path (and type, when given).
    Path(String, Option<String>),
    /// A literal: its value as written.
    Value(Value),
}

fn ports(v: Option<&Value>, base: &Path, what: &str) -> Result<BTreeMap<String, Parent>, (String, String)> {
    let mut out = BTreeMap::new();
    let Some(v) = v else { return Ok(out) };
    let Value::Mapping(m) = v else { return Err((what.into(), "expected a mapping of ports".into())) };
    for (k, port) in m {
        let name = k.as_str().unwrap_or("").to_string();
        let p = match port {
            Value::Mapping(pm) => {
                let kind = pm.get("type").and_then(Value::as_str).map(str::to_string);
                let literal = matches!(kind.as_deref(), Some("string" | "integer" | "number" | "boolean"));
                match (pm.get("path").and_then(Value::as_str), literal) {
                    (Some(p), false) => Parent::Path(absolute(p, base), kind),
                    _ => Parent::Value(pm.get("value").or_else(|| pm.get("default")).cloned().unwrap_or(Value::Null)),
                }
            }
            other => Parent::Value(other.clone()),
        };
        out.insert(name, p);
    }
    Ok(out)
}

fn absolute(p: &str, base: &Path) -> String {
    if p.contains("://") || Path::new(p).is_absolute() { p.to_string() } else { base.join(p).display().to_string() }
}

/// `${{ EXPR }}` when `s` is exactly one binding: its inside, trimmed.
fn binding(s: &str) -> Option<&str> {
    s.trim().strip_prefix("${{")?.strip_suffix("}}").map(str::trim)
}

/// A step's ports with the parent's bindings resolved and its outputs
/// given paths; `${{parent.jobs.S.outputs.Y}}` is left for [`link`], S
/// noted in `after`.
fn bind(
    mut v: Value,
    step: &str,
    dir: &Path,
    inputs: &BTreeMap<String, Parent>,
    outputs: &BTreeMap<String, Parent>,
    steps: &[String],
    after: &mut BTreeSet<String>,
) -> Result<Value, (String, String)> {
    let Value::Mapping(m) = &mut v else { return Ok(v) };
    m.remove("type");
    m.insert(Value::String("type".into()), Value::String("parallel".into()));
    if let Some(Value::Mapping(ins)) = m.get_mut("inputs") {
        for (k, port) in ins.iter_mut() {
            let name = k.as_str().unwrap_or("").to_string();
            let key = format!("inputs.{name}");
            let (field, text) = match port {
                Value::String(s) => (None, s.clone()),
                Value::Mapping(pm) => match ["path", "value", "default"]
                    .into_iter()
                    .find_map(|f| pm.get(f).and_then(Value::as_str).filter(|s| binding(s).is_some()).map(|s| (f, s)))
                {
                    Some((f, s)) => (Some(f), s.to_string()),
                    None => continue,
                },
                _ => continue,
            };
            let Some(expr) = binding(&text) else { continue };
            if let Some(x) = expr.strip_prefix("parent.inputs.") {
                let p = inputs.get(x).ok_or_else(|| {
                    (key.clone(), format!("`{text}`: the pipeline has no input `{x}`{}", hint(x, &keys(inputs))))
                })?;
                set_port(port, field, p);
            } else if let Some(rest) = expr.strip_prefix("parent.jobs.") {
                let (s, _) = rest.split_once(".outputs.").ok_or_else(|| {
                    (key.clone(), format!("`{text}`: expected `${{{{parent.jobs.STEP.outputs.NAME}}}}`"))
                })?;
                if !steps.iter().any(|n| n == s) {
                    let known: Vec<&str> = steps.iter().map(String::as_str).collect();
                    return Err((key, format!("`{text}`: the pipeline has no step `{s}`{}", hint(s, &known))));
                }
                if s == step {
                    return Err((key, format!("`{text}`: a step cannot read its own output")));
                }
                after.insert(s.to_string());
            } else {
                return Err((
                    key,
                    format!("`{text}`: a step's input binds `parent.inputs.X` or `parent.jobs.S.outputs.Y`"),
                ));
            }
        }
    }
    if let Some(Value::Mapping(outs)) = m.get_mut("outputs") {
        for (k, port) in outs.iter_mut() {
            let name = k.as_str().unwrap_or("").to_string();
            let key = format!("outputs.{name}");
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                return Err((key, "an output name is letters, digits, `_` or `-`".into()));
            }
            let bound = match port {
                Value::String(s) => Some(s.clone()),
                Value::Mapping(pm) => {
                    pm.get("path").and_then(Value::as_str).filter(|s| binding(s).is_some()).map(str::to_string)
                }
                _ => None,
            };
            let mut kind = port.get("type").and_then(Value::as_str).unwrap_or("uri_folder").to_string();
            let path = match bound.as_deref().and_then(binding) {
                Some(expr) => {
                    let z = expr.strip_prefix("parent.outputs.").ok_or_else(|| {
                        (
                            key.clone(),
                            format!(
                                "`{}`: a step's output binds `${{{{parent.outputs.NAME}}}}`",
                                bound.clone().unwrap_or_default()
                            ),
                        )
                    })?;
                    match outputs.get(z) {
                        Some(Parent::Path(p, k)) => {
                            // The pipeline output's type, unless the step gives one.
                            if port.get("type").is_none()
                                && let Some(k) = k
                            {
                                kind = k.clone();
                            }
                            p.clone()
                        }
                        _ => {
                            return Err((
                                key,
                                format!("the pipeline has no output `{z}` with a path{}", hint(z, &keys(outputs))),
                            ));
                        }
                    }
                }
                None => match port.get("path").and_then(Value::as_str) {
                    Some(p) => p.to_string(),
                    None => {
                        let own = dir.join("steps").join(step).join("outputs").join(&name);
                        let own = if kind == "uri_file" { own.with_extension("csv") } else { own };
                        own.display().to_string()
                    }
                },
            };
            let mut pm = match port {
                Value::Mapping(pm) => pm.clone(),
                _ => Mapping::new(),
            };
            pm.insert(Value::String("type".into()), Value::String(kind));
            pm.insert(Value::String("path".into()), Value::String(path));
            *port = Value::Mapping(pm);
        }
    }
    Ok(v)
}

fn keys(m: &BTreeMap<String, Parent>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

fn set_port(port: &mut Value, field: Option<&str>, p: &Parent) {
    match (port, p) {
        (port @ Value::String(_), Parent::Path(path, kind)) => {
            let mut m = Mapping::new();
            m.insert(Value::String("type".into()), Value::String(kind.clone().unwrap_or_else(|| "uri_folder".into())));
            m.insert(Value::String("path".into()), Value::String(path.clone()));
            *port = Value::Mapping(m);
        }
        (port @ Value::String(_), Parent::Value(v)) => *port = v.clone(),
        (Value::Mapping(pm), Parent::Path(path, _)) => {
            pm.remove(field.unwrap_or("path"));
            pm.insert(Value::String("path".into()), Value::String(path.clone()));
        }
        (Value::Mapping(pm), Parent::Value(v)) => {
            pm.remove(field.unwrap_or("value"));
            pm.insert(Value::String("value".into()), v.clone());
        }
        _ => {}
    }
}

/// `${{parent.jobs.S.outputs.Y}}` in a step's inputs: S's output's path.
fn link(v: &mut Value, outputs_of: &BTreeMap<String, BTreeMap<String, String>>) -> Result<(), (String, String)> {
    let Some(Value::Mapping(ins)) = v.get_mut("inputs") else { return Ok(()) };
    for (k, port) in ins.iter_mut() {
        let key = format!("inputs.{}", k.as_str().unwrap_or(""));
        let (field, text) = match port {
            Value::String(s) => (None, s.clone()),
            Value::Mapping(pm) => match pm.get("path").and_then(Value::as_str).filter(|s| binding(s).is_some()) {
                Some(s) => (Some("path"), s.to_string()),
                None => continue,
            },
            _ => continue,
        };
        let Some(rest) = binding(&text).and_then(|e| e.strip_prefix("parent.jobs.")) else { continue };
        let (s, y) = rest.split_once(".outputs.").expect("checked in bind");
        let path = outputs_of
            .get(s)
            .and_then(|o| o.get(y))
            .ok_or_else(|| (key.clone(), format!("`{text}`: step `{s}` has no output `{y}`")))?;
        set_port(port, field, &Parent::Path(path.clone(), None));
    }
    Ok(())
}

/// The steps in an order where each comes after those it reads from; a
/// cycle's steps when there is none.
fn topo(steps: &BTreeMap<String, (Value, BTreeSet<String>)>) -> Result<Vec<String>, Vec<String>> {
    let mut done: Vec<String> = Vec::with_capacity(steps.len());
    let mut left: BTreeSet<&String> = steps.keys().collect();
    while !left.is_empty() {
        let ready: Vec<&String> =
            left.iter().copied().filter(|n| steps[*n].1.iter().all(|d| done.contains(d))).collect();
        if ready.is_empty() {
            return Err(left.into_iter().cloned().collect());
        }
        for n in ready {
            left.remove(n);
            done.push(n.clone());
        }
    }
    Ok(done)
}
