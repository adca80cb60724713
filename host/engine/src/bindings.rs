//! Host bindings generated from `wit/` (world `scorer`).

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "scorer",
    imports: { default: trappable },
    exports: { default: async },
    with: {
        "sluice:scorer/onnx.model": crate::onnx_host::ModelHandle,
    },
});

pub use sluice::scorer::{batch as wit_batch, log as wit_log, onnx as wit_onnx, types as wit};
