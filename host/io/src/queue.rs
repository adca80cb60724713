//! The queue mini-batches are taken from, with leases: a worker takes a
//! mini-batch, and until it acks or nacks it the mini-batch is leased to
//! it. A lease that is lost (its worker died, or in a distributed queue
//! its lease timed out) is delivered again, so no mini-batch is lost with
//! a worker. In process today ([`InProcessQueue`]); a distributed queue
//! (NATS JetStream) implements the same trait.
//!
//! A queue's ack is not a commit: a lost lease may still be acked by a
//! slow worker, and a redelivered mini-batch may finish twice. The commit
//! log decides which result counts (the first); see ARCHITECTURE.md.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};

/// One delivery of a mini-batch to a worker.
pub struct Lease {
    /// The mini-batch (its index in the plan).
    pub index: usize,
    /// Which delivery this is, from 1: the try number.
    pub delivery: u32,
    /// Identifies this delivery to the queue.
    pub token: u64,
    /// Set when the lease is settled (acked or nacked), so dropping an
    /// unsettled lease gives it back.
    guard: Option<Arc<dyn LeaseGuard>>,
}

impl Lease {
    /// A lease for a queue implementation to hand out; `guard` is told when
    /// the lease is dropped unsettled (the worker holding it is gone).
    pub fn new(index: usize, delivery: u32, token: u64, guard: Option<Arc<dyn LeaseGuard>>) -> Lease {
        Lease { index, delivery, token, guard }
    }

    fn settle(mut self) -> (usize, u32, u64) {
        self.guard = None;
        (self.index, self.delivery, self.token)
    }
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("index", &self.index).field("delivery", &self.delivery).finish_non_exhaustive()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(g) = self.guard.take() {
            g.dropped(self.index, self.delivery, self.token);
        }
    }
}

/// Told when a [`Lease`] is dropped without an ack or a nack.
pub trait LeaseGuard: Send + Sync {
    /// The lease `token` of mini-batch `index` was dropped unsettled.
    fn dropped(&self, index: usize, delivery: u32, token: u64);
}

/// The lease was no longer the worker's when it settled it: the
/// mini-batch was (or will be) delivered to another worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the lease on mini-batch {index} was lost (it is delivered again)")]
pub struct LeaseLost {
    /// The mini-batch.
    pub index: usize,
}

/// Hands out mini-batches to workers under leases.
pub trait WorkQueue: Send + Sync {
    /// The next mini-batch to run, waiting while other workers hold leases
    /// that may come back; `None` once everything is settled or the queue
    /// is closed.
    fn take(&self) -> Option<Lease>;
    /// Whether `lease` is still this worker's (checked before its result
    /// is committed, and as a heartbeat by queues with timed leases).
    fn held(&self, lease: &Lease) -> bool;
    /// The mini-batch is done (succeeded, or failed for good).
    fn ack(&self, lease: Lease) -> Result<(), LeaseLost>;
    /// The try failed; with `retry` the mini-batch is delivered again (as
    /// delivery + 1, first in line), otherwise it is dropped. Returns
    /// whether it will be delivered again (not once the queue is closed).
    fn nack(&self, lease: Lease, retry: bool) -> Result<bool, LeaseLost>;
    /// Hands out nothing more (a threshold was crossed, the job was
    /// canceled); leases out stay valid until settled.
    fn close(&self);
}

/// Mini-batch indexes in order, in memory: `0..len`, or a given list (the
/// mini-batches a resumed job still has to run). A lease dropped unsettled
/// (its worker thread died) is delivered again at once.
#[derive(Debug)]
pub struct InProcessQueue {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// (index, delivery) waiting to be taken.
    pending: VecDeque<(usize, u32)>,
    /// token -> (index, delivery) leased out.
    leased: HashMap<u64, (usize, u32)>,
    next_token: u64,
    closed: bool,
}

impl InProcessQueue {
    /// The queue of `0..len`.
    pub fn new(len: usize) -> Self {
        Self::of((0..len).collect())
    }

    /// A queue of exactly these indexes, in this order.
    pub fn of(indexes: Vec<usize>) -> Self {
        let state = State { pending: indexes.into_iter().map(|i| (i, 1)).collect(), ..State::default() };
        InProcessQueue { inner: Arc::new(Inner { state: Mutex::new(state), changed: Condvar::new() }) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn settle(&self, lease: Lease) -> Result<(usize, u32, std::sync::MutexGuard<'_, State>), LeaseLost> {
        let (index, delivery, token) = lease.settle();
        let mut st = self.state();
        if st.leased.remove(&token).is_none() {
            return Err(LeaseLost { index });
        }
        Ok((index, delivery, st))
    }
}

impl LeaseGuard for Inner {
    fn dropped(&self, index: usize, delivery: u32, token: u64) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.leased.remove(&token).is_some() && !st.closed {
            // Same delivery number: the try never finished.
            st.pending.push_front((index, delivery));
        }
        drop(st);
        self.changed.notify_all();
    }
}

impl WorkQueue for InProcessQueue {
    fn take(&self) -> Option<Lease> {
        let mut st = self.state();
        loop {
            if st.closed {
                return None;
            }
            if let Some((index, delivery)) = st.pending.pop_front() {
                let token = st.next_token;
                st.next_token += 1;
                st.leased.insert(token, (index, delivery));
                let guard: Arc<dyn LeaseGuard> = self.inner.clone();
                return Some(Lease::new(index, delivery, token, Some(guard)));
            }
            if st.leased.is_empty() {
                return None;
            }
            st = self.inner.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn held(&self, lease: &Lease) -> bool {
        self.state().leased.contains_key(&lease.token)
    }

    fn ack(&self, lease: Lease) -> Result<(), LeaseLost> {
        let (_, _, st) = self.settle(lease)?;
        drop(st);
        self.inner.changed.notify_all();
        Ok(())
    }

    fn nack(&self, lease: Lease, retry: bool) -> Result<bool, LeaseLost> {
        let (index, delivery, mut st) = self.settle(lease)?;
        let again = retry && !st.closed;
        if again {
            st.pending.push_front((index, delivery + 1));
        }
        drop(st);
        self.inner.changed.notify_all();
        Ok(again)
    }

    fn close(&self) {
        self.state().closed = true;
        self.inner.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_in_order_and_closes() {
        let q = InProcessQueue::new(3);
        let a = q.take().unwrap();
        assert_eq!((a.index, a.delivery), (0, 1));
        q.ack(a).unwrap();
        let b = q.take().unwrap();
        assert_eq!(b.index, 1);
        q.close();
        assert!(q.take().is_none());
        // A lease taken before the close can still be settled.
        assert_eq!(q.nack(b, true), Ok(false));
        let q = InProcessQueue::of(vec![4, 2]);
        let (x, y) = (q.take().unwrap(), q.take().unwrap());
        assert_eq!((x.index, y.index), (4, 2));
        q.ack(x).unwrap();
        q.ack(y).unwrap();
        assert!(q.take().is_none());
    }

    #[test]
    fn nack_with_retry_delivers_again_first_in_line() {
        let q = InProcessQueue::new(2);
        let a = q.take().unwrap();
        assert_eq!(q.nack(a, true), Ok(true));
        let again = q.take().unwrap();
        assert_eq!((again.index, again.delivery), (0, 2));
        assert_eq!(q.nack(again, false), Ok(false));
        assert_eq!(q.take().unwrap().index, 1);
    }

    #[test]
    fn a_dropped_lease_is_delivered_again_and_its_late_ack_is_refused() {
        let q = Arc::new(InProcessQueue::new(1));
        let lease = q.take().unwrap();
        let token = lease.token;
        // A worker holding the lease dies (its thread unwinds).
        let q2 = q.clone();
        let waiter = std::thread::spawn(move || q2.take().map(|l| (l.index, l.delivery, l.token)));
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(lease);
        let (index, delivery, new_token) = waiter.join().unwrap().unwrap();
        assert_eq!((index, delivery), (0, 1));
        assert_ne!(token, new_token);
        // The redelivered lease was dropped too by the waiter's closure;
        // take it again and settle it; a stale lease is refused.
        let fresh = q.take().unwrap();
        let stale = Lease::new(0, 1, token, None);
        assert!(!q.held(&stale));
        assert_eq!(q.ack(stale), Err(LeaseLost { index: 0 }));
        assert!(q.held(&fresh));
        q.ack(fresh).unwrap();
        assert!(q.take().is_none());
    }

    #[test]
    fn take_waits_for_leases_that_may_come_back() {
        let q = Arc::new(InProcessQueue::new(1));
        let lease = q.take().unwrap();
        let q2 = q.clone();
        let waiter = std::thread::spawn(move || q2.take().map(|l| l.delivery));
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished(), "take returned while a lease was out");
        q.nack(lease, true).unwrap();
        assert_eq!(waiter.join().unwrap(), Some(2));
    }
}
