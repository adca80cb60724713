//! Why a mini-batch or an item failed, and what a finished job reports.

use serde::{Deserialize, Serialize};

use crate::thresholds::{Crossed, Tally, Thresholds};

/// Reason codes. `TIMEOUT`, `OOM`, `TRAP`, `USER_ERROR`, `INVALID_OUTPUT`
/// and `HOST_FAULT` fail a try of a whole mini-batch: it is retried on a
/// fresh instance up to `max_retries` times and, when its last try fails,
/// counts once against `mini_batch_error_threshold` and all of its items
/// against `error_threshold`. `ITEM_ERROR` and `INPUT_ERROR` mark a single
/// item of a mini-batch that otherwise succeeded: never retried, counted
/// against `error_threshold` only (ARCHITECTURE.md, "Invariants").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReasonCode {
    /// Out of wall-clock time or out of fuel.
    Timeout,
    /// The guest hit its memory cap.
    Oom,
    /// The guest trapped (a panic, stack overflow, unreachable...).
    Trap,
    /// `init` or `run` returned an error.
    UserError,
    /// `run` returned something that breaks the contract: items unaccounted
    /// for, ragged columns, a different schema, over the output cap.
    InvalidOutput,
    /// The scorer reported this item as failed.
    ItemError,
    /// The host could not read this item (too large, escaping symlink...).
    InputError,
    /// sluice itself failed (a bug: a panic in host code) while running
    /// this mini-batch; the message says where. The mini-batch failed,
    /// the job went on.
    HostFault,
    /// The cluster node running this try vanished (its lease on the
    /// mini-batch expired: killed, partitioned, out of memory); the try
    /// counts, and the mini-batch is delivered again to another node.
    NodeLost,
}

impl ReasonCode {
    /// The spelling in reports, CSV columns and on the terminal (as the
    /// README's table of reason codes lists them).
    pub fn as_str(&self) -> &'static str {
        match self {
            ReasonCode::Timeout => "TIMEOUT",
            ReasonCode::Oom => "OOM",
            ReasonCode::Trap => "TRAP",
            ReasonCode::UserError => "USER_ERROR",
            ReasonCode::InvalidOutput => "INVALID_OUTPUT",
            ReasonCode::ItemError => "ITEM_ERROR",
            ReasonCode::InputError => "INPUT_ERROR",
            ReasonCode::HostFault => "HOST_FAULT",
            ReasonCode::NodeLost => "NODE_LOST",
        }
    }
}

impl std::fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed try of a mini-batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// Why, coarsely: what thresholds and reports count by.
    pub code: ReasonCode,
    /// Bounded and escaped by [`Failure::new`]; may quote guest text.
    pub message: String,
}

impl Failure {
    /// A failure whose message is bounded to
    /// [`MAX_MESSAGE_BYTES`](crate::text::MAX_MESSAGE_BYTES) and escaped:
    /// messages often quote what a guest returned (column names, error
    /// text) and end up in every report and on the terminal.
    pub fn new(code: ReasonCode, message: impl Into<String>) -> Failure {
        let message = message.into();
        let message = crate::text::guest_text(&message, crate::text::MAX_MESSAGE_BYTES);
        Failure { code, message }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// How a job ended, as `job_result.json` and `sluice jobs list` show it.
/// A job that did not run every mini-batch of its plan is never
/// `completed` (ARCHITECTURE.md, "Invariants").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Every mini-batch and item succeeded.
    Completed,
    /// Done, with failures inside the thresholds.
    CompletedWithErrors,
    /// A threshold was crossed or the job could not run.
    Failed,
    /// Stopped on request (Ctrl-C, `sluice jobs cancel`) before it ran
    /// everything; what was committed is kept and `sluice resume`
    /// finishes it.
    Canceled,
}

/// Mini-batch counts of a finished job; `total` is the plan's size, and
/// `succeeded + failed + not_run == total`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BatchCounts {
    /// Mini-batches in the plan.
    pub total: u64,
    /// Succeeded, in this run or (counted in `resumed` too) an earlier one;
    /// they may hold item errors.
    pub succeeded: u64,
    /// Failed their last try.
    pub failed: u64,
    /// Mini-batches that needed more than one try.
    pub retried: u64,
    /// Tries in all, first tries included.
    pub tries: u64,
    /// Never run because the job stopped first.
    pub not_run: u64,
    /// Committed by an earlier run of the job and not run again (resume).
    pub resumed: u64,
}

/// Item counts of a finished job: files, or rows for tabular input.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ItemCounts {
    /// `succeeded + failed + not_run`: tabular rows are known once read,
    /// so this is what was counted, not what was planned.
    pub total: u64,
    /// Items the scorer returned rows for.
    pub succeeded: u64,
    /// Item errors, and every item of a failed mini-batch.
    pub failed: u64,
    /// Items of mini-batches that never ran.
    pub not_run: u64,
}

/// One of the first errors of a job, with where to look.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorEntry {
    /// The mini-batch's id (what `sluice replay` takes).
    pub mini_batch: String,
    /// Its position in input order.
    pub mini_batch_index: usize,
    /// The input item (file name) of an item error, or the mini-batch's
    /// inputs (`first..last`) when the whole mini-batch failed.
    pub item: Option<String>,
    /// The item's or the mini-batch's reason code.
    pub code: ReasonCode,
    /// Bounded and escaped, as every [`Failure`] message is.
    pub message: String,
}

/// Where a job's wall-clock time went, in seconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    /// Listing the input and cutting it into mini-batches.
    pub plan_s: f64,
    /// Loading the scorer: from the compile cache, or compiling it in the
    /// bounded child process.
    pub compile_s: f64,
    /// The worker pool, first mini-batch to last (the items/s of the
    /// summary are over this).
    pub run_s: f64,
    /// The whole job, the output's assembly and the reports included.
    pub total_s: f64,
    /// The sluice process's peak resident memory when the job finished, in
    /// MiB (the whole process: with several jobs in one process, theirs).
    #[serde(default)]
    pub peak_rss_mb: f64,
}

/// `job_result.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobResult {
    /// The job's name ([`JobSpec::name`](crate::JobSpec::name)).
    pub job: String,
    /// How it ended.
    pub status: JobStatus,
    /// Why the job failed, in one sentence.
    pub reason: Option<String>,
    /// The threshold that stopped the job, if one did.
    pub crossed: Option<Crossed>,
    /// What the job was held to.
    pub thresholds: Thresholds,
    /// The failure counts the thresholds were checked against.
    pub tally: Tally,
    /// Mini-batch counts.
    pub mini_batches: BatchCounts,
    /// Item counts.
    pub items: ItemCounts,
    /// The assembled output file (`task.append_row_to`); `None` without
    /// one, or when it could not be written (then `status` is `failed`).
    pub output: Option<String>,
    /// Rows in the output, from every succeeded mini-batch.
    pub output_rows: u64,
    /// The job directory, as given.
    pub job_dir: String,
    /// Where to look next: one line per mini-batch, one line per failed
    /// item, and the guest logs.
    pub processed_mini_batches: String,
    /// `errors.jsonl`: one line per failed item.
    pub errors: String,
    /// The `logs/` folder: one file per instance.
    pub logs: String,
    /// RFC 3339, seconds.
    pub started_at: String,
    /// Where the time went.
    pub timings: Timings,
    /// The first errors in the order they happened (at most 20, a cap the
    /// scheduler sets); the rest are in `errors.jsonl` and
    /// `processed_mini_batches.csv`.
    pub first_errors: Vec<ErrorEntry>,
    /// The spec's notes (keys accepted but ignored).
    pub notes: Vec<String>,
}
