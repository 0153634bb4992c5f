//! The controller's clock: wall-clock time that never steps.
//!
//! Lock ttls are measured on it. It reads the wall clock once, when the controller
//! starts, and from then on advances with the monotonic clock (`Instant`): an NTP step,
//! a manual `date -s` or a VM's clock jumping after a resume cannot expire a grant early
//! (on Linux the monotonic clock does not count a suspended VM's sleep: a pause only ever
//! extends a ttl). Its readings are still timestamps, so what the controller writes —
//! `grantedAt`, `expiresAt` — reads as wall-clock time; it drifts from the real wall
//! clock only by the steps the system clock has taken since the controller started.

use std::time::Instant;

use jiff::{SignedDuration, Timestamp};

/// Wall-clock time from the controller's start, advanced by the monotonic clock.
#[derive(Clone, Copy, Debug)]
pub struct MonotonicClock {
    wall: Timestamp,
    at: Instant,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::start()
    }
}

impl MonotonicClock {
    /// A clock that reads the wall clock now and counts on from it.
    pub fn start() -> Self {
        Self {
            wall: Timestamp::now(),
            at: Instant::now(),
        }
    }

    /// Now, on this clock (microsecond precision: what a status can hold).
    pub fn now(&self) -> Timestamp {
        let elapsed = SignedDuration::try_from(self.at.elapsed()).unwrap_or(SignedDuration::MAX);
        let now = self.wall.checked_add(elapsed).unwrap_or(Timestamp::MAX);
        Timestamp::from_microsecond(now.as_microsecond()).unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_never_go_back_and_keep_microseconds() {
        let clock = MonotonicClock::start();
        let first = clock.now();
        let second = clock.now();
        assert!(second >= first);
        assert_eq!(first.subsec_nanosecond() % 1000, 0);
    }
}
