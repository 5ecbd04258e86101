//! The fixed label values of levee's metrics that come from levee itself
//! (not from the settings or the rules): DLQ reasons, Kafka error kinds,
//! reload outcomes, HTTP routes.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Why a message went to the DLQ: the `reason` label (also its
/// `levee.error.kind` header). The engine's [`BadKind`]s, and `late`.
pub const DLQ_REASONS: &[&str] = &[
    "not_json",
    "not_object",
    "unknown_type",
    "missing_field",
    "wrong_type",
    "future",
    "duplicate_field",
    "too_deep",
    "number_range",
    "bom",
    "invalid_unicode",
    "non_finite",
    "oversize",
    "misrouted",
    "late",
    "rectification_conflict",
    "rectification_role",
    "rectification_backwards",
];

/// What went wrong talking to Kafka: the `kind` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaErrorKind {
    /// A broker connection failed or was lost.
    Transport,
    /// No broker is reachable.
    AllBrokersDown,
    /// Authentication or authorization failed.
    Auth,
    /// Polling the consumer returned an error.
    Consume,
    /// The producer refused or failed to deliver a record.
    Produce,
    /// Committing offsets failed.
    Commit,
    /// A transaction failed (exactly-once).
    Transaction,
    /// Anything else librdkafka reports.
    Other,
}

impl KafkaErrorKind {
    pub const ALL: [KafkaErrorKind; 8] = [
        KafkaErrorKind::Transport,
        KafkaErrorKind::AllBrokersDown,
        KafkaErrorKind::Auth,
        KafkaErrorKind::Consume,
        KafkaErrorKind::Produce,
        KafkaErrorKind::Commit,
        KafkaErrorKind::Transaction,
        KafkaErrorKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KafkaErrorKind::Transport => "transport",
            KafkaErrorKind::AllBrokersDown => "all_brokers_down",
            KafkaErrorKind::Auth => "auth",
            KafkaErrorKind::Consume => "consume",
            KafkaErrorKind::Produce => "produce",
            KafkaErrorKind::Commit => "commit",
            KafkaErrorKind::Transaction => "transaction",
            KafkaErrorKind::Other => "other",
        }
    }

    /// The kind of an error librdkafka reported through a client callback.
    pub fn of_client_error(error: &KafkaError) -> Self {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => KafkaErrorKind::AllBrokersDown,
            Some(
                RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::OperationTimedOut,
            ) => KafkaErrorKind::Transport,
            Some(
                RDKafkaErrorCode::Authentication
                | RDKafkaErrorCode::SaslAuthenticationFailed
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::GroupAuthorizationFailed
                | RDKafkaErrorCode::ClusterAuthorizationFailed,
            ) => KafkaErrorKind::Auth,
            _ => KafkaErrorKind::Other,
        }
    }
}

/// What a rules reload did: the `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// New rules compiled and are in force.
    Success,
    /// The files changed but compiled to the same ruleset.
    Unchanged,
    /// The new rules do not compile; the old ones stay.
    Failed,
}

impl ReloadOutcome {
    pub const ALL: [ReloadOutcome; 3] = [
        ReloadOutcome::Success,
        ReloadOutcome::Unchanged,
        ReloadOutcome::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReloadOutcome::Success => "success",
            ReloadOutcome::Unchanged => "unchanged",
            ReloadOutcome::Failed => "failed",
        }
    }
}

/// The routes of the HTTP listener: the `route` label.
pub const HTTP_ROUTES: &[&str] = &[
    "/metrics",
    "/healthz",
    "/readyz",
    "/v1/evaluate",
    "/v1/subjects/{id}",
    "/v1/people/{id}",
    "other",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_value_is_distinct_and_snake_case() {
        let mut all: Vec<&str> = KafkaErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        all.extend(ReloadOutcome::ALL.iter().map(|o| o.as_str()));
        all.extend(DLQ_REASONS);
        for v in &all {
            assert!(v.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{v}");
        }
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a label value used twice");
    }

    #[test]
    fn a_client_error_is_told_by_its_code() {
        let e = KafkaError::Global(RDKafkaErrorCode::AllBrokersDown);
        assert_eq!(
            KafkaErrorKind::of_client_error(&e),
            KafkaErrorKind::AllBrokersDown
        );
        let e = KafkaError::Global(RDKafkaErrorCode::SaslAuthenticationFailed);
        assert_eq!(KafkaErrorKind::of_client_error(&e), KafkaErrorKind::Auth);
        let e = KafkaError::Global(RDKafkaErrorCode::MessageSizeTooLarge);
        assert_eq!(KafkaErrorKind::of_client_error(&e), KafkaErrorKind::Other);
    }
}
