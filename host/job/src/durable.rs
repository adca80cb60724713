//! The one way sluice replaces a file whole: every writer of a file that
//! readers (another process, a resumed job, `sluice jobs show`) may open
//! at any moment goes through [`write_durably`], so none of them can see
//! a torn file, and none has its own copy of the dance to get wrong.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path` so that a reader sees the old file or all of
/// the new one, even after a crash: a temp file in the same folder (a
/// rename is atomic only within one filesystem), fsync, rename, fsync of
/// the folder (so the rename itself survives a lost machine).
///
/// The temp name holds the process id and a counter, so writers in other
/// processes or threads (jobs sharing a compile cache, a monitor and a
/// finishing job) never write into each other's temp file. A failed write
/// removes its temp file.
pub fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_name(path);
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    sync_parent(path)
}

fn temp_name(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Flushes the folder holding `path`, making a rename into it durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("sluice-durable-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("f.json");
        write_durably(&p, b"old").unwrap();
        write_durably(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f.json")]);
        // A folder that is not there: an error, and nothing left behind.
        assert!(write_durably(&dir.join("no/such/f"), b"x").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
