#!/usr/bin/env bash
# A real Apache Kafka 4.4.0 broker (single node, KRaft combined broker+controller) as the
# reference the compat suites can run against instead of Klamm (COMPAT_BROKER=kafka).
#
#   kafka.sh install                      fetch Kafka + kafka-tools jars with Maven; prints libs dir
#   kafka.sh start DIR [name=value ...]   start (or restart) the broker in DIR; prints 127.0.0.1:PORT
#   kafka.sh stop DIR [SIGNAL]            signal the PID in DIR/pid (default TERM), wait, remove DIR/pid
#
# Environment:
#   KLAMM_CACHE       cache dir (default ~/.cache/klamm); jars go to $KLAMM_CACHE/kafka-4.4.0/libs
#   KAFKA_JAVA_HOME   JDK to run Kafka with (default /usr/lib/jvm/java-17-openjdk-amd64)
#   KAFKA_HEAP_OPTS   JVM heap options (default -Xmx512m -Xms256m)
#   KAFKA_JVM_OPTS    other JVM options (default: serial GC, C1 JIT only, small code cache)
#   KAFKA_READY_TIMEOUT  seconds to wait for the broker to serve requests (default 90)
# Only stdout output: the libs dir (install) or the bootstrap address (start).
set -euo pipefail

KAFKA_VERSION=4.4.0
LOG4J_VERSION=2.25.3
cache="${KLAMM_CACHE:-$HOME/.cache/klamm}"
home="$cache/kafka-$KAFKA_VERSION"
libs="$home/libs"
stamp="$home/.installed"
java_home="${KAFKA_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}"
java="$java_home/bin/java"
[ -x "$java" ] || java="$(command -v java)"

log() { echo "kafka.sh: $*" >&2; }
die() { log "$*"; exit 1; }

usage() {
  cat >&2 <<EOF
usage: $0 install
       $0 start DIR [name=value ...]
       $0 stop DIR [SIGNAL]
EOF
  exit 2
}

# ------------------------------------------------------------------------------ install
# The stamp holds the pom it was made from, so a changed dependency list reinstalls.
pom_text() {
  cat <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>klamm.compat</groupId>
  <artifactId>kafka-reference</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- Kafka logs through slf4j 1.7; the distribution binds it to log4j2. -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
}

log4j_text() {
  cat <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
# The full config dumps (hundreds of lines per start) are left out.
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
logger.kconfig.name = kafka.server.KafkaConfig
logger.kconfig.level = WARN
EOF
}

do_install() {
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$(pom_text)" ] \
     && [ -f "$libs/kafka_2.13-$KAFKA_VERSION.jar" ]; then
    if [ "$(cat "$home/log4j2.properties" 2>/dev/null)" != "$(log4j_text)" ]; then
      log4j_text >"$home/log4j2.properties"
    fi
    echo "$libs"
    return
  fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  mkdir -p "$home"
  local tmp
  tmp="$(mktemp -d "$home/.install.XXXXXX")"
  pom_text >"$tmp/pom.xml"
  log "fetching Kafka $KAFKA_VERSION and kafka-tools with Maven (first time only)"
  if ! (cd "$tmp" && JAVA_HOME="$java_home" mvn -B -q -f pom.xml \
          dependency:copy-dependencies -DincludeScope=runtime \
          -DoutputDirectory="$tmp/libs" >"$tmp/mvn.log" 2>&1); then
    tail -n 40 "$tmp/mvn.log" >&2
    rm -rf "$tmp"
    die "maven failed"
  fi
  [ -f "$tmp/libs/kafka_2.13-$KAFKA_VERSION.jar" ] || { rm -rf "$tmp"; die "kafka jar missing after maven"; }
  rm -rf "$libs"
  mv "$tmp/libs" "$libs"
  log4j_text >"$home/log4j2.properties"
  pom_text >"$stamp"
  rm -rf "$tmp"
  log "installed $(ls "$libs" | wc -l) jars"
  echo "$libs"
}

# ------------------------------------------------------------------------------ helpers
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

prop() { # prop FILE NAME -> value of the last NAME=... line
  sed -n "s/^$2=//p" "$1" | tail -n 1
}

jvm_opts() {
  # 2 shared cores: small heap, serial GC, and no JMX port.
  echo "${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m} ${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=96m -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true}"
}

run_java() { # run_java MAINCLASS args... (foreground)
  "$java" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$home/log4j2.properties" -cp "$libs/*" "$@"
}

# Is the process in PIDFILE alive?
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# An ApiVersions v0 request, then a Metadata v1 request listing no topics: the broker
# serves Kafka requests and has registered itself (it lists itself as a broker).
probe() { # probe PORT
  python3 - "$1" <<'EOF'
import socket, struct, sys
port = int(sys.argv[1])
def call(sock, api_key, version, corr, body=b""):
    client = b"kafka.sh"
    hdr = struct.pack(">hhih", api_key, version, corr, len(client)) + client
    msg = hdr + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    def read(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf
    size = struct.unpack(">i", read(4))[0]
    data = read(size)
    assert struct.unpack(">i", data[:4])[0] == corr
    return data[4:]
try:
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        s.settimeout(3)
        r = call(s, 18, 0, 1)                       # ApiVersions v0
        if struct.unpack(">h", r[:2])[0] != 0:
            sys.exit(1)
        r = call(s, 3, 1, 2, struct.pack(">i", 0))  # Metadata v1, no topics
        nbrokers = struct.unpack(">i", r[:4])[0]
        sys.exit(0 if nbrokers >= 1 else 1)
except Exception:
    sys.exit(1)
EOF
}

# ------------------------------------------------------------------------------ start
do_start() {
  [ $# -ge 1 ] || usage
  local dir="$1"; shift
  local override
  for override in "$@"; do
    [[ "$override" == *=* ]] || die "override '$override' is not name=value"
  done
  do_install >/dev/null
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  local props="$dir/server.properties" pidf="$dir/pid" klog="$dir/kafka.log"
  if pid_alive "$pidf"; then
    die "a broker is already running in $dir (pid $(cat "$pidf"))"
  fi
  rm -f "$pidf"

  local port cport
  if [ ! -f "$props" ]; then
    port="$(free_port)"
    cport="$(free_port)"
    while [ "$cport" = "$port" ]; do cport="$(free_port)"; done
    {
      echo "# generated by compat-tests/kafka/kafka.sh"
      echo "process.roles=broker,controller"
      echo "node.id=1"
      echo "controller.quorum.bootstrap.servers=127.0.0.1:$cport"
      echo "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
      echo "advertised.listeners=PLAINTEXT://127.0.0.1:$port"
      echo "inter.broker.listener.name=PLAINTEXT"
      echo "controller.listener.names=CONTROLLER"
      echo "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
      echo "log.dirs=$dir/data"
      echo "num.partitions=1"
      echo "num.network.threads=2"
      echo "num.io.threads=4"
      echo "num.recovery.threads.per.data.dir=1"
      echo "offsets.topic.replication.factor=1"
      echo "offsets.topic.num.partitions=1"
      echo "transaction.state.log.replication.factor=1"
      echo "transaction.state.log.min.isr=1"
      echo "transaction.state.log.num.partitions=1"
      echo "share.coordinator.state.topic.replication.factor=1"
      echo "share.coordinator.state.topic.min.isr=1"
      echo "share.coordinator.state.topic.num.partitions=1"
      echo "group.initial.rebalance.delay.ms=0"
      echo "auto.create.topics.enable=true"
      echo "# overrides from the command line"
      for override in "$@"; do echo "$override"; done
    } >"$props"
    log "formatting $dir/data (KRaft, standalone controller)"
    local uuid
    # A Kafka Uuid: 16 random bytes, URL-safe base64 without padding, not starting with "-"
    # (what `kafka-storage random-uuid` prints), made without starting another JVM.
    uuid="$(python3 -c 'import base64, uuid
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not s.startswith("-"):
        print(s); break')"
    if ! run_java kafka.tools.StorageTool format --standalone -t "$uuid" -c "$props" \
         >>"$klog" 2>&1; then
      tail -n 40 "$klog" >&2
      die "storage format failed"
    fi
  elif [ $# -gt 0 ]; then
    # Later lines win in a properties file.
    for override in "$@"; do echo "$override"; done >>"$props"
  fi
  # The client port: the PLAINTEXT listener of the final `listeners` (an override may have
  # replaced it, e.g. to add a SASL_PLAINTEXT listener; that one is not the PLAINTEXT one).
  port="$(prop "$props" listeners | tr ',' '\n' \
          | sed -n 's/^PLAINTEXT:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' | head -n 1)"
  [ -n "$port" ] || die "no PLAINTEXT://127.0.0.1:PORT listener in $props"

  echo "===== start $(date -u +%FT%TZ) =====" >>"$klog"
  # shellcheck disable=SC2046
  "$java" $(jvm_opts) \
    -Dlog4j2.configurationFile="$home/log4j2.properties" \
    -Dkafka.logs.dir="$dir/logs" \
    -cp "$libs/*" kafka.Kafka "$props" >>"$klog" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$pidf"

  local timeout="${KAFKA_READY_TIMEOUT:-90}" waited=0
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid" 2>/dev/null || true
      rm -f "$pidf"
      tail -n 60 "$klog" >&2
      die "kafka exited before it was ready"
    fi
    if probe "$port"; then
      break
    fi
    if [ "$waited" -ge $((timeout * 4)) ]; then
      tail -n 60 "$klog" >&2
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$pidf"
      die "kafka not ready within ${timeout}s"
    fi
    sleep 0.25
    waited=$((waited + 1))
  done
  log "kafka $KAFKA_VERSION ready on 127.0.0.1:$port (pid $pid, dir $dir)"
  echo "127.0.0.1:$port"
}

# ------------------------------------------------------------------------------ stop
do_stop() {
  [ $# -ge 1 ] || usage
  local dir="$1" sig="${2:-TERM}"
  local pidf="$dir/pid"
  if [ ! -f "$pidf" ]; then
    log "no pid file in $dir; nothing to stop"
    return 0
  fi
  local pid
  pid="$(cat "$pidf")"
  [[ "$pid" =~ ^[0-9]+$ ]] || die "bad pid file $pidf"
  if kill -0 "$pid" 2>/dev/null; then
    kill -s "$sig" "$pid" 2>/dev/null || true
    local i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt 600 ]; do
      # A zombie (not reaped because its parent shell is gone) counts as exited.
      if [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ]; then break; fi
      sleep 0.1
      i=$((i + 1))
    done
    if kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" != Z ]; then
      log "pid $pid still alive after 60s; sending KILL"
      kill -KILL "$pid" 2>/dev/null || true
      i=0
      while kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" != Z ] \
            && [ "$i" -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
      done
    fi
  fi
  rm -f "$pidf"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  install) do_install ;;
  start) do_start "$@" ;;
  stop) do_stop "$@" ;;
  *) usage ;;
esac
