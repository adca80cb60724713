//! The coordinator's side: publish a job's mini-batches, follow its
//! results, tell the nodes when it stops.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use sluice_runtime::remote::{Dispatch, Dispatched, TryReport};

use crate::{
    ARTIFACTS, ClusterError, JOBS_BUCKET, JobPhase, JobState, RESULTS_STREAM, WORK_STREAM, connect, consumer_name,
    ensure_infra, results_subject, server_err, work_subject,
};

/// How a job uses the cluster.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// `nats://host:port`.
    pub url: String,
    /// The lease a node holds on a mini-batch: a node that has not
    /// reported or sent an in-progress ack for this long is taken for
    /// lost, and its mini-batch is delivered again (`NODE_LOST`).
    pub lease: Duration,
    /// Nodes that may take part (`resources.instance_count`).
    pub instance_count: u32,
    /// Instances per node (`max_concurrency_per_instance`): with
    /// `instance_count`, the job's mini-batches in flight cluster-wide.
    pub max_concurrency: u32,
}

/// Runs a prepared job's mini-batches on a NATS JetStream cluster's nodes
/// (`sluice worker`); see the crate docs for what lives on the server.
#[derive(Debug)]
pub struct NatsDispatch {
    settings: ClusterSettings,
}

impl NatsDispatch {
    /// A dispatcher for `settings`.
    pub fn new(settings: ClusterSettings) -> NatsDispatch {
        NatsDispatch { settings }
    }
}

impl Dispatch for NatsDispatch {
    fn dispatch(&self, job: &Dispatched<'_, '_>) -> Result<(), String> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sluice-nats")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the cluster client: {e}"))?;
        rt.block_on(coordinate(&self.settings, job)).map_err(|e| e.to_string())
    }
}

async fn coordinate(s: &ClusterSettings, job: &Dispatched<'_, '_>) -> Result<(), ClusterError> {
    let ticket = job.ticket().clone();
    let key = ticket.key.clone();
    let client = connect(&s.url).await?;
    let js = jetstream::new(client.clone());
    ensure_infra(&js).await?;

    // The scorer and the models, by content hash.
    let store =
        js.get_object_store(ARTIFACTS).await.map_err(|e| server_err("opening the artifact store")(Box::new(e)))?;
    let mut artifacts = vec![ticket.scorer.clone()];
    artifacts.extend(ticket.models.iter().map(|(_, a)| a.clone()));
    for a in &artifacts {
        if store.info(&a.hash).await.is_ok() {
            continue;
        }
        let mut f = tokio::fs::File::open(&a.path).await.map_err(|e| ClusterError::Server {
            what: format!("uploading {}", a.path.display()),
            why: e.to_string(),
        })?;
        store
            .put(a.hash.as_str(), &mut f)
            .await
            .map_err(|e| server_err(format!("uploading {}", a.path.display()))(Box::new(e)))?;
        tracing::info!("uploaded {} ({} bytes) as {}", a.path.display(), a.size, &a.hash[..12]);
    }

    let kv =
        js.get_key_value(JOBS_BUCKET).await.map_err(|e| server_err("opening the job-state bucket")(Box::new(e)))?;
    let mut state = JobState {
        phase: JobPhase::Running,
        reason: None,
        instance_count: s.instance_count.max(1),
        lease_s: s.lease.as_secs_f64(),
        ticket,
    };
    let put_state = |state: &JobState| {
        let kv = kv.clone();
        let key = key.clone();
        let bytes = serde_json::to_vec(state).expect("a job state serialises");
        async move { kv.put(key, bytes.into()).await.map_err(|e| server_err("writing the job state")(Box::new(e))) }
    };

    // A fresh queue for this run: what an earlier (killed) coordinator
    // published is dropped and published again below; its results stay in
    // the results stream and are read first.
    let work = js.get_stream(WORK_STREAM).await.map_err(|e| server_err("opening the work stream")(Box::new(e)))?;
    let _ = work.delete_consumer(&consumer_name(&key)).await;
    work.purge().filter(work_subject(&key)).await.map_err(|e| server_err("clearing the job's queue")(Box::new(e)))?;
    let max_tries = state.ticket.max_tries;
    work.create_consumer(consumer::pull::Config {
        durable_name: Some(consumer_name(&key)),
        filter_subject: work_subject(&key),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: s.lease,
        max_deliver: i64::from(max_tries),
        max_ack_pending: i64::from(s.instance_count.max(1)) * i64::from(s.max_concurrency.max(1)),
        ..Default::default()
    })
    .await
    .map_err(|e| server_err("creating the job's consumer")(Box::new(e)))?;
    put_state(&state).await?;

    // Results: every report of this job since it first ran.
    let results =
        js.get_stream(RESULTS_STREAM).await.map_err(|e| server_err("opening the results stream")(Box::new(e)))?;
    let mut reports = results
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: results_subject(&key),
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| server_err("following the job's results")(Box::new(e)))?
        .messages()
        .await
        .map_err(|e| server_err("following the job's results")(Box::new(e)))?;
    // A mini-batch whose last try allowed was lost with its node is not
    // delivered again; the server says so only in an advisory.
    let mut exhausted = client
        .subscribe(format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{WORK_STREAM}.{}", consumer_name(&key)))
        .await
        .map_err(|e| server_err("following the job's advisories")(Box::new(e)))?;

    // Publish the mini-batches, remembering which stream sequence is which.
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let mut by_seq: HashMap<u64, usize> = HashMap::new();
    let items = job.work();
    for chunk in items.chunks(256) {
        let mut acks = Vec::with_capacity(chunk.len());
        for w in chunk {
            let payload = serde_json::to_vec(w).expect("a work item serialises");
            let msg = jetstream::message::PublishMessage::build()
                .payload(payload.into())
                .message_id(format!("{key}.{run}.{}", w.mini_batch.index));
            let ack = js
                .send_publish(work_subject(&key), msg)
                .await
                .map_err(|e| server_err(format!("publishing mini-batch {}", w.mini_batch.id))(Box::new(e)))?;
            acks.push((w.mini_batch.index, ack));
        }
        for (index, ack) in acks {
            let ack = ack.await.map_err(|e| server_err("publishing the job's mini-batches")(Box::new(e)))?;
            by_seq.insert(ack.sequence, index);
        }
    }
    drop(items);
    tracing::info!("published {} mini-batches to {} (job {key})", by_seq.len(), s.url);

    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut stopping_since: Option<Instant> = None;
    loop {
        tokio::select! {
            m = reports.next() => match m {
                Some(Ok(m)) => match serde_json::from_slice::<TryReport>(&m.payload) {
                    Ok(r) => tokio::task::block_in_place(|| job.report(r)),
                    Err(e) => tracing::warn!("a report that does not parse ({e}): dropped"),
                },
                Some(Err(e)) => tracing::warn!("following the results: {e}"),
                None => return Err(ClusterError::Server { what: "following the job's results".into(), why: "the stream ended".into() }),
            },
            a = exhausted.next() => if let Some(a) = a {
                match serde_json::from_slice::<serde_json::Value>(&a.payload).ok().and_then(|v| v.get("stream_seq").and_then(|s| s.as_u64())) {
                    Some(seq) => match by_seq.get(&seq) {
                        Some(&index) => tokio::task::block_in_place(|| job.lost(index, &format!(
                            "the node running its last try (of {max_tries}) vanished (its lease expired before it reported)"
                        ))),
                        None => tracing::warn!("a max-deliveries advisory for an unknown message {seq}"),
                    },
                    None => tracing::warn!("a max-deliveries advisory that does not parse"),
                }
            },
            _ = tick.tick() => {
                if job.open() == 0 {
                    break;
                }
                if job.stopping() {
                    let since = *stopping_since.get_or_insert_with(Instant::now);
                    if state.phase == JobPhase::Running {
                        state.phase = JobPhase::Canceling;
                        state.reason = job.stop_reason();
                        put_state(&state).await?;
                    }
                    // Nodes finish what they hold; the coordinator waits for
                    // their reports until none is in flight, or the grace
                    // period ends (a nak'd message stays in the consumer's
                    // pending count until it is delivered again, which no
                    // node does for a stopping job: the count alone can
                    // stay above 0 for good).
                    let in_flight = work
                        .consumer_info(consumer_name(&key))
                        .await
                        .map(|i| i.num_ack_pending)
                        .unwrap_or(0);
                    let settled = in_flight == 0 && since.elapsed() > Duration::from_millis(300);
                    if settled || job.abandoned() || since.elapsed() > job.grace() {
                        break;
                    }
                }
            }
        }
    }

    state.phase = JobPhase::Done;
    put_state(&state).await?;
    let _ = work.delete_consumer(&consumer_name(&key)).await;
    let _ = work.purge().filter(work_subject(&key)).await;
    if job.open() == 0 {
        // Everything has its outcome and is journaled: the reports are not
        // needed again.
        let _ = results.purge().filter(results_subject(&key)).await;
    }
    Ok(())
}
