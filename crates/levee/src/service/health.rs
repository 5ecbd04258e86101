//! Liveness and readiness of `levee run`, shared by the pipeline (which
//! sets the flags) and the HTTP listener (which answers `/readyz`).
//!
//! Ready means what a caller of the HTTP API can get: the rules compiled,
//! the consumer has had its partition assignment (possibly empty: more
//! instances than partitions), and no partition's state is being restored.
//! A broker outage once running does not make an instance unready: every
//! instance would leave its Service while interception could still answer
//! (it evaluates without the broker); the stream's own state is
//! `levee_stream_up`, logged once per change. The `levee_ready` gauge
//! follows `/readyz`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{LazyLock, RwLock};

use levee_engine::Profile;
use serde::Serialize;

use super::metrics;

/// Profiles of the subjects of each assigned partition, as of its last
/// checkpoint: `(topic, partition) → subject → profile`.
type Profiles = HashMap<(String, i32), HashMap<String, Profile>>;

/// The readiness flags. One per process: the service runs once per process.
pub struct Health {
    rules: AtomicBool,
    assigned: AtomicBool,
    broker: AtomicBool,
    restoring: AtomicUsize,
    profiles: RwLock<Profiles>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

/// Holds readiness back while a partition's state is restored.
#[derive(Debug)]
pub struct Restoring(&'static Health);

impl Drop for Restoring {
    fn drop(&mut self) {
        self.0.restoring.fetch_sub(1, Ordering::AcqRel);
        self.0.publish();
    }
}

/// What `/readyz` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Status {
    pub ready: bool,
    /// The rules compiled.
    pub rules: bool,
    /// The consumer group gave this instance its assignment.
    pub assigned: bool,
    /// A broker connection is up.
    pub broker: bool,
    /// Partitions whose state is being restored.
    pub restoring: usize,
}

static HEALTH: LazyLock<Health> = LazyLock::new(|| Health {
    rules: AtomicBool::new(false),
    assigned: AtomicBool::new(false),
    // Until the first statistics say otherwise: the assignment needs a
    // broker anyway.
    broker: AtomicBool::new(true),
    restoring: AtomicUsize::new(0),
    profiles: RwLock::new(HashMap::new()),
});

/// The process' health flags.
pub fn health() -> &'static Health {
    &HEALTH
}

impl Health {
    pub fn status(&self) -> Status {
        let rules = self.rules.load(Ordering::Acquire);
        let assigned = self.assigned.load(Ordering::Acquire);
        let broker = self.broker.load(Ordering::Acquire);
        let restoring = self.restoring.load(Ordering::Acquire);
        Status {
            ready: rules && assigned && restoring == 0,
            rules,
            assigned,
            broker,
            restoring,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.status().ready
    }

    fn publish(&self) {
        metrics::set_ready(self.is_ready());
    }

    pub fn set_rules_compiled(&self) {
        self.rules.store(true, Ordering::Release);
        self.publish();
    }

    /// The group assigned partitions (`true`) or revoked them (`false`).
    pub fn set_assigned(&self, assigned: bool) {
        self.assigned.store(assigned, Ordering::Release);
        self.publish();
    }

    /// Whether any broker connection is up: `levee_stream_up`, and one log
    /// line when it changes.
    pub fn set_broker_up(&self, up: bool) {
        metrics::set_stream_up(up);
        if self.broker.swap(up, Ordering::AcqRel) != up {
            if up {
                tracing::info!("a broker is reachable again; the stream goes on");
            } else {
                tracing::warn!(
                    "no broker is reachable; the stream waits (HTTP evaluation still answers)"
                );
            }
            self.publish();
        }
    }

    /// A partition's state is being restored until the guard is dropped.
    pub fn restoring(&'static self) -> Restoring {
        self.restoring.fetch_add(1, Ordering::AcqRel);
        self.publish();
        Restoring(self)
    }

    /// A subject's profile as its partition's task last wrote it (`None`:
    /// the subject is gone).
    pub fn put_profile(
        &self,
        topic: &str,
        partition: i32,
        subject: &str,
        profile: Option<&Profile>,
    ) {
        let mut all = self.profiles.write().unwrap_or_else(|p| p.into_inner());
        let key = (topic.to_owned(), partition);
        match profile {
            Some(p) => {
                all.entry(key)
                    .or_default()
                    .insert(subject.to_owned(), p.clone());
            }
            None => {
                if let Some(m) = all.get_mut(&key) {
                    m.remove(subject);
                }
            }
        }
    }

    /// [`Health::put_profile`] for many subjects of one partition, under
    /// one lock.
    pub fn put_profiles<'a>(
        &self,
        topic: &str,
        partition: i32,
        profiles: impl IntoIterator<Item = (&'a str, Option<&'a Profile>)>,
    ) {
        let profiles: Vec<_> = profiles.into_iter().collect();
        if profiles.is_empty() {
            return;
        }
        let mut all = self.profiles.write().unwrap_or_else(|p| p.into_inner());
        let key = (topic.to_owned(), partition);
        let part = if profiles.iter().any(|(_, p)| p.is_some()) {
            all.entry(key).or_default()
        } else {
            match all.get_mut(&key) {
                Some(m) => m,
                None => return,
            }
        };
        for (subject, profile) in profiles {
            match profile {
                Some(p) => {
                    part.insert(subject.to_owned(), p.clone());
                }
                None => {
                    part.remove(subject);
                }
            }
        }
    }

    /// The partition moved away (or its task stopped): its profiles go.
    pub fn forget_partition(&self, topic: &str, partition: i32) {
        self.profiles
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(topic.to_owned(), partition));
    }

    /// The subject's profile over the partitions this instance holds (a
    /// subject keyed in several input topics has one per topic: summed).
    pub fn profile(&self, subject: &str) -> Option<Profile> {
        let all = self.profiles.read().unwrap_or_else(|p| p.into_inner());
        let mut found = all.values().filter_map(|m| m.get(subject));
        let mut merged = found.next()?.clone();
        for p in found {
            merged.alerts += p.alerts;
            merged.open += p.open;
            merged.rectified += p.rectified;
            merged.dismissed += p.dismissed;
            merged.escalated += p.escalated;
            for i in 0..3 {
                merged.open_by_tier[i] += p.open_by_tier[i];
                merged.by_tier[i] += p.by_tier[i];
            }
            for (cp, n) in &p.by_control_point {
                *merged.by_control_point.entry(cp.clone()).or_default() += n;
            }
            if p.last_alert_at > merged.last_alert_at {
                merged.last_alert_at.clone_from(&p.last_alert_at);
            }
            // The score is linear in the counts.
            merged.risk_score = ((merged.risk_score + p.risk_score) * 10.0).round() / 10.0;
        }
        Some(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fresh() -> Health {
        Health {
            rules: AtomicBool::new(false),
            assigned: AtomicBool::new(false),
            broker: AtomicBool::new(true),
            restoring: AtomicUsize::new(0),
            profiles: RwLock::new(HashMap::new()),
        }
    }

    #[test]
    fn ready_is_rules_assignment_and_no_restore_not_the_broker() {
        let h = fresh();
        assert!(!h.is_ready());
        h.rules.store(true, Ordering::Release);
        h.assigned.store(true, Ordering::Release);
        assert!(h.is_ready());
        // A broker outage once running: the stream waits, the API answers.
        h.broker.store(false, Ordering::Release);
        let s = h.status();
        assert!(s.ready && !s.broker, "{s:?}");
        h.restoring.store(1, Ordering::Release);
        assert!(!h.is_ready(), "state being restored");
        h.restoring.store(0, Ordering::Release);
        h.assigned.store(false, Ordering::Release);
        assert!(!h.is_ready(), "never assigned: no broker was ever reached");
    }
}
