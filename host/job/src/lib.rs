//! The job model of sluice: what a job is (spec), how its input is cut into
//! mini-batches (plan), the data that flows through a scorer (data), when a
//! job must stop (thresholds) and what a finished job reports (result).
//!
//! Nothing here knows wasmtime, and nothing touches files beyond reading the
//! spec, checking the metadata of the paths it names (input, scorer,
//! models, mounts, data inputs; for a data input folder, reading its
//! `MLmodel` or listing it to see whether it holds an ONNX model) and the
//! one durable file write every crate shares
//! (`durable`): the engine, the I/O layer and the scheduler all speak these
//! types. ARCHITECTURE.md ("Code map") says what each crate may know.

#![warn(missing_docs)]

pub mod data;
pub mod durable;
pub mod location;
pub mod plan;
pub mod result;
pub mod size;
pub mod spec;
pub mod text;
pub mod thresholds;

pub use data::{BatchOutput, Column, ColumnData, ItemError, RowOrigins, Table, row_label};
pub use plan::{InputItem, MiniBatchPlan, Plan};
pub use result::{Failure, ReasonCode};
pub use spec::{JobSpec, Limits, SpecError};
pub use thresholds::{Crossed, Tally, Thresholds};
