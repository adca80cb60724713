//! Azure ML YAML as Azure writes it: the schemas' keys, literal inputs,
//! `${{...}}` substitution and data inputs.

use super::*;

/// A temp folder with `data/` (input), `scorer.wasm`, and whatever a test adds.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "sluice-azure-spec-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(p.join("data")).unwrap();
        std::fs::write(p.join("scorer.wasm"), b"\0asm").unwrap();
        Dir(p)
    }

    fn file(&self, rel: &str, text: &str) -> &Dir {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    fn parse(&self, text: &str) -> Result<JobSpec, SpecError> {
        JobSpec::from_yaml(text, "component.yml", &self.0, &[])
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const ONNX_MLMODEL: &str = "artifact_path: model\nflavors:\n  onnx:\n    data: model.onnx\n";

/// Azure's 2a_iris parallel_component.yml, with local paths and a .wasm.
const COMPONENT: &str = r#"
$schema: http://azureml/sdk-2-0/ParallelComponent.json
name: batch_score
type: parallel
version: 1.0.0
display_name: BatchScore
description: parallel component for batch score
is_deterministic: true
tags: {owner: me, stage: null}
inputs:
  input_data:
    type: uri_folder
    description: The data to be split and scored in parallel.
    optional: false
    path: ./data
    mode: ro_mount
  score_model:
    type: uri_folder
    description: the score model
    optional: false
    path: ./model
outputs:
  job_output_file:
    type: uri_file
    description: the append row output
    path: ./out/scores.csv
    mode: rw_mount
input_data: ${{inputs.input_data}}
mini_batch_size: "10kb"
resources:
  instance_count: 1
  instance_type: Standard_D2_v2
max_concurrency_per_instance: 2
logging_level: "DEBUG"
error_threshold: 5
mini_batch_error_threshold: 4
retry_settings:
  max_retries: 2
  timeout: 60
environment_variables:
  "AZUREML_PARALLEL_EXAMPLE": "2a_yaml"
task:
  type: run_function
  code: "."
  entry_script: scorer.wasm
  environment:
    name: "prs-env"
    version: 1
    image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04
  program_arguments: >-
    --model ${{inputs.score_model}}
    --allowed_failed_percent 30
  append_row_to: ${{outputs.job_output_file}}
"#;

#[test]
fn an_azure_parallel_component_runs_as_written() {
    let d = Dir::new();
    d.file("model/MLmodel", ONNX_MLMODEL).file("model/model.onnx", "x");
    let s = d.parse(COMPONENT).unwrap();
    assert_eq!(s.name, "batch_score");
    assert_eq!(s.mini_batch_size, MiniBatchSize::Bytes(10 << 10));
    assert_eq!((s.max_retries, s.error_threshold, s.mini_batch_error_threshold), (2, 5, 4));
    assert_eq!(s.config.arguments, vec!["--model", "/inputs/score_model", "--allowed_failed_percent", "30"]);
    assert_eq!(s.config.environment, vec![("AZUREML_PARALLEL_EXAMPLE".to_string(), "2a_yaml".to_string())]);
    // The model folder is mounted where the argument says, and granted by name.
    assert_eq!(s.models, vec![ModelSpec { name: "score_model".into(), path: d.0.join("model") }]);
    let m = s.mounts.iter().find(|m| m.guest_path == "/inputs/score_model").expect("mounted");
    assert_eq!(m.host_path, d.0.join("model"));
    assert_eq!(s.data_inputs.len(), 1);
    assert_eq!(s.append_row_to.unwrap().path, Location::Local(d.0.join("out/scores.csv")));
    // Keys without a meaning here are noted, each reason once.
    let notes = s.notes.join("\n");
    for want in [
        "version, tags are ignored: Azure ML metadata",
        "is_deterministic is ignored",
        "inputs.input_data.mode (ro_mount) is ignored",
        "outputs.job_output_file.mode (rw_mount) is ignored",
        "resources.instance_type is ignored",
        "task.environment is ignored: a .wasm scorer is self-contained",
    ] {
        assert!(notes.contains(want), "missing note `{want}` in:\n{notes}");
    }
    assert!(!notes.contains("description"), "documentation keys are not noted: {notes}");
}

#[test]
fn typos_in_azure_keys_still_get_did_you_mean() {
    let d = Dir::new();
    d.file("model/MLmodel", ONNX_MLMODEL);
    for (from, to, path, hint) in [
        ("mini_batch_size:", "mini_batch_sise:", "mini_batch_sise", "mini_batch_size"),
        ("  max_retries: 2", "  max_retrys: 2", "retry_settings.max_retrys", "max_retries"),
        (
            "    optional: false\n    path: ./model",
            "    optinal: false\n    path: ./model",
            "inputs.score_model.optinal",
            "optional",
        ),
        (
            "    description: the append",
            "    descripton: the append",
            "outputs.job_output_file.descripton",
            "description",
        ),
        ("  instance_type:", "  instance_typ:", "resources.instance_typ", "instance_type"),
        ("  entry_script:", "  entry_scrip:", "task.entry_scrip", "entry_script"),
        ("is_deterministic:", "is_determinstic:", "is_determinstic", "is_deterministic"),
    ] {
        assert!(COMPONENT.contains(from), "{from}");
        let e = d.parse(&COMPONENT.replacen(from, to, 1)).unwrap_err();
        assert_eq!(e.path, path, "{e}");
        assert!(e.message.contains(&format!("did you mean `{hint}`")), "{e}");
    }
    // Values from Azure's enumerations too.
    let e = d.parse(&COMPONENT.replace("mode: ro_mount", "mode: ro_mnt")).unwrap_err();
    assert_eq!(e.path, "inputs.input_data.mode");
    assert!(e.message.contains("did you mean `ro_mount`"), "{e}");
    let e = d.parse(&COMPONENT.replace("type: uri_file", "type: uri_fle")).unwrap_err();
    assert_eq!(e.path, "outputs.job_output_file.type");
    assert!(e.message.contains("did you mean `uri_file`"), "{e}");
    let e = d
        .parse(&COMPONENT.replace("  score_model:\n    type: uri_folder", "  score_model:\n    type: uri_foldr"))
        .unwrap_err();
    assert_eq!(e.path, "inputs.score_model.type");
    assert!(e.message.contains("did you mean `uri_folder`"), "{e}");
    // Keys Azure only writes (never reads) are refused as Azure refuses them.
    let e = d.parse(&format!("{COMPONENT}status: Completed\n")).unwrap_err();
    assert_eq!(e.path, "status");
    let e = d.parse(&COMPONENT.replace("type: run_function", "type: model")).unwrap_err();
    assert!(e.message.contains("`run_function` tasks"), "{e}");
}

const JOB: &str = "
type: parallel
inputs:
  data: {type: uri_folder, path: ./data}
input_data: ${{inputs.data}}
task:
  code: ./scorer.wasm
";

fn with_inputs(d: &Dir, inputs: &str, task: &str) -> Result<JobSpec, SpecError> {
    let text = JOB.replace(
        "  data: {type: uri_folder, path: ./data}\n",
        &format!("  data: {{type: uri_folder, path: ./data}}\n{inputs}"),
    );
    d.parse(&format!("{text}{task}"))
}

#[test]
fn literal_inputs_are_checked_and_substituted() {
    let d = Dir::new();
    let inputs = "  drop_cols: \"Revenue,Advert\"\n  lags: 3\n  rate: {type: number, default: 0.5, min: 0, max: 1}\n  \
                  mode: {type: string, default: fast, enum: [fast, exact]}\n  deep: {type: boolean, value: True}\n  \
                  limit: {type: integer, optional: true}\n";
    let task = "  program_arguments: --drop_cols ${{inputs.drop_cols}} --lags ${{inputs.lags}} $[[--limit ${{inputs.limit}}]] --rate=${{inputs.rate}}\n  \
                config: {mode: '${{inputs.mode}}', deep: '${{inputs.deep}}', plain: 7}\n\
                environment_variables: {LAGS: 'lags=${{inputs.lags}}'}\n";
    let s = with_inputs(&d, inputs, task).unwrap();
    assert_eq!(s.config.arguments, vec!["--drop_cols", "Revenue,Advert", "--lags", "3", "--rate=0.5"]);
    assert_eq!(
        s.config.settings,
        vec![("deep".into(), "true".into()), ("mode".into(), "fast".into()), ("plain".into(), "7".into())]
    );
    assert_eq!(s.config.environment, vec![("LAGS".to_string(), "lags=3".to_string())]);
    // With a value, the optional segment stays (without its brackets).
    let s = with_inputs(&d, &inputs.replace("optional: true", "optional: true, value: 9"), task).unwrap();
    assert_eq!(s.config.arguments[4..6], ["--limit".to_string(), "9".to_string()]);

    // Each rule names the key at fault.
    for (change, path, message) in [
        ("default: 0.5, min: 0", "inputs.rate.default", "1.5 is above the input's max 1"),
        ("default: 0.5, min: 0", "inputs.rate.default", "-1 is below the input's min 0"),
        ("default: 0.5, min: 0", "inputs.rate.min", "min 2 is above max 1"),
        ("default: 0.5, min: 0", "inputs.rate.default", "`lots` is not a number"),
        ("default: fast, enum", "inputs.mode.default", "`fsat` is not allowed: did you mean `fast`?"),
        ("value: True", "inputs.deep.value", "`maybe` is not a boolean"),
        ("optional: true", "inputs.limit.value", "required: this integer input has no value"),
        ("optional: true", "inputs.limit.default", "`2.5` is not an integer"),
        ("optional: true", "inputs.limit.path", "a `integer` input is a literal"),
        ("default: fast, enum", "inputs.mode.min", "`min` applies to integer and number inputs"),
        ("optional: true", "inputs.limit.type", "did you mean `integer`"),
    ] {
        let changed = match message {
            m if m.starts_with("1.5") => inputs.replace("default: 0.5, min: 0", "default: 1.5, min: 0"),
            m if m.starts_with("-1") => inputs.replace("default: 0.5, min: 0", "default: -1, min: 0"),
            m if m.starts_with("min 2") => inputs.replace("default: 0.5, min: 0", "default: 0.5, min: 2"),
            m if m.contains("lots") => inputs.replace("default: 0.5, min: 0", "default: lots, min: 0"),
            m if m.contains("fsat") => inputs.replace("default: fast, enum", "default: fsat, enum"),
            m if m.contains("maybe") => inputs.replace("value: True", "value: maybe"),
            m if m.starts_with("required") => inputs.replace("optional: true", "optional: false"),
            m if m.contains("2.5") => inputs.replace("optional: true", "default: 2.5"),
            m if m.contains("is a literal") => inputs.replace("optional: true", "path: ./data"),
            m if m.contains("`min` applies") => inputs.replace("default: fast, enum", "default: fast, min: 1, enum"),
            _ => inputs.replace("type: integer, optional: true", "type: integr, optional: true"),
        };
        assert!(changed != inputs, "{change}");
        let e = with_inputs(&d, &changed, task).unwrap_err();
        assert_eq!(e.path, path, "{e}");
        assert!(e.message.contains(message), "{e}");
    }
    // Substitution errors name the key they are in.
    let e = with_inputs(&d, inputs, "  program_arguments: --x ${{inputs.drop_col}}\n").unwrap_err();
    assert_eq!(e.path, "task.program_arguments");
    assert!(e.message.contains("did you mean `inputs.drop_cols`"), "{e}");
    let e = with_inputs(&d, inputs, "  config: {l: '${{inputs.limit}}'}\n").unwrap_err();
    assert_eq!(e.path, "task.config.l");
    assert!(e.message.contains("is optional and has no value"), "{e}");
    let e = with_inputs(&d, inputs, "environment_variables: {X: '${{inputs.nope}}'}\n").unwrap_err();
    assert_eq!(e.path, "environment_variables.X");
    let e = with_inputs(&d, inputs, "  program_arguments: --data ${{inputs.data}}\n").unwrap_err();
    assert!(e.message.contains("is input_data"), "{e}");
}

#[test]
fn data_inputs_are_mounted_and_models_granted() {
    let d = Dir::new();
    d.file("lookup/regions.csv", "eu\n")
        .file("files/lookup.csv", "a\n")
        .file("files/secret.txt", "no")
        .file("bare/net.onnx", "x")
        .file("bare/README.md", "about")
        .file("sk/MLmodel", "flavors:\n  sklearn:\n    pickled_model: m.pkl\n")
        .file("one.onnx", "x");
    let inputs = "  lookup: {type: uri_folder, path: ./lookup}\n  table: {type: uri_file, path: ./files/lookup.csv}\n  \
                  bare: {type: uri_folder, path: ./bare}\n  sk: {type: uri_folder, path: ./sk}\n  \
                  one: {type: uri_file, path: ./one.onnx}\n  extra: {type: uri_folder, optional: true}\n";
    let task = "  program_arguments: --lookup ${{inputs.lookup}} --table ${{inputs.table}} $[[--extra ${{inputs.extra}}]]\n  \
                mounts: {/lookup: ./lookup}\n";
    let s = with_inputs(&d, inputs, task).unwrap();
    assert_eq!(s.config.arguments, vec!["--lookup", "/inputs/lookup", "--table", "/inputs/table/lookup.csv"]);
    let guest: Vec<(&str, &Path)> = s.mounts.iter().map(|m| (m.guest_path.as_str(), m.host_path.as_path())).collect();
    // Folders are mounted as they are; the file is not (its parent would
    // expose secret.txt): the runtime gives it a folder of its own.
    assert_eq!(
        guest,
        vec![
            ("/lookup", d.0.join("lookup").as_path()),
            ("/inputs/bare", d.0.join("bare").as_path()),
            ("/inputs/lookup", d.0.join("lookup").as_path()),
            ("/inputs/sk", d.0.join("sk").as_path()),
        ]
    );
    let table = s.data_inputs.iter().find(|i| i.name == "table").unwrap();
    assert_eq!((table.kind.clone(), table.guest_dir()), (InputKind::UriFile, "/inputs/table".to_string()));
    assert_eq!(table.file_name(), Some(std::ffi::OsStr::new("lookup.csv")));
    // Models: a folder with one .onnx file, and an .onnx file; not a folder
    // whose MLmodel has no onnx flavor (noted).
    let models: Vec<(&str, PathBuf)> = s.models.iter().map(|m| (m.name.as_str(), m.path.clone())).collect();
    assert_eq!(models, vec![("bare", d.0.join("bare/net.onnx")), ("one", d.0.join("one.onnx"))]);
    assert!(s.notes.iter().any(|n| n.contains("inputs.sk holds an MLmodel without an onnx flavor")), "{:?}", s.notes);

    // A data input is required unless optional; a file is not a folder.
    let e = with_inputs(&d, "  extra: {type: uri_folder}\n", "").unwrap_err();
    assert_eq!(e.path, "inputs.extra.path");
    assert!(e.message.contains("mark it `optional: true`"), "{e}");
    let e = with_inputs(&d, "  t: {type: uri_folder, path: ./one.onnx}\n", "").unwrap_err();
    assert!(e.message.contains("is not a folder"), "{e}");
    let e = with_inputs(&d, "  t: {type: uri_folder, path: 's3://b/lookup'}\n", "").unwrap_err();
    assert!(e.message.contains("must be a local path"), "{e}");
    let e = with_inputs(&d, "  t: {type: uri_folder, path: 'azureml:lookup:1'}\n", "").unwrap_err();
    assert!(e.message.contains("needs a workspace"), "{e}");
    let e = with_inputs(&d, "  lookup: {type: uri_folder, path: ./lookup}\n", "  mounts: {/inputs: ./lookup}\n")
        .unwrap_err();
    assert_eq!(e.path, "task.mounts./inputs");
    assert!(e.message.contains("overlaps /inputs/lookup"), "{e}");
    // A model input is granted by name and has no guest path.
    let e = with_inputs(&d, "  m: {type: custom_model, path: ./one.onnx}\n", "  program_arguments: ${{inputs.m}}\n")
        .unwrap_err();
    assert!(e.message.contains("declare it `type: uri_folder`"), "{e}");
}

#[test]
fn outputs_the_scorer_cannot_write_are_clear_errors() {
    let d = Dir::new();
    let text = format!(
        "{JOB}  append_row_to: ${{{{outputs.rows}}}}\noutputs:\n  rows: {{type: uri_file, path: ./out.csv}}\n  \
         model_folder: {{type: uri_folder, mode: rw_mount}}\n"
    );
    let s = d.parse(&text).unwrap();
    assert!(s.notes.iter().any(|n| n.contains("outputs.model_folder (uri_folder) has no `path`")), "{:?}", s.notes);
    let with_out = text.replace("task:\n", "task:\n  program_arguments: --out ${{outputs.model_folder}}\n");
    let e = d.parse(&with_out).unwrap_err();
    assert_eq!(e.path, "task.program_arguments");
    assert!(e.message.contains("has no `path`: give it one"), "{e}");
    // With a local path it is a folder the scorer writes, at /outputs/NAME.
    let s =
        d.parse(&with_out.replace("{type: uri_folder, mode: rw_mount}", "{type: uri_folder, path: ./models}")).unwrap();
    assert_eq!(s.config.arguments, ["--out", "/outputs/model_folder"]);
    assert_eq!(s.output_folders.len(), 1);
    assert!(s.output_folders[0].host_path.ends_with("models"), "{:?}", s.output_folders);
    let e = d.parse(&text.replace("task:\n", "task:\n  config: {o: '${{outputs.rows}}'}\n")).unwrap_err();
    assert!(e.message.contains("the host writes the rows run() returns there"), "{e}");
    let e = d.parse(&text.replace("${{outputs.rows}}", "${{outputs.row}}")).unwrap_err();
    assert!(e.message.contains("did you mean `${{outputs.rows}}`"), "{e}");
}

#[test]
fn a_stored_source_resolves_the_same_on_resume() {
    let d = Dir::new();
    d.file("model/MLmodel", ONNX_MLMODEL);
    let file = d.0.join("component.yml");
    std::fs::write(&file, COMPONENT).unwrap();
    let o = [Override::parse("inputs.score_model.description=changed").unwrap()];
    let source = SpecSource::new(Some(&file), &o).unwrap();
    let stored: SpecSource = serde_json::from_str(&serde_json::to_string(&source).unwrap()).unwrap();
    let (a, b) = (source.spec().unwrap(), stored.spec().unwrap());
    assert_eq!((a.config, a.models, a.data_inputs, a.notes), (b.config, b.models, b.data_inputs, b.notes));
    assert_eq!(stored.input_type("score_model").as_deref(), Some("uri_folder"));
    assert_eq!(stored.input_type("nope"), None);
}
