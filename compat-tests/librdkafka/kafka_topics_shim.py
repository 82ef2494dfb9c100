#!/usr/bin/env python3
"""A stand-in for Kafka's bin/kafka-topics.sh, for librdkafka's test suite (test_kafka_topics()).

Standard library only: it speaks the Kafka wire protocol over a plain socket to the first
reachable --bootstrap-server (Admin API requests, as Kafka's own tool does through its
AdminClient), with non-flexible request versions:

    --create --topic T [--partitions N] [--replication-factor R] [--config k=v ...]
             [--if-not-exists]                                 CreateTopics v2-4
    --alter --topic T --partitions N [--if-exists]             CreatePartitions v0-1
    --delete --topic T [--if-exists]                           DeleteTopics v1-3
    --list [--topic T] [--exclude-internal]                    Metadata v1
    --describe [--topic T] [--exclude-internal]                Metadata v1

Like the real tool, --topic of --alter/--delete/--describe/--list is a regular expression
(',' separates alternatives) matched against the topic names of the cluster.  Exit status 0
on success; 1 with a message on stderr (the Kafka error name, and the broker's error message
when it gave one) otherwise.
"""

import argparse
import re
import socket
import struct
import sys

CLIENT_ID = b"klamm-kafka-topics-shim"
TIMEOUT_MS = 30000

# Kafka error codes (org.apache.kafka.common.protocol.Errors).
ERRORS = {
    -1: "UNKNOWN_SERVER_ERROR", 0: "NONE", 1: "OFFSET_OUT_OF_RANGE", 2: "CORRUPT_MESSAGE",
    3: "UNKNOWN_TOPIC_OR_PARTITION", 4: "INVALID_FETCH_SIZE", 5: "LEADER_NOT_AVAILABLE",
    6: "NOT_LEADER_OR_FOLLOWER", 7: "REQUEST_TIMED_OUT", 8: "BROKER_NOT_AVAILABLE",
    9: "REPLICA_NOT_AVAILABLE", 10: "MESSAGE_TOO_LARGE", 11: "STALE_CONTROLLER_EPOCH",
    12: "OFFSET_METADATA_TOO_LARGE", 13: "NETWORK_EXCEPTION", 14: "COORDINATOR_LOAD_IN_PROGRESS",
    15: "COORDINATOR_NOT_AVAILABLE", 16: "NOT_COORDINATOR", 17: "INVALID_TOPIC_EXCEPTION",
    18: "RECORD_LIST_TOO_LARGE", 19: "NOT_ENOUGH_REPLICAS", 20: "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
    21: "INVALID_REQUIRED_ACKS", 22: "ILLEGAL_GENERATION", 23: "INCONSISTENT_GROUP_PROTOCOL",
    24: "INVALID_GROUP_ID", 25: "UNKNOWN_MEMBER_ID", 26: "INVALID_SESSION_TIMEOUT",
    27: "REBALANCE_IN_PROGRESS", 28: "INVALID_COMMIT_OFFSET_SIZE", 29: "TOPIC_AUTHORIZATION_FAILED",
    30: "GROUP_AUTHORIZATION_FAILED", 31: "CLUSTER_AUTHORIZATION_FAILED", 32: "INVALID_TIMESTAMP",
    33: "UNSUPPORTED_SASL_MECHANISM", 34: "ILLEGAL_SASL_STATE", 35: "UNSUPPORTED_VERSION",
    36: "TOPIC_ALREADY_EXISTS", 37: "INVALID_PARTITIONS", 38: "INVALID_REPLICATION_FACTOR",
    39: "INVALID_REPLICA_ASSIGNMENT", 40: "INVALID_CONFIG", 41: "NOT_CONTROLLER",
    42: "INVALID_REQUEST", 43: "UNSUPPORTED_FOR_MESSAGE_FORMAT", 44: "POLICY_VIOLATION",
    45: "OUT_OF_ORDER_SEQUENCE_NUMBER", 46: "DUPLICATE_SEQUENCE_NUMBER", 47: "INVALID_PRODUCER_EPOCH",
    48: "INVALID_TXN_STATE", 49: "INVALID_PRODUCER_ID_MAPPING", 50: "INVALID_TRANSACTION_TIMEOUT",
    51: "CONCURRENT_TRANSACTIONS", 52: "TRANSACTION_COORDINATOR_FENCED",
    53: "TRANSACTIONAL_ID_AUTHORIZATION_FAILED", 54: "SECURITY_DISABLED", 55: "OPERATION_NOT_ATTEMPTED",
    56: "KAFKA_STORAGE_ERROR", 57: "LOG_DIR_NOT_FOUND", 58: "SASL_AUTHENTICATION_FAILED",
    59: "UNKNOWN_PRODUCER_ID", 60: "REASSIGNMENT_IN_PROGRESS", 61: "DELEGATION_TOKEN_AUTH_DISABLED",
    62: "DELEGATION_TOKEN_NOT_FOUND", 63: "DELEGATION_TOKEN_OWNER_MISMATCH",
    64: "DELEGATION_TOKEN_REQUEST_NOT_ALLOWED", 65: "DELEGATION_TOKEN_AUTHORIZATION_FAILED",
    66: "DELEGATION_TOKEN_EXPIRED", 67: "INVALID_PRINCIPAL_TYPE", 68: "NON_EMPTY_GROUP",
    69: "GROUP_ID_NOT_FOUND", 70: "FETCH_SESSION_ID_NOT_FOUND", 71: "INVALID_FETCH_SESSION_EPOCH",
    72: "LISTENER_NOT_FOUND", 73: "TOPIC_DELETION_DISABLED", 74: "FENCED_LEADER_EPOCH",
    75: "UNKNOWN_LEADER_EPOCH", 76: "UNSUPPORTED_COMPRESSION_TYPE", 77: "STALE_BROKER_EPOCH",
    78: "OFFSET_NOT_AVAILABLE", 79: "MEMBER_ID_REQUIRED", 80: "PREFERRED_LEADER_NOT_AVAILABLE",
    81: "GROUP_MAX_SIZE_REACHED", 82: "FENCED_INSTANCE_ID", 83: "ELIGIBLE_LEADERS_NOT_AVAILABLE",
    84: "ELECTION_NOT_NEEDED", 85: "NO_REASSIGNMENT_IN_PROGRESS", 86: "GROUP_SUBSCRIBED_TO_TOPIC",
    87: "INVALID_RECORD", 88: "UNSTABLE_OFFSET_COMMIT", 89: "THROTTLING_QUOTA_EXCEEDED",
    90: "PRODUCER_FENCED", 91: "RESOURCE_NOT_FOUND", 92: "DUPLICATE_RESOURCE",
    93: "UNACCEPTABLE_CREDENTIAL", 94: "INCONSISTENT_VOTER_SET", 95: "INVALID_UPDATE_VERSION",
    96: "FEATURE_UPDATE_FAILED", 97: "PRINCIPAL_DESERIALIZATION_FAILURE", 98: "SNAPSHOT_NOT_FOUND",
    99: "POSITION_OUT_OF_RANGE", 100: "UNKNOWN_TOPIC_ID", 101: "DUPLICATE_BROKER_REGISTRATION",
    102: "BROKER_ID_NOT_REGISTERED", 103: "INCONSISTENT_TOPIC_ID", 104: "INCONSISTENT_CLUSTER_ID",
    105: "TRANSACTIONAL_ID_NOT_FOUND", 106: "FETCH_SESSION_TOPIC_ID_ERROR",
    107: "INELIGIBLE_REPLICA", 108: "NEW_LEADER_ELECTED", 109: "OFFSET_MOVED_TO_TIERED_STORAGE",
    110: "FENCED_MEMBER_EPOCH", 111: "UNRELEASED_INSTANCE_ID", 112: "UNSUPPORTED_ASSIGNOR",
    113: "STALE_MEMBER_EPOCH",
}

API_METADATA, API_API_VERSIONS, API_CREATE_TOPICS, API_DELETE_TOPICS, API_CREATE_PARTITIONS = 3, 18, 19, 20, 37
# The non-flexible versions this shim speaks, per API key.
SPOKEN = {API_METADATA: (1, 1), API_CREATE_TOPICS: (2, 4), API_DELETE_TOPICS: (1, 3),
          API_CREATE_PARTITIONS: (0, 1)}


class ToolError(Exception):
    pass


def error_text(code, message=None):
    name = ERRORS.get(code, "UNKNOWN_ERROR_CODE_%d" % code)
    return "%s (error code %d)%s" % (name, code, ": " + message if message else "")


# ---------------------------------------------------------------- encoding


def i8(v):
    return struct.pack(">b", v)


def i16(v):
    return struct.pack(">h", v)


def i32(v):
    return struct.pack(">i", v)


def string(s):
    b = s.encode("utf-8")
    return i16(len(b)) + b


def nullable_string(s):
    return i16(-1) if s is None else string(s)


def array(items, enc):
    return i32(len(items)) + b"".join(enc(x) for x in items)


class Reader:
    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return v[0]

    def i8(self):
        return self.take(">b")

    def i16(self):
        return self.take(">h")

    def i32(self):
        return self.take(">i")

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        s = self.buf[self.pos:self.pos + n].decode("utf-8", "replace")
        self.pos += n
        return s

    def array(self, dec):
        n = self.i32()
        return [] if n < 0 else [dec(self) for _ in range(n)]


# ---------------------------------------------------------------- connection


class Connection:
    def __init__(self, bootstrap, timeout):
        errors = []
        self.sock = None
        for hp in [s.strip() for s in bootstrap.split(",") if s.strip()]:
            hp = re.sub(r"^[A-Za-z_]+://", "", hp)
            host, _, port = hp.rpartition(":")
            host = host.strip("[]") or "localhost"
            try:
                self.sock = socket.create_connection((host, int(port)), timeout=timeout)
                break
            except (OSError, ValueError) as e:
                errors.append("%s: %s" % (hp, e))
        if self.sock is None:
            raise ToolError("cannot connect to any bootstrap server (%s)" % "; ".join(errors) or bootstrap)
        self.correlation = 0
        self.versions = self.api_versions()

    def close(self):
        self.sock.close()

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ToolError("the broker closed the connection")
            buf += chunk
        return buf

    def request(self, api_key, version, body):
        self.correlation += 1
        header = i16(api_key) + i16(version) + i32(self.correlation) + i16(len(CLIENT_ID)) + CLIENT_ID
        msg = header + body
        self.sock.sendall(i32(len(msg)) + msg)
        size = struct.unpack(">i", self.recv_exact(4))[0]
        resp = self.recv_exact(size)
        corr = struct.unpack(">i", resp[:4])[0]
        if corr != self.correlation:
            raise ToolError("response correlation id %d, expected %d" % (corr, self.correlation))
        return Reader(resp[4:])

    def api_versions(self):
        r = self.request(API_API_VERSIONS, 0, b"")
        err = r.i16()
        if err:
            raise ToolError("ApiVersions failed: %s" % error_text(err))
        versions = {}
        for _ in range(r.i32()):
            key, lo, hi = r.i16(), r.i16(), r.i16()
            versions[key] = (lo, hi)
        return versions

    def version(self, api_key, name):
        """Highest version both this shim and the broker speak."""
        lo, hi = SPOKEN[api_key]
        if api_key not in self.versions:
            raise ToolError("the broker does not support %s" % name)
        blo, bhi = self.versions[api_key]
        v = min(hi, bhi)
        if v < max(lo, blo):
            raise ToolError("no common %s version (broker %d-%d, this tool %d-%d)" % (name, blo, bhi, lo, hi))
        return v


# ---------------------------------------------------------------- requests


def metadata(conn, topics=None):
    """{topic: (error_code, is_internal, [(partition, leader, replicas, isr)])}, brokers"""
    v = conn.version(API_METADATA, "Metadata")
    body = i32(-1) if topics is None else array(topics, string)
    r = conn.request(API_METADATA, v, body)
    brokers = r.array(lambda r: (r.i32(), r.string(), r.i32(), r.string()))
    r.i32()  # controller_id
    result = {}
    for _ in range(r.i32()):
        err, name, internal = r.i16(), r.string(), bool(r.i8())
        parts = r.array(lambda r: (r.i16(), r.i32(), r.i32(), r.array(lambda r: r.i32()),
                                   r.array(lambda r: r.i32())))
        result[name] = (err, internal, sorted((p[1], p[2], p[3], p[4]) for p in parts))
    return result, brokers


def matching_topics(conn, pattern, exclude_internal=False):
    """Topics whose names match the --topic pattern (a Java regex; ',' separates alternatives)."""
    topics, _ = metadata(conn)
    names = [t for t, (err, internal, _) in topics.items()
             if not (exclude_internal and internal)]
    if pattern is None:
        return sorted(names)
    alts = "|".join(p.strip().strip("'\"") for p in pattern.split(","))
    try:
        rx = re.compile(alts)
    except re.error:
        return sorted(n for n in names if n in alts.split("|"))
    return sorted(n for n in names if rx.fullmatch(n))


def create_topic(conn, name, partitions, replication_factor, configs, if_not_exists):
    v = conn.version(API_CREATE_TOPICS, "CreateTopics")
    if v < 4 and (partitions is None or replication_factor is None):
        # Before v4 the broker's defaults cannot be asked for with -1.
        raise ToolError("--partitions and --replication-factor are required (the broker speaks "
                        "CreateTopics v%d only)" % v)
    body = array([name], lambda n: (
        string(n) + i32(-1 if partitions is None else partitions)
        + i16(-1 if replication_factor is None else replication_factor)
        + i32(0)  # assignments
        + array(configs, lambda kv: string(kv[0]) + nullable_string(kv[1]))))
    body += i32(TIMEOUT_MS) + i8(0)  # timeout_ms, validate_only
    r = conn.request(API_CREATE_TOPICS, v, body)
    r.i32()  # throttle_time_ms
    results = r.array(lambda r: (r.string(), r.i16(), r.string()))
    for tname, err, msg in results:
        if err == 36 and if_not_exists:
            continue
        if err:
            raise ToolError("Error while executing topic command: creating topic '%s' failed: %s"
                            % (tname, error_text(err, msg)))
    print("Created topic %s." % name)


def delete_topics(conn, pattern, if_exists):
    names = matching_topics(conn, pattern)
    if not names:
        if if_exists:
            return
        raise ToolError("Error while executing topic command: Topic '%s' does not exist as expected"
                        % pattern)
    v = conn.version(API_DELETE_TOPICS, "DeleteTopics")
    r = conn.request(API_DELETE_TOPICS, v, array(names, string) + i32(TIMEOUT_MS))
    r.i32()  # throttle_time_ms
    failed = [(n, err) for n, err in r.array(lambda r: (r.string(), r.i16())) if err]
    if failed:
        raise ToolError("Error while executing topic command: deleting %s failed"
                        % ", ".join("'%s': %s" % (n, error_text(e)) for n, e in failed))


def alter_partitions(conn, pattern, count, if_exists):
    if count is None:
        raise ToolError("--alter needs --partitions (only partition count changes are supported)")
    names = matching_topics(conn, pattern)
    if not names:
        if if_exists:
            return
        raise ToolError("Error while executing topic command: Topic '%s' does not exist as expected"
                        % pattern)
    v = conn.version(API_CREATE_PARTITIONS, "CreatePartitions")
    body = array(names, lambda n: string(n) + i32(count) + i32(-1))  # assignments: null
    body += i32(TIMEOUT_MS) + i8(0)  # timeout_ms, validate_only
    r = conn.request(API_CREATE_PARTITIONS, v, body)
    r.i32()  # throttle_time_ms
    failed = [x for x in r.array(lambda r: (r.string(), r.i16(), r.string())) if x[1]]
    if failed:
        raise ToolError("Error while executing topic command: %s"
                        % "; ".join("altering '%s' failed: %s" % (n, error_text(e, m)) for n, e, m in failed))


def describe(conn, pattern, exclude_internal, list_only):
    names = matching_topics(conn, pattern, exclude_internal)
    if pattern is not None and not names and not list_only:
        raise ToolError("Error while executing topic command: Topic '%s' does not exist as expected"
                        % pattern)
    if list_only:
        for n in names:
            print(n)
        return
    topics, _ = metadata(conn, names)
    for n in names:
        err, _, parts = topics.get(n, (3, False, []))
        if err:
            raise ToolError("describing '%s' failed: %s" % (n, error_text(err)))
        rf = len(parts[0][2]) if parts else 0
        print("Topic: %s\tPartitionCount: %d\tReplicationFactor: %d" % (n, len(parts), rf))
        for p, leader, replicas, isr in parts:
            print("\tTopic: %s\tPartition: %d\tLeader: %d\tReplicas: %s\tIsr: %s" % (
                n, p, leader, ",".join(map(str, replicas)), ",".join(map(str, isr))))


# ---------------------------------------------------------------- main


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="kafka-topics.sh", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap-server", required=True)
    acts = ap.add_mutually_exclusive_group(required=True)
    for a in ("create", "alter", "delete", "describe", "list"):
        acts.add_argument("--" + a, action="store_true")
    ap.add_argument("--topic")
    ap.add_argument("--partitions", type=int)
    ap.add_argument("--replication-factor", type=int)
    ap.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--if-exists", action="store_true")
    ap.add_argument("--if-not-exists", action="store_true")
    ap.add_argument("--exclude-internal", action="store_true")
    ap.add_argument("--timeout", type=float, default=60.0, help="socket timeout, seconds")
    opts = ap.parse_args(argv)
    if (opts.create or opts.alter or opts.delete) and not opts.topic:
        ap.error("--topic is required with --create, --alter and --delete")
    if opts.config and not opts.create:
        ap.error("--config is only supported with --create (use kafka-configs.sh to alter configs)")
    configs = []
    for kv in opts.config:
        k, sep, val = kv.partition("=")
        if not sep or not k:
            ap.error("--config %r: expected KEY=VALUE" % kv)
        configs.append((k.strip(), val.strip()))
    opts.config = configs
    return opts


def main(argv):
    opts = parse_args(argv)
    try:
        conn = Connection(opts.bootstrap_server, opts.timeout)
        try:
            if opts.create:
                create_topic(conn, opts.topic, opts.partitions, opts.replication_factor,
                             opts.config, opts.if_not_exists)
            elif opts.delete:
                delete_topics(conn, opts.topic, opts.if_exists)
            elif opts.alter:
                alter_partitions(conn, opts.topic, opts.partitions, opts.if_exists)
            else:
                describe(conn, opts.topic, opts.exclude_internal, opts.list)
        finally:
            conn.close()
    except ToolError as e:
        print(str(e), file=sys.stderr)
        return 1
    except (OSError, struct.error) as e:
        print("Error while executing topic command: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
