//! The journal: the local [`CommitLog`], what makes a job resumable with
//! exactly-once output.
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
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sluice_job::durable::write_durably;

use crate::OutputStore;
use crate::commit::{CommitLog, EntryHead};

impl Drop for LocalJournal {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// What a job's results depend on. A job directory refuses to resume
/// under a different one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest format's version.
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

/// The journal's folder in a job directory.
pub const DIR: &str = "journal";

/// The settings key of the output format.
pub const OUTPUT_KEY: &str = "task.append_row_to";

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

/// Why a journal did not open.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The job directory holds a job with another manifest.
    #[error(
        "{dir}: this job directory holds a job run with other inputs to its results: {what}. \
         Resume it with what it was run with, start it over with --restart, or use another --job-dir"
    )]
    Changed {
        /// The job directory.
        dir: PathBuf,
        /// What changed, in words.
        what: String,
    },
    /// A file of the journal could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
}

/// The journal of one job directory (`JOB_DIR/journal`), over the output
/// store that holds the staged parts.
pub struct LocalJournal {
    dir: PathBuf,
    /// Where parts are staged; `None` for a job without output (entries
    /// then have no part to wait for).
    parts: Option<Arc<dyn OutputStore>>,
    committer: Committer,
}

impl std::fmt::Debug for LocalJournal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalJournal").field("dir", &self.dir).field("parts", &self.parts.is_some()).finish()
    }
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
    fn start(dir: PathBuf, parts: Option<Arc<dyn OutputStore>>) -> io::Result<Committer> {
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
                    && let Err(e) = flush(&dir, parts.as_deref(), &batch)
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

/// One group: everything written so far reaches the disk (the output
/// store's promotes, then the job directory's filesystem), then the
/// entries become visible.
/// (Not `sluice_job::durable::write_durably` per entry: that is an fsync
/// per file, and the group commit exists to pay one flush per group.)
fn flush(dir: &Path, parts: Option<&dyn OutputStore>, batch: &[(PathBuf, PathBuf)]) -> io::Result<()> {
    if let Some(parts) = parts {
        parts.sync()?;
    }
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

impl LocalJournal {
    /// Opens (or starts) the journal of `job_dir` for a job with `manifest`,
    /// its parts staged in `parts`. `restart` forgets what an earlier run
    /// committed.
    pub fn open(
        job_dir: &Path,
        manifest: &Manifest,
        restart: bool,
        parts: Option<Arc<dyn OutputStore>>,
    ) -> Result<LocalJournal, JournalError> {
        let dir = job_dir.join(DIR);
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
        let committer = Committer::start(dir.clone(), parts.clone()).map_err(io(&dir))?;
        Ok(LocalJournal { dir, parts, committer })
    }

    /// The journal's folder (`JOB_DIR/journal`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, index: usize) -> PathBuf {
        self.dir.join(format!("{index:08}.json"))
    }

    /// The indexes of the entries visible in the journal folder `dir`
    /// (renamed into place, so their parts were durable), in order: what a
    /// reader outside the job (a test, `jobs show`) may count while it runs.
    pub fn visible_entries(dir: &Path) -> Vec<usize> {
        let mut v: Vec<usize> = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| {
                        let name = e.file_name();
                        let stem = name.to_str()?.strip_suffix(".json")?;
                        (stem.len() == 8).then_some(())?;
                        stem.parse().ok()
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// Whether mini-batch `head.index`'s part is still staged (or it has
    /// none to check).
    fn part_there(&self, head: &EntryHead) -> bool {
        head.rows == 0 || self.parts.as_ref().is_none_or(|p| p.has_part(head.part_ref()))
    }
}

impl CommitLog for LocalJournal {
    fn location(&self) -> String {
        self.dir.display().to_string()
    }

    fn stage(&self, index: usize, part: &[u8]) -> io::Result<()> {
        match &self.parts {
            Some(store) => store.stage(index, part),
            None => Ok(()),
        }
    }

    /// Writes the entry under a temp name: it becomes visible with the
    /// committer's next flush, which makes the part durable first.
    fn commit(&self, entry: &[u8]) -> io::Result<()> {
        let head = EntryHead::of(entry)?;
        let dst = self.entry(head.index);
        let tmp = dst.with_extension("json.tmp");
        std::fs::write(&tmp, entry).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", tmp.display())))?;
        let (lock, cv) = &*self.committer.shared;
        let mut p = lock.lock().expect("journal");
        if let Some(e) = &p.error {
            return Err(io::Error::new(e.kind(), e.to_string()));
        }
        p.entries.push((tmp, dst));
        cv.notify_one();
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
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

    fn committed(&self, index: usize, id: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.entry(index)).ok()?;
        let head = EntryHead::of(&bytes).ok()?;
        (head.id == id && head.index == index && self.part_there(&head)).then_some(bytes)
    }

    fn list_committed(&self) -> io::Result<Vec<EntryHead>> {
        let mut heads = Vec::new();
        for index in LocalJournal::visible_entries(&self.dir) {
            let path = self.entry(index);
            let bytes =
                std::fs::read(&path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            let head = EntryHead::of(&bytes)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: not a journal entry: {e}", path.display())))?;
            if head.index == index && self.part_there(&head) {
                heads.push(head);
            }
        }
        Ok(heads)
    }

    fn save_schema(&self, schema: &[u8]) -> io::Result<()> {
        let path = self.dir.join("schema.json");
        write_durably(&path, schema).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    }

    fn schema(&self) -> Option<Vec<u8>> {
        std::fs::read(self.dir.join("schema.json")).ok()
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
        LocalJournal::open(dir.path(), &manifest(), false, None).unwrap();
        let mut other = manifest();
        other.scorer = "d".repeat(64);
        let e = LocalJournal::open(dir.path(), &other, false, None).unwrap_err();
        assert!(e.to_string().contains("the scorer changed"), "{e}");
        assert!(e.to_string().contains("--restart"), "{e}");
        LocalJournal::open(dir.path(), &other, true, None).unwrap();
        LocalJournal::open(dir.path(), &other, false, None).unwrap();
    }

    fn entry(index: usize, id: &str, rows: u64) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"id": id, "index": index, "rows": rows, "extra": [1, 2]})).unwrap()
    }

    #[test]
    fn committed_entries_survive_a_reopen_only_with_their_parts() {
        let dir = tempfile::tempdir().unwrap();
        let parts: Arc<dyn OutputStore> =
            Arc::new(crate::LocalOutput::new(&dir.path().join("out.csv"), &dir.path().join("staged")).unwrap());
        let mut log: Box<dyn CommitLog> =
            Box::new(LocalJournal::open(dir.path(), &manifest(), false, Some(parts.clone())).unwrap());
        for (i, rows) in [(0, 2), (1, 0), (2, 1)] {
            if rows > 0 {
                log.stage(i, b"row\n").unwrap();
            }
            log.commit(&entry(i, &format!("mb{i}"), rows)).unwrap();
        }
        log.save_schema(b"{\"columns\":[]}").unwrap();
        log.close().unwrap();
        drop(log);

        // Mini-batch 2's part is lost (say, a disk was replaced).
        std::fs::remove_file(dir.path().join("staged/00000002.part")).unwrap();
        let log = LocalJournal::open(dir.path(), &manifest(), false, Some(parts)).unwrap();
        let listed: Vec<usize> = log.list_committed().unwrap().iter().map(|h| h.index).collect();
        assert_eq!(listed, [0, 1], "an entry whose part is gone is not committed");
        assert_eq!(log.committed(0, "mb0"), Some(entry(0, "mb0", 2)));
        assert_eq!(log.committed(1, "mb1"), Some(entry(1, "mb1", 0)), "no rows: no part to check");
        assert_eq!(log.committed(2, "mb2"), None);
        assert_eq!(log.committed(0, "other-plan"), None);
        assert_eq!(log.schema().as_deref(), Some(&b"{\"columns\":[]}"[..]));
        assert_eq!(LocalJournal::visible_entries(log.dir()), [0, 1, 2]);
        assert!(log.commit(b"not json").is_err());
    }
}
