//! Staged and assembled output. Each finished mini-batch's encoded rows are
//! staged on their own (made durable by the job's journal before they
//! count; a failed try stages nothing); when the job ends the output
//! file is assembled from the staged parts in input order. Parts stay in
//! the job directory, so a resumed job (or a crash during assembly) can
//! assemble the same output again.
//!
//! For a cluster, where two deliveries of one mini-batch can finish on two
//! nodes, a try stages its part under a name of its own
//! ([`OutputStore::stage_try`]) and the coordinator promotes the one it
//! commits ([`OutputStore::promote`]); a worker killed mid-write never
//! touches a part that already counts. Object storage is
//! [`crate::objects::ObjectOutput`], the same writer over an upload.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sluice_job::spec::OutputFormat;

/// A committed mini-batch's part, as the journal records it: the
/// mini-batch's index and, for a cluster job, the try whose part was kept
/// (a store that promotes by reference, [`crate::objects::ObjectOutput`],
/// reads that try's part; one that promotes by renaming reads its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartRef<'a> {
    /// The mini-batch's index in the plan.
    pub index: usize,
    /// The tag of the try whose part was promoted, if any.
    pub tag: Option<&'a str>,
}

impl PartRef<'_> {
    /// The parts of `indexes`, each staged by [`OutputStore::stage`].
    pub fn plain(indexes: &[usize]) -> Vec<PartRef<'static>> {
        indexes.iter().map(|&index| PartRef { index, tag: None }).collect()
    }
}

/// Where a job's output goes: local files ([`LocalOutput`]) or object
/// storage ([`crate::objects::ObjectOutput`]).
pub trait OutputStore: Send + Sync {
    /// Stages mini-batch `index`'s encoded rows durably, replacing an
    /// earlier part.
    fn stage(&self, index: usize, part: &[u8]) -> io::Result<()>;
    /// Whether mini-batch `part.index` has its committed part: the one it
    /// staged, or the one promoted from try `part.tag`.
    fn has_part(&self, part: PartRef<'_>) -> bool;
    /// Forgets every staged part and try (a job started over with
    /// `--restart`).
    fn discard_parts(&self) -> io::Result<()>;
    /// Writes the output from `parts`, in that order, after `header`, and
    /// publishes it. Returns where it is.
    fn assemble(&self, parts: &[PartRef<'_>], header: &[u8]) -> io::Result<PathBuf>;

    /// Stages one try's part under a name of its own (`tag`: unique per
    /// delivery, e.g. "node2-3"; only `[A-Za-z0-9_.-]`, at most
    /// [`MAX_TAG_LEN`] bytes, since it may come from a remote node's name),
    /// durably on return, without touching the mini-batch's committed part
    /// (two deliveries of one mini-batch can finish on two nodes; a worker
    /// killed mid-write must not corrupt a part that already counts).
    ///
    /// The default refuses (`Unsupported`): a store that only runs on one
    /// node (a test double, replay's capture) needs [`stage`](OutputStore::stage) only.
    fn stage_try(&self, index: usize, tag: &str, part: &[u8]) -> io::Result<()> {
        let _ = (index, tag, part);
        Err(io::Error::new(io::ErrorKind::Unsupported, "this output store does not stage tries"))
    }

    /// Makes try `tag`'s part mini-batch `index`'s committed part, for
    /// [`assemble`](OutputStore::assemble) and [`has_part`](OutputStore::has_part)
    /// given the same tag: by renaming it onto the mini-batch's part, or by
    /// reference (nothing moves; the journal entry names the tag). Durable
    /// once [`sync`](OutputStore::sync) returns, which the journal calls
    /// before the entry that counts on it becomes visible. `NotFound` when
    /// the try's part is gone (an earlier run discarded it). The default
    /// refuses, as [`stage_try`](OutputStore::stage_try) does.
    fn promote(&self, index: usize, tag: &str) -> io::Result<()> {
        let _ = (index, tag);
        Err(io::Error::new(io::ErrorKind::Unsupported, "this output store does not stage tries"))
    }

    /// Makes every [`promote`](OutputStore::promote) so far durable. The
    /// journal's committer calls it once per group of entries (a
    /// coordinator promotes one part per mini-batch: an fsync each was its
    /// throughput's ceiling), before they become visible. The default has
    /// nothing to do (a store whose promote is durable on return).
    fn sync(&self) -> io::Result<()> {
        Ok(())
    }

    /// Deletes every try part but those of `keep` (the committed parts of a
    /// store that promotes by reference): the end of a job. The default
    /// has none to delete.
    fn discard_tries(&self, keep: &[PartRef<'_>]) -> io::Result<()> {
        let _ = keep;
        Ok(())
    }
}

/// The longest try tag [`OutputStore::stage_try`] accepts, in bytes.
pub const MAX_TAG_LEN: usize = 64;

/// Refuses a try tag that could name another file or object: only
/// `[A-Za-z0-9_.-]`, 1 to [`MAX_TAG_LEN`] bytes.
pub fn check_tag(tag: &str) -> io::Result<()> {
    let ok = !tag.is_empty()
        && tag.len() <= MAX_TAG_LEN
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "try tag `{}`: only letters, digits, `_`, `.` and `-`, 1 to {MAX_TAG_LEN} bytes",
                tag.escape_debug()
            ),
        ))
    }
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
    /// Held while the output is assembled (one assembly at a time).
    assembling: Mutex<()>,
    /// A promote's rename is not yet durable (see [`OutputStore::sync`]).
    renamed: std::sync::atomic::AtomicBool,
}

/// The assembled output being written: parts of CSV and JSON Lines appended
/// as they are, Parquet parts (Arrow IPC streams) one row group each; over
/// a local file or an object-storage upload alike.
enum Sink<W: Write + Send> {
    Bytes(W),
    Parquet(Box<parquet::arrow::ArrowWriter<W>>),
}

impl<W: Write + Send> Sink<W> {
    /// Opens the output on its first part. A Parquet file takes its schema
    /// from that part (or is written with no columns when nothing came).
    fn open(mut w: W, parquet: bool, header: &[u8], first: Option<&[u8]>) -> io::Result<Sink<W>> {
        if !parquet {
            w.write_all(header)?;
            return Ok(Sink::Bytes(w));
        }
        let schema = match first {
            Some(part) => arrow_ipc::reader::StreamReader::try_new(part, None).map_err(io::Error::other)?.schema(),
            None => std::sync::Arc::new(arrow_schema::Schema::empty()),
        };
        let props = parquet::file::properties::WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .build();
        let w = parquet::arrow::ArrowWriter::try_new(w, schema, Some(props)).map_err(io::Error::other)?;
        Ok(Sink::Parquet(Box::new(w)))
    }

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

    /// Ends the output (a Parquet footer) and gives back the writer.
    fn finish(self) -> io::Result<W> {
        match self {
            Sink::Bytes(mut w) => {
                w.flush()?;
                Ok(w)
            }
            Sink::Parquet(w) => w.into_inner().map_err(io::Error::other),
        }
    }
}

/// Writes the output into `w`: `header` (not for Parquet), then the parts of
/// `indexes` in that order, each read by `part`; ends a Parquet file with
/// its footer. Shared by [`LocalOutput`] and
/// [`crate::objects::ObjectOutput`].
pub(crate) fn assemble_into<W: Write + Send>(
    w: W,
    parquet: bool,
    header: &[u8],
    parts: &[PartRef<'_>],
    mut part: impl FnMut(PartRef<'_>) -> io::Result<Vec<u8>>,
) -> io::Result<()> {
    let mut w = Some(w);
    let mut sink: Option<Sink<W>> = None;
    for &p in parts {
        let bytes = part(p)?;
        let s = match &mut sink {
            Some(s) => s,
            None => sink.insert(Sink::open(w.take().expect("opened once"), parquet, header, Some(&bytes))?),
        };
        s.write(&bytes)?;
    }
    let sink = match sink {
        Some(s) => s,
        None => Sink::open(w.take().expect("opened once"), parquet, header, None)?,
    };
    sink.finish().map(drop)
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
            assembling: Mutex::new(()),
            renamed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn part(&self, index: usize) -> PathBuf {
        self.staging.join(format!("{index:08}.part"))
    }

    fn try_part(&self, index: usize, tag: &str) -> PathBuf {
        self.staging.join(format!("{index:08}.{tag}.try"))
    }

    fn partial(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".partial");
        self.path.with_file_name(name)
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

    /// Its own part: a promote renamed the try onto it.
    fn has_part(&self, part: PartRef<'_>) -> bool {
        self.part(part.index).is_file()
    }

    fn discard_parts(&self) -> io::Result<()> {
        for e in fs::read_dir(&self.staging)? {
            let e = e?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".part") || name.ends_with(".try") {
                fs::remove_file(e.path())?;
            }
        }
        Ok(())
    }

    /// From its own parts (promotes renamed the tries kept onto them).
    fn assemble(&self, parts: &[PartRef<'_>], header: &[u8]) -> io::Result<PathBuf> {
        let _one = self.assembling.lock().expect("output lock");
        let mut f = io::BufWriter::new(File::create(self.partial())?);
        assemble_into(&mut f, self.parquet, header, parts, |p| fs::read(self.part(p.index)))?;
        f.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        // Streamed to `NAME.partial` and renamed, not written whole with
        // `sluice_job::durable::write_durably`: an output may not fit in
        // memory.
        fs::rename(self.partial(), &self.path)?;
        Ok(self.path.clone())
    }

    /// Written as `NNNNNNNN.TAG.try` and fsynced: the try's own file, never
    /// the committed `NNNNNNNN.part`.
    fn stage_try(&self, index: usize, tag: &str, part: &[u8]) -> io::Result<()> {
        check_tag(tag)?;
        let mut f = File::create(self.try_part(index, tag))?;
        f.write_all(part)?;
        f.sync_all()
    }

    /// A rename onto `NNNNNNNN.part` (atomic; the earlier part stays whole
    /// until it is replaced); [`sync`](OutputStore::sync) makes it survive
    /// a crash.
    fn promote(&self, index: usize, tag: &str) -> io::Result<()> {
        check_tag(tag)?;
        fs::rename(self.try_part(index, tag), self.part(index))?;
        self.renamed.store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// An fsync of the staging folder when a promote renamed into it since
    /// the last one: one for any number of renames.
    fn sync(&self) -> io::Result<()> {
        if self.renamed.swap(false, std::sync::atomic::Ordering::AcqRel)
            && let Err(e) = File::open(&self.staging).and_then(|d| d.sync_all())
        {
            self.renamed.store(true, std::sync::atomic::Ordering::Release);
            return Err(e);
        }
        Ok(())
    }

    /// Every `.try` left: the tries kept were renamed away.
    fn discard_tries(&self, _keep: &[PartRef<'_>]) -> io::Result<()> {
        for e in fs::read_dir(&self.staging)? {
            let e = e?;
            if e.file_name().to_string_lossy().ends_with(".try") {
                fs::remove_file(e.path())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(index: usize) -> PartRef<'static> {
        PartRef { index, tag: None }
    }

    #[test]
    fn assembles_parts_in_the_order_given_and_retries_replace_parts() {
        let dir = std::env::temp_dir().join(format!("sluice-out-{}", std::process::id()));
        let out = LocalOutput::new(&dir.join("o.csv"), &dir.join("staged")).unwrap();
        out.stage(2, b"c\n").unwrap();
        out.stage(0, b"stale\n").unwrap();
        out.stage(0, b"a\n").unwrap();
        out.stage(1, b"b\n").unwrap();
        assert!(out.has_part(at(1)) && !out.has_part(at(3)));
        let p = out.assemble(&PartRef::plain(&[0, 1, 2]), b"h\n").unwrap();
        assert_eq!(fs::read_to_string(&p).unwrap(), "h\na\nb\nc\n");
        // Parts stay: assembling again gives the same file.
        out.assemble(&PartRef::plain(&[0, 1, 2]), b"h\n").unwrap();
        assert_eq!(fs::read_to_string(p).unwrap(), "h\na\nb\nc\n");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn tries_stage_apart_and_promote_replaces_the_committed_part() {
        let dir = tempfile::tempdir().unwrap();
        let out = LocalOutput::new(&dir.path().join("o.csv"), &dir.path().join("staged")).unwrap();
        out.stage(0, b"a\n").unwrap();
        out.stage_try(1, "node2-3", b"b from node2\n").unwrap();
        out.stage_try(1, "node1-1", b"b from node1\n").unwrap();
        // A staged try is not a part: nothing counts until it is promoted.
        assert!(!out.has_part(at(1)));
        out.promote(1, "node1-1").unwrap();
        assert!(out.has_part(at(1)));
        // A later try of a committed mini-batch leaves its part alone ...
        out.stage_try(0, "node3-1", b"late\n").unwrap();
        assert_eq!(fs::read(dir.path().join("staged/00000000.part")).unwrap(), b"a\n");
        // ... until it is promoted, which replaces the part whole.
        out.promote(0, "node3-1").unwrap();
        out.discard_tries(&[]).unwrap();
        let mut left: Vec<String> = fs::read_dir(dir.path().join("staged"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["00000000.part", "00000001.part"], "the unpromoted try is gone");
        let p = out.assemble(&PartRef::plain(&[0, 1]), b"h\n").unwrap();
        assert_eq!(fs::read_to_string(p).unwrap(), "h\nlate\nb from node1\n");
        // A promoted (or never staged) try cannot be promoted again.
        assert_eq!(out.promote(1, "node2-3").unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn try_tags_that_could_name_another_file_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = LocalOutput::new(&dir.path().join("o.csv"), &dir.path().join("staged")).unwrap();
        for bad in ["", "../x", "a/b", "node 1", "n\u{e9}", &"x".repeat(MAX_TAG_LEN + 1)] {
            let e = out.stage_try(0, bad, b"x").unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
            assert!(out.promote(0, bad).is_err());
        }
        assert_eq!(fs::read_dir(dir.path().join("staged")).unwrap().count(), 0, "nothing was written");
        out.stage_try(0, &"x".repeat(MAX_TAG_LEN), b"x").unwrap();
        out.stage_try(0, "node-2_b.3", b"x").unwrap();
    }
}
