//! One module per fuzz target; each exports `run(&[u8]) -> Result<(), String>`.

pub mod result;
pub mod spec;
pub mod tabular;
