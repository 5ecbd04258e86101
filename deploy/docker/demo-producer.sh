#!/bin/sh
# The compose demo's producer (the "demo" stage of deploy/docker/Dockerfile):
# every INTERVAL seconds, `levee gen` writes a fresh batch of events (clean
# ones and injected breaches, from the rule tests), and kcat sends each to
# its type's topic keyed by its subject, as rules/schemas say (stream,
# subject) and docs/contract.md asks. Each round also sends one line that is
# not JSON and one event of an unknown type: levee routes both to events.dlq.
#
# Environment:
#   BROKERS         kafka:9092
#   RULES           rules (the image's working directory is /etc/levee)
#   SOURCE          gen: `levee gen` (default); or a JSON-lines file to send
#                   as it is, e.g. /etc/levee/examples/events.jsonl
#   EVENTS          events per round from `levee gen`, 500
#   INTERVAL        seconds between rounds, 10
#   ROUNDS          how many rounds, 0 (forever)
#   FALLBACK_TOPIC  where lines of no known type go, events.vehicle_fuel
#   OUT_DIR         if set, write routes.tsv (type, topic, key field) and
#                   each round's <topic>.tsv files (key<TAB>event lines) to
#                   OUT_DIR/round-N instead of producing; the deploy test
#                   uses this
# Event ids get "-r<round>" appended so that rounds do not repeat ids.
set -eu

BROKERS=${BROKERS:-kafka:9092}
RULES=${RULES:-rules}
SOURCE=${SOURCE:-gen}
EVENTS=${EVENTS:-500}
INTERVAL=${INTERVAL:-10}
ROUNDS=${ROUNDS:-0}
FALLBACK_TOPIC=${FALLBACK_TOPIC:-events.vehicle_fuel}
OUT_DIR=${OUT_DIR:-}
LEVEE=${LEVEE:-levee}

# type<TAB>topic<TAB>key field, from the event_types of every rule file:
# block-style YAML as the catalog writes it (a type at two spaces of
# indentation, its stream and subject at four).
routes() {
    find "$RULES" -path "$RULES/tests" -prune -o -type f \( -name '*.yaml' -o -name '*.yml' \) -print \
        | LC_ALL=C sort \
        | while IFS= read -r file; do
            awk '
                function value(    v) { v = $2; gsub(/^["\047]|["\047]$/, "", v); return v }
                FNR == 1 { inside = 0; t = "" }
                /^event_types:/ { inside = 1; next }
                /^[^ \t#]/ { inside = 0; t = "" }
                !inside { next }
                /^  [A-Za-z0-9_]+:[ \t]*(#.*)?$/ { t = $1; sub(/:$/, "", t); next }
                t != "" && /^    stream:/ { stream[t] = value() }
                t != "" && /^    subject:/ { subject[t] = value() }
                END { for (t in stream) print t "\t" stream[t] "\t" subject[t] }
            ' "$file"
        done
}

# Splits the events in $3 into DIR/<topic>.tsv files of key<TAB>event lines
# by the routes in $1; round $4 > 0 appends "-r<round>" to event ids.
route() {
    awk -v dir="$2" -v round="$4" -v fallback="$FALLBACK_TOPIC" '
        function str(line, name,    m) {
            if (!match(line, "\"" name "\"[ \t]*:[ \t]*\"[^\"]*\"")) return ""
            m = substr(line, RSTART, RLENGTH)
            sub("^\"" name "\"[ \t]*:[ \t]*\"", "", m)
            return substr(m, 1, length(m) - 1)
        }
        FNR == NR { split($0, f, "\t"); topic[f[1]] = f[2]; key[f[1]] = f[3]; next }
        /^[ \t]*$/ { next }
        {
            line = $0
            t = str(line, "type")
            if (t in topic) { to = topic[t]; k = str(line, key[t]) } else { to = fallback; k = "" }
            if (round > 0 && match(line, "\"event_id\"[ \t]*:[ \t]*\"[^\"]*\"")) {
                line = substr(line, 1, RSTART + RLENGTH - 2) "-r" round substr(line, RSTART + RLENGTH - 1)
            }
            print k "\t" line > (dir "/" to ".tsv")
        }
    ' "$1" "$3"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
routes > "$work/routes.tsv"
[ -s "$work/routes.tsv" ] || { echo "demo-producer: no event types in $RULES" >&2; exit 1; }
[ -z "$OUT_DIR" ] || { mkdir -p "$OUT_DIR"; cp "$work/routes.tsv" "$OUT_DIR/routes.tsv"; }

round=0
while :; do
    if [ "$SOURCE" = gen ]; then
        "$LEVEE" --rules "$RULES" gen --events "$EVENTS" --seed "$((round + 1))" --out "$work/events.jsonl"
        printf '%s\n' "not JSON (demo round $round)" \
            "{\"event_id\":\"demo-bad\",\"type\":\"no_such_type\",\"occurred_at\":\"2026-11-02T09:15:00+08:00\",\"branch\":\"wuhan\"}" \
            >> "$work/events.jsonl"
    else
        cp "$SOURCE" "$work/events.jsonl"
    fi
    dir="$work/round-$round"
    [ -z "$OUT_DIR" ] || dir="$OUT_DIR/round-$round"
    mkdir -p "$dir"
    route "$work/routes.tsv" "$dir" "$work/events.jsonl" "$round"
    if [ -z "$OUT_DIR" ]; then
        for file in "$dir"/*.tsv; do
            topic=$(basename "$file" .tsv)
            kcat -P -b "$BROKERS" -t "$topic" -K '\t' -l "$file"
            echo "demo-producer: round $round: $(wc -l < "$file") events to $topic"
        done
        rm -rf "$dir"
    fi
    round=$((round + 1))
    [ "$ROUNDS" -eq 0 ] || [ "$round" -lt "$ROUNDS" ] || break
    sleep "$INTERVAL"
done
