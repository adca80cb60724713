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
//! A `type: command` step runs a WASI command component ([`run_command`]);
//! other types are refused, naming the type.
//! What the pipeline may hold is bounded ([`MAX_STEPS`]); a cycle of
//! bindings is an error naming its steps.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use sluice_job::spec::valid_port_name;

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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlannedStep {
    /// Its name under `jobs:`.
    pub name: String,
    /// The steps whose outputs it reads.
    pub after: Vec<String>,
    /// A parallel step's job spec, every binding resolved (paths
    /// absolute); empty for a command step.
    pub text: String,
    /// `PIPELINE_DIR/steps/NAME/job`.
    pub job_dir: PathBuf,
    /// A `type: command` step: what to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandStep>,
}

/// A `type: command` step resolved: a WASI command component run once with
/// its arguments, its data inputs mounted read-only at `/inputs/X` and its
/// outputs writable at `/outputs/Y` (moved into their paths when it
/// succeeds, like a parallel step's output folders).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CommandStep {
    /// The component (`code`, joined with the command's first word when
    /// `code` is a folder).
    pub code: PathBuf,
    /// `command` split as a shell would, `${{inputs.X}}` and
    /// `${{outputs.Y}}` resolved to guest paths or values; `args[0]` is the
    /// program's name.
    pub args: Vec<String>,
    /// `(guest path, host folder)` of each data input.
    pub mounts: Vec<(String, PathBuf)>,
    /// `(name, host folder)` of each output.
    pub outputs: Vec<(String, PathBuf)>,
    /// Wall clock for the run, seconds (`timeout`, default 3600).
    pub timeout_s: u64,
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
    /// `settings.continue_on_step_failure`: a step that fails stops only
    /// the steps that read from it (default: the whole pipeline).
    #[serde(default)]
    pub continue_on_step_failure: bool,
}

/// Whether `file` holds a pipeline job (read at most
/// [`sluice_job::spec::MAX_SPEC_BYTES`]).
pub fn is_pipeline_file(file: &Path) -> bool {
    read_bounded(file).is_ok_and(|t| is_pipeline(&t))
}

/// A YAML file's text, refused past [`sluice_job::spec::MAX_SPEC_BYTES`].
fn read_bounded(file: &Path) -> Result<String, String> {
    let text = sluice_job::spec::read_spec_text(file).map_err(|e| format!("cannot read it: {e}"))?;
    if text.len() > sluice_job::spec::MAX_SPEC_BYTES {
        return Err(format!("larger than {} KiB", sluice_job::spec::MAX_SPEC_BYTES >> 10));
    }
    Ok(text)
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
    let text = read_bounded(file).map_err(|m| fail("", m))?;
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
    let mut parent_outputs = ports(top.get("outputs"), &base, "outputs").map_err(|(k, m)| fail(&k, m))?;
    // An output without a path, as Azure allows: a place in the pipeline's
    // folder (`outputs/NAME`, `.csv` for a uri_file).
    if let Some(Value::Mapping(outs)) = top.get("outputs") {
        for (k, port) in outs {
            let name = k.as_str().unwrap_or("");
            if port.get("path").is_none() {
                let kind = port.get("type").and_then(Value::as_str).unwrap_or("uri_folder").to_string();
                let own = dir.join("outputs").join(name);
                let own = if kind == "uri_file" { own.with_extension("csv") } else { own };
                parent_outputs.insert(name.to_string(), Parent::Path(own.display().to_string(), Some(kind)));
            }
        }
    }

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
        if !valid_port_name(&step_name) {
            return Err(fail(&key, "a step name is letters, digits, `_` or `-` (it names its folder)".into()));
        }
        let Value::Mapping(m) = step else { return Err(fail(&key, "expected the step's keys".into())) };
        let is_command = match m.get("type").and_then(Value::as_str) {
            Some("parallel") => false,
            Some("command") => true,
            Some(other) => {
                return Err(fail(
                    &format!("{key}.type"),
                    format!("`{other}` steps cannot run here; a step is `parallel` or `command`"),
                ));
            }
            None => return Err(fail(&format!("{key}.type"), "required: `parallel` or `command`".into())),
        };
        // The step's job: its component under its own keys, or itself.
        let mut job = Value::Mapping(m.clone());
        if let Value::Mapping(j) = &mut job {
            for k in ["compute", "identity", "services"] {
                j.remove(k);
            }
        }
        let mut composed = if m.contains_key("component") {
            let text = components::compose_value(job, file, &base, data_dir).map_err(|e| comp(file, &key, e))?;
            serde_yaml_ng::from_str(&text).map_err(|e| fail(&key, format!("cannot read the composed step: {e}")))?
        } else {
            job
        };
        if is_command && let Value::Mapping(c) = &mut composed {
            // A command's `code` is relative to where it was written: the
            // pipeline file (a component's was made absolute already).
            if let Some(code) = c.get("code").and_then(Value::as_str).map(str::to_string) {
                c.insert(Value::String("code".into()), Value::String(absolute(&code, &base)));
            }
        }
        let mut after = BTreeSet::new();
        let scope = Scope { dir, base: &base, inputs: &parent_inputs, outputs: &parent_outputs, steps: &names };
        let resolved = bind(composed, &step_name, &scope, &mut after, is_command)
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
                        .filter_map(|(k, p)| {
                            let kind = p.get("type").and_then(Value::as_str).unwrap_or("uri_folder");
                            Some((k.as_str()?.to_string(), format!("{kind}\t{}", p.get("path")?.as_str()?)))
                        })
                        .collect()
                })
                .unwrap_or_default();
            (n.clone(), outs)
        })
        .collect();
    let order = topo(&steps).map_err(|cycle| {
        fail("jobs", format!("the steps read each other's outputs in a cycle: {}", cycle.join(" -> ")))
    })?;
    // No two steps write the same place, none writes into the pipeline's
    // folder (its plan, its steps' jobs) or into what the pipeline reads.
    let nested = |a: &Path, b: &Path| a.starts_with(b) || b.starts_with(a);
    let mut written: Vec<(String, PathBuf)> = Vec::new();
    for (step, outs) in &outputs_of {
        for (name, typed) in outs {
            let path = typed.split_once('\t').map_or(typed.as_str(), |(_, p)| p);
            let key = format!("jobs.{step}.outputs.{name}");
            let p = PathBuf::from(path);
            let own = dir.join("steps").join(step).join("outputs");
            if nested(&p, dir) && !p.starts_with(&own) && !p.starts_with(dir.join("outputs")) {
                return Err(fail(&key, format!("{path} is inside or holds the pipeline's folder {}", dir.display())));
            }
            for (x, parent) in &parent_inputs {
                if let Parent::Path(q, _) = parent
                    && nested(&p, Path::new(q))
                {
                    return Err(fail(&key, format!("{path} and the pipeline input `{x}` ({q}) hold one another")));
                }
            }
            if let Some((other, _)) = written.iter().find(|(_, q)| nested(&p, q)) {
                return Err(fail(&key, format!("{path} is written by {other} too (or one holds the other)")));
            }
            written.push((key, p));
        }
    }
    let mut planned = Vec::with_capacity(order.len());
    for n in order {
        let (mut v, after) = steps.remove(&n).expect("ordered from these steps");
        link(&mut v, &outputs_of).map_err(|(k, m)| fail(&format!("jobs.{n}.{k}"), m))?;
        if let Value::Mapping(m) = &mut v {
            // A pipeline step names no component any more.
            m.remove("component");
        }
        let command = match v.get("type").and_then(Value::as_str) {
            Some("command") => Some(command_step(&v).map_err(|(k, m)| fail(&format!("jobs.{n}.{k}"), m))?),
            _ => None,
        };
        let text = if command.is_some() {
            String::new()
        } else {
            serde_yaml_ng::to_string(&v).map_err(|e| fail(&format!("jobs.{n}"), e.to_string()))?
        };
        planned.push(PlannedStep {
            job_dir: dir.join("steps").join(&n).join("job"),
            name: n,
            after: after.into_iter().collect(),
            text,
            command,
        });
    }
    let settings = top.get("settings");
    let continue_on_step_failure = match settings.and_then(|s| s.get("continue_on_step_failure")) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(fail("settings.continue_on_step_failure", "expected true or false".into())),
    };
    Ok(Planned {
        name,
        file: std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf()),
        steps: planned,
        continue_on_step_failure,
    })
}

fn comp(file: &Path, key: &str, e: ComponentError) -> PipelineError {
    PipelineError { file: file.to_path_buf(), key: format!("{key}.component"), message: e.to_string() }
}

fn hint(k: &str, known: &[&str]) -> String {
    sluice_job::spec::did_you_mean(k, known).map_or_else(String::new, |c| format!(": did you mean `{c}`?"))
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
/// What a step's bindings can name: the pipeline's folder, ports and steps.
struct Scope<'a> {
    dir: &'a Path,
    /// The pipeline file's folder: a step's own relative paths are its.
    base: &'a Path,
    inputs: &'a BTreeMap<String, Parent>,
    outputs: &'a BTreeMap<String, Parent>,
    steps: &'a [String],
}

fn bind(
    mut v: Value,
    step: &str,
    scope: &Scope<'_>,
    after: &mut BTreeSet<String>,
    command: bool,
) -> Result<Value, (String, String)> {
    let Scope { dir, base, inputs, outputs, steps } = *scope;
    let Value::Mapping(m) = &mut v else { return Ok(v) };
    m.remove("type");
    m.insert(Value::String("type".into()), Value::String(if command { "command" } else { "parallel" }.into()));
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
                    None => {
                        // A step's own path is the pipeline file's, whatever
                        // folder the command runs from.
                        if let Some(p) = pm.get("path").and_then(Value::as_str).map(str::to_string) {
                            pm.insert(Value::String("path".into()), Value::String(absolute(&p, base)));
                        }
                        continue;
                    }
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
            if !valid_port_name(&name) {
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
                    Some(p) => absolute(p, base),
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

/// The keys of a `type: command` step here.
const COMMAND_KEYS: &[&str] = &[
    "type",
    "name",
    "display_name",
    "description",
    "version",
    "$schema",
    "tags",
    "properties",
    "is_deterministic",
    "code",
    "command",
    "inputs",
    "outputs",
    "environment",
    "environment_variables",
    "resources",
    "compute",
    "timeout",
    "limits",
    "experiment_name",
    "identity",
    "services",
    "distribution",
];

/// A command step's resolved YAML as what to run.
fn command_step(v: &Value) -> Result<CommandStep, (String, String)> {
    let Value::Mapping(m) = v else { return Err((String::new(), "expected the step's keys".into())) };
    for k in m.keys() {
        let k = k.as_str().unwrap_or("");
        if !COMMAND_KEYS.contains(&k) {
            return Err((k.to_string(), format!("unknown key `{k}`{}", hint(k, COMMAND_KEYS))));
        }
    }
    let command = m.get("command").and_then(Value::as_str).ok_or_else(|| {
        (
            "command".to_string(),
            "required: the program and its arguments, e.g. `prep.wasm --in ${{inputs.raw}}`".to_string(),
        )
    })?;
    // What `${{inputs.X}}` / `${{outputs.Y}}` stand for in the command.
    let mut values = sluice_job::spec::bindings::Bindings::default();
    let value = sluice_job::spec::bindings::Binding::Value;
    let mut mounts = Vec::new();
    if let Some(Value::Mapping(ins)) = m.get("inputs") {
        for (k, port) in ins {
            let name = k.as_str().unwrap_or("").to_string();
            if !valid_port_name(&name) {
                return Err((format!("inputs.{name}"), "an input name is letters, digits, `_` or `-`".into()));
            }
            let literal =
                matches!(port.get("type").and_then(Value::as_str), Some("string" | "integer" | "number" | "boolean"));
            match (port, port.get("path").and_then(Value::as_str)) {
                (Value::Mapping(_), Some(p)) if !literal => {
                    // Another step's output exists only once it ran: checked when
                    // this step runs.
                    let host = PathBuf::from(p);
                    let guest = format!("/inputs/{name}");
                    values.inputs.insert(name.clone(), value(guest.clone()));
                    mounts.push((guest, host));
                }
                (Value::Mapping(pm), _) => {
                    let v = pm.get("value").or_else(|| pm.get("default")).map(scalar).unwrap_or_default();
                    values.inputs.insert(name.clone(), value(v));
                }
                (other, _) => {
                    values.inputs.insert(name.clone(), value(scalar(other)));
                }
            }
        }
    }
    let mut outputs = Vec::new();
    if let Some(Value::Mapping(outs)) = m.get("outputs") {
        for (k, port) in outs {
            let name = k.as_str().unwrap_or("").to_string();
            let path = port
                .get("path")
                .and_then(Value::as_str)
                .map(PathBuf::from)
                .ok_or_else(|| (format!("outputs.{name}"), "no path".to_string()))?;
            if port.get("type").and_then(Value::as_str).is_some_and(|t| t != "uri_folder") {
                return Err((format!("outputs.{name}.type"), "a command step's outputs are uri_folder".into()));
            }
            values.outputs.insert(name.clone(), value(format!("/outputs/{name}")));
            outputs.push((name, path));
        }
    }
    // Resolved as a job's program arguments are (bounded, with a hint for
    // a name that is not there); `$[[...]]` stays text, as it was.
    let text = values.substitute(command, false).map_err(|m| ("command".to_string(), m))?;
    let args = shell_words::split(&text).map_err(|e| ("command".to_string(), format!("cannot split `{text}`: {e}")))?;
    let program = args.first().ok_or_else(|| ("command".to_string(), "empty".to_string()))?;
    if program.is_empty() || program.contains('/') || program == ".." {
        return Err(("command".into(), format!("`{program}`: the program is a file name in `code`'s folder")));
    }
    let code = m
        .get("code")
        .and_then(Value::as_str)
        .ok_or_else(|| ("code".to_string(), "required: the command component (.wasm) or its folder".to_string()))?;
    let code = PathBuf::from(code);
    let code = if code.is_dir() { code.join(program) } else { code };
    if code.extension().and_then(|e| e.to_str()) != Some("wasm") || !code.is_file() {
        return Err(("code".into(), format!("{}: not a .wasm command component", code.display())));
    }
    // Azure's command jobs give it as `limits.timeout`.
    let timeout = m.get("timeout").or_else(|| m.get("limits").and_then(|l| l.get("timeout")));
    let timeout_s = match timeout {
        None => 3600,
        Some(t) => t
            .as_u64()
            .filter(|t| (1..=7 * 24 * 3600).contains(t))
            .ok_or_else(|| ("timeout".to_string(), "seconds, 1 to 604800".to_string()))?,
    };
    Ok(CommandStep { code, args, mounts, outputs, timeout_s })
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => serde_yaml_ng::to_string(other).unwrap_or_default().trim().to_string(),
    }
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
        let (kind, path) = path.split_once('\t').expect("type and path");
        set_port(port, field, &Parent::Path(path.to_string(), Some(kind.to_string())));
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

/// What `done.json` says of a completed command step: the step as it ran
/// and its component's hash, so a changed command or a rebuilt component
/// is not taken as done.
fn done_record(cmd: &CommandStep) -> Option<serde_json::Value> {
    use sha2::Digest;
    let bytes = std::fs::read(&cmd.code).ok()?;
    Some(serde_json::json!({
        "status": "completed",
        "step": cmd,
        "wasm_sha256": hex::encode(sha2::Sha256::digest(&bytes)),
    }))
}

/// Whether a command step completed as it is planned now (its `done.json`
/// names the same command and component).
pub fn command_done(step: &PlannedStep) -> bool {
    let (Some(cmd), Ok(bytes)) = (&step.command, std::fs::read(step.job_dir.join("done.json"))) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&bytes).ok() == done_record(cmd)
}

/// Runs a `type: command` step once: the component compiled (through the
/// compile cache in `cache_dir`) under the default job limits, its data
/// inputs read-only, its outputs written into folders of its own (bounded
/// and measured as a parallel step's output folders) and moved into their
/// paths when it succeeds; then `done.json`. Its stdout and stderr go to
/// `logs/` in the step's folder. The error says why it failed.
/// `stop`, once set, abandons the command within about 50 ms (a canceled
/// pipeline); its files are then deleted.
pub fn run_command(
    step: &PlannedStep,
    cmd: &CommandStep,
    cache_dir: Option<&Path>,
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
) -> Result<(), String> {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    let dir = &step.job_dir;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (guest, host) in &cmd.mounts {
        if !host.is_dir() {
            return Err(format!(
                "{}: the data input seen at {guest} is not a folder (a command step's data inputs are folders)",
                host.display()
            ));
        }
    }
    let limits = sluice_job::Limits::default();
    let engine = sluice_engine::ScorerEngine::new(&sluice_engine::EngineConfig::for_job(&limits, 1))
        .map_err(|e| e.to_string())?
        .with_compiler(sluice_engine::Compiler::Discover);
    let component = engine.load_command_for(&limits, &cmd.code, cache_dir).map_err(|e| e.to_string())?;
    let outputs: Vec<sluice_job::spec::OutputFolder> = cmd
        .outputs
        .iter()
        .map(|(name, host_path)| sluice_job::spec::OutputFolder {
            name: name.clone(),
            host_path: host_path.clone(),
            guest_path: format!("/outputs/{name}"),
        })
        .collect();
    let folders = crate::folders::Folders::new(dir, &outputs, &limits);
    let writable = match &folders {
        Some(f) => f.instance_mounts(1).map_err(|f| f.message)?,
        None => Vec::new(),
    };
    let log = crate::guest_log::FileGuestLog::new(&step.name, dir.join("logs")).map_err(|e| e.to_string())?;
    let halt = Arc::new(AtomicBool::new(false));
    let settings = sluice_engine::InstanceSettings {
        limits: limits.clone(),
        timeout: std::time::Duration::from_secs(cmd.timeout_s),
        config: Default::default(),
        mounts: cmd
            .mounts
            .iter()
            .map(|(guest, host)| sluice_job::spec::Mount { guest_path: guest.clone(), host_path: host.clone() })
            .collect(),
        writable,
        log: Arc::new(log),
        instance_id: 1,
        models: None,
        log_budget: None,
        stop,
        halt: Some(halt.clone()),
    };
    let rt = crate::exec::worker_runtime().map_err(|e| e.to_string())?;
    let watch = folders.as_ref().map(|f| f.watch(1, halt));
    let ran = rt.block_on(component.run(&settings, &cmd.args));
    let stopped = watch.and_then(|w| w.finish());
    // Writes the command left pending finish before its files are looked at.
    rt.shutdown_timeout(std::time::Duration::from_secs(10));
    let outcome = match (ran, stopped) {
        (_, Some(why)) => Err(why),
        (Err(f), None) => Err(format!("{}: {}", f.code.as_str(), f.message)),
        (Ok(()), None) => Ok(()),
    };
    if let Err(why) = outcome {
        if let Some(f) = &folders {
            f.discard(1);
        }
        return Err(why);
    }
    if let Some(f) = &folders {
        let files = f.stage(1, "command").map_err(|f| f.message)?;
        f.assemble(std::iter::once(("command", files.as_slice()))).map_err(|e| e.to_string())?;
    }
    let done = done_record(cmd).ok_or_else(|| format!("{}: cannot read it again", cmd.code.display()))?;
    sluice_job::durable::write_durably(&dir.join("done.json"), done.to_string().as_bytes())
        .map_err(|e| format!("{}: {e}", dir.display()))
}
