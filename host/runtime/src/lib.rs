//! Runs a job on one node: plans it, starts `max_concurrency` sandboxed
//! instances that pull mini-batches from the queue, retries failed tries on
//! fresh instances, checks the thresholds, journals every succeeded
//! mini-batch (so a killed job resumes with exactly-once output), assembles
//! the output in input order and writes the job directory. Also the job
//! registry (`jobs`) and `replay` of one mini-batch.
//!
//! The scheduler speaks the job model (`sluice-job`), the I/O traits
//! (`sluice-io`) and the engine facade (`sluice-engine`); it never touches
//! wasmtime types.

#![warn(missing_docs)]

pub mod components;
mod exec;
mod folders;
mod grants;
mod guest_log;
pub mod jobdir;
pub mod jobs;
pub mod monitor;
pub mod observer;
pub mod pipeline;
mod progress;
pub mod remote;
mod replay;
mod report;
mod scheduler;

pub use jobdir::{BatchRow, BatchRowStatus, ErrorLine, JobDir, JobDirError, ProgressFile, ResourceSummary};
pub use observer::{
    BatchFinished, BatchOutcome, BatchStarted, CancelToken, CountersSnapshot, JobStarted, NoObserver, Observers,
    RunObserver,
};
pub use progress::{LogWriter, ProgressMode, ProgressObserver};
pub use replay::{Replay, replay};
pub use scheduler::{
    Backends, CANCEL_FILE, PreparedJob, RunError, RunOptions, prepare, prepare_local, request_cancel, run_job,
    run_job_with_output,
};
pub use sluice_engine::Compiler;
pub use sluice_job::result::{JobResult, JobStatus};
