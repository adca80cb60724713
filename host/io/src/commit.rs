//! The commit log: the one place that decides which mini-batches are done,
//! and so what a resumed job skips (exactly-once output).
//!
//! The invariant every implementation keeps: **an entry is visible only
//! after its part is on disk.** A mini-batch's part is staged first
//! ([`CommitLog::stage`]), then its entry committed ([`CommitLog::commit`]);
//! the entry becomes visible only once the part is durable, and a resumed
//! job counts an entry ([`CommitLog::committed`]) only if its part is still
//! there. A crash at any moment so leaves an exact committed set: a
//! mini-batch whose entry is not visible, or whose part went missing,
//! simply runs again.
//!
//! Entries are opaque bytes to the log but for their [`EntryHead`], so the
//! log needs no type of the scheduler's (this crate must not depend on the
//! runtime).

use std::io;

use serde::{Deserialize, Serialize};

/// What a commit log reads of an entry: an entry is a JSON object with at
/// least these fields (the scheduler's mini-batch record has them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryHead {
    /// The mini-batch id: an entry of another plan (other inputs, sizing,
    /// scorer) does not count for this one.
    pub id: String,
    /// The mini-batch's index in the plan.
    pub index: usize,
    /// Rows its part holds; 0 means it staged no part (nothing to check).
    pub rows: u64,
    /// Cluster jobs: the try whose part was kept (see
    /// [`crate::OutputStore::promote`]); absent when the mini-batch staged
    /// its part itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
}

impl EntryHead {
    /// The head of `entry`, or why it is not an entry.
    pub fn of(entry: &[u8]) -> io::Result<EntryHead> {
        serde_json::from_slice(entry).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Its part, as the output store finds it.
    pub fn part_ref(&self) -> crate::PartRef<'_> {
        crate::PartRef { index: self.index, tag: self.part.as_deref() }
    }
}

/// Stage a part, commit its entry, list what is committed. Local files
/// first ([`crate::journal::LocalJournal`]); a log in object storage or a
/// database implements the same trait. The scheduler holds only a
/// `Box<dyn CommitLog>`.
pub trait CommitLog: Send + Sync + std::fmt::Debug {
    /// Where the log is, for messages (a folder, a URL).
    fn location(&self) -> String;
    /// Stages mini-batch `index`'s encoded rows (replacing an earlier
    /// part). It does not count until [`CommitLog::commit`].
    fn stage(&self, index: usize, part: &[u8]) -> io::Result<()>;
    /// Commits `entry` (see [`EntryHead`]) after its part was staged. The
    /// entry becomes visible only once that part is durable: maybe not
    /// before this returns, at the latest when [`CommitLog::close`] does.
    fn commit(&self, entry: &[u8]) -> io::Result<()>;
    /// The committed entry of mini-batch `index` when it has one with this
    /// `id` and its part (if it has rows) is still staged.
    fn committed(&self, index: usize, id: &str) -> Option<Vec<u8>>;
    /// The heads of every visible entry whose part is still staged, by
    /// index (whatever plan they belong to).
    fn list_committed(&self) -> io::Result<Vec<EntryHead>>;
    /// Saves the job's output schema (opaque bytes), durably.
    fn save_schema(&self, schema: &[u8]) -> io::Result<()>;
    /// The schema an earlier run saved.
    fn schema(&self) -> Option<Vec<u8>>;
    /// Makes every committed entry visible and stops taking commits. An
    /// error means some entries may be missing: those mini-batches run
    /// again on resume.
    fn close(&mut self) -> io::Result<()>;
}
