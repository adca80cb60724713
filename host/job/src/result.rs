//! Why a mini-batch or an item failed, and what a finished job reports.

use serde::{Deserialize, Serialize};

use crate::thresholds::{Crossed, Tally, Thresholds};

/// Reason codes. `TIMEOUT`, `OOM`, `TRAP`, `USER_ERROR`, `INVALID_OUTPUT`
/// and `HOST_FAULT` fail a whole mini-batch (DESIGN §4); `ITEM_ERROR` and
/// `INPUT_ERROR` mark a single item.
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
}

impl ReasonCode {
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
    pub code: ReasonCode,
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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BatchCounts {
    pub total: u64,
    pub succeeded: u64,
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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ItemCounts {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Items of mini-batches that never ran.
    pub not_run: u64,
}

/// One of the first errors of a job, with where to look.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorEntry {
    pub mini_batch: String,
    pub mini_batch_index: usize,
    /// The input item (file name) of an item error, or the mini-batch's
    /// inputs (`first..last`) when the whole mini-batch failed.
    pub item: Option<String>,
    pub code: ReasonCode,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Timings {
    pub plan_s: f64,
    pub compile_s: f64,
    pub run_s: f64,
    pub total_s: f64,
    /// The sluice process's peak resident memory when the job finished, in
    /// MiB (the whole process: with several jobs in one process, theirs).
    #[serde(default)]
    pub peak_rss_mb: f64,
}

/// `job_result.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobResult {
    pub job: String,
    pub status: JobStatus,
    /// Why the job failed, in one sentence.
    pub reason: Option<String>,
    pub crossed: Option<Crossed>,
    pub thresholds: Thresholds,
    pub tally: Tally,
    pub mini_batches: BatchCounts,
    pub items: ItemCounts,
    pub output: Option<String>,
    pub output_rows: u64,
    pub job_dir: String,
    /// Where to look next: one line per mini-batch, one line per failed
    /// item, and the guest logs.
    pub processed_mini_batches: String,
    pub errors: String,
    pub logs: String,
    pub started_at: String,
    pub timings: Timings,
    pub first_errors: Vec<ErrorEntry>,
    pub notes: Vec<String>,
}
