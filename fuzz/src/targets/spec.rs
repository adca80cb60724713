//! The job spec parser and validator (`JobSpec::from_yaml` with `--set`
//! overrides).
//!
//! Input: the first byte chooses the form. Even: the rest is YAML text as
//! it is (any bytes, lossily UTF-8). Odd: the rest drives [`arbitrary`] to
//! build a spec from the real keys with arbitrary values, serialised as
//! YAML, plus arbitrary `KEY=VALUE` overrides: random bytes alone would
//! almost never get past the first unknown key.
//!
//! Properties: no panic; the error message stays under [`MAX_MESSAGE`]
//! (a spec error is printed whole); an accepted spec holds values inside
//! the documented ranges and parses the same again. The runner's per-input
//! budget (1 s) catches slow refusals such as deep nesting.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::{Result as AResult, Unstructured};
use serde_yaml_ng::{Mapping, Value};
use sluice_job::JobSpec;
use sluice_job::spec::Override;

/// Longest acceptable error message: 64 KiB, far above any real one (a
/// few hundred bytes), low enough that echoing a huge input is caught.
pub const MAX_MESSAGE: usize = 64 << 10;

/// A folder with what specs may point at (an input folder with a table, a
/// scorer file, models), made once per process: the validator checks that
/// paths exist, so a spec that names them gets further.
fn base() -> &'static Path {
    static BASE: OnceLock<tempfile::TempDir> = OnceLock::new();
    BASE.get_or_init(|| {
        let d = tempfile::tempdir().expect("temp dir");
        let p = d.path();
        std::fs::create_dir_all(p.join("in")).unwrap();
        std::fs::write(p.join("in/a.csv"), "x,y\n1,2\n").unwrap();
        std::fs::write(p.join("scorer.wasm"), b"\0asm").unwrap();
        std::fs::write(p.join("model.onnx"), b"").unwrap();
        std::fs::create_dir_all(p.join("mlflow")).unwrap();
        std::fs::write(p.join("mlflow/MLmodel"), "flavors: {}\n").unwrap();
        std::fs::create_dir_all(p.join("lookup")).unwrap();
        d
    })
    .path()
}

pub fn run(data: &[u8]) -> Result<(), String> {
    let (text, overrides) = match data.split_first() {
        None => (String::new(), Vec::new()),
        Some((b, rest)) if b % 2 == 0 => (String::from_utf8_lossy(rest).into_owned(), Vec::new()),
        Some((_, rest)) => {
            let mut u = Unstructured::new(rest);
            let spec = structured(&mut u).unwrap_or_else(|_| Value::Mapping(Mapping::new()));
            let overrides = overrides(&mut u).unwrap_or_default();
            (serde_yaml_ng::to_string(&spec).unwrap_or_default(), overrides)
        }
    };
    check(&text, &overrides)
}

/// Parses `text` with `overrides` and checks the properties.
pub fn check(text: &str, overrides: &[Override]) -> Result<(), String> {
    match JobSpec::from_yaml(text, "fuzz.yaml", base(), overrides) {
        Err(e) => {
            let m = e.to_string();
            if m.len() > MAX_MESSAGE {
                return Err(format!(
                    "error message of {} bytes: {}...",
                    m.len(),
                    m.chars().take(200).collect::<String>()
                ));
            }
            Ok(())
        }
        Ok(s) => {
            accepted(&s)?;
            // Parsed again only when accepted: a refusal is cheap to trust,
            // and a slow one would count twice against the budget.
            let again = JobSpec::from_yaml(text, "fuzz.yaml", base(), overrides);
            if again.as_ref().map(|a| format!("{a:?}")).ok() != Some(format!("{s:?}")) {
                return Err("the same text parsed twice gave different results".into());
            }
            Ok(())
        }
    }
}

/// What validation promises about an accepted spec (spec.rs `validate`).
pub fn accepted(s: &JobSpec) -> Result<(), String> {
    let bad = |what: &str| Err(format!("accepted a spec with {what}: {s:?}"));
    if !(1..=1024).contains(&s.max_concurrency) {
        return bad("max_concurrency out of 1..=1024");
    }
    if s.max_retries > 100 {
        return bad("max_retries over 100");
    }
    if s.timeout.as_secs() < 1 {
        return bad("a timeout under 1 s");
    }
    if s.allowed_failed_percent > 100 || s.error_threshold < -1 || s.mini_batch_error_threshold < -1 {
        return bad("a threshold out of range");
    }
    if !(1..=256).contains(&s.onnx_threads) {
        return bad("onnx_threads out of 1..=256");
    }
    if s.scorer.extension().and_then(|e| e.to_str()) != Some("wasm") || !s.scorer.is_file() {
        return bad("a scorer that is not a .wasm file");
    }
    // A URL is checked for shape only, never contacted.
    if s.input.path.as_local().is_some_and(|p| !p.exists()) {
        return bad("an input path that does not exist");
    }
    if s.partition_keys.iter().any(String::is_empty) || (!s.partition_keys.is_empty() && !s.input.tabular) {
        return bad("bad partition keys");
    }
    if s.mounts.iter().any(|m| !m.guest_path.starts_with('/') || !m.host_path.is_dir()) {
        return bad("a bad mount");
    }
    let l = &s.limits;
    if l.memory_bytes == 0 || l.memory_bytes > 4096 << 20 || l.fuel < 1000 || l.max_wasm_stack < 64 << 10 {
        return bad("limits out of range");
    }
    Ok(())
}

/// A scalar of the kinds specs hold, with edge cases.
fn scalar(u: &mut Unstructured) -> AResult<Value> {
    Ok(match u.int_in_range(0..=9)? {
        0 => Value::Number(u.int_in_range::<i64>(-3..=3)?.into()),
        1 => Value::Number(u.arbitrary::<i64>()?.into()),
        2 => Value::Number(u.arbitrary::<u64>()?.into()),
        3 => Value::Number(serde_yaml_ng::Number::from(u.arbitrary::<f64>()?)),
        4 => Value::Bool(u.arbitrary()?),
        5 => Value::Null,
        6 => Value::String(
            ["1", "10 files", "100 rows", "1kb", "64MB", "0", "-1 rows", "1e400", "${{inputs.data}}", "DEBUG"]
                [u.choose_index(10)?]
            .into(),
        ),
        _ => Value::String(u.arbitrary::<String>()?),
    })
}

/// A path value: one of the prepared files, or arbitrary text.
fn path(u: &mut Unstructured) -> AResult<Value> {
    let known =
        ["./in", "in/a.csv", "scorer.wasm", "model.onnx", "mlflow", "lookup", "/", "../..", "out.csv", "out.parquet"];
    Ok(if u.ratio(3, 4)? { Value::String(known[u.choose_index(known.len())?].into()) } else { scalar(u)? })
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Mapping(entries.into_iter().map(|(k, v)| (Value::String(k.into()), v)).collect())
}

/// Some of `keys`, each with a value from `value`.
fn some_of(
    u: &mut Unstructured,
    keys: &[&'static str],
    value: &mut dyn FnMut(&mut Unstructured, &str) -> AResult<Value>,
) -> AResult<Value> {
    let mut m = Mapping::new();
    for k in keys {
        if u.ratio(1, 2)? {
            m.insert(Value::String((*k).into()), value(u, k)?);
        }
    }
    if u.ratio(1, 10)? {
        m.insert(Value::String(u.arbitrary::<String>()?), scalar(u)?);
    }
    Ok(Value::Mapping(m))
}

/// Usually one of `good` (values validation accepts), else any scalar:
/// specs must often be valid for the range checks to be reached at all.
fn good_or_any(u: &mut Unstructured, good: &[&str]) -> AResult<Value> {
    if good.is_empty() || u.ratio(1, 4)? {
        return scalar(u);
    }
    let g = good[u.choose_index(good.len())?];
    Ok(match g.parse::<i64>() {
        Ok(n) => Value::Number(n.into()),
        Err(_) => Value::String(g.into()),
    })
}

fn input(u: &mut Unstructured) -> AResult<Value> {
    let (kind, path) = match u.int_in_range(0..=3)? {
        0 => ("uri_folder", Value::String("./in".into())),
        1 => ("mltable", Value::String("in".into())),
        _ => {
            let kinds = ["uri_folder", "uri_file", "mltable", "mlflow_model", "custom_model", "other"];
            (kinds[u.choose_index(kinds.len())?], path(u)?)
        }
    };
    let mut entries = vec![("type", Value::String(kind.into())), ("path", path)];
    if u.ratio(1, 5)? {
        entries.push(("mode", scalar(u)?));
    }
    Ok(map(entries))
}

/// Valid values of each key, for [`good_or_any`].
fn good_values(key: &str) -> &'static [&'static str] {
    match key {
        "type" => &["parallel"],
        "name" => &["job", "a b"],
        "mini_batch_size" => &["1", "10 files", "3", "1kb"],
        "max_concurrency_per_instance" => &["1", "4", "1024"],
        "error_threshold" | "mini_batch_error_threshold" => &["-1", "0", "5"],
        "allowed_failed_percent" => &["0", "50", "100"],
        "logging_level" => &["INFO", "debug", "Warning"],
        "compute" => &["azureml:cpu"],
        "max_retries" => &["0", "3", "100"],
        "timeout" => &["1", "30", "604800"],
        "memory_mb" => &["1", "512", "4096"],
        "fuel" => &["1000", "1000000000"],
        "max_wasm_stack_kb" => &["64", "1024", "65536"],
        "max_output_mb" | "max_file_mb" => &["1", "64", "4096"],
        "max_log_kb" => &["1", "1024"],
        "max_tensor_mb" => &["1", "16384"],
        "intra_op_threads" => &["1", "256"],
        "instance_count" => &["1"],
        _ => &[],
    }
}

/// A spec built from the real keys (spec.rs `RawSpec`) with arbitrary values.
pub fn structured(u: &mut Unstructured) -> AResult<Value> {
    let mut root = Mapping::new();
    let mut put = |k: &str, v: Value| {
        root.insert(Value::String(k.into()), v);
    };
    if u.ratio(9, 10)? {
        let mut inputs = Mapping::new();
        inputs.insert("data".into(), input(u)?);
        for _ in 0..u.int_in_range(0..=2)? {
            let name = if u.ratio(1, 2)? { "model".to_string() } else { u.arbitrary::<String>()? };
            let model = if u.ratio(1, 2)? {
                map(vec![("type", Value::String("custom_model".into())), ("path", Value::String("model.onnx".into()))])
            } else {
                input(u)?
            };
            inputs.insert(Value::String(name), model);
        }
        put("inputs", Value::Mapping(inputs));
    }
    if u.ratio(9, 10)? {
        let v = if u.ratio(4, 5)? { Value::String("${{inputs.data}}".into()) } else { scalar(u)? };
        put("input_data", v);
    }
    if u.ratio(9, 10)? {
        let mut task = Mapping::new();
        let code = if u.ratio(9, 10)? { Value::String("scorer.wasm".into()) } else { path(u)? };
        task.insert("code".into(), code);
        let rare = [
            ("type", 2),
            ("entry_script", 10),
            ("program_arguments", 4),
            ("append_row_to", 3),
            ("config", 3),
            ("mounts", 4),
            ("environment", 6),
        ];
        for (k, one_in) in rare {
            if u.ratio(1, one_in)? {
                let v = match k {
                    "type" => good_or_any(u, &["run_function"])?,
                    "program_arguments" => good_or_any(u, &["--a 1", "'x y'", "\"unterminated"])?,
                    "append_row_to" => good_or_any(u, &["out.csv", "out.jsonl", "out.parquet", "out.txt"])?,
                    "config" => map(vec![("k", scalar(u)?), ("seed", scalar(u)?)]),
                    "mounts" => map(vec![("/lookup", good_or_any(u, &["lookup", "./lookup"])?)]),
                    _ => scalar(u)?,
                };
                task.insert(Value::String(k.into()), v);
            }
        }
        if u.ratio(1, 10)? {
            task.insert(Value::String(u.arbitrary::<String>()?), scalar(u)?);
        }
        put("task", Value::Mapping(task));
    }
    let top = [
        "type",
        "name",
        "mini_batch_size",
        "partition_keys",
        "max_concurrency_per_instance",
        "error_threshold",
        "mini_batch_error_threshold",
        "allowed_failed_percent",
        "logging_level",
        "compute",
        "environment_variables",
        "tags",
    ];
    for k in top {
        if u.ratio(1, 4)? {
            let v = match k {
                "partition_keys" => Value::Sequence(vec![good_or_any(u, &["x", "y"])?]),
                "environment_variables" | "tags" => map(vec![("A", scalar(u)?)]),
                _ => good_or_any(u, good_values(k))?,
            };
            put(k, v);
        }
    }
    let sections: [(&str, &[&str]); 4] = [
        ("retry_settings", &["max_retries", "timeout"]),
        (
            "limits",
            &["memory_mb", "fuel", "max_wasm_stack_kb", "max_output_mb", "max_log_kb", "max_file_mb", "max_tensor_mb"],
        ),
        ("onnx", &["intra_op_threads"]),
        ("resources", &["instance_count"]),
    ];
    for (section, keys) in sections {
        if u.ratio(1, 3)? {
            let v = some_of(u, keys, &mut |u, k| good_or_any(u, good_values(k)))?;
            put(section, v);
        }
    }
    Ok(Value::Mapping(root))
}

/// Arbitrary `--set KEY=VALUE` flags, parsed as the CLI parses them.
fn overrides(u: &mut Unstructured) -> AResult<Vec<Override>> {
    let keys =
        ["retry_settings.timeout", "inputs.data.path", "limits.memory_mb", "task", "a..b", ".", "mini_batch_size"];
    let mut out = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        let key = if u.ratio(2, 3)? { keys[u.choose_index(keys.len())?].to_string() } else { u.arbitrary::<String>()? };
        let value = u.arbitrary::<String>()?;
        if let Ok(o) = Override::parse(&format!("{key}={value}")) {
            out.push(o);
        }
    }
    Ok(out)
}

/// The folder relative paths in fuzzed specs resolve against.
pub fn base_dir() -> PathBuf {
    base().to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Structured inputs get past parsing: some are accepted (reaching the
    /// range checks) and many are refused by validation, not by YAML.
    #[test]
    fn structured_inputs_reach_validation_and_acceptance() {
        let mut rng = crate::Rng(9);
        let (mut accepted, mut validated) = (0, 0);
        for _ in 0..2000 {
            let n = rng.below(1024);
            let bytes = rng.bytes(n);
            let mut u = Unstructured::new(&bytes);
            let Ok(v) = structured(&mut u) else { continue };
            let text = serde_yaml_ng::to_string(&v).unwrap();
            match JobSpec::from_yaml(&text, "t", base(), &[]) {
                Ok(s) => {
                    accepted += 1;
                    accepted_ok(&s);
                }
                Err(e) if !e.message.starts_with("not valid YAML") => validated += 1,
                Err(_) => {}
            }
        }
        assert!(accepted >= 10 && validated > 1000, "accepted {accepted}, refused by validation {validated}");
    }

    fn accepted_ok(s: &JobSpec) {
        assert!(accepted(s).is_ok(), "{:?}", accepted(s));
    }

    /// The range check is real: a spec outside the ranges is reported.
    #[test]
    fn an_out_of_range_spec_is_reported() {
        let text =
            "inputs: {data: {type: uri_folder, path: ./in}}\ninput_data: ${{inputs.data}}\ntask: {code: scorer.wasm}\n";
        let mut s = JobSpec::from_yaml(text, "t", base(), &[]).unwrap();
        assert!(accepted(&s).is_ok());
        s.max_concurrency = 0;
        assert!(accepted(&s).is_err());
    }
}
