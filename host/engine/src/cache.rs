//! On-disk cache of compiled components, keyed by the wasm's hash and the
//! engine's compatibility hash (wasmtime version and compiler settings), so
//! a scorer is compiled once per machine, not once per job (a large
//! componentize-py guest takes ~30 s to compile).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The cache file for `wasm` under `dir`.
pub(crate) fn entry(dir: &Path, engine: &Engine, wasm_hash: &str) -> PathBuf {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    dir.join(format!("{wasm_hash}-{:016x}.cwasm", h.finish()))
}

pub(crate) fn wasm_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Loads a cached compilation, or compiles and stores it. A damaged or
/// incompatible cache entry is recompiled, never trusted.
pub(crate) fn load_or_compile(
    engine: &Engine,
    bytes: &[u8],
    wasm_hash: &str,
    dir: Option<&Path>,
) -> wasmtime::Result<(Component, bool)> {
    let Some(dir) = dir else {
        return Ok((Component::new(engine, bytes)?, false));
    };
    let path = entry(dir, engine, wasm_hash);
    // Read into memory rather than `deserialize_file`: a mapped file that
    // someone truncates while a job runs would crash the host (SIGBUS).
    if let Ok(cached) = std::fs::read(&path) {
        // SAFETY: the entry was written by `Engine::precompile_component` of an
        // engine with the same compatibility hash (it is in the file name),
        // only ever replaced by an atomic rename; wasmtime checks its header
        // and rejects what it did not produce.
        match unsafe { Component::deserialize(engine, &cached) } {
            Ok(c) => return Ok((c, true)),
            Err(e) => tracing::warn!("ignoring unusable compiled cache entry {}: {e}", path.display()),
        }
    }
    let compiled = engine.precompile_component(bytes)?;
    if let Err(e) = store(&path, &compiled) {
        tracing::warn!("cannot write the compiled cache entry {}: {e}", path.display());
    }
    // SAFETY: `compiled` was produced just now by this engine.
    let c = unsafe { Component::deserialize(engine, &compiled)? };
    Ok((c, false))
}

fn store(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache entries live in a folder");
    std::fs::create_dir_all(dir)?;
    let tmp =
        dir.join(format!(".{}.{}.tmp", path.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}
