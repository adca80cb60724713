//! `type: pipeline` jobs: steps in dependency order, `${{parent...}}`
//! bindings, a step's output feeding the next, resume of a pipeline.

use std::path::Path;
use std::process::{Command, Output};

use crate::helpers::*;

fn sluice() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"));
    c.env("SLUICE_CACHE_DIR", cache_dir());
    c
}

fn said(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A two-step pipeline in `root`: `prep` (a component file) writes each
/// input file upper-cased into its output folder; `stats`, listed first,
/// reads that folder and writes file-stats rows to the pipeline's output.
fn two_steps(root: &Path, extra_prep_config: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(root.join("control")).unwrap();
    std::fs::write(
        root.join("prep.yml"),
        format!(
            "$schema: https://azuremlschemas.azureedge.net/latest/parallelComponent.schema.json\n\
             type: parallel\nname: prep\nversion: 1\n\
             inputs:\n  files: {{type: uri_folder}}\noutputs:\n  parts: {{type: uri_folder}}\n\
             input_data: ${{{{inputs.files}}}}\nmini_batch_size: \"1\"\n\
             task:\n  type: run_function\n  code: {FOLDER_WRITER}\n  program_arguments: --out ${{{{outputs.parts}}}}\n  \
             mounts: {{/control: ./control}}\n  config: {{{extra_prep_config}}}\n"
        ),
    )
    .unwrap();
    let file = root.join("pipeline.yml");
    std::fs::write(
        &file,
        format!(
            "$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json\n\
             type: pipeline\ndisplay_name: prep-then-stats\nsettings: {{default_compute: azureml:cpu-cluster}}\n\
             inputs:\n  raw: {{type: uri_folder, path: ./in}}\n\
             outputs:\n  report: {{type: uri_file, path: ./report.csv}}\n\
             jobs:\n  stats:\n    type: parallel\n    inputs:\n      files: ${{{{parent.jobs.prep.outputs.parts}}}}\n    \
             outputs:\n      rows: ${{{{parent.outputs.report}}}}\n    input_data: ${{{{inputs.files}}}}\n    \
             mini_batch_size: \"2\"\n    task:\n      type: run_function\n      code: {FILE_STATS}\n      \
             append_row_to: ${{{{outputs.rows}}}}\n  \
             prep:\n    type: parallel\n    component: ./prep.yml\n    inputs:\n      files: ${{{{parent.inputs.raw}}}}\n"
        ),
    )
    .unwrap();
    file
}

/// `(name, bytes)` of the report's rows.
fn report(root: &Path) -> Vec<(String, String)> {
    let mut r = csv::Reader::from_path(root.join("report.csv")).unwrap();
    r.records().map(|rec| rec.unwrap()).map(|rec| (rec[0].to_string(), rec[1].to_string())).collect()
}

#[test]
fn a_step_reads_the_output_folder_of_the_step_before_it() {
    let job = Job::new(FILE_STATS).file("a.txt", "one").file("b.txt", "two!").file("c.txt", "");
    let root = job.dir.path();
    let file = two_steps(root, "");
    let dir = root.join("pipe");
    let o = sluice().arg("run").arg(&file).arg("--job-dir").arg(&dir).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    // prep ran first though listed second; stats scored what prep wrote.
    let out = said(&o);
    let (prep, stats) =
        (out.find("step prep: running").unwrap(), out.find("step stats: running (after prep)").unwrap());
    assert!(prep < stats, "{out}");
    assert_eq!(
        report(root),
        [("a.txt", "3"), ("b.txt", "4"), ("c.txt", "0")].map(|(n, b)| (n.to_string(), b.to_string()))
    );
    assert_eq!(std::fs::read_to_string(dir.join("steps/prep/outputs/parts/b.txt")).unwrap(), "TWO!");

    // The steps are listed with their status; a resume runs nothing again.
    let o = sluice().args(["jobs", "show"]).arg(&dir).output().unwrap();
    let shown = said(&o);
    let rows: Vec<&str> = shown.lines().filter(|l| l.starts_with("prep ") || l.starts_with("stats ")).collect();
    assert_eq!(rows.len(), 2, "{shown}");
    assert!(rows.iter().all(|l| l.contains("completed")), "{shown}");
    let o = sluice().arg("resume").arg(&dir).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert!(said(&o).contains("step prep: completed earlier") && said(&o).contains("step stats: completed earlier"));
}

/// Killed while its second step runs (committed mini-batches, one
/// waiting): the resume skips the first step and finishes the second from
/// its journal, each file once.
#[test]
fn a_pipeline_killed_in_its_second_step_resumes_from_there() {
    let mut job = Job::new(FILE_STATS).file("wait.txt", "w");
    for i in 0..5 {
        job = job.file(&format!("f{i}.txt"), format!("n{i}"));
    }
    let root = job.dir.path();
    let file = two_steps(root, "");
    // The second step is the folder writer too, waiting on `wait.txt` until
    // `control2/go` exists (prep's own wait is released by `control/go`).
    std::fs::create_dir_all(root.join("control2")).unwrap();
    std::fs::write(root.join("control/go"), "").unwrap();
    let text = std::fs::read_to_string(&file).unwrap().replace(
        &format!("      code: {FILE_STATS}\n      append_row_to: ${{{{outputs.rows}}}}\n"),
        &format!(
            "      code: {FOLDER_WRITER}\n      append_row_to: ${{{{outputs.rows}}}}\n      \
             program_arguments: --out ${{{{outputs.copy}}}}\n      mounts: {{/control: ./control2}}\n"
        ),
    );
    let text = text.replace(
        "      rows: ${{parent.outputs.report}}\n",
        "      rows: ${{parent.outputs.report}}\n      copy: {type: uri_folder, path: ./copy}\n",
    );
    std::fs::write(&file, text).unwrap();
    let dir = root.join("pipe");
    let mut child = sluice().arg("run").arg(&file).arg("--job-dir").arg(&dir).arg("-q").spawn().unwrap();
    // Its mini-batches are 2 files each: [f0 f1] [f2 f3] commit, [f4 wait] waits.
    let waiting = wait_until(60, || journal_entries(&dir.join("steps/stats/job")) >= 2);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(waiting, "the second step did not commit its other mini-batches");
    assert!(!root.join("copy").exists(), "nothing of the second step is in place yet");
    std::fs::write(root.join("control2/go"), "").unwrap();
    let o = sluice().arg("resume").arg(&dir).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert!(said(&o).contains("step prep: completed earlier"), "{}", said(&o));
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("steps/stats/job/job_result.json")).unwrap()).unwrap();
    assert_eq!(result["mini_batches"]["resumed"], 2, "{result}");
    let mut names: Vec<String> = std::fs::read_dir(root.join("copy"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    names.sort();
    assert_eq!(names, ["f0.txt", "f1.txt", "f2.txt", "f3.txt", "f4.txt", "wait.txt"]);
    assert_eq!(std::fs::read_to_string(root.join("copy/f3.txt")).unwrap(), "N3");
}

#[test]
fn pipeline_errors_name_the_step_and_key() {
    let job = Job::new(FILE_STATS).file("a.txt", "1");
    let root = job.dir.path();
    let file = two_steps(root, "");
    let text = std::fs::read_to_string(&file).unwrap();
    for (from, to, want) in [
        (
            "parent.jobs.prep.outputs.parts",
            "parent.jobs.prepp.outputs.parts",
            "`jobs.stats.inputs.files`: `${{parent.jobs.prepp.outputs.parts}}`: the pipeline has no step `prepp`: did you mean `prep`?",
        ),
        (
            "  prep:\n    type: parallel\n",
            "  prep:\n    type: sweep\n",
            "`jobs.prep.type`: `sweep` steps cannot run here",
        ),
        ("display_name:", "display_nam:", "unknown key `display_nam`: did you mean `display_name`?"),
        ("parent.inputs.raw", "parent.inputs.raws", "the pipeline has no input `raws`: did you mean `raw`?"),
    ] {
        std::fs::write(&file, text.replace(from, to)).unwrap();
        let o = sluice().arg("run").arg(&file).arg("--job-dir").arg(root.join("p")).arg("-q").output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{}", said(&o));
        assert!(said(&o).contains(want), "want `{want}` in {}", said(&o));
    }
    // Two steps writing one place.
    let twice = text.replace(
        "    inputs:\n      files: ${{parent.inputs.raw}}\n",
        "    inputs:\n      files: ${{parent.inputs.raw}}\n    outputs:\n      parts: ${{parent.outputs.report}}\n",
    );
    std::fs::write(&file, twice).unwrap();
    let o = sluice().arg("run").arg(&file).arg("--job-dir").arg(root.join("p")).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert!(said(&o).contains("report.csv is written by jobs."), "{}", said(&o));
    // Two steps reading each other: a cycle, named.
    let cyc =
        text.replace("      files: ${{parent.inputs.raw}}\n", "      files: ${{parent.jobs.stats.outputs.rows}}\n");
    std::fs::write(&file, cyc).unwrap();
    let o = sluice().arg("run").arg(&file).arg("--job-dir").arg(root.join("p")).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert!(said(&o).contains("in a cycle: prep -> stats"), "{}", said(&o));
}

/// A `type: command` step (a WASI command component) feeds a parallel
/// step: its data input read-only, its output folder moved into place
/// when it succeeds; a command that fails stops the pipeline naming its
/// status, and leaves nothing in its output.
#[test]
fn a_command_step_feeds_a_parallel_step() {
    let job = Job::new(FILE_STATS).file("a.txt", "one").file("b.txt", "two!");
    let root = job.dir.path();
    let file = root.join("pipeline.yml");
    let yaml = |fail: &str| {
        format!(
            "type: pipeline\ninputs:\n  raw: {{type: uri_folder, path: ./in}}\n\
             outputs:\n  report: {{type: uri_file, path: ./report.csv}}\n\
             jobs:\n  prep:\n    type: command\n    code: {CONCAT}\n    \
             command: concat.wasm --in ${{{{inputs.raw}}}} --out ${{{{outputs.joined}}}}{fail}\n    \
             inputs:\n      raw: ${{{{parent.inputs.raw}}}}\n    outputs:\n      joined: {{type: uri_folder}}\n    \
             environment: azureml:AzureML-sklearn-1.5:1\n  \
             stats:\n    type: parallel\n    inputs:\n      files: ${{{{parent.jobs.prep.outputs.joined}}}}\n    \
             outputs:\n      rows: ${{{{parent.outputs.report}}}}\n    input_data: ${{{{inputs.files}}}}\n    \
             task:\n      code: {FILE_STATS}\n      append_row_to: ${{{{outputs.rows}}}}\n"
        )
    };
    std::fs::write(&file, yaml("")).unwrap();
    let dir = root.join("pipe");
    let o = sluice().arg("run").arg(&file).arg("--job-dir").arg(&dir).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let joined = std::fs::read_to_string(dir.join("steps/prep/outputs/joined/all.txt")).unwrap();
    assert_eq!(joined, "a.txt: one\nb.txt: two!\n");
    assert_eq!(report(root), [("all.txt".to_string(), joined.len().to_string())]);
    let log: String = std::fs::read_dir(dir.join("steps/prep/job/logs"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(log.contains("concatenated 2 files"), "{log}");
    let o = sluice().arg("resume").arg(&dir).arg("-q").output().unwrap();
    assert!(said(&o).contains("step prep: completed earlier"), "{}", said(&o));
    // Another command in the same folder is another pipeline: refused.
    std::fs::write(&file, yaml(" --extra")).unwrap();
    let o = sluice().arg("run").arg(&file).arg("--job-dir").arg(&dir).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert!(said(&o).contains("holds a run of another version of the pipeline"), "{}", said(&o));
    // Job flags do not apply to a pipeline.
    let o = sluice().arg("run").arg(&file).args(["--set", "mini_batch_size=3"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert!(said(&o).contains("a pipeline takes --job-dir"), "{}", said(&o));

    std::fs::write(&file, yaml(" --fail")).unwrap();
    let dir = root.join("pipe-fail");
    let o = sluice().arg("run").arg(&file).arg("--job-dir").arg(&dir).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", said(&o));
    assert!(
        said(&o).contains("step prep: failed: USER_ERROR: the command exited with an error (a nonzero status)"),
        "{}",
        said(&o)
    );
    assert!(!said(&o).contains("step stats: running"), "{}", said(&o));
    assert!(!dir.join("steps/prep/outputs/joined/all.txt").exists(), "a failed command's files are not kept");

    // With continue_on_step_failure, a step that does not read the failed
    // one still runs; the one that does is not run; the pipeline fails.
    let other = format!(
        "  other:\n    type: command\n    code: {CONCAT}\n    \
         command: concat.wasm --in ${{{{inputs.raw}}}} --out ${{{{outputs.joined}}}}\n    \
         inputs:\n      raw: ${{{{parent.inputs.raw}}}}\n    outputs:\n      joined: {{type: uri_folder}}\n"
    );
    let text =
        yaml(" --fail").replace("jobs:\n", &format!("settings:\n  continue_on_step_failure: true\njobs:\n{other}"));
    std::fs::write(&file, text).unwrap();
    let dir = root.join("pipe-continue");
    let o = sluice().arg("run").arg(&file).arg("--job-dir").arg(&dir).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", said(&o));
    assert!(said(&o).contains("step stats: not run: it reads from a step that did not complete"), "{}", said(&o));
    assert!(said(&o).contains("steps prep, stats did not complete"), "{}", said(&o));
    assert_eq!(
        std::fs::read_to_string(dir.join("steps/other/outputs/joined/all.txt")).unwrap(),
        "a.txt: one\nb.txt: two!\n"
    );
}

/// Two steps that read nothing of each other run side by side; a third
/// that reads both runs after them.
#[test]
fn independent_steps_then_the_step_reading_both() {
    let job = Job::new(FILE_STATS).file("a.txt", "one");
    let root = job.dir.path();
    std::fs::create_dir_all(root.join("in2")).unwrap();
    std::fs::write(root.join("in2/z.txt"), "zed").unwrap();
    let file = root.join("pipeline.yml");
    let step = |name: &str, input: &str| {
        format!(
            "  {name}:\n    type: command\n    code: {CONCAT}\n    \
             command: concat.wasm --in ${{{{inputs.src}}}} --out ${{{{outputs.joined}}}}\n    \
             inputs:\n      src: {input}\n    outputs:\n      joined: {{type: uri_folder}}\n"
        )
    };
    let yaml = format!(
        "type: pipeline\ninputs:\n  one: {{type: uri_folder, path: ./in}}\n  two: {{type: uri_folder, path: ./in2}}\n\
         outputs:\n  report: {{type: uri_file, path: ./report.csv}}\njobs:\n{}{}  both:\n    type: parallel\n    inputs:\n      x: ${{{{parent.jobs.a.outputs.joined}}}}\n      \
         y: ${{{{parent.jobs.b.outputs.joined}}}}\n    outputs:\n      rows: ${{{{parent.outputs.report}}}}\n    \
         input_data: ${{{{inputs.x}}}}\n    task:\n      code: {READER}\n      append_row_to: ${{{{outputs.rows}}}}\n      \
         program_arguments: --read ${{{{inputs.y}}}}/all.txt\n",
        step("a", "${{parent.inputs.one}}"),
        step("b", "${{parent.inputs.two}}") + &step("c", "${{parent.jobs.a.outputs.joined}}"),
    );
    std::fs::write(&file, yaml).unwrap();
    let o = sluice().arg("run").arg(&file).arg("--job-dir").arg(root.join("pipe")).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let out = said(&o);
    let both = out.find("step both: running (after a, b)").expect("both ran");
    assert!(out.find("step a: completed").unwrap() < both && out.find("step b: completed").unwrap() < both, "{out}");
    // `both` read a's folder as its input and b's file through a mount.
    let mut r = csv::Reader::from_path(root.join("report.csv")).unwrap();
    let rows: Vec<Vec<String>> = r.records().map(|x| x.unwrap().iter().map(str::to_string).collect()).collect();
    assert_eq!(rows, [["all.txt".to_string(), "z.txt: zed".to_string()]]);
    // A command step reads another step's output folder, made before it runs.
    let c = std::fs::read_to_string(root.join("pipe/steps/c/outputs/joined/all.txt")).unwrap();
    assert_eq!(c, "all.txt: a.txt: one\n");
}
