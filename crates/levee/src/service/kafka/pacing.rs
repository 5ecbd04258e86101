//! The pace of a partition task's chores: the service's clock, read once a
//! millisecond has passed rather than per event ([`Now`]), and the scans
//! for idle subjects to forget ([`Expiry`]).

use std::time::{Duration, Instant};

use chrono::SecondsFormat;

use crate::service::clock;

/// The least wall-clock time between two scans for idle subjects: a
/// backlog of months of events is read in seconds, and a scan per
/// [`expire_every`] of its event time would still visit every subject
/// dozens of times a second.
const EXPIRE_WALL: Duration = Duration::from_secs(1);

/// How far the watermark moves (seconds of event time) between two scans
/// for idle subjects: an hour, or a 64th of the TTL if that is longer (a
/// subject is forgotten at most 1/64 of the TTL late). Each scan visits
/// every subject of the partition; at every hour, a stream spanning months
/// of event time spent an eighth of its CPU time scanning.
pub fn expire_every(ttl: i64) -> i64 {
    (ttl / 64).max(3600)
}

/// The service's clock as alerts are stamped with it, read again once a
/// millisecond has passed, not per event.
pub struct Now {
    /// RFC 3339, milliseconds: `detected_at`.
    pub text: String,
    /// Epoch seconds: deadlines, escalation and the future bound.
    pub secs: i64,
    read: Instant,
}

impl Now {
    pub fn read() -> Self {
        Now {
            text: clock::now_rfc3339(),
            secs: clock::now_secs(),
            read: Instant::now(),
        }
    }

    /// Reads the clock again if a millisecond has passed; whether it did.
    pub fn refresh(&mut self) -> bool {
        if self.read.elapsed() < Duration::from_millis(1) {
            return false;
        }
        let now = clock::now();
        self.text = now.to_rfc3339_opts(SecondsFormat::Millis, true);
        self.secs = now.timestamp();
        self.read = Instant::now();
        true
    }
}

/// When idle subjects were last forgotten.
pub struct Expiry {
    /// The watermark at the last expiry.
    at: i64,
    every: i64,
    wall: Instant,
}

impl Expiry {
    pub fn new(ttl: i64) -> Self {
        Expiry {
            at: i64::MIN,
            every: expire_every(ttl),
            wall: Instant::now()
                .checked_sub(EXPIRE_WALL)
                .unwrap_or_else(Instant::now),
        }
    }

    /// Whether to expire at `watermark`; if so, counts it as done.
    pub fn due(&mut self, watermark: i64) -> bool {
        if watermark.saturating_sub(self.at) >= self.every && self.wall.elapsed() >= EXPIRE_WALL {
            self.at = watermark;
            self.wall = Instant::now();
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_subjects_are_scanned_once_an_hour_or_ttl_over_64() {
        assert_eq!(expire_every(400 * 86_400), 400 * 86_400 / 64);
        assert_eq!(expire_every(86_400), 3600);
        let mut e = Expiry::new(86_400);
        assert!(e.due(0));
        assert!(!e.due(10 * 3600), "less than a second of wall clock since");
    }

    #[test]
    fn the_clock_is_read_again_only_after_a_millisecond() {
        let mut now = Now::read();
        assert!(!now.refresh());
        std::thread::sleep(Duration::from_millis(2));
        assert!(now.refresh());
        assert!(now.text.ends_with('Z') && now.secs > 0);
    }
}
