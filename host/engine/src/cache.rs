//! The on-disk compile cache: one folder (`--cache-dir`, `SLUICE_CACHE_DIR`,
//! by default the user's cache folder) holding
//!
//! - compiled components, `HASH-COMPAT.cwasm`, keyed by the wasm's sha256
//!   and the engine's compatibility hash (wasmtime version and compiler
//!   settings), so a scorer is compiled once per machine, not once per job
//!   (a componentize-py guest takes 12-25 s of CPU to compile);
//! - Cranelift's per-function cache, `incremental/KEY` (wasmtime's
//!   incremental compilation: the key is a hash of one function's IR and
//!   the compiler's settings), so a component that differs from one
//!   compiled before in a few functions, or only in its data (an edit of a
//!   Python or JavaScript scorer changes the interpreter's snapshot, not
//!   its code), compiles only what changed. Used for components of 8 MiB
//!   and more (`INCREMENTAL_MIN_BYTES`), a bounded number of new entries
//!   per compile.
//!
//! Both kinds of entry are evicted least-recently-used once the folder
//! holds more than its cap ([`cap`]: `SLUICE_CACHE_MAX_MB`, default
//! [`DEFAULT_CAP_MB`]); a hit refreshes an entry's modification time, which
//! is its last use. `sluice cache list|gc|clear` show and trim it. Only
//! files with the cache's own names are ever removed, whatever folder the
//! cache is pointed at.
//!
//! Entries are trusted as sluice's own compiler output (they are loaded as
//! code): the folder must be writable only by the user running sluice.
//! A damaged entry is detected and recompiled (wasmtime checks a component
//! artifact's header and compatibility hash, Cranelift a function entry's
//! version and encoding), never loaded half-way.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::error::EngineError;

/// The cache's size cap when `SLUICE_CACHE_MAX_MB` is unset: room for
/// ~50 compiled Python scorers (40 MB each) with their function entries.
pub const DEFAULT_CAP_MB: u64 = 4096;

/// The environment variable that sets the cap, in MiB.
pub const CAP_ENV: &str = "SLUICE_CACHE_MAX_MB";

/// The folder of Cranelift's per-function entries inside a cache folder.
const INCREMENTAL: &str = "incremental";

/// The cap in bytes: `SLUICE_CACHE_MAX_MB` when it is a number, else
/// [`DEFAULT_CAP_MB`].
pub fn cap() -> u64 {
    let mb = std::env::var(CAP_ENV).ok().and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(DEFAULT_CAP_MB);
    mb.saturating_mul(1 << 20)
}

/// The cache file for `wasm` under `dir`.
pub(crate) fn entry(dir: &Path, engine: &Engine, wasm_hash: &str) -> PathBuf {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    dir.join(format!("{wasm_hash}-{:016x}.cwasm", h.finish()))
}

pub(crate) fn wasm_hash(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The per-function entries' folder of the cache folder `dir`.
pub(crate) fn incremental_dir(dir: &Path) -> PathBuf {
    dir.join(INCREMENTAL)
}

/// Loads a cached compilation, or gets one from `compile` and stores it
/// (then trims the cache to [`cap`]). A damaged or incompatible cache
/// entry is recompiled, never trusted; a component that `compile` refuses
/// (a limit, an invalid component) or whose artifact does not load leaves
/// no entry.
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
            Ok(c) => {
                touch(entry);
                return Ok((c, true));
            }
            Err(e) => tracing::warn!("ignoring unusable compiled cache entry {}: {e}", entry.display()),
        }
    }
    let compiled = compile()?;
    // SAFETY: see `deserialize`.
    let c = unsafe { deserialize(engine, &compiled) }
        .map_err(|source| EngineError::Artifact { path: path.to_path_buf(), source })?;
    if let (Some(entry), Some(dir)) = (&entry, dir) {
        if let Err(e) = store(entry, &compiled) {
            tracing::warn!("cannot write the compiled cache entry {}: {e}", entry.display());
        }
        // Keep what was just written: it is the newest entry.
        match gc(dir, cap()) {
            Ok(t) if t.files > 0 => tracing::info!(
                "compile cache {}: evicted {} least recently used entries ({} MiB) to stay under {} MiB ({CAP_ENV})",
                dir.display(),
                t.files,
                t.bytes >> 20,
                cap() >> 20
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("cannot trim the compile cache {}: {e}", dir.display()),
        }
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

/// Marks `path` used now (its modification time is its last use).
fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// The smallest component compiled with the per-function cache: the big
/// interpreter guests (componentize-py 19 MB, componentize-js 12 MB) gain
/// from it; a Rust scorer (under 3 MB with its line tables) compiles in
/// about a second anyway, and a small component with very many functions
/// (the hostile kind) would only fill the folder with tiny files.
pub(crate) const INCREMENTAL_MIN_BYTES: usize = 8 << 20;

/// At most this many new per-function entries per compile (CPython in a
/// componentize-py guest is ~15,000 functions) ...
const MAX_INSERTS: usize = 100_000;
/// ... and at most this many bytes of them.
const MAX_INSERT_BYTES: usize = 512 << 20;

/// Cranelift's per-function cache as files under `incremental/`, one per
/// key (named by the key's sha256). Used by the compiler child: lookups
/// read the folder; new entries are held in memory and written by
/// [`FunctionCache::write_new`] only once the whole compile succeeded, so
/// a compile stopped at a limit (or refused) leaves nothing, and one
/// compile adds at most [`MAX_INSERTS`] entries and [`MAX_INSERT_BYTES`].
/// Each entry is written through a temp file and a rename (no fsync: a
/// lost entry is only a recompile), so a reader never sees half an entry.
#[derive(Debug)]
pub(crate) struct FunctionCache {
    dir: PathBuf,
    new: std::sync::Mutex<NewEntries>,
}

#[derive(Debug, Default)]
struct NewEntries {
    entries: std::collections::HashMap<PathBuf, Vec<u8>>,
    bytes: usize,
}

impl FunctionCache {
    /// The per-function cache of the cache folder `dir`.
    pub(crate) fn new(dir: &Path) -> FunctionCache {
        FunctionCache { dir: incremental_dir(dir), new: Default::default() }
    }

    fn path(&self, key: &[u8]) -> PathBuf {
        self.dir.join(hex::encode(&Sha256::digest(key)[..20]))
    }

    /// Writes the entries this compile added; returns how many.
    pub(crate) fn write_new(&self) -> std::io::Result<usize> {
        let new = std::mem::take(&mut *self.new.lock().expect("function cache"));
        if new.entries.is_empty() {
            return Ok(0);
        }
        std::fs::create_dir_all(&self.dir)?;
        let mut written = 0;
        for (path, value) in new.entries {
            let name = path.file_name().unwrap_or_default().display().to_string();
            let tmp = self.dir.join(format!(".{name}.{}.tmp", std::process::id()));
            match std::fs::write(&tmp, &value).and_then(|()| std::fs::rename(&tmp, &path)) {
                Ok(()) => written += 1,
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            }
        }
        Ok(written)
    }
}

impl wasmtime::CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let path = self.path(key);
        if let Some(v) = self.new.lock().expect("function cache").entries.get(&path) {
            return Some(Cow::Owned(v.clone()));
        }
        let bytes = std::fs::read(&path).ok()?;
        touch(&path);
        Some(Cow::Owned(bytes))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let path = self.path(key);
        let mut new = self.new.lock().expect("function cache");
        if new.entries.len() >= MAX_INSERTS || new.bytes + value.len() > MAX_INSERT_BYTES {
            return false;
        }
        new.bytes += value.len();
        new.entries.insert(path, value);
        true
    }
}

/// What kind of entry a cache file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A compiled component (`HASH-COMPAT.cwasm`).
    Component,
    /// One function of Cranelift's incremental cache.
    Function,
    /// A temp file an interrupted write left behind.
    Leftover,
}

/// One file of the cache.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    /// Where it is.
    pub path: PathBuf,
    /// What it is.
    pub kind: EntryKind,
    /// For a component: the sha256 of its `.wasm` (what `sluice validate`
    /// prints).
    pub wasm_hash: Option<String>,
    /// Its size.
    pub bytes: u64,
    /// When it was last used (or written).
    pub last_used: SystemTime,
}

/// The cache's files, oldest use first. A folder that does not exist is
/// an empty cache.
pub fn entries(dir: &Path) -> std::io::Result<Vec<CacheEntry>> {
    let mut out = Vec::new();
    scan(dir, false, &mut out)?;
    scan(&incremental_dir(dir), true, &mut out)?;
    out.sort_by_key(|e| e.last_used);
    Ok(out)
}

fn scan(dir: &Path, functions: bool, out: &mut Vec<CacheEntry>) -> std::io::Result<()> {
    let list = match std::fs::read_dir(dir) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for item in list {
        let item = item?;
        let Ok(meta) = item.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let name = item.file_name();
        let Some(name) = name.to_str() else { continue };
        let (kind, wasm_hash) = if is_leftover(name, functions) {
            (EntryKind::Leftover, None)
        } else if functions && is_function_name(name) {
            (EntryKind::Function, None)
        } else if !functions && let Some(hash) = component_hash(name) {
            (EntryKind::Component, Some(hash.to_string()))
        } else {
            continue;
        };
        out.push(CacheEntry {
            path: item.path(),
            kind,
            wasm_hash,
            bytes: meta.len(),
            last_used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        });
    }
    Ok(())
}

fn is_function_name(name: &str) -> bool {
    name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A temp file of this cache's own writes: `.ENTRY.PID.N.tmp` (a component
/// entry's `write_durably`) or `.KEY.PID.tmp` (a function entry), never
/// any other dot-file, whatever folder the cache is pointed at.
fn is_leftover(name: &str, functions: bool) -> bool {
    let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else { return false };
    if functions {
        inner.split_once('.').is_some_and(|(key, pid)| is_function_name(key) && pid.bytes().all(|b| b.is_ascii_digit()))
    } else {
        inner.find(".cwasm.").is_some_and(|at| component_hash(&inner[..at + 6]).is_some())
    }
}

/// The wasm hash of a component entry's file name, `HASH-COMPAT.cwasm`.
fn component_hash(name: &str) -> Option<&str> {
    let (hash, compat) = name.strip_suffix(".cwasm")?.split_once('-')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(hash, 64) && hex(compat, 16)).then_some(hash)
}

/// What [`gc`] or [`clear`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Trimmed {
    /// Files removed.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// Removes the least recently used entries until the cache holds at most
/// `cap` bytes, and any leftover temp file older than an hour (a write in
/// progress is younger).
pub fn gc(dir: &Path, cap: u64) -> std::io::Result<Trimmed> {
    let all = entries(dir)?;
    let mut total: u64 = all.iter().map(|e| e.bytes).sum();
    let mut trimmed = Trimmed::default();
    let stale = SystemTime::now() - std::time::Duration::from_secs(3600);
    for e in &all {
        let leftover = e.kind == EntryKind::Leftover && e.last_used < stale;
        if !leftover && total <= cap {
            continue;
        }
        if e.kind == EntryKind::Leftover && !leftover {
            continue;
        }
        if remove(&e.path)? {
            trimmed.files += 1;
            trimmed.bytes += e.bytes;
        }
        total -= e.bytes;
    }
    Ok(trimmed)
}

/// Removes every entry of the cache (only files with the cache's names).
pub fn clear(dir: &Path) -> std::io::Result<Trimmed> {
    let mut trimmed = Trimmed::default();
    for e in entries(dir)? {
        if remove(&e.path)? {
            trimmed.files += 1;
            trimmed.bytes += e.bytes;
        }
    }
    let _ = std::fs::remove_dir(incremental_dir(dir));
    Ok(trimmed)
}

/// Removes a file; `false` when another process removed it first.
fn remove(path: &Path) -> std::io::Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(dir: &Path, name: &str, bytes: usize, age_s: u64) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, vec![0u8; bytes]).unwrap();
        let f = std::fs::File::options().write(true).open(&p).unwrap();
        f.set_modified(SystemTime::now() - std::time::Duration::from_secs(age_s)).unwrap();
        p
    }

    fn component(n: u8) -> String {
        format!("{}-{}.cwasm", format!("{n:02x}").repeat(32), "0123456789abcdef")
    }

    #[test]
    fn gc_evicts_least_recently_used_first_and_never_foreign_files() {
        let d = tempfile::tempdir().unwrap();
        let old = put(d.path(), &component(1), 1000, 300);
        let mid = put(d.path(), &format!("{INCREMENTAL}/{}", "ab".repeat(20)), 1000, 200);
        let new = put(d.path(), &component(2), 1000, 100);
        let foreign = put(d.path(), "notes.txt", 50_000, 1000);
        let young_tmp = put(d.path(), &format!(".{}.7.0.tmp", component(3)), 10, 0);
        let stale_tmp = put(d.path(), &format!("{INCREMENTAL}/.{}.9.tmp", "cd".repeat(20)), 10, 7200);
        let users_tmp = put(d.path(), ".notes.tmp", 10, 7200);
        let all = entries(d.path()).unwrap();
        assert_eq!(all.len(), 5, "{all:?}");
        assert_eq!(all[0].kind, EntryKind::Leftover);
        assert_eq!(all.iter().find(|e| e.path == old).unwrap().wasm_hash.as_deref(), Some(&"01".repeat(32)[..]));

        // Over the cap by one entry: the oldest goes, with the stale temp file.
        let t = gc(d.path(), 2010).unwrap();
        assert_eq!(t, Trimmed { files: 2, bytes: 1010 });
        assert!(!old.exists() && !stale_tmp.exists());
        assert!(mid.exists() && new.exists() && foreign.exists() && young_tmp.exists() && users_tmp.exists());

        // A hit refreshes an entry: `mid` is now newer than `new`.
        touch(&mid);
        gc(d.path(), 1500).unwrap();
        assert!(mid.exists() && !new.exists());

        let t = clear(d.path()).unwrap();
        assert_eq!(t.files, 2);
        assert!(foreign.exists() && users_tmp.exists(), "clear removes only the cache's own files");
        assert!(entries(d.path()).unwrap().is_empty());
    }

    #[test]
    fn a_missing_folder_is_an_empty_cache() {
        let d = tempfile::tempdir().unwrap();
        let gone = d.path().join("nope");
        assert!(entries(&gone).unwrap().is_empty());
        assert_eq!(gc(&gone, 0).unwrap(), Trimmed::default());
    }

    #[test]
    fn function_entries_are_written_only_after_the_compile_and_bounded() {
        use wasmtime::CacheStore;
        let d = tempfile::tempdir().unwrap();
        let c = FunctionCache::new(d.path());
        assert!(c.get(b"k").is_none());
        assert!(c.insert(b"k", b"value".to_vec()));
        // Seen by this compile at once, on disk only once it succeeded.
        assert_eq!(c.get(b"k").as_deref(), Some(&b"value"[..]));
        assert!(entries(d.path()).unwrap().is_empty());
        assert_eq!(c.write_new().unwrap(), 1);
        assert_eq!(entries(d.path()).unwrap()[0].kind, EntryKind::Function);
        assert_eq!(FunctionCache::new(d.path()).get(b"k").as_deref(), Some(&b"value"[..]));
        // A compile that stops before `write_new` (a limit) leaves nothing.
        let stopped = FunctionCache::new(d.path());
        assert!(stopped.insert(b"other", vec![1]));
        drop(stopped);
        assert_eq!(entries(d.path()).unwrap().len(), 1);
        // One compile stores a bounded amount.
        let c = FunctionCache::new(d.path());
        assert!(!c.insert(b"huge", vec![0; MAX_INSERT_BYTES + 1]));
        c.new.lock().unwrap().entries.extend((0..MAX_INSERTS).map(|i| (PathBuf::from(i.to_string()), Vec::new())));
        assert!(!c.insert(b"more", vec![1]));
        // The cache folder is a file: nothing can be written under it.
        let file = d.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let c = FunctionCache::new(&file);
        assert!(c.insert(b"k", vec![1]));
        assert!(c.write_new().is_err());
    }
}
