//! Cutting a job's input items into mini-batches with stable ids.

use std::ops::Range;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::size::MiniBatchSize;

/// One input item (a file) as listed by the I/O layer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct InputItem {
    /// Path relative to the input root, `/`-separated: what the guest sees.
    pub name: String,
    /// Where the host reads it.
    pub path: PathBuf,
    /// Size in bytes when listed.
    pub size: u64,
    /// Modification time (ns since the epoch), part of the item's identity.
    pub modified_ns: u128,
    /// Set when listing already knows the item cannot be read (a symlink
    /// leaving the input folder, an unreadable entry): it becomes an item
    /// error without reaching the scorer.
    pub refused: Option<String>,
}

/// One mini-batch: a contiguous range of the plan's items (files) and, for
/// tabular input, which rows of them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MiniBatchPlan {
    /// Position in input order; output is committed in this order.
    pub index: usize,
    /// Stable id: a hash of its items' identities (name, size, mtime) and,
    /// for tabular input, its row ranges.
    pub id: String,
    /// Its items: a range of [`Plan::items`].
    pub items: Range<usize>,
    /// Tabular input: the rows of each file in `items` this mini-batch
    /// holds, in order. Empty for file input (each file is one item).
    pub segments: Vec<Segment>,
    /// Tabular input: the number of rows when planning knew it (row- and
    /// byte-sized or partitioned mini-batches); `None` for whole files,
    /// counted when read.
    pub rows: Option<u64>,
}

/// Rows of one tabular input file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Segment {
    /// Index into [`Plan::items`].
    pub file: usize,
    /// Which of the file's rows.
    pub rows: RowSpan,
}

/// Which rows of a file a segment holds (row numbers are 0-based, header
/// excluded).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum RowSpan {
    /// The whole file.
    All,
    /// Rows `start..end`; the first of them begins at byte `offset` of the
    /// file (CSV, JSON Lines), so a reader can seek there.
    Range {
        /// The first row (0-based, header excluded).
        start: u64,
        /// One past the last row.
        end: u64,
        /// Byte offset of row `start` in the file.
        offset: u64,
    },
    /// These rows, ascending (a partition of `partition_keys`).
    Rows(Vec<u64>),
}

impl RowSpan {
    /// The number of rows, when the span says (`None` for a whole file).
    pub fn len(&self) -> Option<u64> {
        match self {
            RowSpan::All => None,
            RowSpan::Range { start, end, .. } => Some(end - start),
            RowSpan::Rows(r) => Some(r.len() as u64),
        }
    }

    /// Whether the span holds no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }
}

/// The whole job cut into mini-batches.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Every input item, in input order.
    pub items: Vec<InputItem>,
    /// The mini-batches, in input order.
    pub mini_batches: Vec<MiniBatchPlan>,
}

impl Plan {
    /// Cuts `items` (already in input order) by `size`. A byte-sized
    /// mini-batch closes before the item that would take it over the size;
    /// an item larger than the size gets a mini-batch of its own.
    pub fn cut(items: Vec<InputItem>, size: MiniBatchSize) -> Plan {
        let mut ranges = Vec::new();
        let mut start = 0;
        match size {
            MiniBatchSize::Count(n) | MiniBatchSize::Files(n) | MiniBatchSize::Rows(n) => {
                let n = n.max(1) as usize;
                while start < items.len() {
                    let end = (start + n).min(items.len());
                    ranges.push(start..end);
                    start = end;
                }
            }
            MiniBatchSize::Bytes(limit) => {
                let mut bytes = 0u64;
                for (i, item) in items.iter().enumerate() {
                    if i > start && bytes.saturating_add(item.size) > limit {
                        ranges.push(start..i);
                        start = i;
                        bytes = 0;
                    }
                    bytes = bytes.saturating_add(item.size);
                }
                if start < items.len() {
                    ranges.push(start..items.len());
                }
            }
        }
        let mini_batches = ranges
            .into_iter()
            .enumerate()
            .map(|(index, r)| MiniBatchPlan {
                index,
                id: batch_id(&items[r.clone()], &[]),
                items: r,
                segments: Vec::new(),
                rows: None,
            })
            .collect();
        Plan { items, mini_batches }
    }

    /// A tabular plan from mini-batches given as segments (cut by the I/O
    /// layer, which knows the files' rows); each mini-batch's `items` spans
    /// the files its segments touch.
    pub fn from_segments(items: Vec<InputItem>, batches: Vec<Vec<Segment>>) -> Plan {
        let mini_batches = batches
            .into_iter()
            .enumerate()
            .map(|(index, segments)| {
                let lo = segments.iter().map(|s| s.file).min().unwrap_or(0);
                let hi = segments.iter().map(|s| s.file + 1).max().unwrap_or(0);
                let rows = segments.iter().map(|s| s.rows.len()).sum::<Option<u64>>();
                let id = batch_id(&items[lo..hi], &segments);
                MiniBatchPlan { index, id, items: lo..hi, segments, rows }
            })
            .collect();
        Plan { items, mini_batches }
    }

    /// Mixes `fingerprint` (what the results depend on besides the inputs:
    /// the scorer, models, settings) into every mini-batch id, so an id
    /// names one result.
    pub fn salt(&mut self, fingerprint: &str) {
        for mb in &mut self.mini_batches {
            let mut h = Sha256::new();
            h.update(fingerprint.as_bytes());
            h.update([0]);
            h.update(mb.id.as_bytes());
            mb.id = hex::encode(&h.finalize()[..8]);
        }
    }

    /// The items of mini-batch `mb`.
    pub fn items_of(&self, mb: &MiniBatchPlan) -> &[InputItem] {
        &self.items[mb.items.clone()]
    }
}

fn batch_id(items: &[InputItem], segments: &[Segment]) -> String {
    let mut h = Sha256::new();
    for it in items {
        h.update(it.name.as_bytes());
        h.update([0]);
        h.update(it.size.to_le_bytes());
        h.update(it.modified_ns.to_le_bytes());
    }
    for s in segments {
        h.update((s.file as u64).to_le_bytes());
        match &s.rows {
            RowSpan::All => h.update([0]),
            RowSpan::Range { start, end, .. } => {
                h.update([1]);
                h.update(start.to_le_bytes());
                h.update(end.to_le_bytes());
            }
            RowSpan::Rows(rows) => {
                h.update([2]);
                for r in rows {
                    h.update(r.to_le_bytes());
                }
            }
        }
    }
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(sizes: &[u64]) -> Vec<InputItem> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| InputItem {
                name: format!("f{i}"),
                path: format!("/in/f{i}").into(),
                size,
                modified_ns: 7,
                refused: None,
            })
            .collect()
    }

    #[test]
    fn count_sizing() {
        let p = Plan::cut(items(&[1; 25]), MiniBatchSize::Count(10));
        let r: Vec<_> = p.mini_batches.iter().map(|m| m.items.clone()).collect();
        assert_eq!(r, vec![0..10, 10..20, 20..25]);
    }

    #[test]
    fn byte_sizing_never_splits_an_item() {
        let p = Plan::cut(items(&[40, 40, 40, 200, 10]), MiniBatchSize::Bytes(100));
        let r: Vec<_> = p.mini_batches.iter().map(|m| m.items.clone()).collect();
        assert_eq!(r, vec![0..2, 2..3, 3..4, 4..5]);
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = Plan::cut(items(&[1; 4]), MiniBatchSize::Count(2));
        let b = Plan::cut(items(&[1; 4]), MiniBatchSize::Count(2));
        assert_eq!(a.mini_batches, b.mini_batches);
        assert_ne!(a.mini_batches[0].id, a.mini_batches[1].id);
        let mut changed = items(&[1; 4]);
        changed[0].modified_ns = 8;
        let c = Plan::cut(changed, MiniBatchSize::Count(2));
        assert_ne!(a.mini_batches[0].id, c.mini_batches[0].id);
        assert_eq!(a.mini_batches[1].id, c.mini_batches[1].id);
    }
}
