//! The journal: what makes a job resumable with exactly-once output.
//!
//! `journal/manifest.json` records what the job's results depend on (the
//! scorer's and models' hashes, the settings that change results). Each
//! mini-batch that succeeds writes its staged output part and then its
//! entry under a temp name; a committer thread makes
//! them durable in groups (one `syncfs` of the job directory's filesystem
//! for every entry waiting, then renames the entries into place as
//! `journal/NNNNNNNN.json`). So an entry is visible only once its part is
//! complete and on disk, and a crash at any moment (a killed process or a
//! lost machine) leaves an exact committed set; mini-batches whose entries
//! were still waiting simply run again. A group costs one flush, not two
//! per mini-batch (an fsync is ~1.7 ms on the test VM: two per mini-batch
//! of ten small files was several times the scoring time). A resumed job
//! skips the mini-batches with an entry whose id matches the plan, runs the
//! rest, and assembles the output from the parts in input order.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sluice_io::output::write_durably;

impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

use crate::report::BatchRecord;

/// What a job's results depend on. A job directory refuses to resume
/// under a different one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// sha256 of the scorer's `.wasm`.
    pub scorer: String,
    /// Granted model name -> sha256 of its `.onnx`.
    pub models: BTreeMap<String, String>,
    /// Settings that change results (config, arguments, environment,
    /// input, sizing, partitions, output format), each as `key=value`.
    pub settings: BTreeMap<String, String>,
}

impl Manifest {
    /// What differs from `other`, in words, or `None`.
    pub fn differences(&self, other: &Manifest) -> Option<String> {
        let mut d = Vec::new();
        if self.scorer != other.scorer {
            d.push(format!("the scorer changed ({} -> {})", short(&self.scorer), short(&other.scorer)));
        }
        let names: std::collections::BTreeSet<&String> = self.models.keys().chain(other.models.keys()).collect();
        for name in names {
            match (self.models.get(name), other.models.get(name)) {
                (Some(a), Some(b)) if a != b => {
                    d.push(format!("model `{name}` changed ({} -> {})", short(a), short(b)))
                }
                (Some(_), None) => d.push(format!("model `{name}` is no longer granted")),
                (None, Some(_)) => d.push(format!("model `{name}` is newly granted")),
                _ => {}
            }
        }
        let keys: std::collections::BTreeSet<&String> = self.settings.keys().chain(other.settings.keys()).collect();
        for k in keys {
            let (a, b) = (self.settings.get(k), other.settings.get(k));
            if a != b {
                let show = |v: Option<&String>| v.map_or("(unset)".to_string(), |v| format!("`{v}`"));
                d.push(format!("{k} changed ({} -> {})", show(a), show(b)));
            }
        }
        (!d.is_empty()).then(|| d.join("; "))
    }

    /// A hash of what a mini-batch's result depends on (everything here
    /// but the output format, which changes how rows are written, not
    /// which), mixed into every mini-batch id.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut m = self.clone();
        m.settings.remove(OUTPUT_KEY);
        let json = serde_json::to_vec(&m).unwrap_or_default();
        hex::encode(&Sha256::digest(json)[..8])
    }
}

/// The settings key of the output format.
pub const OUTPUT_KEY: &str = "task.append_row_to";

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(
        "{dir}: this job directory holds a job run with other inputs to its results: {what}. \
         Resume it with what it was run with, start it over with --restart, or use another --job-dir"
    )]
    Changed { dir: PathBuf, what: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// The journal of one job directory.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
    committer: Committer,
}

/// Entries waiting for the flush that makes them visible.
#[derive(Debug, Default)]
struct Pending {
    /// (temp name, final name).
    entries: Vec<(PathBuf, PathBuf)>,
    closing: bool,
    error: Option<io::Error>,
}

#[derive(Debug)]
struct Committer {
    shared: std::sync::Arc<(std::sync::Mutex<Pending>, std::sync::Condvar)>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Committer {
    fn start(dir: PathBuf) -> io::Result<Committer> {
        let shared = std::sync::Arc::new((std::sync::Mutex::new(Pending::default()), std::sync::Condvar::new()));
        let s = shared.clone();
        let handle = std::thread::Builder::new().name("sluice-journal".into()).spawn(move || {
            let (lock, cv) = &*s;
            loop {
                let (batch, closing) = {
                    let mut p = cv
                        .wait_while(lock.lock().expect("journal"), |p| p.entries.is_empty() && !p.closing)
                        .expect("journal");
                    (std::mem::take(&mut p.entries), p.closing)
                };
                if !batch.is_empty()
                    && let Err(e) = flush(&dir, &batch)
                {
                    lock.lock().expect("journal").error.get_or_insert(e);
                }
                if closing && lock.lock().expect("journal").entries.is_empty() {
                    // Make the last renames durable too.
                    if let Err(e) = sync_dir_fs(&dir) {
                        lock.lock().expect("journal").error.get_or_insert(e);
                    }
                    break;
                }
            }
        })?;
        Ok(Committer { shared, handle: Some(handle) })
    }
}

/// One group: everything written so far reaches the disk, then the
/// entries become visible.
fn flush(dir: &Path, batch: &[(PathBuf, PathBuf)]) -> io::Result<()> {
    sync_dir_fs(dir)?;
    for (tmp, dst) in batch {
        std::fs::rename(tmp, dst)?;
    }
    Ok(())
}

/// Flushes the filesystem holding `dir` (the job directory's: its staged
/// parts and journal).
fn sync_dir_fs(dir: &Path) -> io::Result<()> {
    let f = std::fs::File::open(dir)?;
    rustix::fs::syncfs(&f).map_err(io::Error::from)
}

/// The output columns fixed by the first mini-batch that had rows, kept
/// so a resumed job writes the same header and checks the same schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SavedSchema {
    pub columns: Vec<(String, String)>,
    pub header: Vec<u8>,
}

impl Journal {
    /// Opens (or starts) the journal of `job_dir` for a job with `manifest`.
    /// `restart` forgets what an earlier run committed.
    pub(crate) fn open(job_dir: &Path, manifest: &Manifest, restart: bool) -> Result<Journal, JournalError> {
        let dir = job_dir.join("journal");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| JournalError::Io { path, source }
        };
        // Staged parts belong to the output store, which discards its own
        // on a restart (removing its folder here broke every later stage).
        if restart {
            match std::fs::remove_dir_all(&dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io(&dir)(e)),
                _ => {}
            }
        }
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let path = dir.join("manifest.json");
        match std::fs::read(&path) {
            Ok(bytes) => {
                let old: Manifest = serde_json::from_slice(&bytes)
                    .map_err(|e| io(&path)(io::Error::new(io::ErrorKind::InvalidData, e)))?;
                if let Some(what) = old.differences(manifest) {
                    return Err(JournalError::Changed { dir: job_dir.to_path_buf(), what });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let json = serde_json::to_vec_pretty(manifest).expect("a manifest serialises");
                write_durably(&path, &json).map_err(io(&path))?;
            }
            Err(e) => return Err(io(&path)(e)),
        }
        let committer = Committer::start(dir.clone()).map_err(io(&dir))?;
        Ok(Journal { dir, committer })
    }

    /// The journal's folder (`JOB_DIR/journal`).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, index: usize) -> PathBuf {
        self.dir.join(format!("{index:08}.json"))
    }

    /// Records a succeeded mini-batch, after its part is staged: the entry
    /// becomes visible with the committer's next flush.
    pub(crate) fn commit(&self, record: &BatchRecord) -> io::Result<()> {
        let json = serde_json::to_vec(record).map_err(io::Error::other)?;
        let dst = self.entry(record.index);
        let tmp = dst.with_extension("json.tmp");
        std::fs::write(&tmp, json)?;
        let (lock, cv) = &*self.committer.shared;
        let mut p = lock.lock().expect("journal");
        if let Some(e) = &p.error {
            return Err(io::Error::new(e.kind(), e.to_string()));
        }
        p.entries.push((tmp, dst));
        cv.notify_one();
        Ok(())
    }

    /// Flushes what is waiting and stops the committer. An error means
    /// some entries may be missing: those mini-batches run again on resume.
    pub(crate) fn close(&mut self) -> io::Result<()> {
        let Some(h) = self.committer.handle.take() else { return Ok(()) };
        {
            let (lock, cv) = &*self.committer.shared;
            lock.lock().expect("journal").closing = true;
            cv.notify_one();
        }
        let _ = h.join();
        match self.committer.shared.0.lock().expect("journal").error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The committed record of mini-batch `index`, when it has one with
    /// this `id` (an entry of another plan does not count).
    pub(crate) fn committed(&self, index: usize, id: &str) -> Option<BatchRecord> {
        let bytes = std::fs::read(self.entry(index)).ok()?;
        let r: BatchRecord = serde_json::from_slice(&bytes).ok()?;
        (r.id == id && r.index == index).then_some(r)
    }

    pub(crate) fn save_schema(&self, s: &SavedSchema) -> io::Result<()> {
        let json = serde_json::to_vec(s).map_err(io::Error::other)?;
        write_durably(&self.dir.join("schema.json"), &json)
    }

    pub(crate) fn schema(&self) -> Option<SavedSchema> {
        serde_json::from_slice(&std::fs::read(self.dir.join("schema.json")).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            version: 1,
            scorer: "a".repeat(64),
            models: BTreeMap::from([("m".to_string(), "b".repeat(64))]),
            settings: BTreeMap::from([("task.config.k".to_string(), "1".to_string())]),
        }
    }

    #[test]
    fn differences_name_what_changed() {
        let a = manifest();
        assert_eq!(a.differences(&a), None);
        let mut b = manifest();
        b.scorer = "c".repeat(64);
        b.settings.insert("task.config.k".into(), "2".into());
        b.models.clear();
        let d = a.differences(&b).unwrap();
        assert!(d.contains("the scorer changed (aaaaaaaaaaaa -> cccccccccccc)"), "{d}");
        assert!(d.contains("model `m` is no longer granted"), "{d}");
        assert!(d.contains("task.config.k changed (`1` -> `2`)"), "{d}");
        assert_ne!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn a_changed_manifest_is_refused_unless_restarted() {
        let dir = tempfile::tempdir().unwrap();
        Journal::open(dir.path(), &manifest(), false).unwrap();
        let mut other = manifest();
        other.scorer = "d".repeat(64);
        let e = Journal::open(dir.path(), &other, false).unwrap_err();
        assert!(e.to_string().contains("the scorer changed"), "{e}");
        assert!(e.to_string().contains("--restart"), "{e}");
        Journal::open(dir.path(), &other, true).unwrap();
        Journal::open(dir.path(), &other, false).unwrap();
    }
}
