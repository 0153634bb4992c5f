//! The reconcile queue: which objects (barriers, locks) need a look, and when.
//!
//! Like client-go's workqueue: a key triggered many times before a worker takes it is
//! reconciled once (so bursts of arrivals coalesce into one status write), a key
//! triggered while it is being reconciled runs once more afterwards (never two
//! reconciles of one barrier at a time), and delayed requeues (deadlines, retries) wait
//! on a timer. A key that is due runs at once: no timer tick stands between a watch
//! event and its reconcile.
//!
//! Two lanes: [`Urgency::Urgent`] keys (a barrier that may open, a deadline that
//! passed — work that releases waiters) go before [`Urgency::Normal`] ones (progress),
//! and only a few normal keys run at once (`normal_limit`): under load, progress waits
//! in the queue, where it coalesces, while openings get every free worker. Every
//! operation is O(log n) in the keys queued, amortized.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How soon a key is wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    /// In turn.
    Normal,
    /// Before any normal key.
    Urgent,
}

/// A queue of keys to work on. Shared by the watch streams that fill it and the
/// workers that drain it.
pub struct WorkQueue<K> {
    state: Mutex<State<K>>,
    /// Wakes a worker when a key becomes due, or all of them when the queue closes.
    wakeup: Notify,
}

struct State<K> {
    /// Due urgent keys, oldest first (entries no longer queued urgent are skipped).
    urgent: VecDeque<K>,
    /// Due normal keys, oldest first (entries no longer queued normal are skipped).
    ready: VecDeque<K>,
    /// The due keys and their lane.
    queued: HashMap<K, Urgency>,
    /// Keys a worker is on, and the lane each came from.
    running: HashMap<K, Urgency>,
    /// How many normal keys may run at once.
    normal_limit: usize,
    /// Running keys triggered again meanwhile, and how urgently.
    again: HashMap<K, Urgency>,
    /// Keys due later, by when (with a sequence number to keep equal times apart).
    delayed: BTreeMap<(Instant, u64), K>,
    /// When each delayed key is due.
    due: HashMap<K, (Instant, u64)>,
    sequence: u64,
    closed: bool,
}

impl<K: Clone + Eq + Hash> Default for WorkQueue<K> {
    /// A queue with no limit on normal keys running.
    fn default() -> Self {
        Self::with_normal_limit(usize::MAX)
    }
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    /// A queue that runs at most `normal_limit` normal keys at once (urgent ones are
    /// limited only by the workers).
    pub fn with_normal_limit(normal_limit: usize) -> Self {
        Self {
            state: Mutex::new(State {
                urgent: VecDeque::new(),
                ready: VecDeque::new(),
                queued: HashMap::new(),
                running: HashMap::new(),
                normal_limit: normal_limit.max(1),
                again: HashMap::new(),
                delayed: BTreeMap::new(),
                due: HashMap::new(),
                sequence: 0,
                closed: false,
            }),
            wakeup: Notify::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> State<K> {
    /// Makes `key` due now, in `urgency`'s lane (unless it already is, or is running);
    /// returns whether a worker should be woken.
    fn make_ready(&mut self, key: K, urgency: Urgency) -> bool {
        if self.running.contains_key(&key) {
            let again = self.again.entry(key).or_insert(urgency);
            *again = (*again).max(urgency);
            return false;
        }
        match self.queued.get(&key) {
            Some(queued) if *queued >= urgency => return false,
            Some(_) => {} // moves up to the urgent lane; its normal entry goes stale
            None => {
                if let Some(at) = self.due.remove(&key) {
                    self.delayed.remove(&at);
                }
            }
        }
        self.queued.insert(key.clone(), urgency);
        match urgency {
            Urgency::Urgent => self.urgent.push_back(key),
            Urgency::Normal => self.ready.push_back(key),
        }
        true
    }

    /// Takes the next due key, urgent ones first, marking it running.
    fn pop(&mut self) -> Option<K> {
        let normal_running = self
            .running
            .values()
            .filter(|u| **u == Urgency::Normal)
            .count();
        let lanes = [
            (&mut self.urgent, Urgency::Urgent, true),
            (
                &mut self.ready,
                Urgency::Normal,
                normal_running < self.normal_limit,
            ),
        ];
        for (lane, urgency, open) in lanes {
            if !open {
                continue;
            }
            while let Some(key) = lane.pop_front() {
                if self.queued.get(&key) == Some(&urgency) {
                    self.queued.remove(&key);
                    self.running.insert(key.clone(), urgency);
                    return Some(key);
                }
            }
        }
        None
    }

    /// Moves delayed keys that are due into `ready`.
    fn promote_due(&mut self, now: Instant) {
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.due.remove(&key);
            // A deadline or a retry that comes due releases or unblocks waiters.
            self.make_ready(key, Urgency::Urgent);
        }
    }
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks for `key` to be worked on now, in turn.
    pub fn add(&self, key: K) {
        self.add_with(key, Urgency::Normal);
    }

    /// Asks for `key` to be worked on now, with `urgency`.
    pub fn add_with(&self, key: K, urgency: Urgency) {
        if self.lock().make_ready(key, urgency) {
            self.wakeup.notify_one();
        }
    }

    /// Asks for `key` to be worked on after `delay` — or earlier, if it is asked for
    /// earlier by then.
    pub fn add_after(&self, key: K, delay: Duration) {
        let at = Instant::now() + delay;
        let mut state = self.lock();
        if state.queued.contains_key(&key) || state.running.contains_key(&key) {
            return;
        }
        if let Some(current) = state.due.get(&key).copied() {
            if current.0 <= at {
                return;
            }
            state.delayed.remove(&current);
        }
        state.sequence += 1;
        let slot = (at, state.sequence);
        state.delayed.insert(slot, key.clone());
        state.due.insert(key, slot);
        drop(state);
        // A sleeping worker may be waiting for a later deadline.
        self.wakeup.notify_one();
    }

    /// The next due key, marked as running until [`WorkQueue::done`]; `None` once the
    /// queue is closed.
    pub async fn next(&self) -> Option<K> {
        loop {
            let notified = self.wakeup.notified();
            tokio::pin!(notified);
            // Registered before looking, so a key added right after is not missed.
            notified.as_mut().enable();
            let next_due = {
                let mut state = self.lock();
                if state.closed {
                    return None;
                }
                state.promote_due(Instant::now());
                if let Some(key) = state.pop() {
                    if !state.queued.is_empty() {
                        // More work: let another worker start on it.
                        self.wakeup.notify_one();
                    }
                    return Some(key);
                }
                state.delayed.first_key_value().map(|(at, _)| at.0)
            };
            match next_due {
                Some(at) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Marks `key` as no longer running: it runs again at once if it was triggered
    /// meanwhile, else after `requeue_after` if given.
    pub fn done(&self, key: K, requeue_after: Option<Duration>) {
        let (again, was_normal) = {
            let mut state = self.lock();
            let lane = state.running.remove(&key);
            (state.again.remove(&key), lane == Some(Urgency::Normal))
        };
        if was_normal {
            // A normal slot is free: a worker may take the next normal key.
            self.wakeup.notify_one();
        }
        match (again, requeue_after) {
            (Some(urgency), _) => self.add_with(key, urgency),
            (None, Some(delay)) => self.add_after(key, delay),
            (None, None) => {}
        }
    }

    /// Ends [`WorkQueue::next`] for every worker.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wakeup.notify_waiters();
    }

    /// Keys due now or later (not counting running ones).
    pub fn len(&self) -> usize {
        let state = self.lock();
        state.queued.len() + state.delayed.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_or_never<T>(future: impl std::future::Future<Output = T>) -> Option<T> {
        futures::FutureExt::now_or_never(future)
    }

    #[tokio::test]
    async fn a_key_added_many_times_runs_once() {
        let queue = WorkQueue::default();
        for _ in 0..5 {
            queue.add("b");
        }
        queue.add("c");
        assert_eq!(queue.next().await, Some("b"));
        assert_eq!(queue.next().await, Some("c"));
        assert_eq!(now_or_never(queue.next()), None, "nothing else is due");
    }

    #[tokio::test]
    async fn a_key_triggered_while_running_runs_again_afterwards_not_alongside() {
        let queue = WorkQueue::default();
        queue.add("b");
        assert_eq!(queue.next().await, Some("b"));
        queue.add("b");
        queue.add("b");
        assert_eq!(now_or_never(queue.next()), None, "never two at once");
        queue.done("b", None);
        assert_eq!(queue.next().await, Some("b"));
        queue.done("b", None);
        assert!(queue.is_empty());
    }

    #[tokio::test]
    async fn urgent_keys_go_first_and_a_queued_key_can_become_urgent() {
        let queue = WorkQueue::default();
        queue.add("progress-1");
        queue.add("progress-2");
        queue.add_with("opening", Urgency::Urgent);
        queue.add_with("progress-2", Urgency::Urgent);
        assert_eq!(queue.next().await, Some("opening"));
        assert_eq!(queue.next().await, Some("progress-2"));
        assert_eq!(queue.next().await, Some("progress-1"));
        assert_eq!(now_or_never(queue.next()), None, "each key once");
    }

    #[tokio::test]
    async fn only_a_few_normal_keys_run_at_once_but_urgent_ones_still_do() {
        let queue = WorkQueue::with_normal_limit(1);
        queue.add("progress-1");
        queue.add("progress-2");
        assert_eq!(queue.next().await, Some("progress-1"));
        assert_eq!(now_or_never(queue.next()), None, "the normal slot is taken");
        queue.add_with("opening", Urgency::Urgent);
        assert_eq!(queue.next().await, Some("opening"));
        queue.done("progress-1", None);
        assert_eq!(queue.next().await, Some("progress-2"));
    }

    #[tokio::test(start_paused = true)]
    async fn requeues_wait_for_their_time_unless_triggered_sooner() {
        let queue = WorkQueue::default();
        queue.add("late");
        assert_eq!(queue.next().await, Some("late"));
        queue.done("late", Some(Duration::from_secs(10)));
        queue.add_after("soon", Duration::from_secs(1));
        assert_eq!(now_or_never(queue.next()), None);
        let started = Instant::now();
        assert_eq!(queue.next().await, Some("soon"));
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        // An arrival makes the late one due at once.
        queue.add("late");
        assert_eq!(queue.next().await, Some("late"));
        assert_eq!(started.elapsed(), Duration::from_secs(1));
        assert!(queue.is_empty(), "its timer is gone");
    }

    #[tokio::test(start_paused = true)]
    async fn the_earliest_requeue_wins() {
        let queue = WorkQueue::default();
        queue.add_after("b", Duration::from_secs(5));
        queue.add_after("b", Duration::from_secs(2));
        queue.add_after("b", Duration::from_secs(9));
        let started = Instant::now();
        assert_eq!(queue.next().await, Some("b"));
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(queue.len(), 0);
    }

    #[tokio::test]
    async fn closing_ends_every_worker() {
        let queue = std::sync::Arc::new(WorkQueue::<&str>::default());
        let worker = tokio::spawn({
            let queue = queue.clone();
            async move { queue.next().await }
        });
        tokio::task::yield_now().await;
        queue.close();
        assert_eq!(worker.await.unwrap(), None);
    }
}
