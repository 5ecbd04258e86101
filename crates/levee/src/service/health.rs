//! Liveness and readiness of `levee run`, shared by the pipeline (which
//! sets the flags) and the HTTP listener (which answers `/readyz`).
//!
//! Ready means: the rules compiled, the consumer has its partition
//! assignment (possibly empty: more instances than partitions), a broker
//! connection is up, and no partition's state is being restored. The
//! `levee_ready` gauge follows the same value.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{LazyLock, RwLock};

use levee_engine::Profile;
use serde::Serialize;

use super::metrics;

/// Looks a subject's profile up in the state this instance holds.
pub type ProfileLookup = Box<dyn Fn(&str) -> Option<Profile> + Send + Sync>;

/// The readiness flags. One per process: the service runs once per process.
pub struct Health {
    rules: AtomicBool,
    assigned: AtomicBool,
    broker: AtomicBool,
    restoring: AtomicUsize,
    profiles: RwLock<Option<ProfileLookup>>,
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
    profiles: RwLock::new(None),
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
            ready: rules && assigned && broker && restoring == 0,
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

    /// Whether any broker connection is up.
    pub fn set_broker_up(&self, up: bool) {
        if self.broker.swap(up, Ordering::AcqRel) != up {
            self.publish();
        }
    }

    /// A partition's state is being restored until the guard is dropped.
    pub fn restoring(&'static self) -> Restoring {
        self.restoring.fetch_add(1, Ordering::AcqRel);
        self.publish();
        Restoring(self)
    }

    /// Installs where `GET /v1/subjects/{id}` finds profiles.
    #[allow(dead_code)]
    pub fn set_profiles(&self, lookup: ProfileLookup) {
        *self.profiles.write().unwrap_or_else(|p| p.into_inner()) = Some(lookup);
    }

    /// The subject's profile; `None` if this instance does not hold it, and
    /// `Err` if no profile source is installed.
    pub fn profile(&self, subject: &str) -> Result<Option<Profile>, ()> {
        let guard = self.profiles.read().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(lookup) => Ok(lookup(subject)),
            None => Err(()),
        }
    }
}
