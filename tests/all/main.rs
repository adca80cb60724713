//! sluice's integration tests: one binary, a module per topic. Guest
//! programs are built from source by `tests/build.rs`.

mod helpers;

mod adversarial;
mod azure;
mod cli;
mod cluster;
mod compile;
mod components;
mod engine;
mod folders;
mod hostile;
mod import_fuzz;
mod inputs;
mod jobs;
mod js;
mod large_input;
mod mltable;
mod new;
mod onnx;
mod output;
mod pipelines;
mod plugins;
mod python;
mod resume;
mod retries;
mod s3;
mod sandbox;
mod sdk_guests;
mod seams;
mod settings;
mod tabular;
mod thresholds;
mod timeouts;
