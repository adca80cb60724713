//! On-disk cache of compiled components, keyed by the wasm's hash and the
//! engine's compatibility hash (wasmtime version and compiler settings), so
//! a scorer is compiled once per machine, not once per job (a large
//! componentize-py guest takes ~30 s to compile).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::EngineError;

/// The cache file for `wasm` under `dir`.
pub(crate) fn entry(dir: &Path, engine: &Engine, wasm_hash: &str) -> PathBuf {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    dir.join(format!("{wasm_hash}-{:016x}.cwasm", h.finish()))
}

pub(crate) fn wasm_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Loads a cached compilation, or gets one from `compile` and stores it.
/// A damaged or incompatible cache entry is recompiled, never trusted; a
/// component that `compile` refuses (a limit, an invalid component) or
/// whose artifact does not load leaves no entry.
pub(crate) fn load_or_compile(
    engine: &Engine,
    path: &Path,
    wasm_hash: &str,
    dir: Option<&Path>,
    compile: impl FnOnce() -> Result<Vec<u8>, EngineError>,
) -> Result<(Component, bool), EngineError> {
    let entry = dir.map(|dir| entry(dir, engine, wasm_hash));
    // Read into memory rather than `deserialize_file`: a mapped file that
    // someone truncates while a job runs would crash the host (SIGBUS).
    if let Some(entry) = &entry
        && let Ok(cached) = std::fs::read(entry)
    {
        // SAFETY: see `deserialize`; the entry was written by `store` below
        // (only ever replaced by an atomic rename) for an engine with this
        // compatibility hash (it is in the file name).
        match unsafe { deserialize(engine, &cached) } {
            Ok(c) => return Ok((c, true)),
            Err(e) => tracing::warn!("ignoring unusable compiled cache entry {}: {e}", entry.display()),
        }
    }
    let compiled = compile()?;
    // SAFETY: see `deserialize`.
    let c = unsafe { deserialize(engine, &compiled) }
        .map_err(|source| EngineError::Artifact { path: path.to_path_buf(), source })?;
    if let Some(entry) = &entry
        && let Err(e) = store(entry, &compiled)
    {
        tracing::warn!("cannot write the compiled cache entry {}: {e}", entry.display());
    }
    Ok((c, false))
}

/// Loads a precompiled component.
///
/// # Safety
///
/// `bytes` must come from `Engine::precompile_component` of sluice's own
/// code (this process or the compiler child, `sluice __compile-component`,
/// which runs wasmtime's compiler on the untrusted wasm exactly as this
/// process would), possibly by way of a cache entry. wasmtime checks the
/// header and the compatibility hash and refuses what another engine made.
pub(crate) unsafe fn deserialize(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: the caller's promise above.
    unsafe { Component::deserialize(engine, bytes) }
}

fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache entries live in a folder");
    std::fs::create_dir_all(dir)?;
    sluice_job::durable::write_durably(path, bytes)
}
