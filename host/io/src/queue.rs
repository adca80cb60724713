//! The queue mini-batches are taken from. In process today; a distributed
//! queue implements the same trait.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Hands out mini-batch indexes to workers.
pub trait WorkQueue: Send + Sync {
    /// The next mini-batch to run, or `None` once drained or closed.
    fn pop(&self) -> Option<usize>;
    /// Hands out nothing more (a threshold was crossed).
    fn close(&self);
}

/// Mini-batch indexes in order, lock-free: `0..len`, or a given list (the
/// mini-batches a resumed job still has to run).
#[derive(Debug)]
pub struct InProcessQueue {
    next: AtomicUsize,
    len: usize,
    /// `None`: the identity over `0..len`.
    indexes: Option<Vec<usize>>,
    closed: AtomicBool,
}

impl InProcessQueue {
    pub fn new(len: usize) -> Self {
        InProcessQueue { next: AtomicUsize::new(0), len, indexes: None, closed: AtomicBool::new(false) }
    }

    /// A queue of exactly these indexes, in this order.
    pub fn of(indexes: Vec<usize>) -> Self {
        InProcessQueue {
            next: AtomicUsize::new(0),
            len: indexes.len(),
            indexes: Some(indexes),
            closed: AtomicBool::new(false),
        }
    }
}

impl WorkQueue for InProcessQueue {
    fn pop(&self) -> Option<usize> {
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::AcqRel);
        if i >= self.len {
            return None;
        }
        Some(self.indexes.as_ref().map_or(i, |v| v[i]))
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_in_order_and_closes() {
        let q = InProcessQueue::new(3);
        assert_eq!(q.pop(), Some(0));
        assert_eq!(q.pop(), Some(1));
        q.close();
        assert_eq!(q.pop(), None);
        let q = InProcessQueue::new(1);
        assert_eq!((q.pop(), q.pop()), (Some(0), None));
        let q = InProcessQueue::of(vec![4, 2]);
        assert_eq!((q.pop(), q.pop(), q.pop()), (Some(4), Some(2), None));
    }
}
