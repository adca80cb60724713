//! `uri_folder` outputs the scorer writes files into
//! ([`sluice_job::spec::OutputFolder`]), committed exactly once with their
//! mini-batch, like rows.
//!
//! Under the job directory's `outputs/`:
//!
//! - `scratch/INSTANCE/NAME`: the empty folder an instance sees, writable,
//!   at `/outputs/NAME`;
//! - `staged/MINI_BATCH/NAME`: what a try that succeeded wrote, renamed
//!   there whole after it was checked (before the mini-batch's journal
//!   entry, whose flush makes it durable, lists its files);
//! - when the job ends, the committed files are moved into each output's
//!   folder, mini-batch by mini-batch in input order (a name written by two
//!   mini-batches holds the later one's file), and `staged/` is removed.
//!
//! A failed try's scratch folder is deleted with its instance. An instance
//! that wrote anything is dropped before its files are looked at, with the
//! runtime its pending file writes run on (so no byte lands after the
//! check), and is not reused: no descriptor it kept open can reach a
//! staged or committed file. What one try may write is bounded
//! (`limits.max_folder_output_mb`, `limits.max_folder_output_files`,
//! [`MAX_DEPTH`] folders deep), measured while `run` goes on ([`Watch`]:
//! the call is stopped through its instance's halt flag) and checked again
//! when it returns; past any, or with anything but files and folders (a
//! symbolic link), the try fails as `INVALID_OUTPUT` naming it. Removing a guest's tree never recurses
//! ([`remove_tree`]). Empty folders are not carried over. Assembly is safe
//! to run again (a kill, a stopped job resumed): a name written by several
//! mini-batches ends with the last one's file, in input order, whenever
//! they committed; a name that is a file for one mini-batch and a folder
//! for another is an error naming both; nothing is written through a
//! symbolic link under the output folder. The list of files is kept per
//! mini-batch in the journal and in memory until the job ends (a job that
//! writes millions of files holds millions of entries).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sluice_job::spec::{Mount, OutputFolder};
use sluice_job::{Failure, Limits, ReasonCode};

/// One committed file, as the journal entry of its mini-batch lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct FolderFile {
    /// The output's name (`outputs.NAME`).
    pub output: String,
    /// Its path under the output folder, `/`-separated.
    pub path: String,
    pub bytes: u64,
}

/// The output folders of one job in its job directory.
#[derive(Debug, Clone)]
pub(crate) struct Folders {
    root: PathBuf,
    outputs: Vec<OutputFolder>,
    max_bytes: u64,
    max_files: u64,
}

fn io_failure(what: &str, path: &Path, e: std::io::Error) -> Failure {
    Failure::new(ReasonCode::HostFault, format!("{what} {}: {e}", path.display()))
}

impl Folders {
    /// `None` when the job has no output folders.
    pub(crate) fn new(job_dir: &Path, outputs: &[OutputFolder], limits: &Limits) -> Option<Folders> {
        (!outputs.is_empty()).then(|| Folders {
            root: job_dir.join("outputs"),
            outputs: outputs.to_vec(),
            max_bytes: limits.max_folder_output_bytes,
            max_files: limits.max_folder_output_files,
        })
    }

    fn scratch(&self, instance: usize) -> PathBuf {
        self.root.join("scratch").join(instance.to_string())
    }

    fn staged(&self, mini_batch: &str) -> PathBuf {
        self.root.join("staged").join(mini_batch)
    }

    /// Empty folders for instance `instance`, one per output, as its
    /// writable mounts.
    pub(crate) fn instance_mounts(&self, instance: usize) -> Result<Vec<Mount>, Failure> {
        let dir = self.scratch(instance);
        remove_tree(&dir).map_err(|e| io_failure("cannot empty", &dir, e))?;
        self.outputs
            .iter()
            .map(|o| {
                let host_path = dir.join(&o.name);
                std::fs::create_dir_all(&host_path).map_err(|e| io_failure("cannot make", &host_path, e))?;
                Ok(Mount { guest_path: o.guest_path.clone(), host_path })
            })
            .collect()
    }

    /// Deletes what instance `instance` wrote (its try failed, or it is
    /// retired).
    pub(crate) fn discard(&self, instance: usize) {
        let dir = self.scratch(instance);
        if let Err(e) = remove_tree(&dir) {
            tracing::warn!("cannot delete {}: {e}", dir.display());
        }
    }

    /// Whether instance `instance` wrote anything into its folders (a
    /// cheap look: one listing per output).
    pub(crate) fn wrote(&self, instance: usize) -> bool {
        let scratch = self.scratch(instance);
        self.outputs.iter().any(|o| std::fs::read_dir(scratch.join(&o.name)).map_or(true, |mut d| d.next().is_some()))
    }

    /// What instance `instance` wrote, against the bounds (entries,
    /// bytes, [`MAX_DEPTH`]): its files and its number of entries, or why
    /// it passed a bound. `live` (while its `run` goes on, [`Watch`]) checks
    /// only the bounds and skips what vanishes under the walk; otherwise
    /// anything but files and folders, an unreadable entry or a name that
    /// is not UTF-8 is refused too.
    fn scan(&self, instance: usize, live: bool) -> Result<(Vec<FolderFile>, u64), String> {
        let scratch = self.scratch(instance);
        let mut files = Vec::new();
        let (mut bytes, mut entries) = (0u64, 0u64);
        for o in &self.outputs {
            let dir = scratch.join(&o.name);
            // One level past the bound is enough to refuse it; deeper is
            // never walked.
            for entry in walkdir::WalkDir::new(&dir).min_depth(1).max_depth(MAX_DEPTH + 1).sort_by_file_name() {
                let entry = match entry {
                    Ok(e) => e,
                    Err(_) if live => continue,
                    Err(e) => return Err(format!("outputs.{}: cannot read what the scorer wrote ({e})", o.name)),
                };
                let rel = entry.path().strip_prefix(&dir).expect("under the folder");
                let shown =
                    || format!("outputs.{}/{}", o.name, sluice_job::text::guest_text(&rel.to_string_lossy(), 512));
                if entry.depth() > MAX_DEPTH {
                    return Err(format!("{}: nested deeper than {MAX_DEPTH} folders", shown()));
                }
                entries += 1;
                if entries > self.max_files {
                    return Err(format!(
                        "wrote more than limits.max_folder_output_files = {} files and folders into its output folders",
                        self.max_files
                    ));
                }
                let ft = entry.file_type();
                if ft.is_dir() {
                    continue;
                }
                if !ft.is_file() {
                    if live {
                        continue;
                    }
                    return Err(format!("{}: not a file or folder (an output folder holds only those)", shown()));
                }
                let len = match entry.metadata() {
                    Ok(m) => m.len(),
                    Err(_) if live => 0,
                    Err(e) => return Err(format!("{}: {e}", shown())),
                };
                bytes = bytes.saturating_add(len);
                if bytes > self.max_bytes {
                    return Err(format!(
                        "wrote more than limits.max_folder_output_mb = {} MiB into its output folders",
                        self.max_bytes >> 20
                    ));
                }
                if !live {
                    let path = rel.to_str().ok_or_else(|| format!("{}: a name that is not UTF-8", shown()))?;
                    files.push(FolderFile { output: o.name.clone(), path: path.to_string(), bytes: len });
                }
            }
        }
        Ok((files, entries))
    }

    /// After instance `instance`'s `run` for `mini_batch` succeeded (and,
    /// if it wrote anything, after the instance was dropped and its
    /// pending writes finished): checks what it wrote and stages it. The
    /// files, in walk order.
    pub(crate) fn stage(&self, instance: usize, mini_batch: &str) -> Result<Vec<FolderFile>, Failure> {
        let scratch = self.scratch(instance);
        let (files, entries) = self.scan(instance, false).map_err(|m| Failure::new(ReasonCode::InvalidOutput, m))?;
        let staged = self.staged(mini_batch);
        // An earlier try's (a killed run's) staging goes first.
        remove_tree(&staged).map_err(|e| io_failure("cannot empty", &staged, e))?;
        if !files.is_empty() {
            std::fs::create_dir_all(&staged).map_err(|e| io_failure("cannot make", &staged, e))?;
            for o in &self.outputs {
                let from = scratch.join(&o.name);
                std::fs::rename(&from, staged.join(&o.name)).map_err(|e| io_failure("cannot stage", &from, e))?;
            }
        }
        // An instance that wrote nothing keeps its (empty) folders; one
        // that wrote was dropped before this, and its folders go.
        if entries > 0 {
            self.discard(instance);
        }
        Ok(files)
    }

    /// Moves the committed files into the output folders: `committed` is
    /// each succeeded mini-batch's id and files, in input order. A name
    /// written by several mini-batches ends with the last one's file (the
    /// others are deleted); a name that is a file for one and a folder for
    /// another is an error naming both. Safe to run again after a kill, or
    /// after a resume committed more: what is no longer staged is taken as
    /// in place when the output holds a file of the last writer's size.
    /// Returns how many files the outputs hold from this job.
    pub(crate) fn assemble<'a>(
        &self,
        committed: impl Iterator<Item = (&'a str, &'a [FolderFile])>,
    ) -> std::io::Result<usize> {
        use std::collections::{BTreeMap, BTreeSet};
        let err = |m: String| std::io::Error::other(m);
        // The last writer of each name, in input order.
        let mut winner: BTreeMap<(&str, &str), (&str, u64)> = BTreeMap::new();
        let mut all: Vec<(&str, &FolderFile)> = Vec::new();
        for (mini_batch, files) in committed {
            for f in files {
                let rel = Path::new(&f.path);
                if f.path.is_empty() || !rel.components().all(|c| matches!(c, std::path::Component::Normal(_))) {
                    return Err(err(format!("mini-batch {mini_batch}: `{}` is not a plain path", f.path)));
                }
                if !self.outputs.iter().any(|o| o.name == f.output) {
                    return Err(err(format!(
                        "mini-batch {mini_batch} wrote outputs.{}, which this job does not have",
                        f.output
                    )));
                }
                winner.insert((f.output.as_str(), f.path.as_str()), (mini_batch, f.bytes));
                all.push((mini_batch, f));
            }
        }
        // A file where another mini-batch made a folder.
        let names: BTreeSet<(&str, &str)> = winner.keys().copied().collect();
        for (output, path) in &names {
            let mut at = Path::new(path).parent();
            while let Some(p) = at.filter(|p| !p.as_os_str().is_empty()) {
                if let Some((by, _)) = p.to_str().and_then(|p| winner.get(&(*output, p))) {
                    let (inner, _) = winner[&(*output, *path)];
                    return Err(err(format!(
                        "outputs.{output}: mini-batch {by} wrote a file `{}` where mini-batch {inner} wrote `{path}` \
                         inside a folder of that name",
                        p.display()
                    )));
                }
                at = p.parent();
            }
        }
        let mut moved = 0;
        for (mini_batch, f) in all {
            let o = self.outputs.iter().find(|o| o.name == f.output).expect("checked above");
            let src = self.staged(mini_batch).join(&f.output).join(&f.path);
            let (last, bytes) = winner[&(f.output.as_str(), f.path.as_str())];
            let shown = format!("outputs.{}/{} (mini-batch {mini_batch})", f.output, f.path);
            if last != mini_batch {
                // Another mini-batch's file has this name: this one goes.
                remove_file_if_any(&src).map_err(|e| err(format!("{shown}: cannot delete {}: {e}", src.display())))?;
                continue;
            }
            let dst = o.host_path.join(&f.path);
            match std::fs::symlink_metadata(&src) {
                Ok(_) => {
                    let parent = dst.parent().expect("under the output folder");
                    create_dirs_beneath(&o.host_path, parent).map_err(|e| err(format!("{shown}: {e}")))?;
                    move_file(&src, &dst)
                        .map_err(|e| err(format!("{shown}: cannot move it to {}: {e}", dst.display())))?;
                }
                // Moved by an assembly a kill cut short, or by the run a
                // resume continues.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if std::fs::symlink_metadata(&dst).ok().filter(|m| m.is_file()).map(|m| m.len()) != Some(bytes) {
                        return Err(err(format!("{shown} is neither staged nor in {}", o.host_path.display())));
                    }
                }
                Err(e) => return Err(err(format!("{shown}: {e}"))),
            }
            moved += 1;
        }
        for o in &self.outputs {
            std::fs::create_dir_all(&o.host_path)?;
        }
        remove_tree(&self.root.join("staged"))?;
        remove_tree(&self.root.join("scratch"))?;
        Ok(moved)
    }
}

/// How often a try's folders are measured while its `run` goes on.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Measures an instance's folders while its `run` goes on and stops the
/// call (its instance's stop flag) once they pass a bound, so a guest
/// cannot fill the disk before `run` returns: it can write at most what it
/// writes in [`WATCH_EVERY`] past the bound.
pub(crate) struct Watch {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Option<String>>>,
}

impl Watch {
    /// Ends the watch; why it stopped the call, if it did.
    pub(crate) fn finish(mut self) -> Option<String> {
        self.done.store(true, Ordering::Release);
        self.thread.take().and_then(|t| t.join().ok().flatten())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
    }
}

impl Folders {
    /// Starts watching instance `instance`'s folders; past a bound it sets
    /// `stop` (the instance's stop flag).
    pub(crate) fn watch(&self, instance: usize, stop: Arc<AtomicBool>) -> Watch {
        let done = Arc::new(AtomicBool::new(false));
        let me = self.clone();
        let finished = done.clone();
        let thread = std::thread::Builder::new()
            .name(format!("sluice-folders-{instance}"))
            .spawn(move || {
                while !finished.load(Ordering::Acquire) {
                    std::thread::sleep(WATCH_EVERY);
                    if let Some(why) = me.over(instance) {
                        stop.store(true, Ordering::Release);
                        return Some(why);
                    }
                }
                None
            })
            .ok();
        Watch { done, thread }
    }

    /// Why instance `instance`'s folders are past a bound now, if they are.
    fn over(&self, instance: usize) -> Option<String> {
        self.scan(instance, true).err()
    }
}

/// The deepest nesting of folders one try may write.
pub(crate) const MAX_DEPTH: usize = 64;

/// `dir` and the folders above it up to `base`, made where missing; a
/// symbolic link (or a file) on the way is refused, so nothing lands
/// outside the output folder.
fn create_dirs_beneath(base: &Path, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(base)?;
    let rel = dir.strip_prefix(base).map_err(|_| std::io::Error::other("not under the output folder"))?;
    let mut at = base.to_path_buf();
    for c in rel.components() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{} is in the way (not a folder; a symbolic link is not followed)",
                    at.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&at)?,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn remove_file_if_any(p: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A rename, or across filesystems a copy beside `dst` renamed over it.
fn move_file(src: &Path, dst: &Path) -> std::io::Result<()> {
    match std::fs::rename(src, dst) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
            let dir = dst.parent().unwrap_or(Path::new("."));
            let tmp = tempfile::Builder::new().prefix(".sluice-move-").tempfile_in(dir)?;
            std::fs::copy(src, tmp.path())?;
            tmp.as_file().sync_all()?;
            tmp.persist(dst).map_err(|e| e.error)?;
            std::fs::File::open(dir)?.sync_all()?;
            std::fs::remove_file(src)
        }
        Err(e) => Err(e),
    }
}

/// Removes `root` and everything under it without recursion and with
/// short paths, however deep a guest nested its folders: a folder that is
/// not empty has its entries moved up to `root` (one level at a time),
/// then goes; at most two folders are open at once.
fn remove_tree(root: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(root) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(m) if !m.is_dir() => return std::fs::remove_file(root),
        Ok(_) => {}
    }
    let mut n = 0u64;
    loop {
        let mut left = false;
        for e in std::fs::read_dir(root)? {
            let e = e?;
            left = true;
            let p = e.path();
            if !e.file_type()?.is_dir() {
                remove_file_if_any(&p)?;
                continue;
            }
            if std::fs::remove_dir(&p).is_ok() {
                continue;
            }
            for c in std::fs::read_dir(&p)? {
                let c = c?;
                n += 1;
                std::fs::rename(c.path(), root.join(format!(".up-{n}")))?;
            }
            std::fs::remove_dir(&p)?;
        }
        if !left {
            break;
        }
    }
    std::fs::remove_dir(root)
}
