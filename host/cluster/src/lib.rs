//! sluice jobs on many nodes, over NATS JetStream: the coordinator
//! ([`NatsDispatch`], the `sluice run --cluster` process) plans the job,
//! publishes one small message per mini-batch and commits the results its
//! nodes report; each node ([`run_worker`], `sluice worker`) takes
//! mini-batches, runs them on its sandboxed instances and reports back.
//!
//! What lives where on the server (created on first use, shared by every
//! job on the cluster):
//!
//! - stream `SLUICE_WORK` (work-queue retention), subjects
//!   `sluice.work.<job>`: one message per mini-batch, a
//!   [`sluice_runtime::remote::WorkItem`] (its items and row ranges, never
//!   its data). One durable pull consumer per job, `job-<job>`:
//!   `ack_wait` is the lease a node holds on a mini-batch (kept alive with
//!   in-progress acks while `run()` computes; a node that vanishes lets it
//!   expire, and the mini-batch is delivered again elsewhere),
//!   `max_deliver` is `max_retries + 1` (the delivery count is the try
//!   number) and `max_ack_pending` caps the job's mini-batches in flight
//!   cluster-wide (`instance_count x max_concurrency_per_instance`).
//! - stream `SLUICE_RESULTS` (limits retention), subjects
//!   `sluice.results.<job>`: one [`sluice_runtime::remote::TryReport`] per
//!   try. A stream, not a plain subject, so results produced while the
//!   coordinator was down are still there when `sluice resume` starts it
//!   again.
//! - key-value bucket `sluice_jobs`: per job its [`JobState`] (the ticket
//!   every node needs, and running / canceling / done), watched by every
//!   node; and `<job>.slot.<n>` keys, the `instance_count` places a node
//!   takes part in the job through (claimed with compare-and-set, kept
//!   with a heartbeat).
//! - object store `sluice_artifacts`: the scorer and the granted models by
//!   SHA-256; each node caches them and compiles the scorer once.
//!
//! **An ack is not a commit.** The server accepts an ack from a node whose
//! lease already expired (nats-server issues 6937, 4786), so a mini-batch
//! can be run and reported twice; the coordinator keeps the first result
//! per mini-batch and drops the rest (`Dispatched::report`).

#![warn(missing_docs)]

mod coordinator;
mod worker;

use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use serde::{Deserialize, Serialize};
use sluice_runtime::remote::JobTicket;

pub use coordinator::{ClusterSettings, NatsDispatch};
pub use worker::{WorkerOptions, run_worker};

/// The work stream.
pub const WORK_STREAM: &str = "SLUICE_WORK";
/// The results stream.
pub const RESULTS_STREAM: &str = "SLUICE_RESULTS";
/// The job-state bucket.
pub const JOBS_BUCKET: &str = "sluice_jobs";
/// The artifact store.
pub const ARTIFACTS: &str = "sluice_artifacts";

/// The subject a job's mini-batches are published on.
pub fn work_subject(job: &str) -> String {
    format!("sluice.work.{job}")
}

/// The subject a job's try reports are published on.
pub fn results_subject(job: &str) -> String {
    format!("sluice.results.{job}")
}

/// A job's durable consumer on the work stream.
pub fn consumer_name(job: &str) -> String {
    format!("job-{job}")
}

/// Where a job is in its life, as its coordinator publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobPhase {
    /// Nodes take its mini-batches.
    Running,
    /// Stopping (a threshold, a cancel): nodes start nothing new and
    /// finish what they hold.
    Canceling,
    /// Over: nodes let go of it.
    Done,
}

/// A job's entry in the job-state bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobState {
    /// Running, canceling or done.
    pub phase: JobPhase,
    /// Why it is stopping, once it is.
    pub reason: Option<String>,
    /// Nodes that may take part (`resources.instance_count`).
    pub instance_count: u32,
    /// The lease a node holds on a mini-batch, in seconds.
    pub lease_s: f64,
    /// What a node needs to run the job.
    pub ticket: JobTicket,
}

/// Why the cluster cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The server cannot be reached or refused us.
    #[error("cannot connect to the cluster at {url}: {why}")]
    Connect {
        /// The `nats://` URL.
        url: String,
        /// The client's error.
        why: String,
    },
    /// A JetStream call failed.
    #[error("cluster {what}: {why}")]
    Server {
        /// What was being done.
        what: String,
        /// The server's or client's error.
        why: String,
    },
}

pub(crate) fn server_err(
    what: impl Into<String>,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> ClusterError {
    let what = what.into();
    move |e| ClusterError::Server { what, why: e.to_string() }
}

/// Connects to `url` (`nats://host:port`, a comma-separated list for a
/// NATS cluster), failing within a few seconds when nothing answers.
pub(crate) async fn connect(url: &str) -> Result<async_nats::Client, ClusterError> {
    async_nats::ConnectOptions::new()
        .name("sluice")
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| ClusterError::Connect { url: url.to_string(), why: e.to_string() })
}

/// Makes sure the streams, the bucket and the object store exist.
pub(crate) async fn ensure_infra(js: &jetstream::Context) -> Result<(), ClusterError> {
    js.get_or_create_stream(stream::Config {
        name: WORK_STREAM.into(),
        subjects: vec!["sluice.work.>".into()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        // Publishing a job's mini-batches again (a resumed coordinator)
        // within this window is deduplicated by message id.
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .map_err(|e| server_err("creating the work stream")(Box::new(e)))?;
    js.get_or_create_stream(stream::Config {
        name: RESULTS_STREAM.into(),
        subjects: vec!["sluice.results.>".into()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        // A job's results are purged when it finishes; this bounds what a
        // job that never finishes leaves.
        max_age: Duration::from_secs(7 * 24 * 3600),
        ..Default::default()
    })
    .await
    .map_err(|e| server_err("creating the results stream")(Box::new(e)))?;
    if js.get_key_value(JOBS_BUCKET).await.is_err() {
        js.create_key_value(kv::Config {
            bucket: JOBS_BUCKET.into(),
            history: 1,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| server_err("creating the job-state bucket")(Box::new(e)))?;
    }
    if js.get_object_store(ARTIFACTS).await.is_err() {
        js.create_object_store(jetstream::object_store::Config {
            bucket: ARTIFACTS.into(),
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .map_err(|e| server_err("creating the artifact store")(Box::new(e)))?;
    }
    Ok(())
}

/// A job key is `[a-z0-9-]`; anything else in a subject or key from the
/// network is refused before it is used.
pub(crate) fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= 64 && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
