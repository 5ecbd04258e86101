#!/usr/bin/env bash
# Runs a local single-node Apache Kafka broker (KRaft mode, broker + controller in one
# JVM) on 127.0.0.1 for development. The broker jars are fetched with Maven from
# deploy/kafka/pom.xml (the Kafka version is pinned there) and cached.
#
# Usage: deploy/kafka/kafka-local.sh start|stop|status [options]
#
#   start    fetch the jars if needed, format the data directory on first use, start
#            the broker in the background and wait until it accepts connections
#   stop     stop it (SIGTERM, SIGKILL after 30 s)
#   status   say whether it runs (exit status 0 if it does, 3 if not)
#
# Options:
#   --port N              client (PLAINTEXT) port, default 9092
#   --controller-port N   KRaft controller port, default port + 1
#   --dir D               broker directory (config, data/, broker.log, broker.pid),
#                         default .kafka-cache/local in the repository
#   --no-auto-create      set auto.create.topics.enable=false (default: true, so that
#                         any client can create topics by using them)
#
# The data survives stop/start; remove the directory to start from scratch.
#
# Requires java (17+) and mvn. Environment:
#   LEVEE_KAFKA_CLASSPATH   broker classpath to use instead of fetching with Maven
#   LEVEE_KAFKA_CACHE_DIR   jar cache, default .kafka-cache in the repository (shared
#                           with the levee-testkit crate)
#   LEVEE_KAFKA_JVM_OPTS    extra JVM options (default heap: -Xmx512m)
#   LEVEE_MVN               Maven executable, default mvn
#   JAVA_HOME               Java installation, default: java on PATH
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/../.." && pwd)
pom="$script_dir/pom.xml"

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
}

die() {
    echo "kafka-local: $*" >&2
    exit 1
}

command=${1:-}
[ -n "$command" ] || { usage >&2; exit 2; }
shift

port=9092
controller_port=
dir="$repo_root/.kafka-cache/local"
auto_create=true
while [ $# -gt 0 ]; do
    case "$1" in
        --port) port=${2:?--port needs a value}; shift 2 ;;
        --port=*) port=${1#*=}; shift ;;
        --controller-port) controller_port=${2:?--controller-port needs a value}; shift 2 ;;
        --controller-port=*) controller_port=${1#*=}; shift ;;
        --dir) dir=${2:?--dir needs a value}; shift 2 ;;
        --dir=*) dir=${1#*=}; shift ;;
        --no-auto-create) auto_create=false; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
done
case "$port" in ''|*[!0-9]*) die "--port must be a number" ;; esac
controller_port=${controller_port:-$((port + 1))}
case "$controller_port" in ''|*[!0-9]*) die "--controller-port must be a number" ;; esac
[ "$port" != "$controller_port" ] || die "--port and --controller-port must differ"
if [ -d "$dir" ]; then dir=$(cd "$dir" && pwd); fi

if [ -n "${JAVA_HOME:-}" ]; then java="$JAVA_HOME/bin/java"; else java=java; fi
mvn=${LEVEE_MVN:-mvn}
pid_file="$dir/broker.pid"
log_file="$dir/broker.log"
# Small heap, few GC/JIT threads: it shares a small machine with the code under test.
# shellcheck disable=SC2206
jvm_opts=(-Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true ${LEVEE_KAFKA_JVM_OPTS:-})

# Prints the pid of the running broker of $dir, or nothing.
running_pid() {
    [ -f "$pid_file" ] || return 0
    local pid
    pid=$(cat "$pid_file" 2>/dev/null || true)
    case "$pid" in ''|*[!0-9]*) return 0 ;; esac
    # Make sure the pid is still our broker, not a reused pid.
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $dir/server.properties"; then
        echo "$pid"
    fi
}

port_answers() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Prints the broker classpath, fetching the jars into the cache first if needed.
# The cache directory is named after the pom's SHA-256, as in the levee-testkit crate.
classpath() {
    if [ -n "${LEVEE_KAFKA_CLASSPATH:-}" ]; then
        echo "$LEVEE_KAFKA_CLASSPATH"
        return
    fi
    local cache hash libs staging
    cache=${LEVEE_KAFKA_CACHE_DIR:-$repo_root/.kafka-cache}
    hash=$(sha256sum "$pom" | cut -c1-16)
    libs="$cache/libs-$hash"
    if [ ! -f "$libs/.complete" ]; then
        command -v "$mvn" >/dev/null || die "$mvn not found: install Maven or set LEVEE_KAFKA_CLASSPATH"
        mkdir -p "$cache"
        staging="$libs.tmp-$$"
        rm -rf "$staging"
        echo "kafka-local: fetching the Kafka broker jars with Maven into $libs" >&2
        if ! "$mvn" -q -B -f "$pom" dependency:copy-dependencies \
            -DoutputDirectory="$staging" -DincludeScope=runtime >"$cache/mvn.log" 2>&1; then
            rm -rf "$staging"
            tail -n 40 "$cache/mvn.log" >&2
            die "Maven could not fetch the broker jars (see $cache/mvn.log)"
        fi
        touch "$staging/.complete"
        if ! mv -T "$staging" "$libs" 2>/dev/null; then
            rm -rf "$staging"
            [ -f "$libs/.complete" ] || die "could not move the jars into $libs"
        fi
    fi
    echo "$libs/*"
}

write_config() {
    mkdir -p "$dir/data"
    cat >"$dir/server.properties" <<EOF
# Generated by deploy/kafka/kafka-local.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=$auto_create
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=300
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=8388608
EOF
    cat >"$dir/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.storage.internals.log=WARN
EOF
}

start() {
    local pid cp cluster_id started
    pid=$(running_pid)
    if [ -n "$pid" ]; then
        echo "kafka-local: already running (pid $pid, dir $dir)"
        return 0
    fi
    port_answers "$port" && die "something already listens on 127.0.0.1:$port"
    port_answers "$controller_port" && die "something already listens on 127.0.0.1:$controller_port"
    command -v "$java" >/dev/null || die "$java not found: install Java 17+ or set JAVA_HOME"
    cp=$(classpath)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    pid_file="$dir/broker.pid"
    log_file="$dir/broker.log"
    write_config
    if [ ! -f "$dir/data/meta.properties" ]; then
        # A KRaft cluster id: 16 random bytes, base64url without padding.
        cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
        # An id starting with "-" would be taken for an option by the tool.
        cluster_id="A${cluster_id#?}"
        echo "kafka-local: formatting $dir/data (cluster id $cluster_id)"
        "$java" "${jvm_opts[@]}" -Dlog4j.configuration="file:$dir/log4j.properties" -cp "$cp" \
            kafka.tools.StorageTool format --cluster-id "$cluster_id" \
            --config "$dir/server.properties" >"$dir/format.log" 2>&1 \
            || { tail -n 30 "$dir/format.log" >&2; die "formatting failed (see $dir/format.log)"; }
    fi
    echo "kafka-local: starting the broker on 127.0.0.1:$port (log: $log_file)"
    started=$(date +%s)
    : >>"$log_file"
    local offset
    offset=$(wc -c <"$log_file")
    # setsid: the broker survives this shell and its terminal.
    setsid "$java" "${jvm_opts[@]}" -Dlog4j.configuration="file:$dir/log4j.properties" -cp "$cp" \
        kafka.Kafka "$dir/server.properties" </dev/null >>"$log_file" 2>&1 &
    pid=$!
    echo "$pid" >"$pid_file"
    for _ in $(seq 1 1200); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$pid_file"
            tail -c +"$((offset + 1))" "$log_file" | tail -n 40 >&2
            die "the broker exited during start-up (see $log_file)"
        fi
        if tail -c +"$((offset + 1))" "$log_file" | grep -q "Kafka Server started" && port_answers "$port"; then
            echo "kafka-local: ready in $(($(date +%s) - started)) s: bootstrap.servers=127.0.0.1:$port (pid $pid)"
            return 0
        fi
        sleep 0.1
    done
    tail -n 40 "$log_file" >&2
    die "the broker did not answer on 127.0.0.1:$port within 120 s (pid $pid still running; '$0 stop' ends it)"
}

stop() {
    local pid
    pid=$(running_pid)
    if [ -z "$pid" ]; then
        rm -f "$pid_file"
        echo "kafka-local: not running (dir $dir)"
        return 0
    fi
    kill -CONT "$pid" 2>/dev/null || true
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "kafka-local: still running after 30 s, killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pid_file"
    echo "kafka-local: stopped (pid $pid)"
}

status() {
    local pid
    pid=$(running_pid)
    if [ -n "$pid" ]; then
        local listen
        listen=$(sed -n 's/^listeners=PLAINTEXT:\/\/\([^,]*\),.*/\1/p' "$dir/server.properties" 2>/dev/null || true)
        echo "kafka-local: running (pid $pid, bootstrap.servers=${listen:-?}, dir $dir)"
        return 0
    fi
    echo "kafka-local: not running (dir $dir)"
    return 3
}

case "$command" in
    start) start ;;
    stop) stop ;;
    status) status ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
esac
