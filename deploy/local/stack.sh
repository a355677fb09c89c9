#!/usr/bin/env bash
# Local stack for development and tests: a single-node Apache Kafka (KRaft, broker+controller)
# and a Redis server, both on 127.0.0.1, both run as plain processes (no Docker, no system service).
#
#   deploy/local/stack.sh start          start what is not already answering, wait until both answer
#   deploy/local/stack.sh stop [--clean] stop what this script started (pid files); --clean also deletes data
#   deploy/local/stack.sh status         exit 0 when both answer
#   deploy/local/stack.sh logs [-f]      last log lines (or follow)
#   deploy/local/stack.sh env            export lines for eval: SEGMENTER_BROKER, SEGMENTER_REDIS_URL
#
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), REDIS_PORT (6379), KAFKA_VERSION (4.1.1,
# falls back to 4.1.0 / 4.1.2 when unset), KAFKA_HEAP_OPTS (-Xms256m -Xmx768m), KAFKA_AUTO_CREATE_TOPICS (false),
# SEGMENTER_CACHE (~/.cache/segmenter: Kafka jars), SEGMENTER_STATE (<repo>/var/local: data, logs, pids).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO/deploy/local
CACHE=${SEGMENTER_CACHE:-$HOME/.cache/segmenter}
STATE=${SEGMENTER_STATE:-$REPO/var/local}
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-9093}
REDIS_PORT=${REDIS_PORT:-6379}
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}
KAFKA_AUTO_CREATE_TOPICS=${KAFKA_AUTO_CREATE_TOPICS:-false}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-60}
REDIS_START_TIMEOUT=${REDIS_START_TIMEOUT:-20}
STOP_TIMEOUT=${STOP_TIMEOUT:-20}
HOST=127.0.0.1

KDIR=$STATE/kafka
KCONF=$KDIR/server.properties
KLOG4J=$KDIR/log4j2.properties
KLOG=$KDIR/kafka.log
KPID=$KDIR/kafka.pid
KDATA=$KDIR/data
RDIR=$STATE/redis
RCONF=$RDIR/redis.conf
RLOG=$RDIR/redis.log
RPID=$RDIR/redis.pid

say() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# alive and not a zombie (an exited daemon waits for init to reap it; kill -0 would still succeed)
alive() {
    local st
    st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z && $st != X ]]
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# pid from a pid file if that process is alive and its command line contains $2
live_pid() {
    local file=$1 pattern=$2 pid
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$pattern" || return 1
    printf '%s' "$pid"
}

show_log() {  # file, label
    if [[ -f $1 ]]; then
        printf '[stack] ---- last 40 lines of %s (%s) ----\n' "$2" "$1" >&2
        tail -n 40 "$1" >&2 || true
        printf '[stack] ---- end of %s ----\n' "$1" >&2
    else
        printf '[stack] (no log file %s)\n' "$1" >&2
    fi
}

# ---------------------------------------------------------------------------------------------------------------
# Kafka jars: fetched once from Maven Central into $CACHE/kafka-$ver/libs
# ---------------------------------------------------------------------------------------------------------------
LIBS=""
ensure_java() {
    command -v java >/dev/null || apt_install openjdk-17-jre-headless
    command -v mvn >/dev/null || apt_install maven
}

libs_complete() { [[ -f $CACHE/kafka-$1/libs/.complete && -f $CACHE/kafka-$1/libs/kafka_2.13-$1.jar ]]; }

fetch_kafka() {
    local candidates ver dir tmp t0
    candidates=${KAFKA_VERSION:-4.1.1 4.1.0 4.1.2}
    for ver in $candidates; do
        if libs_complete "$ver"; then LIBS=$CACHE/kafka-$ver/libs; KVER=$ver; return 0; fi
    done
    ensure_java
    mkdir -p "$CACHE"
    exec 8>"$CACHE/.fetch.lock"
    flock -w 600 8 || die "another fetch holds $CACHE/.fetch.lock"
    for ver in $candidates; do
        dir=$CACHE/kafka-$ver
        if libs_complete "$ver"; then LIBS=$dir/libs; KVER=$ver; exec 8>&-; return 0; fi
        say "fetching Apache Kafka $ver jars from Maven Central into $dir/libs ..."
        t0=$(now)
        tmp=$dir/libs.tmp.$$
        rm -rf "$tmp"; mkdir -p "$dir"
        if mvn -q -B -f "$HERE/pom.xml" -Dkafka.version="$ver" \
                dependency:copy-dependencies -DoutputDirectory="$tmp" >"$dir/fetch.log" 2>&1 \
                && [[ -f $tmp/kafka_2.13-$ver.jar ]]; then
            ls "$tmp" >"$tmp/.complete"
            rm -rf "$dir/libs"; mv "$tmp" "$dir/libs"
            say "fetched Kafka $ver: $(grep -c '\.jar$' "$dir/libs/.complete") jars, $(du -sh "$dir/libs" | cut -f1), in $(since "$t0")"
            LIBS=$dir/libs; KVER=$ver; exec 8>&-; return 0
        fi
        rm -rf "$tmp"
        say "Kafka $ver not available (see $dir/fetch.log); last lines:"
        tail -n 5 "$dir/fetch.log" >&2 || true
    done
    exec 8>&-
    die "could not fetch any of Kafka $candidates with mvn (Maven Central reachable? ~/.m2/settings.xml?)"
}

# ---------------------------------------------------------------------------------------------------------------
# Kafka
# ---------------------------------------------------------------------------------------------------------------
write_kafka_config() {
    mkdir -p "$KDIR" "$KDATA"
    cat >"$KCONF" <<EOF
# generated by deploy/local/stack.sh -- single node, combined broker + KRaft controller, for tests
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KDATA
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=$KAFKA_AUTO_CREATE_TOPICS
delete.topic.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
message.max.bytes=2097152
replica.fetch.max.bytes=2097152
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.segment.bytes=104857600
log.retention.hours=168
EOF
    cat >"$KLOG4J" <<'EOF'
# generated by deploy/local/stack.sh: everything to stdout, which stack.sh appends to kafka.log
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = WARN
EOF
}

JAVA_OPTS=()
java_opts() {
    # shellcheck disable=SC2206
    JAVA_OPTS=($KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
        -Dlog4j2.configurationFile="$KLOG4J" -Dkafka.logs.dir="$KDIR" -cp "$LIBS/*")
}

format_kafka() {
    [[ -f $KDATA/meta.properties ]] && return 0
    local cid
    cid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
    say "formatting KRaft storage in $KDATA (cluster id $cid)"
    java "${JAVA_OPTS[@]}" kafka.tools.StorageTool format -t "$cid" -c "$KCONF" >>"$KLOG" 2>&1 \
        || { show_log "$KLOG" "Kafka"; die "formatting Kafka storage failed"; }
}

# a real check: metadata request through kafka-python when the venv has it, else the server log
kafka_answers() {
    local py=$REPO/.venv/bin/python
    if [[ -x $py ]] && "$py" -c 'import kafka' 2>/dev/null; then
        "$py" - "$HOST:$KAFKA_PORT" "$1" <<'EOF' 2>/dev/null
import sys, time
from kafka import KafkaAdminClient
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], client_id="stack-check",
                                 request_timeout_ms=5000, bootstrap_timeout_ms=3000)
        try:
            admin.list_topics()
        finally:
            admin.close()
        sys.exit(0)
    except Exception:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.5)
EOF
    else
        port_open "$KAFKA_PORT" || return 1
        [[ ! -f $KLOG ]] || grep -q "Kafka Server started" "$KLOG"
    fi
}

start_kafka() {
    local pid t0 deadline
    fetch_kafka
    if pid=$(live_pid "$KPID" kafka.Kafka); then
        say "Kafka already started by stack.sh (pid $pid), checking it answers ..."
    elif port_open "$KAFKA_PORT"; then
        kafka_answers 10 || die "something listens on $HOST:$KAFKA_PORT but does not answer as Kafka; free the port or set KAFKA_PORT"
        say "Kafka: reusing the broker already answering on $HOST:$KAFKA_PORT (not started by stack.sh, stop leaves it alone)"
        return 0
    else
        port_open "$KAFKA_CONTROLLER_PORT" && die "port $KAFKA_CONTROLLER_PORT (controller) is in use; set KAFKA_CONTROLLER_PORT"
        rm -f "$KPID"
        write_kafka_config
        java_opts
        format_kafka
        say "starting Kafka $KVER on $HOST:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT), log $KLOG"
        printf '\n==== %s stack.sh start ====\n' "$(date -Is)" >>"$KLOG"
        # setsid: own session, so the broker outlives the calling shell/make/pytest; fd 9 (our lock) not inherited
        # (no job control here, so setsid execs in place and $! is the java pid)
        setsid java "${JAVA_OPTS[@]}" kafka.Kafka "$KCONF" </dev/null >>"$KLOG" 2>&1 9>&- &
        pid=$!
        echo "$pid" >"$KPID"
    fi
    t0=$(now)
    deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    until port_open "$KAFKA_PORT"; do
        if ! alive "$pid"; then
            show_log "$KLOG" "Kafka"; rm -f "$KPID"
            die "Kafka exited during start-up (log: $KLOG, config: $KCONF)"
        fi
        if ((SECONDS >= deadline)); then
            show_log "$KLOG" "Kafka"
            die "Kafka did not open $HOST:$KAFKA_PORT within ${KAFKA_START_TIMEOUT}s (log: $KLOG); pid $pid left running, 'stack.sh stop' ends it"
        fi
        sleep 0.2
    done
    if ! kafka_answers $((deadline - SECONDS > 1 ? deadline - SECONDS : 1)); then
        show_log "$KLOG" "Kafka"
        die "Kafka listens on $HOST:$KAFKA_PORT but did not answer a metadata request within ${KAFKA_START_TIMEOUT}s (log: $KLOG)"
    fi
    say "Kafka answers on $HOST:$KAFKA_PORT (pid $(<"$KPID"), ready after $(since "$t0"))"
}

# ---------------------------------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------------------------------
apt_install() {
    say "installing $* with apt-get ..."
    local created_policy=0
    # never let the package start a system service (we run our own server)
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && created_policy=1
    fi
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 || {
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" || rc=$?
    }
    ((created_policy)) && rm -f /usr/sbin/policy-rc.d
    ((rc == 0)) || die "apt-get install $* failed"
}

redis_answers() {
    if command -v redis-cli >/dev/null; then
        [[ $(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
    else
        local reply
        exec 3<>"/dev/tcp/$HOST/$REDIS_PORT" 2>/dev/null || return 1
        printf 'PING\r\n' >&3
        read -r -t 2 reply <&3 || true
        exec 3>&-
        [[ $reply == +PONG* ]]
    fi
}

start_redis() {
    local pid t0 deadline
    if pid=$(live_pid "$RPID" redis-server); then
        say "Redis already started by stack.sh (pid $pid), checking it answers ..."
    elif redis_answers; then
        say "Redis: reusing the server already answering on $HOST:$REDIS_PORT (not started by stack.sh, stop leaves it alone)"
        return 0
    else
        port_open "$REDIS_PORT" && die "something listens on $HOST:$REDIS_PORT but does not answer PING; free the port or set REDIS_PORT"
        command -v redis-server >/dev/null || apt_install redis-server
        mkdir -p "$RDIR"
        rm -f "$RPID"
        cat >"$RCONF" <<EOF
# generated by deploy/local/stack.sh -- throwaway server for development and tests
bind $HOST
port $REDIS_PORT
protected-mode yes
daemonize yes
pidfile $RPID
logfile $RLOG
dir $RDIR
save ""
appendonly no
databases 16
EOF
        say "starting Redis on $HOST:$REDIS_PORT, log $RLOG"
        redis-server "$RCONF" </dev/null >>"$RLOG" 2>&1 9>&- \
            || { show_log "$RLOG" "Redis"; die "redis-server failed to start (config $RCONF)"; }
    fi
    t0=$(now)
    deadline=$((SECONDS + REDIS_START_TIMEOUT))
    until redis_answers; do
        if ((SECONDS >= deadline)); then
            show_log "$RLOG" "Redis"
            die "Redis did not answer PING on $HOST:$REDIS_PORT within ${REDIS_START_TIMEOUT}s (log: $RLOG)"
        fi
        sleep 0.1
    done
    say "Redis answers on $HOST:$REDIS_PORT (pid $(cat "$RPID" 2>/dev/null || echo '?'), ready after $(since "$t0"))"
}

# ---------------------------------------------------------------------------------------------------------------
# stop / status
# ---------------------------------------------------------------------------------------------------------------
stop_one() {  # label pidfile pattern
    local label=$1 file=$2 pattern=$3 pid t0 i
    if ! pid=$(live_pid "$file" "$pattern"); then
        rm -f "$file"
        say "$label: nothing started by stack.sh is running"
        return 0
    fi
    t0=$(now)
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        say "$label (pid $pid) still running after ${STOP_TIMEOUT}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
    fi
    alive "$pid" && die "$label (pid $pid) did not exit"
    rm -f "$file"
    say "$label stopped (pid $pid, $(since "$t0"))"
}

cmd_start() {
    local t0
    t0=$(now)
    mkdir -p "$STATE"
    exec 9>"$STATE.lock"
    flock -w 180 9 || die "another stack.sh holds $STATE.lock"
    start_redis
    start_kafka
    say "stack ready in $(since "$t0"): SEGMENTER_BROKER=$HOST:$KAFKA_PORT SEGMENTER_REDIS_URL=redis://$HOST:$REDIS_PORT/0"
}

cmd_stop() {
    local clean=0
    [[ ${1:-} == --clean ]] && clean=1
    mkdir -p "$(dirname "$STATE")"
    exec 9>"$STATE.lock"
    flock -w 180 9 || die "another stack.sh holds $STATE.lock"
    stop_one Kafka "$KPID" kafka.Kafka
    stop_one Redis "$RPID" redis-server
    if ((clean)); then
        rm -rf "$STATE"
        say "removed $STATE"
    fi
    rm -f "$STATE.lock"
}

cmd_status() {
    local ok=0 pid
    if pid=$(live_pid "$KPID" kafka.Kafka); then
        if port_open "$KAFKA_PORT"; then say "Kafka: running, pid $pid (stack.sh), $HOST:$KAFKA_PORT"
        else say "Kafka: pid $pid (stack.sh) alive but $HOST:$KAFKA_PORT not open"; ok=1; fi
    elif port_open "$KAFKA_PORT"; then say "Kafka: something answers on $HOST:$KAFKA_PORT (not started by stack.sh)"
    else say "Kafka: down"; ok=1; fi
    if pid=$(live_pid "$RPID" redis-server); then
        if redis_answers; then say "Redis: running, pid $pid (stack.sh), $HOST:$REDIS_PORT"
        else say "Redis: pid $pid (stack.sh) alive but no PONG on $HOST:$REDIS_PORT"; ok=1; fi
    elif redis_answers; then say "Redis: answers on $HOST:$REDIS_PORT (not started by stack.sh)"
    else say "Redis: down"; ok=1; fi
    say "state: $STATE   jars: $CACHE"
    return $ok
}

cmd_logs() {
    if [[ ${1:-} == -f ]]; then
        exec tail -n 20 -F "$KLOG" "$RLOG"
    fi
    for f in "$KLOG" "$RLOG"; do
        printf '==== %s ====\n' "$f"
        if [[ -f $f ]]; then tail -n "${LINES_SHOWN:-60}" "$f"; else echo "(none)"; fi
    done
}

cmd_env() {
    printf 'export SEGMENTER_BROKER=%s:%s\n' "$HOST" "$KAFKA_PORT"
    printf 'export SEGMENTER_REDIS_URL=redis://%s:%s/0\n' "$HOST" "$REDIS_PORT"
}

case ${1:-} in
    start) cmd_start ;;
    stop) shift; cmd_stop "$@" ;;
    status) cmd_status ;;
    logs) shift; cmd_logs "$@" ;;
    env) cmd_env ;;
    *)
        echo "usage: $0 start | stop [--clean] | status | logs [-f] | env" >&2
        exit 2
        ;;
esac
