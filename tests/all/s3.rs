//! Inputs and outputs on object storage, against a real S3 server
//! (SeaweedFS, `weed mini`, from `.sluice/servers/bin`, installed by
//! scripts/setup.sh), never a mock: a job over `s3://` gives the bytes the
//! same job over local files gives, a store that cannot be reached or a
//! missing bucket fails naming the URL, a killed job resumes keeping what
//! was committed, and the object output's per-try staging.
//!
//! [`S3Server`] is `pub` for other test modules (the cluster tests).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::helpers::*;

/// The access key the server is configured with.
pub const ACCESS_KEY: &str = "sluice-test";
/// Its secret.
pub const SECRET_KEY: &str = "sluice-test-secret";

/// A SeaweedFS server (`weed mini`) on 127.0.0.1 with free ports, an S3
/// identity ([`ACCESS_KEY`] / [`SECRET_KEY`]) and one bucket. Killed with
/// SIGKILL, and its folder removed, on drop.
pub struct S3Server {
    child: Child,
    _dir: tempfile::TempDir,
    endpoint: String,
    bucket: String,
    store: Arc<dyn ObjectStore>,
    rt: tokio::runtime::Runtime,
}

/// `n` ports free right now on 127.0.0.1 (held together while picked, so
/// they differ).
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    held.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

impl S3Server {
    /// Starts a server with the bucket `sluice` and waits (up to 30 s) until
    /// S3 lists it.
    pub fn start() -> S3Server {
        S3Server::with_bucket("sluice")
    }

    /// Starts a server with one bucket, `bucket`.
    pub fn with_bucket(bucket: &str) -> S3Server {
        let weed = repo(".sluice/servers/bin/weed");
        assert!(
            weed.is_file(),
            "{} is missing: run scripts/setup.sh (it installs SeaweedFS, pinned, into .sluice/servers/bin)",
            weed.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"sluice","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        // Every port it opens, HTTP and gRPC, picked free.
        let p = free_ports(10);
        let d = dir.path().display();
        let child = Command::new(&weed)
            .arg("mini")
            .arg(format!("-dir={d}/data"))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false", "-webdav=false"])
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.autoCreateBucket=false"])
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-master.port.grpc={}", p[1]))
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-volume.port.grpc={}", p[3]))
            .arg(format!("-filer.port={}", p[4]))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg(format!("-s3.port={}", p[6]))
            .arg(format!("-s3.port.grpc={}", p[7]))
            .arg(format!("-admin.port={}", p[8]))
            .arg(format!("-admin.port.grpc={}", p[9]))
            .arg(format!("-filer.localSocket={d}/filer.sock"))
            .arg(format!("-s3.localSocket={d}/s3.sock"))
            .arg(format!("-s3.config={}", config.display()))
            .arg(format!("-bucket={bucket}"))
            .stdout(Stdio::from(std::fs::File::create(dir.path().join("weed.log")).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(dir.path().join("weed.err")).unwrap()))
            .spawn()
            .unwrap();
        let endpoint = format!("http://127.0.0.1:{}", p[6]);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let opts = options(&endpoint);
        let opts: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (store, _) = sluice_io::objects::open_store(&format!("s3://{bucket}"), &opts).unwrap();
        let mut server = S3Server { child, _dir: dir, endpoint, bucket: bucket.to_string(), store, rt };
        let started = Instant::now();
        loop {
            let store = server.store.clone();
            let listed = server.rt.block_on(async move { store.list_with_delimiter(None).await });
            match listed {
                Ok(_) => break,
                Err(e) => {
                    if let Ok(Some(status)) = server.child.try_wait() {
                        panic!("weed mini exited ({status}): {}", server.log());
                    }
                    assert!(
                        started.elapsed() < Duration::from_secs(30),
                        "S3 did not answer in 30 s: {e}\n{}",
                        server.log()
                    );
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        server
    }

    fn log(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self._dir.path().join(n)).unwrap_or_default();
        format!("{}{}", read("weed.log"), read("weed.err"))
    }

    /// `s3://BUCKET/key`.
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// The environment a `sluice` child process reads it with.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        env_for(&self.endpoint)
    }

    /// The same settings as `object_store` options (for a store opened in
    /// the test process, which must not change its own environment).
    pub fn options(&self) -> Vec<(&'static str, String)> {
        options(&self.endpoint)
    }

    /// Writes an object.
    pub fn put(&self, key: &str, bytes: impl Into<Vec<u8>>) {
        let (store, key, bytes) = (self.store.clone(), Key::parse(key).unwrap(), bytes.into());
        self.rt.block_on(async move { store.put(&key, PutPayload::from(bytes)).await }).unwrap();
    }

    /// Deletes an object.
    pub fn delete(&self, key: &str) {
        let (store, key) = (self.store.clone(), Key::parse(key).unwrap());
        self.rt.block_on(async move { store.delete(&key).await }).unwrap();
    }

    /// An object's bytes, or `None` when there is none.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let (store, k) = (self.store.clone(), Key::parse(key).unwrap());
        match self.rt.block_on(async move {
            match store.get(&k).await {
                Ok(r) => r.bytes().await.map(|b| b.to_vec()),
                Err(e) => Err(e),
            }
        }) {
            Ok(b) => Some(b),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("get {key:?}: {e}"),
        }
    }

    /// The keys under `prefix`, sorted.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        use futures_util::TryStreamExt;
        let (store, prefix) = (self.store.clone(), Key::parse(prefix).unwrap());
        let mut keys: Vec<String> = self
            .rt
            .block_on(async move { store.list(Some(&prefix)).try_collect::<Vec<_>>().await })
            .unwrap()
            .into_iter()
            .map(|m| m.location.to_string())
            .collect();
        keys.sort();
        keys
    }

    /// Copies a repository folder's files to `prefix/NAME`.
    pub fn put_folder(&self, prefix: &str, rel: &str) {
        for e in std::fs::read_dir(repo(rel)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                self.put(&format!("{prefix}/{}", e.file_name().to_string_lossy()), std::fs::read(e.path()).unwrap());
            }
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // SIGKILL: `weed mini` takes seconds to stop on SIGTERM.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env_for(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT_URL", endpoint.into()),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
}

fn options(endpoint: &str) -> Vec<(&'static str, String)> {
    env_for(endpoint).into_iter().map(|(k, v)| (if k == "AWS_ENDPOINT_URL" { "aws_endpoint" } else { k }, v)).collect()
}

/// The test CLI with the server's environment (and none of the caller's
/// AWS settings).
fn sluice(env: &[(&'static str, String)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sluice-test-cli"));
    c.env("SLUICE_CACHE_DIR", cache_dir());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AWS_")) {
        c.env_remove(k);
    }
    c.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    c
}

fn run_ok(c: &mut Command) -> String {
    let o = c.output().unwrap();
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    out.into_owned()
}

#[test]
fn a_file_job_over_s3_writes_the_bytes_the_local_job_writes() {
    let s3 = S3Server::start();
    let job = Job::new(FILE_STATS)
        .file("a.txt", "1\n2\n")
        .file("b/c.txt", "x")
        .file("b/d e.txt", "with a space\n")
        .file("z.txt", "")
        .output("csv");
    for name in ["a.txt", "b/c.txt", "b/d e.txt", "z.txt"] {
        s3.put(&format!("in/{name}"), std::fs::read(job.input().join(name)).unwrap());
    }
    // An object beside the prefix is not in it.
    s3.put("in-other/x.txt", "not input");
    let local = job.dir.path().join("local");
    run_ok(
        sluice(&[])
            .args(["run", "-q", "--scorer", FILE_STATS, "--mini-batch-size", "2", "--input"])
            .arg(job.input())
            .arg("--output")
            .arg(job.out_path("csv"))
            .arg("--job-dir")
            .arg(&local),
    );
    let expected = std::fs::read(job.out_path("csv")).unwrap();
    assert_eq!(String::from_utf8_lossy(&expected).lines().count(), 5, "a header and 4 files");

    let job_dir = job.dir.path().join("on-s3");
    let stdout = run_ok(
        sluice(&s3.env())
            .args(["run", "--scorer", FILE_STATS, "--mini-batch-size", "2", "--input"])
            .arg(s3.url("in"))
            .arg("--output")
            .arg(s3.url("out/result.csv"))
            .arg("--job-dir")
            .arg(&job_dir),
    );
    assert!(stdout.contains("s3://sluice/out/result.csv"), "the summary names the output URL: {stdout}");
    assert_eq!(s3.get("out/result.csv").unwrap(), expected, "the same bytes as the local job");
    // Parts are staged next to the output, under the job directory's name.
    let staged = s3.list("out/.sluice-staged");
    assert_eq!(staged.len(), 2, "one part per mini-batch: {staged:?}");
    assert!(staged.iter().all(|k| k.starts_with("out/.sluice-staged/on-s3-") && k.ends_with(".part")), "{staged:?}");
    // Nothing is staged in the job directory.
    assert_eq!(std::fs::read_dir(job_dir.join("staged")).map_or(0, |d| d.count()), 0);

    // One object as a uri_file input.
    run_ok(
        sluice(&s3.env())
            .args(["run", "-q", "--scorer", FILE_STATS, "--input"])
            .arg(s3.url("in/a.txt"))
            .arg("--output")
            .arg(s3.url("one/result.jsonl"))
            .arg("--job-dir")
            .arg(job.dir.path().join("one")),
    );
    let one = String::from_utf8(s3.get("one/result.jsonl").unwrap()).unwrap();
    assert!(one.starts_with("{\"name\":\"a.txt\",\"bytes\":4,\"lines\":2"), "{one}");
}

fn classifier_cli(env: &[(&'static str, String)], input: &str, output: &str, job_dir: &std::path::Path) -> Command {
    let mut c = sluice(env);
    c.args(["run", "-q", "--tabular", "--scorer", TABULAR_CLASSIFIER, "--mini-batch-size", "300 rows"])
        .arg("--model")
        .arg(format!("model={}", repo("examples/tabular/model").display()))
        .args(["--input", input, "--output", output])
        .arg("--job-dir")
        .arg(job_dir);
    c
}

#[test]
fn a_tabular_job_over_s3_writes_the_csv_and_parquet_bytes_the_local_job_writes() {
    let s3 = S3Server::start();
    s3.put_folder("tables", "examples/tabular/data");
    let tmp = tempfile::tempdir().unwrap();
    let data = repo("examples/tabular/data").display().to_string();
    for ext in ["csv", "parquet"] {
        let local_out = tmp.path().join(format!("local.{ext}"));
        run_ok(&mut classifier_cli(&[], &data, &local_out.display().to_string(), &tmp.path().join(format!("l-{ext}"))));
        let key = format!("scores/result.{ext}");
        run_ok(&mut classifier_cli(&s3.env(), &s3.url("tables"), &s3.url(&key), &tmp.path().join(format!("s-{ext}"))));
        let expected = std::fs::read(&local_out).unwrap();
        assert_eq!(s3.get(&key).unwrap(), expected, "{ext}: the same bytes as the local job");
    }
    // The Parquet output is 4 row groups of 1,000 rows in all.
    let pq = bytes::Bytes::from(s3.get("scores/result.parquet").unwrap());
    let reader = parquet::file::reader::SerializedFileReader::new(pq).unwrap();
    use parquet::file::reader::FileReader;
    assert_eq!(reader.metadata().file_metadata().num_rows(), 1000);
    assert_eq!(reader.metadata().num_row_groups(), 4);
}

#[test]
fn storage_that_cannot_be_used_fails_the_job_naming_the_url() {
    let s3 = S3Server::start();
    s3.put("in/a.txt", "x");
    let tmp = tempfile::tempdir().unwrap();
    let fails = |env: &[(&'static str, String)], input: &str, output: &str, dir: &str| {
        let o = sluice(env)
            .args(["run", "-q", "--scorer", FILE_STATS, "--input", input, "--output", output, "--job-dir"])
            .arg(tmp.path().join(dir))
            .output()
            .unwrap();
        assert_ne!(o.status.code(), Some(0), "{input} -> {output} ran");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    // Nothing listens there: refused in seconds (3 retries), naming the
    // first URL the job reaches (the output's staging prefix, listed when
    // the output is opened, before the input is planned).
    let closed = format!("http://127.0.0.1:{}", free_ports(1)[0]);
    let started = Instant::now();
    let err = fails(&env_for(&closed), "s3://sluice/in", &s3.url("out/r.csv"), "refused");
    assert!(
        err.contains("s3://sluice/out/.sluice-staged/") && err.contains("cannot list") && err.contains("onnect"),
        "{err}"
    );
    // An input alone on the closed endpoint names the input.
    let err = fails(&env_for(&closed), "s3://sluice/in", &tmp.path().join("r.csv").display().to_string(), "refused-in");
    assert!(err.contains("s3://sluice/in: cannot list the input") && err.contains("onnect"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    // No such bucket, for the input and for the output.
    let err = fails(&s3.env(), "s3://no-such-bucket/in", &s3.url("out/r.csv"), "nobucket-in");
    assert!(err.contains("s3://no-such-bucket/in: cannot list the input"), "{err}");
    let err = fails(&s3.env(), &s3.url("in"), "s3://no-such-bucket/out/r.csv", "nobucket-out");
    assert!(err.contains("s3://no-such-bucket/out/.sluice-staged/"), "{err}");
    assert!(!tmp.path().join("nobucket-out/journal").exists(), "refused before the job ran");
    // Wrong credentials.
    let mut bad = s3.env();
    bad.retain(|(k, _)| *k != "AWS_SECRET_ACCESS_KEY");
    bad.push(("AWS_SECRET_ACCESS_KEY", "wrong".into()));
    let err = fails(&bad, &s3.url("in"), &tmp.path().join("b.csv").display().to_string(), "badkey");
    assert!(err.contains("s3://sluice/in: cannot list the input") && err.contains("403"), "{err}");
    let err = fails(&bad, &s3.url("in"), &s3.url("out/r.csv"), "badkey-out");
    assert!(err.contains("s3://sluice/out/.sluice-staged/") && err.contains("403"), "{err}");
    // A typo in the scheme is a spec error naming the key; an output inside
    // the input is refused.
    let err = fails(&s3.env(), "s4://sluice/in", &s3.url("out/r.csv"), "typo");
    assert!(err.contains("inputs.data.path") && err.contains("unknown storage scheme `s4://`"), "{err}");
    let err = fails(&s3.env(), &s3.url("in"), &s3.url("in/r.csv"), "overlap");
    assert!(err.contains("is inside the input (s3://sluice/in)"), "{err}");
    assert_eq!(s3.list("in"), ["in/a.txt"], "nothing was written to the input");
}

#[test]
fn a_killed_job_over_s3_resumes_keeping_what_was_committed() {
    let s3 = S3Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let rows: String =
        std::iter::once("id,v\n".to_string()).chain((0..60).map(|i| format!("{i},{}\n", i * 7))).collect();
    s3.put("rows/part-0.csv", rows);
    std::fs::create_dir(tmp.path().join("ctl")).unwrap();
    let spec = tmp.path().join("job.yaml");
    std::fs::write(
        &spec,
        format!(
            "type: parallel\nname: s3-resume\n\
             inputs:\n  rows: {{type: mltable, path: 's3://sluice/rows'}}\n\
             input_data: ${{{{inputs.rows}}}}\nmini_batch_size: \"10 rows\"\nmax_concurrency_per_instance: 2\n\
             task:\n  code: {FLAKY}\n  append_row_to: 's3://sluice/out/rows.parquet'\n  mounts: {{/ctl: ./ctl}}\n\
             \x20 config: {{stall_on: /ctl/stall}}\n"
        ),
    )
    .unwrap();
    let run = |dir: &str| {
        let mut c = sluice(&s3.env());
        c.args(["run", "-q"]).arg(&spec).arg("--job-dir").arg(tmp.path().join(dir));
        c.stdout(Stdio::null()).stderr(Stdio::null());
        c
    };
    assert!(run("reference").status().unwrap().success(), "the uninterrupted run");
    let expected = s3.get("out/rows.parquet").unwrap();

    // Mini-batch 0 (ids 0-9) stalls: kill the job once the other five are
    // committed, then resume it.
    std::fs::write(tmp.path().join("ctl/stall"), "0").unwrap();
    let job_dir = tmp.path().join("killed");
    let mut child = run("killed").spawn().unwrap();
    let five = wait_until(60, || journal_entries(&job_dir) == 5);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(five, "the five other mini-batches were not committed");
    let staged_prefix = "out/.sluice-staged/killed-".to_string();
    let staged: Vec<String> =
        s3.list("out/.sluice-staged").into_iter().filter(|k| k.starts_with(&staged_prefix)).collect();
    assert_eq!(staged.len(), 5, "each committed mini-batch's part is in the bucket: {staged:?}");
    std::fs::remove_file(tmp.path().join("ctl/stall")).unwrap();
    s3.put("out/rows.parquet", "the reference's output, to be replaced");
    let status = within(60, "the resumed run", {
        let mut c = run("killed");
        move || c.status().unwrap()
    });
    assert!(status.success(), "the resumed run failed");
    let result: serde_json::Value =
        serde_json::from_slice(&std::fs::read(job_dir.join("job_result.json")).unwrap()).unwrap();
    assert_eq!(result["mini_batches"]["resumed"], 5, "{result}");
    assert_eq!(result["output"], "s3://sluice/out/rows.parquet", "{result}");
    assert!(s3.get("out/rows.parquet").unwrap() == expected, "the resumed output differs from the uninterrupted one");
}

#[test]
fn object_output_stages_tries_apart_and_the_source_sees_a_changed_object() {
    use sluice_io::{InputSource, OutputStore};
    let s3 = S3Server::start();
    let opts = s3.options();
    let opts: Vec<(&str, &str)> = opts.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = sluice_io::ObjectOutput::new(
        &s3.url("o/r.csv"),
        &s3.url("o/.staged/t"),
        sluice_job::spec::OutputFormat::Csv,
        &opts,
    )
    .unwrap();
    use sluice_io::PartRef;
    let at = |index| PartRef { index, tag: None };
    out.stage(0, b"a\n").unwrap();
    out.stage_try(1, "node2-1", b"b from node2\n").unwrap();
    out.stage_try(1, "node1-1", b"b from node1\n").unwrap();
    assert!(!out.has_part(at(1)), "a staged try is not a part");
    // Promoted by reference: nothing is copied, the try's object is the part.
    out.promote(1, "node1-1").unwrap();
    let kept = PartRef { index: 1, tag: Some("node1-1") };
    assert!(out.has_part(kept));
    out.stage_try(0, "node3-2", b"late\n").unwrap();
    assert_eq!(s3.get("o/.staged/t/00000000.part").unwrap(), b"a\n", "a try leaves the committed part alone");
    assert!(out.stage_try(0, "../x", b"x").is_err(), "a tag that names another key is refused");
    assert_eq!(out.promote(2, "node9-1").unwrap_err().kind(), std::io::ErrorKind::NotFound, "no such try");
    out.discard_tries(&[at(0), kept]).unwrap();
    assert_eq!(s3.list("o/.staged/t"), ["o/.staged/t/00000000.part", "o/.staged/t/00000001.node1-1.try"]);
    assert_eq!(out.assemble(&[at(0), kept], b"h\n").unwrap(), PathBuf::from("s3://sluice/o/r.csv"));
    assert_eq!(s3.get("o/r.csv").unwrap(), b"h\na\nb from node1\n");
    // A second store over the same staging prefix (a resumed coordinator)
    // finds the parts, the kept try by the tag its journal entry names.
    let again = sluice_io::ObjectOutput::new(
        &s3.url("o/r.csv"),
        &s3.url("o/.staged/t"),
        sluice_job::spec::OutputFormat::Csv,
        &opts,
    )
    .unwrap();
    assert!(again.has_part(at(0)) && again.has_part(kept) && !again.has_part(at(2)));
    assert!(!again.has_part(PartRef { index: 1, tag: Some("node2-1") }), "a discarded try is no part");
    // A restart forgets parts and tries alike.
    again.discard_parts().unwrap();
    assert!(s3.list("o/.staged/t").is_empty());

    // A large object is streamed by ranges; a rewritten one is refused.
    let big: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
    s3.put("src/big.bin", big.clone());
    let src = sluice_io::ObjectSource::new(&s3.url("src"), &opts).unwrap();
    let spec = sluice_job::spec::InputSpec {
        name: "data".into(),
        kind: sluice_job::spec::InputKind::UriFolder,
        path: sluice_job::spec::Location::Url(s3.url("src")),
        tabular: false,
    };
    let items = src.list(&spec).unwrap();
    assert_eq!(items.len(), 1);
    src.check(&items[0]).unwrap();
    let mut read = Vec::new();
    std::io::Read::read_to_end(&mut src.read_range(&items[0], 3..u64::MAX).unwrap(), &mut read).unwrap();
    assert!(read == big[3..], "a streamed range reads exactly its bytes");
    s3.put("src/big.bin", "rewritten");
    let e = src.check(&items[0]).unwrap_err();
    assert!(e.contains("s3://sluice/src/big.bin: changed after the job was planned"), "{e}");

    // A mini-batch's objects fetched ahead (one GET each, started at
    // once): its checks and reads are answered from those GETs, an object
    // changed since listing is refused by its GET's own metadata, and the
    // guard frees what was fetched.
    s3.put("src/a.txt", "alpha");
    s3.put("src/b.txt", "bravo");
    let items = src.list(&spec).unwrap();
    let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["a.txt", "b.txt", "big.bin"]);
    s3.put("src/b.txt", "bravo, rewritten");
    let ahead = src.prefetch(&items.iter().collect::<Vec<_>>());
    src.check(&items[0]).unwrap();
    s3.delete("src/a.txt");
    let mut read = String::new();
    std::io::Read::read_to_string(&mut src.read_range(&items[0], 0..u64::MAX).unwrap(), &mut read).unwrap();
    assert_eq!(read, "alpha", "the read did not come from the GET made ahead");
    let e = src.check(&items[1]).unwrap_err();
    assert!(e.contains("s3://sluice/src/b.txt: changed after the job was planned"), "{e}");
    drop(ahead);
    let e = src.check(&items[0]).unwrap_err();
    assert!(e.contains("s3://sluice/src/a.txt: deleted after the job was planned"), "{e}");
}
