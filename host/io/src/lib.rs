//! Inputs, outputs, the work queue and the commit log of sluice, each behind a small trait
//! ([`InputSource`], [`OutputStore`], [`WorkQueue`], [`CommitLog`]) so object storage or a
//! distributed queue can replace the local, embedded defaults without touching the scheduler;
//! [`objects`] is object storage (`s3://`, `az://`, `gs://`) for inputs and outputs.

#![warn(missing_docs)]

pub mod commit;
pub mod encode;
pub mod inputs;
pub mod journal;
pub mod mltable;
pub mod objects;
pub mod output;
pub mod queue;
pub mod tabular;

pub use commit::{CommitLog, EntryHead};
pub use encode::Encode;
pub use inputs::{InputSource, LocalSource, list_input, read_whole};
pub use journal::{JournalError, LocalJournal, Manifest};
pub use mltable::{MlTable, MlTableError, ReadOptions};
pub use objects::{ObjectOutput, ObjectSource, StorageError, open_input, open_output};
pub use output::{LocalOutput, OutputStore, PartRef};
pub use queue::{InProcessQueue, Lease, LeaseGuard, LeaseLost, WorkQueue};
pub use tabular::{ItemChunks, TableFormat, TabularInput, TabularRows, plan_tabular, read_mini_batch};
