//! A node's side (`sluice worker`): follow the jobs on the cluster, take
//! their mini-batches, run them on this node's instances, report back.
//!
//! Each of the node's `max_concurrency` slots is an OS thread (with its
//! own instance per job, as a local worker has) that takes one mini-batch
//! at a time from a running job it takes part in. While `run()` computes,
//! an in-progress ack every third of the lease keeps the mini-batch this
//! node's; the report is published (and stored by the server) before the
//! message is acked, so a node killed at any moment loses at most the try
//! it was running, which the server delivers again once the lease expires.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, kv};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use sluice_job::{Failure, ReasonCode};
use sluice_runtime::Compiler;
use sluice_runtime::remote::{Artifact, JobTicket, NodeJob, NodeOptions, NodeSlot, TryReport, WorkItem};
use tokio::io::AsyncReadExt;

use crate::{
    ARTIFACTS, ClusterError, JOBS_BUCKET, JobPhase, JobState, WORK_STREAM, connect, consumer_name, ensure_infra,
    results_subject, server_err, valid_key,
};

/// A node's settings (`sluice worker` flags).
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// `nats://host:port`.
    pub cluster: String,
    /// Tags its logs, its reports and the parts it stages.
    pub name: String,
    /// Instances this node runs at once, over all jobs.
    pub max_concurrency: usize,
    /// Artifacts and compiled scorers.
    pub cache_dir: PathBuf,
    /// How scorers are compiled.
    pub compiler: Compiler,
}

/// A job as this node opened it (once, by the first slot that needs it),
/// or why it could not be.
type Opened = Arc<Mutex<Option<Result<Arc<NodeJob>, String>>>>;

/// What this node knows of one job.
struct Served {
    state: JobState,
    /// Opened once, by the first slot that needs it.
    job: Opened,
    consumer: Option<consumer::PullConsumer>,
    /// The `instance_count` slot this node holds: (key, revision).
    slot: Option<(String, u64)>,
}

struct Node {
    opts: WorkerOptions,
    js: jetstream::Context,
    kv: kv::Store,
    jobs: Mutex<BTreeMap<String, Served>>,
    stop: Arc<AtomicBool>,
}

/// Serves every job on the cluster at `opts.cluster` until `stop` is set;
/// then the tries in flight finish and report, and it returns.
pub fn run_worker(opts: WorkerOptions, stop: Arc<AtomicBool>) -> Result<(), ClusterError> {
    if !opts.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') || opts.name.is_empty() {
        return Err(ClusterError::Server {
            what: format!("node name {:?}", opts.name),
            why: "use only A-Z a-z 0-9 - _".into(),
        });
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("sluice-nats")
        .enable_all()
        .build()
        .map_err(|e| ClusterError::Server { what: "starting the client".into(), why: e.to_string() })?;
    let node = rt.block_on(async {
        let client = connect(&opts.cluster).await?;
        let js = jetstream::new(client);
        ensure_infra(&js).await?;
        let kv =
            js.get_key_value(JOBS_BUCKET).await.map_err(|e| server_err("opening the job-state bucket")(Box::new(e)))?;
        Ok::<_, ClusterError>(Arc::new(Node { opts: opts.clone(), js, kv, jobs: Mutex::new(BTreeMap::new()), stop }))
    })?;
    tracing::info!(node = %opts.name, "serving jobs on {} with {} slots", opts.cluster, opts.max_concurrency);
    let watcher = rt.spawn(watch_jobs(node.clone()));
    let heartbeat = rt.spawn(keep_slots(node.clone()));
    let handle = rt.handle().clone();
    std::thread::scope(|s| {
        for i in 0..opts.max_concurrency.max(1) {
            let node = node.clone();
            let handle = handle.clone();
            let name = format!("sluice-slot-{i}");
            let spawned = std::thread::Builder::new().name(name).spawn_scoped(s, move || slot_loop(&node, &handle, i));
            if let Err(e) = spawned {
                tracing::error!("cannot start slot {i}: {e}");
            }
        }
    });
    watcher.abort();
    heartbeat.abort();
    // Let go of the jobs' slots so other nodes can take them.
    rt.block_on(async {
        let slots: Vec<_> = node.jobs.lock().expect("jobs lock").values().filter_map(|j| j.slot.clone()).collect();
        for (key, rev) in slots {
            let _ = node.kv.delete_expect_revision(&key, Some(rev)).await;
        }
    });
    tracing::info!(node = %opts.name, "stopped");
    Ok(())
}

/// Follows the job-state bucket: jobs start, change phase, end.
async fn watch_jobs(node: Arc<Node>) {
    loop {
        let mut watch = match node.kv.watch_with_history(">").await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!("watching the jobs: {e}; again in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(entry) = watch.next().await {
            let Ok(entry) = entry else { break };
            // Slot keys (`<job>.slot.<n>`) are not job states.
            if entry.key.contains('.') {
                continue;
            }
            let mut jobs = node.jobs.lock().expect("jobs lock");
            match entry.operation {
                kv::Operation::Put => match serde_json::from_slice::<JobState>(&entry.value) {
                    Ok(state) if state.phase == JobPhase::Done => {
                        // Over: interrupt what still runs for it here, let
                        // go of its scorer, models and slot.
                        let Some(served) = jobs.remove(&entry.key) else { continue };
                        if let Ok(guard) = served.job.try_lock()
                            && let Some(Ok(job)) = &*guard
                        {
                            job.abandon("the job is over on the cluster");
                        }
                        if let Some((slot, rev)) = served.slot {
                            let kv = node.kv.clone();
                            tokio::spawn(async move {
                                let _ = kv.delete_expect_revision(&slot, Some(rev)).await;
                            });
                        }
                    }
                    Ok(state) if valid_key(&entry.key) && state.ticket.key == entry.key => {
                        let served = jobs.entry(entry.key.clone()).or_insert_with(|| Served {
                            state: state.clone(),
                            job: Arc::new(Mutex::new(None)),
                            consumer: None,
                            slot: None,
                        });
                        // A job run again (resumed) under the same key gets a
                        // fresh consumer; its opened scorer stays valid only
                        // for the same scorer.
                        if served.state.ticket.scorer.hash != state.ticket.scorer.hash
                            || served.state.ticket.source.text != state.ticket.source.text
                        {
                            served.job = Arc::new(Mutex::new(None));
                        }
                        served.consumer = None;
                        served.state = state;
                    }
                    _ => tracing::warn!("job state {:?} does not parse: ignored", entry.key),
                },
                kv::Operation::Delete | kv::Operation::Purge => {
                    jobs.remove(&entry.key);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Refreshes this node's `instance_count` slots (a slot not refreshed for
/// two leases is free for another node to take).
async fn keep_slots(node: Arc<Node>) {
    loop {
        let shortest = node.jobs.lock().expect("jobs lock").values().map(|j| j.state.lease_s).fold(6.0f64, f64::min);
        tokio::time::sleep(Duration::from_secs_f64((shortest / 3.0).clamp(0.2, 2.0))).await;
        let slots: Vec<(String, String, u64)> = node
            .jobs
            .lock()
            .expect("jobs lock")
            .iter()
            .filter_map(|(k, j)| j.slot.clone().map(|(s, r)| (k.clone(), s, r)))
            .collect();
        for (job, slot, rev) in slots {
            let r = node.kv.update(&slot, node.opts.name.clone().into_bytes().into(), rev).await;
            let mut jobs = node.jobs.lock().expect("jobs lock");
            if let Some(j) = jobs.get_mut(&job) {
                j.slot = r.ok().map(|rev| (slot, rev));
            }
        }
    }
}

/// One slot: take a mini-batch of a running job this node takes part in,
/// run it, report it; until the node stops.
fn slot_loop(node: &Node, rt: &tokio::runtime::Handle, i: usize) {
    let _span = tracing::info_span!("node", name = %node.opts.name, slot = i).entered();
    let mut slots: HashMap<String, NodeSlot> = HashMap::new();
    let mut turn = i;
    while !node.stop.load(Ordering::Acquire) {
        let running: Vec<String> = {
            let jobs = node.jobs.lock().expect("jobs lock");
            jobs.iter().filter(|(_, j)| j.state.phase == JobPhase::Running).map(|(k, _)| k.clone()).collect()
        };
        // Instances of jobs that are over.
        slots.retain(|k, _| running.contains(k));
        if running.is_empty() {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        turn = turn.wrapping_add(1);
        let key = running[turn % running.len()].clone();
        let Some(consumer) = rt.block_on(take_part(node, &key)) else {
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        let msg = rt.block_on(async {
            let mut batch = consumer.fetch().max_messages(1).expires(Duration::from_millis(500)).messages().await?;
            Ok::<_, async_nats::Error>(batch.next().await.and_then(Result::ok))
        });
        let msg = match msg {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(e) => {
                // The consumer went away (the job was resumed, the server
                // restarted): look it up again.
                tracing::debug!(job = %key, "fetching: {e}");
                if let Some(j) = node.jobs.lock().expect("jobs lock").get_mut(&key) {
                    j.consumer = None;
                }
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        run_message(node, rt, &key, msg, &mut slots);
    }
    for (_, slot) in slots {
        slot.close();
    }
}

/// This node's consumer of job `key`, once it holds one of the job's
/// `instance_count` slots; `None` while every slot is another node's.
async fn take_part(node: &Node, key: &str) -> Option<consumer::PullConsumer> {
    let (count, lease, held, consumer) = {
        let jobs = node.jobs.lock().expect("jobs lock");
        let j = jobs.get(key)?;
        (j.state.instance_count, j.state.lease_s, j.slot.is_some(), j.consumer.clone())
    };
    if !held {
        let me = node.opts.name.clone();
        let mut claimed = None;
        for n in 0..count.max(1) {
            let slot = format!("{key}.slot.{n}");
            match node.kv.entry(&slot).await {
                Ok(None) => {
                    if let Ok(rev) = node.kv.create(&slot, me.clone().into_bytes().into()).await {
                        claimed = Some((slot, rev));
                        break;
                    }
                }
                Ok(Some(e)) if e.operation != kv::Operation::Put => {
                    if let Ok(rev) = node.kv.update(&slot, me.clone().into_bytes().into(), e.revision).await {
                        claimed = Some((slot, rev));
                        break;
                    }
                }
                Ok(Some(e)) => {
                    let age = time_since(e.created);
                    if e.value.as_ref() == me.as_bytes() || age > Duration::from_secs_f64(2.0 * lease.max(1.0)) {
                        // Ours from before a restart, or its node stopped
                        // refreshing it: taken over with compare-and-set.
                        if let Ok(rev) = node.kv.update(&slot, me.clone().into_bytes().into(), e.revision).await {
                            claimed = Some((slot, rev));
                            break;
                        }
                    }
                }
                Err(_) => {}
            }
        }
        let (slot, rev) = claimed?;
        tracing::info!(job = key, "taking part in the job ({slot})");
        node.jobs.lock().expect("jobs lock").get_mut(key)?.slot = Some((slot, rev));
    }
    if let Some(c) = consumer {
        return Some(c);
    }
    let stream = node.js.get_stream(WORK_STREAM).await.ok()?;
    let c: consumer::PullConsumer = stream.get_consumer(&consumer_name(key)).await.ok()?;
    node.jobs.lock().expect("jobs lock").get_mut(key)?.consumer = Some(c.clone());
    Some(c)
}

fn time_since(t: time::OffsetDateTime) -> Duration {
    let now = time::OffsetDateTime::now_utc();
    let d = now - t;
    Duration::from_secs_f64(d.as_seconds_f64().max(0.0))
}

/// Runs one delivered mini-batch and settles its message.
fn run_message(
    node: &Node,
    rt: &tokio::runtime::Handle,
    key: &str,
    msg: jetstream::Message,
    slots: &mut HashMap<String, NodeSlot>,
) {
    let delivery = msg.info().map(|i| i.delivered.clamp(1, i64::from(u32::MAX)) as u32).unwrap_or(1);
    let work: WorkItem = match serde_json::from_slice(&msg.payload) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(job = key, "a mini-batch message that does not parse ({e}): dropped");
            let _ = rt.block_on(msg.ack_with(AckKind::Term));
            return;
        }
    };
    let (state, opener) = {
        let jobs = node.jobs.lock().expect("jobs lock");
        match jobs.get(key) {
            Some(j) => (j.state.clone(), j.job.clone()),
            None => {
                let _ = rt.block_on(msg.ack_with(AckKind::Nak(None)));
                return;
            }
        }
    };
    let lease = Duration::from_secs_f64(state.lease_s.max(1.0));
    let msg = Arc::new(msg);
    // Keeps the lease while the try runs (opening the job included).
    let ticker = rt.spawn({
        let msg = msg.clone();
        async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let _ = msg.ack_with(AckKind::Progress).await;
            }
        }
    });
    let last = delivery >= state.ticket.max_tries;
    let report = match open_job(node, rt, &state.ticket, &opener) {
        Ok(job) => {
            let slot = match slots.entry(key.to_string()) {
                std::collections::hash_map::Entry::Occupied(e) => Some(e.into_mut()),
                std::collections::hash_map::Entry::Vacant(v) => NodeSlot::new().ok().map(|s| v.insert(s)),
            };
            match slot {
                Some(slot) => {
                    let r = job.run_try(slot, &work, delivery);
                    job.flush_logs();
                    r
                }
                None => TryReport::failed(
                    &work,
                    delivery,
                    &node.opts.name,
                    Failure::new(ReasonCode::HostFault, "cannot start an async runtime for the instance"),
                    last,
                ),
            }
        }
        Err(why) => TryReport::failed(
            &work,
            delivery,
            &node.opts.name,
            Failure::new(ReasonCode::HostFault, format!("node {} cannot run this job: {why}", node.opts.name)),
            last,
        ),
    };
    ticker.abort();
    let done = report.succeeded || report.last;
    let payload = serde_json::to_vec(&report).expect("a report serialises");
    let published = rt.block_on(async {
        for attempt in 0..5u32 {
            match node.js.publish(results_subject(key), payload.clone().into()).await {
                Ok(ack) => match ack.await {
                    Ok(_) => return true,
                    Err(e) => tracing::warn!(job = key, "publishing a report: {e}"),
                },
                Err(e) => tracing::warn!(job = key, "publishing a report: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        false
    });
    if !published {
        // Not acked: the lease expires and the mini-batch runs again.
        tracing::error!(job = key, mini_batch = %work.mini_batch.id, "the report could not be published; the mini-batch will be delivered again");
        return;
    }
    let kind = if done { AckKind::Ack } else { AckKind::Nak(None) };
    if let Err(e) = rt.block_on(msg.ack_with(kind)) {
        tracing::warn!(job = key, "settling mini-batch {}: {e}", work.mini_batch.id);
    }
}

/// The job opened on this node (artifacts fetched and verified, scorer
/// compiled or loaded from the cache), opened once whichever slot asks
/// first.
fn open_job(
    node: &Node,
    rt: &tokio::runtime::Handle,
    ticket: &JobTicket,
    opener: &Mutex<Option<Result<Arc<NodeJob>, String>>>,
) -> Result<Arc<NodeJob>, String> {
    let mut slot = opener.lock().expect("opener lock");
    if let Some(r) = &*slot {
        return r.clone();
    }
    let opened = (|| {
        let dir = node.opts.cache_dir.join("artifacts");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let scorer = rt.block_on(fetch_artifact(node, &ticket.scorer, &dir, "wasm"))?;
        let mut models = Vec::new();
        for (name, a) in &ticket.models {
            models.push((name.clone(), rt.block_on(fetch_artifact(node, a, &dir, "onnx"))?));
        }
        let opts = NodeOptions {
            node: node.opts.name.clone(),
            cache_dir: node.opts.cache_dir.clone(),
            compiler: node.opts.compiler.clone(),
            max_concurrency: node.opts.max_concurrency,
        };
        let job = NodeJob::open(ticket, &scorer, &models, &opts).map_err(|e| e.to_string())?;
        tracing::info!(job = %ticket.key, "opened job {} ({} instances here)", ticket.name, job.concurrency());
        Ok(Arc::new(job))
    })();
    if let Err(why) = &opened {
        tracing::error!(job = %ticket.key, "cannot open job {}: {why}", ticket.name);
    }
    *slot = Some(opened.clone());
    opened
}

/// The node's copy of `a` (fetched from the artifact store when missing),
/// checked against its hash.
async fn fetch_artifact(node: &Node, a: &Artifact, dir: &Path, ext: &str) -> Result<PathBuf, String> {
    if a.hash.len() != 64 || !a.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("artifact hash {:?} is not a SHA-256", a.hash));
    }
    let path = dir.join(format!("{}.{ext}", a.hash));
    if path.is_file() && file_hash(&path).ok().as_deref() == Some(a.hash.as_str()) {
        return Ok(path);
    }
    let store = node.js.get_object_store(ARTIFACTS).await.map_err(|e| format!("the artifact store: {e}"))?;
    let mut obj = store.get(&a.hash).await.map_err(|e| format!("artifact {}: {e}", &a.hash[..12]))?;
    let mut bytes = Vec::with_capacity(a.size.min(1 << 30) as usize);
    obj.read_to_end(&mut bytes).await.map_err(|e| format!("artifact {}: {e}", &a.hash[..12]))?;
    let got = hex::encode(Sha256::digest(&bytes));
    if got != a.hash {
        return Err(format!("artifact {} arrived with sha256 {}", &a.hash[..12], &got[..12]));
    }
    let tmp = dir.join(format!("{}.{ext}.partial-{}", a.hash, std::process::id()));
    std::fs::write(&tmp, &bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}

fn file_hash(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}
