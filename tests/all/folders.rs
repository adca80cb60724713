//! `uri_folder` outputs the scorer writes (Azure's `--out ${{outputs.X}}`):
//! committed exactly once with their mini-batch, discarded with a failed
//! try, bounded, refused where they cannot work.

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

/// A job of three files, one per mini-batch, whose scorer writes into
/// `./parts` (`outputs.parts`); `extra` goes at the end of the YAML.
fn writer_job(job: &Job, extra: &str) -> std::path::PathBuf {
    let root = job.dir.path();
    std::fs::create_dir_all(root.join("control")).unwrap();
    let yaml = format!(
        "type: parallel\ninputs:\n  files: {{type: uri_folder, path: ./in}}\n\
         outputs:\n  parts: {{type: uri_folder, path: ./parts, mode: rw_mount}}\n  scores: {{type: uri_file, path: ./out.csv}}\n\
         input_data: ${{{{inputs.files}}}}\nmini_batch_size: \"1\"\nmax_concurrency_per_instance: 2\n\
         retry_settings: {{max_retries: 1}}\n\
         task:\n  code: {FOLDER_WRITER}\n  program_arguments: --out ${{{{outputs.parts}}}}\n  \
         append_row_to: ${{{{outputs.scores}}}}\n  config: {{nested: \"yes\"}}\n  mounts: {{/control: ./control}}\n{extra}"
    );
    let spec = root.join("job.yaml");
    std::fs::write(&spec, yaml).unwrap();
    spec
}

/// Every file under `dir`, `/`-separated, with its text.
fn tree(dir: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = walk(dir)
        .into_iter()
        .map(|p| (p.strip_prefix(dir).unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

fn expected() -> Vec<(String, String)> {
    let mut v = Vec::new();
    for (stem, text) in [("a", "ONE"), ("b", "TWO"), ("c", "THREE")] {
        v.push((format!("{stem}.txt"), text.to_string()));
        v.push((format!("by-stem/{stem}/part-0.txt"), format!("{stem}.txt")));
    }
    v.sort();
    v
}

#[test]
fn files_a_scorer_writes_are_committed_once_and_a_failed_tries_are_not() {
    let job = Job::new(FOLDER_WRITER).file("a.txt", "one").file("b.txt", "two").file("c.txt", "three");
    let root = job.dir.path().to_path_buf();
    let spec = writer_job(&job, "");
    let o = sluice().arg("run").arg(&spec).arg("--job-dir").arg(job.job_dir()).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert_eq!(tree(&root.join("parts")), expected());
    assert!(!job.job_dir().join("outputs/staged").exists(), "staging is gone once the files are in place");

    // Every try fails after writing: nothing reaches the folder. A resume
    // once the cause is gone commits each mini-batch's files once.
    let job = Job::new(FOLDER_WRITER).file("a.txt", "one").file("b.txt", "two").file("c.txt", "three");
    let root = job.dir.path().to_path_buf();
    let spec = writer_job(&job, "");
    std::fs::write(root.join("control/fail"), "").unwrap();
    let o = sluice().arg("run").arg(&spec).arg("--job-dir").arg(job.job_dir()).arg("-q").output().unwrap();
    assert_eq!(job.result_json()["mini_batches"]["failed"], 3, "{}", said(&o));
    assert_ne!(job.result_json()["status"], "completed", "{}", job.result_json());
    assert_eq!(tree(&root.join("parts")), Vec::<(String, String)>::new(), "failed tries leave nothing");
    std::fs::remove_file(root.join("control/fail")).unwrap();
    let o = sluice().arg("resume").arg(job.job_dir()).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert_eq!(tree(&root.join("parts")), expected());
    let records = job.records();
    assert!(records.values().all(|r| r["tries"] == "1"), "{records:?}");
    // A resume of the finished job changes nothing.
    let o = sluice().arg("resume").arg(job.job_dir()).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert_eq!(tree(&root.join("parts")), expected());
}

/// A job killed with mini-batches committed and one in flight: the resume
/// runs only what was not committed, and the folder ends with every file
/// once (none of the killed try's, none twice).
#[test]
fn a_killed_job_resumes_to_each_file_once() {
    let mut job = Job::new(FOLDER_WRITER).file("wait.txt", "w");
    for i in 0..8 {
        job = job.file(&format!("f{i}.txt"), format!("n{i}"));
    }
    let root = job.dir.path().to_path_buf();
    let spec = writer_job(&job, "");
    let yaml = std::fs::read_to_string(&spec).unwrap().replace("nested: \"yes\"", "nested: \"yes\", nonce: \"yes\"");
    std::fs::write(&spec, yaml).unwrap();
    let mut child = sluice().arg("run").arg(&spec).arg("--job-dir").arg(job.job_dir()).arg("-q").spawn().unwrap();
    // Everything but `wait.txt` committed, `wait.txt` written and waiting.
    let committed = wait_until(60, || journal_entries(&job.job_dir()) >= 8);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(committed, "the other mini-batches did not commit");
    assert!(!root.join("parts").exists(), "nothing is in place before the job ends");
    std::fs::write(root.join("control/go"), "").unwrap();
    let o = sluice().arg("resume").arg(job.job_dir()).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert_eq!(job.result_json()["mini_batches"]["resumed"], 8, "{}", job.result_json());
    let mut got = tree(&root.join("parts"));
    // One nonce file per input file: none from the killed try.
    for stem in std::iter::once("wait".to_string()).chain((0..8).map(|i| format!("f{i}"))) {
        let n = got.iter().filter(|(p, _)| p.starts_with(&format!("nonce-{stem}-"))).count();
        assert_eq!(n, 1, "{stem}: {got:?}");
    }
    got.retain(|(p, _)| !p.starts_with("nonce-"));
    let mut want: Vec<(String, String)> = vec![("wait.txt".into(), "W".into())];
    want.push(("by-stem/wait/part-0.txt".into(), "wait.txt".into()));
    for i in 0..8 {
        want.push((format!("f{i}.txt"), format!("N{i}")));
        want.push((format!("by-stem/f{i}/part-0.txt"), format!("f{i}.txt")));
    }
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn what_a_try_writes_is_bounded_and_folder_outputs_are_checked() {
    // Files and folders: a.txt, by-stem/, by-stem/a/, part-0.txt = 4 > 3.
    let job = Job::new(FOLDER_WRITER).file("a.txt", "one");
    let spec = writer_job(&job, "limits: {max_folder_output_files: 3}\n");
    let o = sluice().arg("run").arg(&spec).arg("--job-dir").arg(job.job_dir()).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let records = job.records();
    let rec = format!("{:?}", records.values().next().unwrap());
    assert!(rec.contains("INVALID_OUTPUT") && rec.contains("limits.max_folder_output_files = 3"), "{rec}");
    assert!(tree(&job.dir.path().join("parts")).is_empty());

    let job = Job::new(FOLDER_WRITER).file("big-2000000.txt", "");
    let spec = writer_job(&job, "limits: {max_folder_output_mb: 1}\n");
    let o = sluice().arg("run").arg(&spec).arg("--job-dir").arg(job.job_dir()).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let rec = format!("{:?}", job.records().values().next().unwrap());
    assert!(rec.contains("INVALID_OUTPUT") && rec.contains("limits.max_folder_output_mb = 1 MiB"), "{rec}");

    // A guest that writes without end is stopped while its run goes on.
    let job = Job::new(FOLDER_WRITER).file("fill.txt", "");
    let spec = writer_job(&job, "limits: {max_folder_output_mb: 2}\n");
    let yaml = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("retry_settings: {max_retries: 1}", "retry_settings: {max_retries: 0, timeout: 60}");
    std::fs::write(&spec, yaml).unwrap();
    let o = sluice().arg("run").arg(&spec).arg("--job-dir").arg(job.job_dir()).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let rec = format!("{:?}", job.records().values().next().unwrap());
    assert!(rec.contains("INVALID_OUTPUT") && rec.contains("limits.max_folder_output_mb = 2 MiB"), "{rec}");
    assert!(!job.job_dir().join("outputs/scratch").exists() || tree(&job.job_dir().join("outputs/scratch")).is_empty());

    // An output folder inside the input would feed the scorer its own files.
    let job = Job::new(FOLDER_WRITER).file("a.txt", "one");
    let spec = writer_job(&job, "");
    let yaml = std::fs::read_to_string(&spec).unwrap().replace("path: ./parts", "path: ./in/parts");
    std::fs::write(&spec, yaml).unwrap();
    let o = sluice().arg("run").arg(&spec).arg("--job-dir").arg(job.job_dir()).arg("-q").output().unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(said(&o).contains("the output folder outputs.parts") && said(&o).contains("the input"), "{}", said(&o));

    // One node only, for now.
    let spec = writer_job(&job, "");
    let o = sluice().arg("run").arg(&spec).args(["--cluster", "nats://127.0.0.1:9", "-q"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert!(
        said(&o).contains("`outputs.parts`: a uri_folder output the scorer writes runs on one node"),
        "{}",
        said(&o)
    );
}

/// A name several mini-batches write ends with the last one's file (in
/// input order, whatever order they ran in); a name that is a file for one
/// and a folder for another fails the job naming both; too deep a tree
/// fails its try, and the host removes it.
#[test]
fn names_written_twice_clashes_and_deep_trees() {
    let job = Job::new(FOLDER_WRITER).file("a.txt", "1").file("b.txt", "2").file("c.txt", "3");
    let spec = writer_job(&job, "");
    let yaml = std::fs::read_to_string(&spec).unwrap().replace("nested: \"yes\"", "summary: \"yes\"");
    std::fs::write(&spec, yaml).unwrap();
    let o = sluice().arg("run").arg(&spec).arg("--job-dir").arg(job.job_dir()).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    assert_eq!(std::fs::read_to_string(job.dir.path().join("parts/summary.txt")).unwrap(), "c.txt");

    let job = Job::new(FOLDER_WRITER).file("clash-dir.txt", "").file("clash-file.txt", "");
    let spec = writer_job(&job, "");
    let o = sluice().arg("run").arg(&spec).arg("--job-dir").arg(job.job_dir()).arg("-q").output().unwrap();
    assert_ne!(o.status.code(), Some(0), "{}", said(&o));
    assert!(said(&o).contains("wrote a file `clash` where mini-batch"), "{}", said(&o));

    let job = Job::new(FOLDER_WRITER).file("deep-100.txt", "").file("a.txt", "1");
    let spec = writer_job(&job, "retry_settings: {max_retries: 0}\n");
    let yaml = std::fs::read_to_string(&spec).unwrap().replace("retry_settings: {max_retries: 1}\n", "");
    std::fs::write(&spec, yaml).unwrap();
    let o = sluice().arg("run").arg(&spec).arg("--job-dir").arg(job.job_dir()).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", said(&o));
    let records = format!("{:?}", job.records());
    assert!(records.contains("nested deeper than 64 folders"), "{records}");
    assert!(!job.job_dir().join("outputs/scratch").exists(), "the deep tree is gone");
    assert!(job.dir.path().join("parts/a.txt").is_file());

    // Output names are plain names: never a path.
    let job = Job::new(FOLDER_WRITER).file("a.txt", "1");
    let spec = writer_job(&job, "");
    let yaml = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("  parts: {type", "  \"../up\": {type: uri_folder, path: ./up}\n  parts: {type");
    std::fs::write(&spec, yaml).unwrap();
    let o = sluice().arg("run").arg(&spec).arg("--job-dir").arg(job.job_dir()).arg("-q").output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", said(&o));
    assert!(said(&o).contains("`outputs.../up`: an output name must be letters"), "{}", said(&o));
}
