//! Holding reads of a view whose copy to this node is under way.
//!
//! While the node copies a view from a distant origin, the reads of that view still go to
//! the origin — over the same link as the copy, which they slow down, and at the origin's
//! (slow) pace. When the copy is expected to finish sooner than the origin answers, a read
//! is better off waiting for the replica: it is answered sooner, and the link is left to
//! the copy. So the data plane holds such a read until the route table routes the view to
//! a replica, and sends it to the origin as before when the copy ends without one or the
//! wait reaches its bound. A held read is never failed, only delayed, and by at most the
//! bound.
//!
//! The parts: a [`CopyBoard`] the node's relocation writes to (a [`CopyTicket`] per copy:
//! begun before the first byte, [`CopyTicket::registered`] once the replica's instance is
//! in the catalog, dropped otherwise), and [`hold_budget`], the rule deciding whether and
//! how long a read waits. The request path reads one atomic counter when nothing is being
//! copied.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use civitas_model::Urn;
use tokio::sync::watch;
use tokio::time::Instant;

/// How long after its replica was registered a copy still counts as under way: the time
/// the catalog → route table path is given to show the new instance. Held reads keep
/// waiting for the route table (within their own bound) meanwhile.
pub const REGISTERED_GRACE: Duration = Duration::from_secs(2);

/// The copies under way at this node, by view. Cheap to clone (shared).
#[derive(Clone)]
pub struct CopyBoard {
    inner: Arc<Board>,
}

struct Board {
    copies: Mutex<HashMap<Urn, Entry>>,
    /// Entries in `copies`: the request path reads only this when nothing is copied.
    count: AtomicUsize,
    next_id: AtomicU64,
    /// Bumped on every change, so held reads re-check.
    changed: watch::Sender<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u64,
    started: Instant,
    registered_at: Option<Instant>,
}

/// One copy on the board: [`CopyTicket::registered`] when its replica is in the catalog;
/// dropped otherwise (failed, skipped), which takes it off the board at once.
#[must_use = "dropping the ticket ends the copy"]
pub struct CopyTicket {
    board: Arc<Board>,
    view: Urn,
    id: u64,
    registered: bool,
}

impl Default for CopyBoard {
    fn default() -> Self {
        CopyBoard::new()
    }
}

impl std::fmt::Debug for CopyBoard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyBoard").field("copies", &self.inner.count.load(Ordering::Relaxed)).finish()
    }
}

impl CopyBoard {
    /// An empty board.
    pub fn new() -> CopyBoard {
        let (changed, _) = watch::channel(0);
        CopyBoard {
            inner: Arc::new(Board {
                copies: Mutex::new(HashMap::new()),
                count: AtomicUsize::new(0),
                next_id: AtomicU64::new(1),
                changed,
            }),
        }
    }

    /// A copy of `view` to this node starts now (replacing any earlier one of the view).
    pub fn begin(&self, view: Urn) -> CopyTicket {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Entry { id, started: Instant::now(), registered_at: None };
        self.inner.update(|copies| {
            copies.insert(view.clone(), entry);
        });
        CopyTicket { board: Arc::clone(&self.inner), view, id, registered: false }
    }

    /// Copies on the board (under way, or registered within [`REGISTERED_GRACE`]).
    pub fn len(&self) -> usize {
        self.inner.count.load(Ordering::Relaxed)
    }

    /// Whether no copy is on the board.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// When the copy of `view` started, if reads of it may wait for its replica now.
    pub(crate) fn copy_started(&self, view: &Urn) -> Option<Instant> {
        if self.is_empty() {
            return None;
        }
        let now = Instant::now();
        let mut expired = false;
        let started = {
            let copies = self.inner.copies.lock().unwrap_or_else(|e| e.into_inner());
            match copies.get(view) {
                Some(Entry { registered_at: Some(at), .. }) if now >= *at + REGISTERED_GRACE => {
                    expired = true;
                    None
                }
                Some(e) => Some(e.started),
                None => None,
            }
        };
        if expired {
            self.inner.update(|copies| {
                if copies.get(view).is_some_and(|e| e.registered_at.is_some_and(|at| now >= at + REGISTERED_GRACE)) {
                    copies.remove(view);
                }
            });
        }
        started
    }

    /// Notified on every change of the board.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }
}

impl Board {
    fn update(&self, f: impl FnOnce(&mut HashMap<Urn, Entry>)) {
        {
            let mut copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut copies);
            self.count.store(copies.len(), Ordering::Relaxed);
        }
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl CopyTicket {
    /// The replica is registered in the catalog: held reads go on waiting for the route
    /// table to show it, for at most [`REGISTERED_GRACE`].
    pub fn registered(mut self) {
        self.registered = true;
        let (id, now) = (self.id, Instant::now());
        self.board.update(|copies| {
            if let Some(e) = copies.get_mut(&self.view).filter(|e| e.id == id) {
                e.registered_at = Some(now);
            }
        });
    }
}

impl Drop for CopyTicket {
    fn drop(&mut self) {
        if self.registered {
            return;
        }
        let id = self.id;
        self.board.update(|copies| {
            if copies.get(&self.view).is_some_and(|e| e.id == id) {
                copies.remove(&self.view);
            }
        });
    }
}

/// Whether a read of a view being copied waits for the replica, and for how long at most.
///
/// - `origin_recent`: how long the view's reads have recently taken (the data plane's
///   moving average); `None` (no history) → no wait: nothing says the origin is slow.
/// - `copy_elapsed`: how long the copy has run. Its size is not known in advance (the
///   variants are copied as they come), so the expected remaining time is taken to be as
///   long again — the usual estimate for a process of unknown length observed midway.
///
/// The read waits when that expectation is shorter than the origin's answer, for at most
/// `origin_recent` (capped by `max_hold`): had it gone to the origin it would have taken
/// about that long anyway, so the wait costs at most one more origin read in the worst
/// case (the copy fails or runs long) and saves nearly all of it in the usual one.
pub fn hold_budget(origin_recent: Option<Duration>, copy_elapsed: Duration, max_hold: Duration) -> Option<Duration> {
    let origin = origin_recent?;
    if max_hold.is_zero() || origin.is_zero() || copy_elapsed >= origin {
        return None;
    }
    Some(origin.min(max_hold))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urn(s: &str) -> Urn {
        Urn::parse(s).unwrap()
    }

    #[test]
    fn reads_wait_only_when_the_copy_should_beat_the_origin() {
        let s = Duration::from_secs_f64;
        assert_eq!(hold_budget(None, s(0.1), s(10.0)), None, "no history: no wait");
        assert_eq!(hold_budget(Some(s(2.0)), s(0.5), s(10.0)), Some(s(2.0)));
        assert_eq!(hold_budget(Some(s(2.0)), s(2.5), s(10.0)), None, "the copy runs long: to the origin");
        assert_eq!(hold_budget(Some(s(20.0)), s(1.0), s(5.0)), Some(s(5.0)), "capped");
        assert_eq!(hold_budget(Some(s(2.0)), s(0.1), Duration::ZERO), None, "switched off");
    }

    #[tokio::test]
    async fn a_ticket_is_on_the_board_until_dropped_or_its_grace_ends() {
        let board = CopyBoard::new();
        let (a, b) = (urn("urn:urbem:u:a"), urn("urn:urbem:u:b"));
        assert!(board.copy_started(&a).is_none());
        let mut changes = board.subscribe();
        let ta = board.begin(a.clone());
        let tb = board.begin(b.clone());
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        assert_eq!(board.len(), 2);
        assert!(board.copy_started(&a).is_some());
        drop(tb);
        assert!(changes.has_changed().unwrap(), "held reads are woken when a copy ends");
        assert!(board.copy_started(&b).is_none(), "a failed copy releases its reads at once");
        ta.registered();
        assert!(board.copy_started(&a).is_some(), "registered: reads wait for the route table");
        assert_eq!(board.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_registered_copy_leaves_the_board_after_the_grace() {
        let board = CopyBoard::new();
        let a = urn("urn:urbem:u:a");
        board.begin(a.clone()).registered();
        tokio::time::advance(REGISTERED_GRACE + Duration::from_millis(1)).await;
        assert!(board.copy_started(&a).is_none());
        assert!(board.is_empty());
    }

    #[test]
    fn an_old_ticket_does_not_remove_a_newer_copy_of_the_view() {
        let board = CopyBoard::new();
        let a = urn("urn:urbem:u:a");
        let old = board.begin(a.clone());
        let _new = board.begin(a.clone());
        drop(old);
        assert!(board.copy_started(&a).is_some());
    }
}
