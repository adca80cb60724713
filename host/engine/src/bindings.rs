//! Host bindings generated from `wit/` (world `scorer`): the bottom layer
//! of the crate. Every feature module implements one of the generated
//! `Host` traits; nothing here refers to a feature, so the resource type
//! the `onnx` interface hands out ([`ModelHandle`]) is defined here too.

use std::sync::Arc;

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "scorer",
    imports: { default: trappable },
    exports: { default: async },
    with: {
        "sluice:scorer/onnx.model": crate::bindings::ModelHandle,
    },
});

pub use sluice::scorer::{batch as wit_batch, log as wit_log, onnx as wit_onnx, types as wit};

/// A model opened by a guest: the host side of an `onnx.model` handle in
/// its instance's resource table.
pub struct ModelHandle {
    pub(crate) model: Arc<sluice_onnx::Model>,
}

impl std::fmt::Debug for ModelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelHandle").field("model", &self.model.name()).finish()
    }
}

/// A result column from its WIT form (values moved, not copied).
pub(crate) fn column_from_wit(c: wit::Column) -> sluice_job::data::Column {
    use sluice_job::data::ColumnData as D;
    sluice_job::data::Column {
        name: c.name,
        valid: c.valid,
        data: match c.data {
            wit::ColumnData::F32(v) => D::F32(v),
            wit::ColumnData::F64(v) => D::F64(v),
            wit::ColumnData::S64(v) => D::S64(v),
            wit::ColumnData::String(v) => D::String(v),
            wit::ColumnData::Bool(v) => D::Bool(v),
        },
    }
}

/// A mini-batch column in its WIT form (values moved, not copied).
pub(crate) fn column_to_wit(c: sluice_job::data::Column) -> wit::Column {
    use sluice_job::data::ColumnData as D;
    wit::Column {
        name: c.name,
        valid: c.valid,
        data: match c.data {
            D::F32(v) => wit::ColumnData::F32(v),
            D::F64(v) => wit::ColumnData::F64(v),
            D::S64(v) => wit::ColumnData::S64(v),
            D::String(v) => wit::ColumnData::String(v),
            D::Bool(v) => wit::ColumnData::Bool(v),
        },
    }
}
