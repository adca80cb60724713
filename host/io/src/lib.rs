//! Inputs, outputs and the work queue of sluice, each behind a small trait
//! so object storage or a distributed queue can replace the local, embedded
//! defaults without touching the scheduler.

pub mod encode;
pub mod inputs;
pub mod output;
pub mod queue;
pub mod tabular;

pub use encode::Encode;
pub use inputs::{FsItemSource, ItemSource, list_input};
pub use output::{LocalOutput, OutputStore};
pub use queue::{InProcessQueue, Lease, LeaseGuard, LeaseLost, WorkQueue};
pub use tabular::{TableFormat, TabularInput, TabularRows, plan_tabular, read_mini_batch};
