//! The service's clock: the wall clock, shifted by `clock.offset`.
//!
//! Everything in `levee run` that asks "what time is it" for the product
//! (an alert's `detected_at` and rectification deadline, escalation, the
//! upper bound on event time) reads it here, so a drill or a test can run
//! the service as if it were another day without touching the machine's
//! clock. Latency metrics read the real clock.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

/// Seconds added to the wall clock.
static OFFSET: AtomicI64 = AtomicI64::new(0);

/// Sets the offset (`clock.offset`), once at start-up.
pub fn set_offset(secs: i64) {
    OFFSET.store(secs, Ordering::Relaxed);
}

/// Now, on the service's clock.
pub fn now() -> DateTime<Utc> {
    let offset = OFFSET.load(Ordering::Relaxed);
    Utc::now() + TimeDelta::seconds(offset)
}

/// Now in epoch seconds.
pub fn now_secs() -> i64 {
    now().timestamp()
}

/// Now as `detected_at` writes it (RFC 3339, UTC, milliseconds).
pub fn now_rfc3339() -> String {
    now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_moves_now() {
        // One test owns the global: set, read, put back.
        set_offset(400 * 86_400);
        let ahead = now_secs() - Utc::now().timestamp();
        set_offset(0);
        assert!(
            (400 * 86_400 - 1..=400 * 86_400 + 1).contains(&ahead),
            "{ahead}"
        );
    }
}
