#!/bin/sh
# Creates the topics levee reads and writes (the compose demo's "topics" job,
# run in the apache/kafka image). Idempotent: existing topics are left as
# they are. The same list, for Strimzi, is deploy/k8s/topics.yaml.
#
# Environment: BOOTSTRAP (kafka:9092), PARTITIONS (3), REPLICATION_FACTOR (1),
# KAFKA_TOPICS (/opt/kafka/bin/kafka-topics.sh).
set -eu

BOOTSTRAP=${BOOTSTRAP:-kafka:9092}
PARTITIONS=${PARTITIONS:-3}
REPLICATION_FACTOR=${REPLICATION_FACTOR:-1}
KAFKA_TOPICS=${KAFKA_TOPICS:-/opt/kafka/bin/kafka-topics.sh}

# topic, then its topic configs. The inputs are keyed by subject, so a
# partition holds every event (and the state) of its subjects; partition p
# of every input keeps its state in partition p of the changelog, hence one
# partition count for all.
while read -r topic configs; do
    case "$topic" in '' | '#'*) continue ;; esac
    set --
    for c in $configs; do set -- "$@" --config "$c"; done
    "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
        --topic "$topic" --partitions "$PARTITIONS" --replication-factor "$REPLICATION_FACTOR" "$@"
    echo "create-topics: $topic"
done <<'TOPICS'
# inputs
events.vehicle_fuel
events.billing_arrears
events.procurement
events.marketing
# keyed by alert_id: the latest status of each alert is what counts, and
# every levee instance reads all of it
events.rectification cleanup.policy=compact
# registers (tables in rules/tables/), keyed by the table key, published by
# the register's own system; every levee instance reads all of each
tables.fleet cleanup.policy=compact
tables.designated_stations cleanup.policy=compact
tables.supplier_blacklist cleanup.policy=compact
tables.roles cleanup.policy=compact
tables.credit_limits cleanup.policy=compact
tables.declared_interests cleanup.policy=compact
# outputs, kept 30 days
alerts.tier1 retention.ms=2592000000
alerts.tier2 retention.ms=2592000000
alerts.tier3 retention.ms=2592000000
decisions retention.ms=2592000000
events.dlq retention.ms=2592000000
# the shadow rules' alerts, while a rule change is on trial
alerts.shadow retention.ms=2592000000
# one record per subject: only the latest summary matters
profiles cleanup.policy=compact
# one record per closed alert, with its result
alerts.closed cleanup.policy=compact
# levee's own per-partition state
levee.state-changelog cleanup.policy=compact
# events re-keyed for control points kept per another key than their
# input's (subject: approver_id): "<kafka.group_id>-repartition", forwarded
# and consumed by levee; kept a week
levee-repartition retention.ms=604800000
# alerts copied per person for people's files: "<kafka.group_id>-people",
# written and consumed by levee; a file covers what this topic still holds:
# kept a year (set it to the period the operator's records policy names)
levee-people retention.ms=31536000000
# one file per person (一人一档): only the latest matters
profiles.people cleanup.policy=compact
TOPICS
