//! Jobs on a cluster: a real nats-server (JetStream), `sluice worker`
//! processes on loopback and the coordinator as `sluice run --cluster`,
//! each a process of the test CLI, so a test can SIGKILL any of them.
//! Every test compares the cluster's output, byte for byte, with the same
//! job run in process.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

/// A nats-server with JetStream on free loopback ports, its store in a
/// temp folder; killed on drop.
pub struct Nats {
    child: Option<Child>,
    port: u16,
    monitor: u16,
    store: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn nats_binary() -> PathBuf {
    let bin = repo(".sluice/servers/bin/nats-server");
    assert!(bin.is_file(), "{} is missing: run scripts/setup.sh (scripts/install-servers.sh)", bin.display());
    bin
}

/// Whether `GET path` on the loopback `port` answers 200.
fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

impl Nats {
    pub fn start() -> Nats {
        let mut n = Nats { child: None, port: free_port(), monitor: free_port(), store: tempfile::tempdir().unwrap() };
        n.spawn();
        n
    }

    fn spawn(&mut self) {
        let child = Command::new(nats_binary())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-m", &self.monitor.to_string(), "-js", "-sd"])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        // Ready when JetStream's monitoring endpoint answers.
        assert!(wait_until(20, || http_ok(self.monitor, "/jsz")), "nats-server did not start");
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL) and starts it again on the same ports
    /// and store.
    pub fn restart(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.spawn();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A `sluice worker` process; killed on drop.
pub struct Worker {
    child: Child,
}

impl Worker {
    pub fn start(nats: &Nats, name: &str, slots: u32) -> Worker {
        Worker::start_with(nats, name, slots, &[])
    }

    /// A worker with `env` set (object-storage credentials).
    pub fn start_with(nats: &Nats, name: &str, slots: u32, env: &[(&str, String)]) -> Worker {
        let child = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .args(["worker", "--cluster", &nats.url(), "--name", name, "--max-concurrency", &slots.to_string()])
            .arg("--cache-dir")
            .arg(cache_dir())
            .env("SLUICE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        Worker { child }
    }

    /// SIGTERM: the node stops gracefully. Returns its exit status, once it
    /// has exited (within `secs`).
    pub fn terminate(&mut self, secs: u64) -> std::process::ExitStatus {
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(sent.success(), "kill -TERM failed");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(started.elapsed() < Duration::from_secs(secs), "the worker did not stop in {secs} s after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: the node vanishes mid-try.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

fn workers(nats: &Nats, n: usize, slots: u32) -> Vec<Worker> {
    (0..n).map(|i| Worker::start(nats, &format!("w{i}"), slots)).collect()
}

/// `sluice run --cluster` for `job`, its rows to `out` and its directory
/// `job_dir`.
fn coordinator(job: &Job, nats: &Nats, out: &Path, job_dir: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"));
    c.arg("run").args(job.cli_sets());
    c.arg("--set").arg(format!("task.append_row_to={}", out.display()));
    c.arg("--job-dir").arg(job_dir).arg("--cache-dir").arg(cache_dir());
    c.args(["--cluster", &nats.url(), "--quiet"]).args(extra);
    c.env("SLUICE_DATA_DIR", job.dir.path().join("data")).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// `sluice resume` of `job`'s cluster job in `job_dir` (on the cluster
/// it was run on, which the job directory names).
fn resume(job: &Job, job_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"));
    c.arg("resume").arg(job_dir).arg("--cache-dir").arg(cache_dir()).arg("--quiet");
    c.env("SLUICE_DATA_DIR", job.dir.path().join("data")).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// Runs the coordinator to its end (within `secs`), returning its exit
/// code and output.
fn run_coordinator(mut c: Command, secs: u64) -> (i32, String) {
    let child = c.spawn().unwrap();
    let out = within(secs, "the cluster job", move || child.wait_with_output().unwrap());
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// The journal entries of a job directory, as JSON.
fn entries(job_dir: &Path) -> Vec<serde_json::Value> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(job_dir.join("journal")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && name.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            v.push(serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap());
        }
    }
    v
}

/// Waits (up to 60 s) until `entries` mini-batches of the job in
/// `job_dir` are committed, and returns a worker of [`workers`] that ran
/// one of them (a node taking mini-batches: one that started late may
/// never get any), as its index and name.
fn busy_worker(job_dir: &Path, entries: usize) -> (usize, String) {
    let mut busy = None;
    let started = wait_until(60, || {
        busy = (job_dir.join("journal").is_dir() && journal_entries(job_dir) >= entries)
            .then(|| nodes(job_dir).into_iter().next())
            .flatten();
        busy.is_some()
    });
    assert!(started, "the job did not start");
    let name = busy.unwrap();
    (name.strip_prefix('w').and_then(|n| n.parse().ok()).expect("a worker of workers()"), name)
}

/// The nodes that ran a job's committed mini-batches.
fn nodes(job_dir: &Path) -> BTreeSet<String> {
    entries(job_dir)
        .iter()
        .flat_map(|e| e["nodes"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect()
}

/// A file job of `files` small files, one per mini-batch, each taking
/// `sleep_ms` in the guest.
fn echo_job(files: usize, sleep_ms: u64) -> Job {
    let mut job = Job::new(ECHO).set("mini_batch_size", "1").set("task.config.sleep_ms", &sleep_ms.to_string());
    for i in 0..files {
        job = job.file(&format!("f{i:03}.txt"), format!("line {i}\nsecond\n"));
    }
    job.output("csv")
}

/// The job run in process: the output every cluster run must equal.
fn local_output(job: &Job) -> Vec<u8> {
    let r = job.run();
    assert_eq!(r.mini_batches.failed, 0, "{r:?}");
    std::fs::read(job.out_path("csv")).unwrap()
}

#[test]
fn a_file_job_on_three_workers_gives_the_single_node_output() {
    let nats = Nats::start();
    let _w = workers(&nats, 3, 2);
    let job = echo_job(24, 100).set("resources.instance_count", "3");
    let expected = local_output(&job);
    let (out, dir) = (job.dir.path().join("cluster.csv"), job.dir.path().join("cluster-job"));
    let (code, text) = run_coordinator(coordinator(&job, &nats, &out, &dir, &[]), 120);
    assert_eq!(code, 0, "{text}");
    assert_eq!(std::fs::read(&out).unwrap(), expected, "cluster output differs from the single-node run");
    let ran = nodes(&dir);
    assert!(ran.len() >= 2, "only {ran:?} took part");
    assert_eq!(entries(&dir).len(), 24);
    // `jobs show` names the cluster and each node with what it ran.
    let o = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli")).args(["jobs", "show"]).arg(&dir).output().unwrap();
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(shown.contains(&format!("cluster:       {}", nats.url())), "{shown}");
    let line = shown.lines().find(|l| l.trim_start().starts_with("nodes:")).unwrap_or_default();
    for n in &ran {
        assert!(line.contains(&format!("{n} (")), "{n} missing from {line:?}");
    }
}

#[test]
fn a_tabular_job_on_three_workers_gives_the_single_node_output() {
    let nats = Nats::start();
    let _w = workers(&nats, 3, 1);
    let job = Job::tabular(TABULAR_CLASSIFIER)
        .files_from("examples/tabular/data")
        .model("model", "examples/tabular/model")
        .set("mini_batch_size", "90 rows")
        .set("resources.instance_count", "3")
        .output("csv");
    let expected = local_output(&job);
    let (out, dir) = (job.dir.path().join("cluster.csv"), job.dir.path().join("cluster-job"));
    let (code, text) = run_coordinator(coordinator(&job, &nats, &out, &dir, &[]), 120);
    assert_eq!(code, 0, "{text}");
    assert_eq!(std::fs::read(&out).unwrap(), expected, "cluster output differs from the single-node run");
}

#[test]
fn a_worker_killed_mid_job_loses_no_row_and_its_tries_are_node_lost() {
    let nats = Nats::start();
    let mut w = workers(&nats, 3, 2);
    let job = echo_job(30, 400).set("resources.instance_count", "3");
    let expected = local_output(&job);
    let (out, dir) = (job.dir.path().join("cluster.csv"), job.dir.path().join("cluster-job"));
    let child = coordinator(&job, &nats, &out, &dir, &["--lease", "2"]).spawn().unwrap();
    // Kill a node once it has run part of the job (so it is taking
    // mini-batches): it holds leases it never settles.
    let (victim, _) = busy_worker(&dir, 3);
    w[victim].kill();
    let out_text = within(120, "the cluster job", move || child.wait_with_output().unwrap());
    let text = String::from_utf8_lossy(&out_text.stderr).into_owned();
    assert_eq!(out_text.status.code(), Some(0), "{text}");
    assert_eq!(std::fs::read(&out).unwrap(), expected, "a row was lost or doubled");
    let e = entries(&dir);
    assert_eq!(e.len(), 30);
    let lost: Vec<_> = e.iter().filter(|e| e["failure"]["code"] == "NODE_LOST").collect();
    assert!(!lost.is_empty(), "no try recorded as NODE_LOST: {e:?}");
    assert!(lost.iter().all(|e| e["tries"].as_u64().unwrap() >= 2));
}

#[test]
fn a_worker_stopped_with_sigterm_finishes_its_tries_and_hands_nothing_to_its_lease() {
    let nats = Nats::start();
    let mut w = workers(&nats, 3, 2);
    let job = echo_job(30, 400).set("resources.instance_count", "3");
    let expected = local_output(&job);
    let (out, dir) = (job.dir.path().join("cluster.csv"), job.dir.path().join("cluster-job"));
    // The default lease (30 s): a try the stopping node dropped would
    // come back only after it, as NODE_LOST.
    let started = Instant::now();
    let child = coordinator(&job, &nats, &out, &dir, &[]).spawn().unwrap();
    let (stopped, name) = busy_worker(&dir, 4);
    // The node's two tries in flight (400 ms each) finish and report; it
    // takes no new mini-batch and exits 0.
    let status = w[stopped].terminate(15);
    assert!(status.success(), "the worker exited with {status} after SIGTERM");
    let ran_by = |e: &[serde_json::Value]| {
        e.iter().filter(|e| e["nodes"].as_array().is_some_and(|n| n.contains(&name.as_str().into()))).count()
    };
    let ran_before = ran_by(&entries(&dir));
    let out_text = within(120, "the cluster job", move || child.wait_with_output().unwrap());
    let text = String::from_utf8_lossy(&out_text.stderr).into_owned();
    assert_eq!(out_text.status.code(), Some(0), "{text}");
    assert_eq!(std::fs::read(&out).unwrap(), expected, "a row was lost or doubled");
    let e = entries(&dir);
    assert_eq!(e.len(), 30);
    assert!(e.iter().all(|e| e["failure"].is_null()), "a try failed: {e:?}");
    assert!(e.iter().all(|e| e["tries"] == 1), "a mini-batch ran twice: {e:?}");
    // Nothing the stopped node held waited for its lease to expire.
    assert!(started.elapsed() < Duration::from_secs(28), "the job took {:?}", started.elapsed());
    let after = ran_by(&e);
    assert!(
        after <= ran_before + 2,
        "{name} ran {after} mini-batches, {ran_before} when it was stopped: it took new ones"
    );
}

#[test]
fn a_killed_coordinator_is_resumed_to_the_same_output() {
    let nats = Nats::start();
    let _w = workers(&nats, 3, 2);
    let job = echo_job(30, 300).set("resources.instance_count", "3");
    let expected = local_output(&job);
    let (out, dir) = (job.dir.path().join("cluster.csv"), job.dir.path().join("cluster-job"));
    let mut child = coordinator(&job, &nats, &out, &dir, &[]).spawn().unwrap();
    assert!(wait_until(60, || dir.join("journal").is_dir() && journal_entries(&dir) >= 5), "the job did not start");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!out.exists());
    let (code, text) = run_coordinator(resume(&job, &dir), 120);
    assert_eq!(code, 0, "{text}");
    assert_eq!(std::fs::read(&out).unwrap(), expected);
    let r = std::fs::read_to_string(dir.join("job_result.json")).unwrap();
    let r: serde_json::Value = serde_json::from_str(&r).unwrap();
    assert!(r["mini_batches"]["resumed"].as_u64().unwrap() >= 5, "{r}");
}

#[test]
fn instance_count_limits_the_nodes_taking_part() {
    let nats = Nats::start();
    let _w = workers(&nats, 3, 2);
    let job = echo_job(12, 50).set("resources.instance_count", "1");
    let expected = local_output(&job);
    let (out, dir) = (job.dir.path().join("cluster.csv"), job.dir.path().join("cluster-job"));
    let (code, text) = run_coordinator(coordinator(&job, &nats, &out, &dir, &[]), 120);
    assert_eq!(code, 0, "{text}");
    assert_eq!(std::fs::read(&out).unwrap(), expected);
    let ran = nodes(&dir);
    assert_eq!(ran.len(), 1, "instance_count 1, but {ran:?} took part");
}

#[test]
fn a_restarted_nats_server_does_not_stop_the_job() {
    let mut nats = Nats::start();
    let _w = workers(&nats, 2, 2);
    let job = echo_job(24, 300).set("resources.instance_count", "2");
    let expected = local_output(&job);
    let (out, dir) = (job.dir.path().join("cluster.csv"), job.dir.path().join("cluster-job"));
    let child = coordinator(&job, &nats, &out, &dir, &["--lease", "3"]).spawn().unwrap();
    assert!(wait_until(60, || dir.join("journal").is_dir() && journal_entries(&dir) >= 3), "the job did not start");
    nats.restart();
    let started = Instant::now();
    let o = within(150, "the cluster job", move || child.wait_with_output().unwrap());
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&out).unwrap(), expected);
    assert!(started.elapsed() < Duration::from_secs(150));
}

#[test]
fn jobs_cancel_stops_every_node_and_resume_finishes_the_job() {
    let nats = Nats::start();
    let _w = workers(&nats, 3, 2);
    let job = echo_job(40, 1000).set("resources.instance_count", "3");
    let expected = local_output(&job);
    let (out, dir) = (job.dir.path().join("cluster.csv"), job.dir.path().join("cluster-job"));
    let child = coordinator(&job, &nats, &out, &dir, &[]).spawn().unwrap();
    assert!(wait_until(60, || dir.join("journal").is_dir() && journal_entries(&dir) >= 3), "the job did not start");
    let c = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli")).args(["jobs", "cancel"]).arg(&dir).output().unwrap();
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stderr));
    let o = within(60, "the canceled cluster job", move || child.wait_with_output().unwrap());
    assert_eq!(o.status.code(), Some(130), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("job_result.json")).unwrap()).unwrap();
    assert_eq!(r["status"], "canceled", "{r}");
    assert!(r["reason"].as_str().unwrap_or("").contains("sluice jobs cancel"), "{r}");
    let done = entries(&dir).len();
    assert!(done < 40, "the cancel stopped nothing ({done} committed)");
    // A stopped job keeps what it did: the output holds the committed rows.
    assert!(std::fs::read(&out).unwrap().len() < expected.len());
    // Nothing more runs for the job on any node: the journal stays as it is.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(entries(&dir).len(), done);
    let (code, text) = run_coordinator(resume(&job, &dir), 120);
    assert_eq!(code, 0, "{text}");
    assert_eq!(std::fs::read(&out).unwrap(), expected, "resumed after a cancel, the output differs");
}

#[test]
fn more_than_one_instance_needs_a_cluster() {
    let job = echo_job(2, 0).set("resources.instance_count", "4");
    let o = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"))
        .arg("run")
        .args(job.cli_sets())
        .arg("--job-dir")
        .arg(job.job_dir())
        .env("SLUICE_DATA_DIR", job.dir.path().join("data"))
        .env_remove("SLUICE_CLUSTER")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("resources.instance_count") && err.contains("--cluster"), "{err}");
}

#[test]
fn an_unreachable_cluster_fails_the_job_naming_the_url() {
    let job = echo_job(2, 0);
    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let o = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"))
        .arg("run")
        .args(job.cli_sets())
        .arg("--job-dir")
        .arg(job.job_dir())
        .arg("--cache-dir")
        .arg(cache_dir())
        .args(["--cluster", &url, "--quiet"])
        .env("SLUICE_DATA_DIR", job.dir.path().join("data"))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains(&url), "{text}");
    // Nothing ran, and the job says so.
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(job.job_dir().join("job_result.json")).unwrap()).unwrap();
    assert_eq!(r["status"], "failed", "{r}");
}

/// `sluice run --tabular` of the demo classifier from `input` to `output`
/// (paths or URLs), with `env`, on the cluster when `nats` is given.
fn classifier(env: &[(&str, String)], input: &str, output: &str, job_dir: &Path, nats: Option<&Nats>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
        c.env_remove(k);
    }
    c.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    c.args(["run", "-q", "--tabular", "--scorer", TABULAR_CLASSIFIER, "--mini-batch-size", "120 rows"])
        .arg("--model")
        .arg(format!("model={}", repo("examples/tabular/model").display()))
        .args(["--input", input, "--output", output, "--cache-dir"])
        .arg(cache_dir())
        .arg("--job-dir")
        .arg(job_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(n) = nats {
        c.args(["--cluster", &n.url(), "--set", "resources.instance_count=3"]);
    }
    c
}

#[test]
fn a_cluster_job_over_s3_gives_the_single_node_local_output() {
    let s3 = crate::s3::S3Server::start();
    s3.put_folder("tables", "examples/tabular/data");
    let nats = Nats::start();
    let _w: Vec<Worker> = (0..3).map(|i| Worker::start_with(&nats, &format!("s{i}"), 1, &s3.env())).collect();
    let tmp = tempfile::tempdir().unwrap();
    let data = repo("examples/tabular/data").display().to_string();
    let local = tmp.path().join("local.csv");
    let (code, text) =
        run_coordinator(classifier(&[], &data, &local.display().to_string(), &tmp.path().join("l"), None), 120);
    assert_eq!(code, 0, "{text}");
    let dir = tmp.path().join("c");
    let (code, text) =
        run_coordinator(classifier(&s3.env(), &s3.url("tables"), &s3.url("out/scores.csv"), &dir, Some(&nats)), 120);
    assert_eq!(code, 0, "{text}");
    assert_eq!(s3.get("out/scores.csv").unwrap(), std::fs::read(&local).unwrap(), "s3 on the cluster differs");
    assert!(nodes(&dir).len() >= 2, "only {:?} took part", nodes(&dir));
}

#[test]
fn a_node_that_cannot_read_the_storage_fails_its_tries_naming_the_url() {
    let s3 = crate::s3::S3Server::start();
    s3.put_folder("tables", "examples/tabular/data");
    let nats = Nats::start();
    // The nodes have a wrong secret; the coordinator the right one.
    let mut bad = s3.env();
    bad.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    bad.push(("AWS_SECRET_ACCESS_KEY", "wrong".into()));
    let _w: Vec<Worker> = (0..3).map(|i| Worker::start_with(&nats, &format!("b{i}"), 1, &bad)).collect();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let mut c = classifier(&s3.env(), &s3.url("tables"), &s3.url("out/scores.csv"), &dir, Some(&nats));
    c.args(["--set", "retry_settings.max_retries=1"]);
    c.args(["--set", "mini_batch_error_threshold=0"]);
    let (code, text) = run_coordinator(c, 120);
    assert_eq!(code, 1, "{text}");
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("job_result.json")).unwrap()).unwrap();
    assert_eq!(r["status"], "failed", "{r}");
    assert_eq!(r["mini_batches"]["succeeded"], 0, "{r}");
    // The node opens the job's output (its staging prefix) first: that URL
    // is the one refused.
    let table = std::fs::read_to_string(dir.join("processed_mini_batches.csv")).unwrap();
    assert!(
        table.contains("cannot run this job")
            && table.contains("s3://sluice/out/.sluice-staged/")
            && table.contains("403"),
        "no reason names the URL:\n{table}"
    );
}

/// A small xorshift generator: the fault test's moments, reproducible
/// from the seed it prints.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

#[test]
fn random_kills_of_workers_and_the_coordinator_never_change_the_output() {
    let seed = std::env::var("SLUICE_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
    });
    eprintln!("fault test seed {seed} (SLUICE_FAULT_SEED={seed} repeats it)");
    let mut rng = Rng(seed);
    let nats = Nats::start();
    let mut w: Vec<Worker> = (0..3).map(|i| Worker::start(&nats, &format!("r{i}-0"), 2)).collect();
    let job = echo_job(18, 200).set("resources.instance_count", "3");
    let expected = local_output(&job);
    for trial in 0..20 {
        let (out, dir) = (job.dir.path().join(format!("t{trial}.csv")), job.dir.path().join(format!("t{trial}")));
        let mut child = coordinator(&job, &nats, &out, &dir, &["--lease", "2"]).spawn().unwrap();
        // A random moment: after 1 to 6 committed mini-batches and up to
        // 400 ms more.
        let after = 1 + rng.below(6) as usize;
        wait_until(30, || journal_entries(&dir) >= after);
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        let victim = rng.below(3) as usize;
        w[victim].kill();
        w[victim] = Worker::start(&nats, &format!("r{victim}-{}", trial + 1), 2);
        let coordinator_too = rng.below(4) == 0;
        let (code, text) = if coordinator_too {
            let _ = child.kill();
            let _ = child.wait();
            run_coordinator(resume(&job, &dir), 120)
        } else {
            let o = within(120, "the cluster job", move || child.wait_with_output().unwrap());
            (o.status.code().unwrap_or(-1), String::from_utf8_lossy(&o.stderr).into_owned())
        };
        let what = format!(
            "trial {trial} (seed {seed}): worker {victim} killed after {after} commits{}",
            if coordinator_too { ", the coordinator too" } else { "" }
        );
        assert_eq!(code, 0, "{what}: {text}");
        assert_eq!(std::fs::read(&out).unwrap(), expected, "{what}: the output differs");
    }
}
