//! Listing a job's input and reading its items.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sluice_job::InputItem;
use sluice_job::spec::{InputKind, InputSpec};

/// Why a job's input cannot be listed at all; a file or sub-folder that cannot be read is an item error
/// instead, and the rest of the input goes on.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The input folder cannot be resolved (missing, or not readable).
    #[error("{path}: cannot list the input: {source}")]
    List {
        /// The input folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// An input on object storage cannot be listed (no such bucket, no
    /// credentials, the store unreachable): names the URL.
    #[error(transparent)]
    Storage(#[from] crate::objects::StorageError),
}

/// Lists the items of an input: a folder recursively in sorted order
/// (by path bytes, so every machine agrees), or one file.
///
/// Symlinks are followed only to files inside the folder; one that leaves
/// it (or points at a folder) becomes a refused item, reported as an item
/// error, never read.
///
/// A spec whose input is a URL is [`crate::objects::ObjectSource`]'s to
/// list: here it is an error naming it.
pub fn list_input(spec: &InputSpec) -> Result<Vec<InputItem>, InputError> {
    let Some(path) = spec.path.as_local() else {
        return Err(InputError::Storage(crate::objects::StorageError::Open {
            url: spec.path.to_string(),
            message: "a URL input is listed by its object store (sluice_io::open_input), not as local files".into(),
        }));
    };
    match spec.kind {
        InputKind::UriFile => {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            Ok(vec![item(name, path.to_path_buf(), None)])
        }
        InputKind::UriFolder => list_folder(path),
    }
}

fn list_folder(root: &Path) -> Result<Vec<InputItem>, InputError> {
    let canon_root = root.canonicalize().map_err(|source| InputError::List { path: root.to_path_buf(), source })?;
    let mut items = Vec::new();
    let walker = walkdir::WalkDir::new(root).follow_links(false);
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                // An unreadable sub-folder: an item error for it, the rest goes on.
                let path = e.path().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf());
                let name = rel_name(root, &path);
                items.push(item(name, path, Some(format!("cannot read: {e}"))));
                continue;
            }
        };
        let ft = entry.file_type();
        if ft.is_dir() {
            continue;
        }
        let path = entry.path().to_path_buf();
        let name = rel_name(root, &path);
        if ft.is_symlink() {
            let refused = match path.canonicalize() {
                Err(e) => Some(format!("broken symlink: {e}")),
                Ok(target) if !target.starts_with(&canon_root) => {
                    Some(format!("symlink leaves the input folder (points to {})", target.display()))
                }
                Ok(target) if target.is_dir() => Some("symlinked folders are not followed".to_string()),
                Ok(target) => match std::fs::metadata(&target) {
                    Ok(m) if !m.is_file() => Some(format!(
                        "symlink to {}, not a regular file ({})",
                        file_kind(&m.file_type()),
                        target.display()
                    )),
                    _ => None,
                },
            };
            items.push(item(name, path, refused));
        } else if ft.is_file() {
            items.push(item(name, path, None));
        } else {
            // A FIFO, socket or device: reported, never read (a read could
            // block forever).
            items.push(item(name, path, Some(format!("not a regular file ({})", file_kind(&ft)))));
        }
    }
    // Folder by folder, names in byte order: with `/` as the lowest byte a
    // plain byte comparison orders `/`-separated components (walkdir's own
    // sort re-parses both paths on every comparison: a fifth of listing
    // time on 10,000 files).
    items.sort_by_cached_key(|i| i.name.replace('/', "\0"));
    Ok(items)
}

/// The path relative to the input root, `/`-separated (as on Unix).
fn rel_name(root: &Path, path: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).to_string_lossy().into_owned()
}

fn item(name: String, path: PathBuf, refused: Option<String>) -> InputItem {
    if refused.is_some() {
        return InputItem { name, path, size: 0, modified_ns: 0, refused };
    }
    let (size, modified_ns, refused) = match std::fs::metadata(&path) {
        Ok(m) => {
            let ns = m.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
            (m.len(), ns, None)
        }
        Err(e) => (0, 0, Some(format!("cannot read: {e}"))),
    };
    InputItem { name, path, size, modified_ns, refused }
}

/// Checks that an item is still what planning saw: a file deleted or
/// rewritten since (same name, other size or modification time) is an
/// item error, not a silent mix of old and new.
pub fn unchanged(item: &InputItem) -> Result<(), String> {
    let m = match std::fs::metadata(&item.path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("deleted after the job was planned".into());
        }
        Err(e) => return Err(format!("cannot read: {e}")),
    };
    let ns = m.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
    if m.len() != item.size || ns != item.modified_ns {
        return Err(format!(
            "changed after the job was planned (was {} bytes, now {}); rerun the job to score the new contents",
            item.size,
            m.len()
        ));
    }
    Ok(())
}

/// Opens a file for reading only if it is a regular file. The open never
/// blocks (`O_NONBLOCK`: a FIFO or a device would otherwise hang the
/// host thread until someone writes to it) and the type is checked on the
/// opened file itself, so a swap after listing cannot slip one in.
pub fn open_regular(path: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|e| format!("cannot open: {e}"))?;
    let m = f.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !m.is_file() {
        return Err(format!("not a regular file ({}); only regular files are read", file_kind(&m.file_type())));
    }
    Ok(f)
}

/// What a file that is not a regular file is, in words.
fn file_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else if t.is_dir() {
        "a folder"
    } else {
        "not a file"
    }
}

/// Where a job's input items come from: lists them and reads byte ranges of
/// them. The readers (file mode, and Arrow's CSV, JSON Lines and Parquet
/// readers for tabular input) consume only ranges, so object storage is
/// another implementation of this trait, not a change to the readers or
/// the scheduler. [`LocalSource`] is the local filesystem.
pub trait InputSource: Send + Sync + std::fmt::Debug {
    /// The items of an input, in an order every machine agrees on.
    fn list(&self, spec: &InputSpec) -> Result<Vec<InputItem>, InputError>;

    /// Whether an item may be read now: not refused when listed, and still
    /// what listing saw (a changed or deleted item is an item error, not a
    /// silent mix of old and new). The message is the item error's.
    fn check(&self, item: &InputItem) -> Result<(), String>;

    /// A reader of the item's bytes in `range`; a range that runs past the
    /// item's end reads to its end (`start..u64::MAX` reads the rest). The
    /// caller has [`check`](InputSource::check)ed the item: this does not
    /// repeat it per range.
    fn read_range(&self, item: &InputItem, range: Range<u64>) -> Result<Box<dyn Read + Send>, String>;

    /// A hint that `items` are about to be read whole, in this order, on
    /// this thread (a mini-batch's items). A source whose every read waits
    /// on a network round trip (object storage) starts fetching them now,
    /// several at once, so a mini-batch of ten files costs about one round
    /// trip instead of thirty (a check, a header and the body each); what
    /// it fetched answers [`check`](InputSource::check) and
    /// [`read_range`](InputSource::read_range) on this thread until the
    /// returned guard is dropped, which frees it. The local source does
    /// nothing (the page cache is its read-ahead).
    fn prefetch(&self, _items: &[&InputItem]) -> Prefetched {
        Prefetched::none()
    }
}

/// What [`InputSource::prefetch`] fetched ahead, held until dropped.
#[must_use = "dropping the guard frees what was fetched ahead"]
pub struct Prefetched(Option<Box<dyn FnOnce()>>);

impl Prefetched {
    /// Nothing fetched ahead.
    pub fn none() -> Prefetched {
        Prefetched(None)
    }

    /// A guard that runs `release` when dropped.
    pub fn new(release: impl FnOnce() + 'static) -> Prefetched {
        Prefetched(Some(Box::new(release)))
    }
}

impl Drop for Prefetched {
    fn drop(&mut self) {
        if let Some(release) = self.0.take() {
            release();
        }
    }
}

impl std::fmt::Debug for Prefetched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Prefetched(..)" } else { "Prefetched(none)" })
    }
}

/// Reads a whole item of at most `cap` bytes (`limits.max_file_bytes`):
/// checks it, then reads at most one byte past the cap, since the item may
/// have grown since it was listed. `over` says why one over the cap is
/// refused (its size and the cap).
pub fn read_whole(
    source: &dyn InputSource,
    item: &InputItem,
    cap: u64,
    over: impl Fn(u64, u64) -> String,
) -> Result<Vec<u8>, String> {
    source.check(item)?;
    if item.size > cap {
        return Err(over(item.size, cap));
    }
    let mut buf = Vec::with_capacity(item.size as usize + 1);
    source
        .read_range(item, 0..cap.saturating_add(1))?
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read: {e}"))?;
    if buf.len() as u64 > cap {
        return Err(over(buf.len() as u64, cap));
    }
    Ok(buf)
}

/// Why a file-mode item over the cap is not read.
pub fn over_file_cap(size: u64, cap: u64) -> String {
    format!("file is {size} bytes, over the cap limits.max_file_mb = {} MiB", cap >> 20)
}

/// The local filesystem as an [`InputSource`]: folders listed recursively
/// ([`list_input`]), only regular files read ([`open_regular`]), each item
/// checked against its listed size and modification time ([`unchanged`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalSource;

impl InputSource for LocalSource {
    fn list(&self, spec: &InputSpec) -> Result<Vec<InputItem>, InputError> {
        list_input(spec)
    }

    fn check(&self, item: &InputItem) -> Result<(), String> {
        if let Some(why) = &item.refused {
            return Err(why.clone());
        }
        unchanged(item)
    }

    fn read_range(&self, item: &InputItem, range: Range<u64>) -> Result<Box<dyn Read + Send>, String> {
        let mut f = open_regular(&item.path)?;
        if range.start > 0 {
            f.seek(SeekFrom::Start(range.start)).map_err(|e| format!("cannot read: {e}"))?;
        }
        Ok(Box::new(f.take(range.end.saturating_sub(range.start))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(p: &Path) -> InputSpec {
        InputSpec { name: "data".into(), kind: InputKind::UriFolder, path: p.into(), tabular: false }
    }

    #[test]
    fn lists_recursively_sorted_and_refuses_escaping_symlinks() {
        let root = std::env::temp_dir().join(format!("sluice-list-{}", std::process::id()));
        let outside = std::env::temp_dir().join(format!("sluice-outside-{}", std::process::id()));
        std::fs::create_dir_all(root.join("b/c")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "x").unwrap();
        std::fs::write(root.join("z.txt"), "1").unwrap();
        std::fs::write(root.join("a.txt"), "22").unwrap();
        std::fs::write(root.join("b/c/d.txt"), "333").unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), root.join("leak")).unwrap();
        std::os::unix::fs::symlink(root.join("a.txt"), root.join("alias")).unwrap();
        let items = list_input(&spec(&root)).unwrap();
        let names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["a.txt", "alias", "b/c/d.txt", "leak", "z.txt"]);
        assert!(items[3].refused.as_ref().unwrap().contains("leaves the input folder"));
        assert!(items[1].refused.is_none());
        let read = |i: &InputItem| read_whole(&LocalSource, i, 2, over_file_cap);
        assert_eq!(read(&items[0]).unwrap(), b"22");
        assert!(read(&items[2]).unwrap_err().contains("limits.max_file_mb"));
        assert!(read(&items[3]).is_err());
        let mut tail = String::new();
        LocalSource.read_range(&items[2], 1..u64::MAX).unwrap().read_to_string(&mut tail).unwrap();
        assert_eq!(tail, "33");
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }
}
