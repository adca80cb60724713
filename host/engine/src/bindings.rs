//! Host bindings generated from `wit/` (world `scorer`).

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "scorer",
    imports: { default: trappable },
    exports: { default: async },
});

pub use sluice::scorer::{log as wit_log, types as wit};
