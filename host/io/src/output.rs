//! Staged and assembled output. Each finished mini-batch's encoded rows are
//! staged on their own (made durable by the job's journal before they
//! count; a failed try stages nothing); when the job ends the output
//! file is assembled from the staged parts in input order. Parts stay in
//! the job directory, so a resumed job (or a crash during assembly) can
//! assemble the same output again.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sluice_job::spec::OutputFormat;

/// Where a job's output goes. Local files now; object storage later.
pub trait OutputStore: Send + Sync {
    /// Stages mini-batch `index`'s encoded rows durably, replacing an
    /// earlier part.
    fn stage(&self, index: usize, part: &[u8]) -> io::Result<()>;
    /// Stages one try's part under a name of its own (`tag`: unique per
    /// delivery, e.g. `node2-3`), durably on return, without touching the
    /// mini-batch's committed part: two deliveries of one mini-batch can
    /// finish on two nodes, and a node killed mid-write must not corrupt a
    /// part that already counts.
    fn stage_try(&self, index: usize, tag: &str, part: &[u8]) -> io::Result<()>;
    /// Makes try `tag`'s part mini-batch `index`'s part, atomically
    /// replacing an earlier one; durable on return.
    fn promote(&self, index: usize, tag: &str) -> io::Result<()>;
    /// Deletes every try part that was not promoted (the end of a job).
    fn discard_tries(&self) -> io::Result<()>;
    /// Whether mini-batch `index` has a staged part.
    fn has_part(&self, index: usize) -> bool;
    /// Forgets every staged part (a job started over with `--restart`).
    fn discard_parts(&self) -> io::Result<()>;
    /// Writes the output from the staged parts of `indexes`, in that order,
    /// after `header`, and publishes it. Returns where it is.
    fn assemble(&self, indexes: &[usize], header: &[u8]) -> io::Result<PathBuf>;
}

/// Output to a local file, staged in a folder of the job directory; the
/// file is written as `NAME.partial` and renamed into place at the end.
/// Parts of CSV and JSON Lines are appended as they are; Parquet parts
/// (Arrow IPC streams) become one row group each.
#[derive(Debug)]
pub struct LocalOutput {
    path: PathBuf,
    staging: PathBuf,
    parquet: bool,
    file: Mutex<Option<Sink>>,
}

enum Sink {
    Bytes(File),
    Parquet(Box<parquet::arrow::ArrowWriter<File>>),
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Sink::Bytes(_) => "Sink::Bytes",
            Sink::Parquet(_) => "Sink::Parquet",
        })
    }
}

impl Sink {
    fn write(&mut self, part: &[u8]) -> io::Result<()> {
        match self {
            Sink::Bytes(f) => f.write_all(part),
            Sink::Parquet(w) => {
                let reader = arrow_ipc::reader::StreamReader::try_new(part, None).map_err(io::Error::other)?;
                for batch in reader {
                    w.write(&batch.map_err(io::Error::other)?).map_err(io::Error::other)?;
                    w.flush().map_err(io::Error::other)?;
                }
                Ok(())
            }
        }
    }

    fn close(self) -> io::Result<()> {
        match self {
            Sink::Bytes(f) => f.sync_all(),
            Sink::Parquet(w) => {
                let f = w.into_inner().map_err(io::Error::other)?;
                f.sync_all()
            }
        }
    }
}

impl LocalOutput {
    /// Rows of `format` to `path`, staged under `staging`.
    pub fn with_format(path: &Path, staging: &Path, format: OutputFormat) -> io::Result<LocalOutput> {
        let mut out = Self::new(path, staging)?;
        out.parquet = format == OutputFormat::Parquet;
        Ok(out)
    }

    /// Byte-appended output (CSV, JSON Lines) to `path`.
    pub fn new(path: &Path, staging: &Path) -> io::Result<LocalOutput> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            fs::create_dir_all(parent)?;
        }
        fs::create_dir_all(staging)?;
        Ok(LocalOutput {
            path: path.to_path_buf(),
            staging: staging.to_path_buf(),
            parquet: false,
            file: Mutex::new(None),
        })
    }

    fn part(&self, index: usize) -> PathBuf {
        self.staging.join(format!("{index:08}.part"))
    }

    /// Where try `tag` of mini-batch `index` is staged. The tag comes from
    /// a remote node: only `[A-Za-z0-9_.-]`, at most 128 bytes, never `..`.
    fn try_part(&self, index: usize, tag: &str) -> io::Result<PathBuf> {
        check_tag(tag)?;
        Ok(self.staging.join(format!("{index:08}.{tag}.try")))
    }

    fn partial(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".partial");
        self.path.with_file_name(name)
    }

    /// Opens the output on its first part. A Parquet file takes its schema
    /// from that part (or is written with no columns when nothing came).
    fn open<'a>(&self, slot: &'a mut Option<Sink>, header: &[u8], first: Option<&[u8]>) -> io::Result<&'a mut Sink> {
        if slot.is_none() {
            let mut f = File::create(self.partial())?;
            let sink = if self.parquet {
                let schema = match first {
                    Some(part) => {
                        arrow_ipc::reader::StreamReader::try_new(part, None).map_err(io::Error::other)?.schema()
                    }
                    None => std::sync::Arc::new(arrow_schema::Schema::empty()),
                };
                let props = parquet::file::properties::WriterProperties::builder()
                    .set_compression(parquet::basic::Compression::SNAPPY)
                    .build();
                let w = parquet::arrow::ArrowWriter::try_new(f, schema, Some(props)).map_err(io::Error::other)?;
                Sink::Parquet(Box::new(w))
            } else {
                f.write_all(header)?;
                Sink::Bytes(f)
            };
            *slot = Some(sink);
        }
        Ok(slot.as_mut().expect("just opened"))
    }
}

impl OutputStore for LocalOutput {
    /// Writes the part in place. A part counts only once the job's journal
    /// has an entry for its mini-batch, and the journal makes entries
    /// visible only after a flush of the job directory's filesystem (one
    /// `syncfs` per group of entries) that covers the part: so no temp
    /// name, rename or fsync per part is needed, and a part left half
    /// written by a crash has no entry and is written again.
    fn stage(&self, index: usize, part: &[u8]) -> io::Result<()> {
        let mut f = File::create(self.part(index))?;
        f.write_all(part)
    }

    fn stage_try(&self, index: usize, tag: &str, part: &[u8]) -> io::Result<()> {
        let path = self.try_part(index, tag)?;
        let mut f = File::create(&path)?;
        f.write_all(part)?;
        f.sync_all()
    }

    fn promote(&self, index: usize, tag: &str) -> io::Result<()> {
        fs::rename(self.try_part(index, tag)?, self.part(index))?;
        File::open(&self.staging)?.sync_all()
    }

    fn discard_tries(&self) -> io::Result<()> {
        for e in fs::read_dir(&self.staging)? {
            let e = e?;
            if e.file_name().to_string_lossy().ends_with(".try") {
                fs::remove_file(e.path())?;
            }
        }
        Ok(())
    }

    fn has_part(&self, index: usize) -> bool {
        self.part(index).is_file()
    }

    fn discard_parts(&self) -> io::Result<()> {
        for e in fs::read_dir(&self.staging)? {
            let e = e?;
            if e.file_name().to_string_lossy().ends_with(".part") {
                fs::remove_file(e.path())?;
            }
        }
        Ok(())
    }

    fn assemble(&self, indexes: &[usize], header: &[u8]) -> io::Result<PathBuf> {
        let mut slot = self.file.lock().expect("output lock");
        *slot = None;
        for &i in indexes {
            let bytes = fs::read(self.part(i))?;
            self.open(&mut slot, header, Some(&bytes))?.write(&bytes)?;
        }
        self.open(&mut slot, header, None)?;
        slot.take().expect("opened").close()?;
        // Streamed to `NAME.partial` and renamed, not written whole with
        // `sluice_job::durable::write_durably`: an output may not fit in
        // memory.
        fs::rename(self.partial(), &self.path)?;
        Ok(self.path.clone())
    }
}

/// Refuses a try tag that is not a plain name (it names a file or object).
pub fn check_tag(tag: &str) -> io::Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && !tag.contains("..")
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("try tag {:?}: only A-Z a-z 0-9 _ . - (at most 128 bytes)", tag.escape_debug().to_string()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembles_parts_in_the_order_given_and_retries_replace_parts() {
        let dir = std::env::temp_dir().join(format!("sluice-out-{}", std::process::id()));
        let out = LocalOutput::new(&dir.join("o.csv"), &dir.join("staged")).unwrap();
        out.stage(2, b"c\n").unwrap();
        out.stage(0, b"stale\n").unwrap();
        out.stage(0, b"a\n").unwrap();
        out.stage(1, b"b\n").unwrap();
        assert!(out.has_part(1) && !out.has_part(3));
        let p = out.assemble(&[0, 1, 2], b"h\n").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "h\na\nb\nc\n");
        // Parts stay: assembling again gives the same file.
        out.assemble(&[0, 1, 2], b"h\n").unwrap();
        assert_eq!(fs::read_to_string(p).unwrap(), "h\na\nb\nc\n");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_try_part_counts_only_once_promoted_and_bad_tags_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = LocalOutput::new(&dir.path().join("o.csv"), &dir.path().join("staged")).unwrap();
        out.stage_try(0, "n1-1", b"one\n").unwrap();
        out.stage_try(0, "n2-2", b"two\n").unwrap();
        assert!(!out.has_part(0));
        out.promote(0, "n2-2").unwrap();
        assert!(out.has_part(0));
        out.discard_tries().unwrap();
        assert_eq!(out.assemble(&[0], b"").map(|p| fs::read_to_string(p).unwrap()).unwrap(), "two\n");
        assert!(out.promote(0, "n1-1").is_err(), "a discarded try cannot be promoted");
        for bad in ["", "../x", "a/b", "a\nb", &"x".repeat(129)] {
            assert!(out.stage_try(1, bad, b"x").is_err(), "{bad:?} accepted");
        }
    }
}
