//! People's files (一人一档) in `levee run`: one file per person, across
//! every event type, partition and instance, folded by one owner.
//!
//! Alerts name their people (`people`, the HR employee numbers of the
//! fields a control point holds accountable). The partition task that
//! raises, escalates or closes an alert writes a copy of it per person to
//! the people topic, `<group id>-people`, keyed by the person
//! ([`copies`]). The instance that owns a person's partition of it folds
//! the copies into the person's file, as `levee replay --profiles` folds
//! ([`files`]), and writes each changed file to `profiles.people`
//! ([`stage`]). Every instance reads `profiles.people` whole and answers
//! `GET /v1/people/{id}` from it ([`table`]).
//!
//! | module | its one job |
//! |---|---|
//! | [`copies`] | the copies a partition task writes, and their header |
//! | [`files`] | one partition's fold, and the files that changed |
//! | [`stage`] | the stage's thread: consume, fold, write files |
//! | [`table`] | `profiles.people` read whole, for the HTTP route |

pub mod copies;
pub mod files;
pub mod stage;
pub mod table;

use std::time::Duration;

use rdkafka::consumer::BaseConsumer;
use tracing::warn;

use super::clients;
use super::error::PipelineError;
use crate::service::config::Settings;
use crate::service::metrics::KafkaErrorKind;

pub use self::copies::topic;
pub use self::table::PeopleTable;

/// At start-up: the people topic and `profiles.people` are there. levee
/// creates no topic: a missing one is an error saying what to create. A
/// broker that does not answer is waited for, as it is anyway.
pub fn check_at_start(settings: &Settings) -> Result<String, PipelineError> {
    let topic = topic(&settings.kafka.group_id);
    let probe: BaseConsumer = clients::consumer_config(settings)
        .create()
        .map_err(|e| PipelineError::kafka("creating a client", KafkaErrorKind::Other, e))?;
    let timeout = Duration::from_secs(10);
    for (name, what) in [
        (
            topic.as_str(),
            "the people topic (as many partitions as the input topics)",
        ),
        (settings.topics.people.as_str(), "topics.people (compacted)"),
    ] {
        match clients::partition_count(&probe, name, timeout) {
            Ok(_) => {}
            Err(PipelineError::Misconfigured(_)) => {
                return Err(PipelineError::Misconfigured(format!(
                    "{what}, {name}, is missing: people's files are folded there, and levee \
                     creates no topic; create it (deploy/docker/create-topics.sh, \
                     deploy/k8s/topics.yaml)"
                )))
            }
            Err(e) => {
                warn!(topic = %name, error = %e, "could not check a people topic at start-up");
            }
        }
    }
    Ok(topic)
}
