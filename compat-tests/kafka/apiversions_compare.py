#!/usr/bin/env python3
"""Klamm's ApiVersions answer against the reference Apache Kafka 4.4.0 broker, API by API.

usage: apiversions_compare.py                  start both brokers, compare, stop them
       apiversions_compare.py --kafka H:P --klamm H:P   compare two running brokers
       apiversions_compare.py --self-check      only the parser/comparator checks (no brokers)

Starts Kafka with compat-tests/kafka/kafka.sh (a fresh DIR; `kafka.sh stop DIR` at the end)
and $KLAMM_BIN on a free loopback port with a fresh data dir (stopped by PID), sends each
ApiVersions v0 and v4 over a raw socket and decodes the api_keys (key, min, max) and the
supported and finalized features. Prints one table of every API either broker advertises
and one of the features, then checks them against the table of deliberate differences in
COMPAT.md (between `<!-- apiversions:begin -->` and `<!-- apiversions:end -->`). It fails
when any difference is not in that table exactly, when a row there no longer matches, and
when Klamm advertises more than Kafka 4.4 (a higher max, a lower min, an API Kafka lacks)
without a why starting with "deliberate". Standard library only. Exit 0 = pass.
"""
import argparse
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
COMPAT_MD = os.path.join(REPO, "COMPAT.md")
KAFKA_SH = os.path.join(HERE, "kafka.sh")
KAFKA_VERSION = "4.4.0"
BEGIN, END = "<!-- apiversions:begin -->", "<!-- apiversions:end -->"
COLUMNS = ["API", "key", "Kafka 4.4", "Klamm", "why"]
READY_TIMEOUT = 30.0
REQUEST_TIMEOUT = 10.0
# The flexible version asked for: v4 is the first that lists features whose minimum is 0
# (v3 leaves them out, KAFKA-17011); both brokers answer it.
FLEXIBLE_VERSION = 4

# Kafka's API keys and names, from the apiKey/name of common/message/*Request.json in
# kafka-clients 4.4.0 ("Request" dropped). check_names_against_jar() compares them with the
# jar the reference broker runs.
API_NAMES = {
    0: "Produce", 1: "Fetch", 2: "ListOffsets", 3: "Metadata", 4: "LeaderAndIsr",
    5: "StopReplica", 6: "UpdateMetadata", 7: "ControlledShutdown", 8: "OffsetCommit",
    9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup", 12: "Heartbeat",
    13: "LeaveGroup", 14: "SyncGroup", 15: "DescribeGroups", 16: "ListGroups",
    17: "SaslHandshake", 18: "ApiVersions", 19: "CreateTopics", 20: "DeleteTopics",
    21: "DeleteRecords", 22: "InitProducerId", 23: "OffsetForLeaderEpoch",
    24: "AddPartitionsToTxn", 25: "AddOffsetsToTxn", 26: "EndTxn", 27: "WriteTxnMarkers",
    28: "TxnOffsetCommit", 29: "DescribeAcls", 30: "CreateAcls", 31: "DeleteAcls",
    32: "DescribeConfigs", 33: "AlterConfigs", 34: "AlterReplicaLogDirs",
    35: "DescribeLogDirs", 36: "SaslAuthenticate", 37: "CreatePartitions",
    38: "CreateDelegationToken", 39: "RenewDelegationToken", 40: "ExpireDelegationToken",
    41: "DescribeDelegationToken", 42: "DeleteGroups", 43: "ElectLeaders",
    44: "IncrementalAlterConfigs", 45: "AlterPartitionReassignments",
    46: "ListPartitionReassignments", 47: "OffsetDelete", 48: "DescribeClientQuotas",
    49: "AlterClientQuotas", 50: "DescribeUserScramCredentials",
    51: "AlterUserScramCredentials", 52: "Vote", 53: "BeginQuorumEpoch",
    54: "EndQuorumEpoch", 55: "DescribeQuorum", 56: "AlterPartition", 57: "UpdateFeatures",
    58: "Envelope", 59: "FetchSnapshot", 60: "DescribeCluster", 61: "DescribeProducers",
    62: "BrokerRegistration", 63: "BrokerHeartbeat", 64: "UnregisterBroker",
    65: "DescribeTransactions", 66: "ListTransactions", 67: "AllocateProducerIds",
    68: "ConsumerGroupHeartbeat", 69: "ConsumerGroupDescribe", 70: "ControllerRegistration",
    71: "GetTelemetrySubscriptions", 72: "PushTelemetry", 73: "AssignReplicasToDirs",
    74: "ListConfigResources", 75: "DescribeTopicPartitions", 76: "ShareGroupHeartbeat",
    77: "ShareGroupDescribe", 78: "ShareFetch", 79: "ShareAcknowledge", 80: "AddRaftVoter",
    81: "RemoveRaftVoter", 82: "UpdateRaftVoter", 83: "InitializeShareGroupState",
    84: "ReadShareGroupState", 85: "WriteShareGroupState", 86: "DeleteShareGroupState",
    87: "ReadShareGroupStateSummary", 88: "StreamsGroupHeartbeat",
    89: "StreamsGroupDescribe", 90: "DescribeShareGroupOffsets",
    91: "AlterShareGroupOffsets", 92: "DeleteShareGroupOffsets",
    93: "StreamsGroupTopologyDescriptionUpdate", 94: "UnregisterController",
}


class Failure(Exception):
    pass


# ---------------------------------------------------------------------------- the wire

def _read_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise Failure(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def _compact_string(s):
    b = s.encode()
    return _uvarint(len(b) + 1) + b


def _uvarint(n):
    out = bytearray()
    while True:
        if n < 0x80:
            out.append(n)
            return bytes(out)
        out.append((n & 0x7F) | 0x80)
        n >>= 7


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise Failure(f"response ends at byte {len(self.data)}, wanted {self.pos + n}")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def int16(self):
        return struct.unpack(">h", self.take(2))[0]

    def int32(self):
        return struct.unpack(">i", self.take(4))[0]

    def int64(self):
        return struct.unpack(">q", self.take(8))[0]

    def uvarint(self):
        shift = value = 0
        while True:
            b = self.take(1)[0]
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 28:
                raise Failure("varint too long")

    def compact_string(self):
        n = self.uvarint()
        if n == 0:
            raise Failure("null compact string where a name was expected")
        return self.take(n - 1).decode()

    def skip_tags(self):
        for _ in range(self.uvarint()):
            self.uvarint()
            self.take(self.uvarint())


def api_versions(address, version):
    """Send ApiVersions `version` (0 or 3+) and decode the answer:
    {"error": int, "apis": {key: (min, max)}, "supported": {name: (min, max)},
     "finalized": {name: (min, max)}, "epoch": int}."""
    host, port = address.rsplit(":", 1)
    correlation = 0x5A5A0000 + version
    client_id = b"apiversions-compare"
    header = struct.pack(">hhih", 18, version, correlation, len(client_id)) + client_id
    body = b""
    if version >= 3:
        header += b"\x00"  # request header v2: no tagged fields
        body = _compact_string("klamm-apiversions-compare") + _compact_string("1") + b"\x00"
    frame = header + body
    with socket.create_connection((host, int(port)), timeout=REQUEST_TIMEOUT) as sock:
        sock.settimeout(REQUEST_TIMEOUT)
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        size = struct.unpack(">i", _read_exact(sock, 4))[0]
        r = Reader(_read_exact(sock, size))
    # ApiVersions answers always carry response header v0 (the correlation id only).
    if r.int32() != correlation:
        raise Failure(f"{address}: ApiVersions v{version}: wrong correlation id")
    out = {"error": r.int16(), "apis": {}, "supported": {}, "finalized": {}, "epoch": None}
    flexible = version >= 3 and out["error"] == 0
    n = r.uvarint() - 1 if flexible else r.int32()
    for _ in range(n):
        key, lo, hi = r.int16(), r.int16(), r.int16()
        if flexible:
            r.skip_tags()
        if key in out["apis"]:
            raise Failure(f"{address}: api key {key} listed twice")
        out["apis"][key] = (lo, hi)
    if version >= 1 and out["error"] == 0:
        r.int32()  # throttle_time_ms
    if flexible:
        for _ in range(r.uvarint()):
            tag, size = r.uvarint(), r.uvarint()
            field = Reader(r.take(size))
            if tag in (0, 2):
                target = out["supported"] if tag == 0 else out["finalized"]
                for _ in range(field.uvarint() - 1):
                    name = field.compact_string()
                    a, b = field.int16(), field.int16()
                    field.skip_tags()
                    # SupportedFeatures: min, max; FinalizedFeatures: max level, min level.
                    target[name] = (a, b) if tag == 0 else (b, a)
            elif tag == 1:
                out["epoch"] = field.int64()
    if r.pos != len(r.data):
        raise Failure(f"{address}: {len(r.data) - r.pos} bytes left after ApiVersions v{version}")
    return out


def query(address, label):
    """ApiVersions v0 and v4 from one broker; their api lists must agree."""
    v0 = api_versions(address, 0)
    if v0["error"] != 0:
        raise Failure(f"{label}: ApiVersions v0 answered error {v0['error']}")
    lo, hi = v0["apis"].get(18, (0, -1))
    if not lo <= FLEXIBLE_VERSION <= hi:
        raise Failure(f"{label}: advertises ApiVersions {lo}-{hi}, not v{FLEXIBLE_VERSION}")
    v4 = api_versions(address, FLEXIBLE_VERSION)
    if v4["error"] != 0:
        raise Failure(f"{label}: ApiVersions v{FLEXIBLE_VERSION} answered error {v4['error']}")
    if v4["apis"] != v0["apis"]:
        raise Failure(f"{label}: ApiVersions v0 and v{FLEXIBLE_VERSION} list different APIs:\n"
                      f"  v0 {sorted(v0['apis'].items())}\n"
                      f"  v{FLEXIBLE_VERSION} {sorted(v4['apis'].items())}")
    unknown = sorted(set(v4["apis"]) - set(API_NAMES))
    if unknown:
        raise Failure(f"{label}: api keys {unknown} have no name in API_NAMES; add them "
                      f"from the Kafka JSON specs")
    return v4


# ---------------------------------------------------------------------------- comparison
# One "entry" per API or feature, what a row of the COMPAT.md table holds:
#   API:     ("api", key)        -> (min, max) or None (not advertised)
#   feature: ("feature", name)   -> (supported (min, max), finalized (min, max) or None) or None

def fmt_range(r):
    if r is None:
        return "—"
    return str(r[0]) if r[0] == r[1] else f"{r[0]}-{r[1]}"


def fmt_feature(f):
    if f is None:
        return "—"
    supported, finalized = f
    if finalized is None:
        return f"{fmt_range(supported)} (not finalized)"
    return f"{fmt_range(supported)} (finalized {fmt_range(finalized)})"


def fmt_value(ident, value):
    return fmt_range(value) if ident[0] == "api" else fmt_feature(value)


def entries(answer):
    """An ApiVersions answer as {ident: value}."""
    out = {("api", k): r for k, r in answer["apis"].items()}
    for name in set(answer["supported"]) | set(answer["finalized"]):
        sup = answer["supported"].get(name)
        if sup is None:
            raise Failure(f"feature {name} finalized but not supported")
        out[("feature", name)] = (sup, answer["finalized"].get(name))
    return out


def display_name(ident):
    return API_NAMES.get(ident[1], f"key {ident[1]}") if ident[0] == "api" else ident[1]


def verdict(ident, kafka, klamm):
    if kafka == klamm:
        return "same"
    if kafka is None:
        return "Klamm only"
    if klamm is None:
        return "missing in Klamm"
    if ident[0] == "feature":
        parts = []
        if klamm[0] != kafka[0]:
            parts.append("supported range differs")
        if klamm[1] != kafka[1]:
            parts.append("finalized level differs")
        return ", ".join(parts)
    parts = []
    if klamm[0] < kafka[0]:
        parts.append("Klamm lower min")
    elif klamm[0] > kafka[0]:
        parts.append("Klamm higher min")
    if klamm[1] < kafka[1]:
        parts.append("Klamm lower max")
    elif klamm[1] > kafka[1]:
        parts.append("Klamm higher max")
    return ", ".join(parts)


def beyond_kafka(ident, kafka, klamm):
    """What Klamm advertises that Kafka 4.4 does not, or None."""
    if ident[0] != "api" or klamm is None:
        return None
    if kafka is None:
        return f"an API Kafka {KAFKA_VERSION} does not advertise"
    what = []
    if klamm[1] > kafka[1]:
        what.append(f"max {klamm[1]} above Kafka's {kafka[1]}")
    if klamm[0] < kafka[0]:
        what.append(f"min {klamm[0]} below Kafka's {kafka[0]} (versions Kafka {KAFKA_VERSION} dropped)")
    return " and ".join(what) or None


def table_row(ident, kafka, klamm, why):
    key = ident[1] if ident[0] == "api" else "feature"
    return (f"| {display_name(ident)} | {key} | {fmt_value(ident, kafka)} | "
            f"{fmt_value(ident, klamm)} | {why} |")


def compare(kafka, klamm, expected):
    """kafka, klamm: {ident: value} as the brokers answered; expected: {ident: row} parsed
    from COMPAT.md. Returns the problems, each a sentence saying which row to change."""
    problems = []
    for ident in sorted(set(kafka) | set(klamm) | set(expected), key=sort_key):
        k, m = kafka.get(ident), klamm.get(ident)
        row = expected.get(ident)
        name = display_name(ident)
        if row is None:
            if k == m:
                continue
            beyond = beyond_kafka(ident, k, m)
            why = "deliberate: WHY" if beyond else "WHY"
            msg = (f"{name}: Kafka {KAFKA_VERSION} {fmt_value(ident, k)}, Klamm "
                   f"{fmt_value(ident, m)}; no row in COMPAT.md. Add the row\n"
                   f"    {table_row(ident, k, m, why)}")
            if beyond:
                msg += (f"\n  (Klamm advertises {beyond}: only if that is deliberate, with the"
                        f" reason; otherwise lower it in the broker)")
            problems.append(msg)
            continue
        if k == m:
            problems.append(f"{name}: Kafka {KAFKA_VERSION} and Klamm now agree "
                            f"({fmt_value(ident, k)}). Delete the row\n    {row['line']}")
            continue
        beyond = beyond_kafka(ident, k, m)
        if (row["kafka"], row["klamm"]) != (k, m):
            msg = (f"{name}: the row says Kafka {fmt_value(ident, row['kafka'])}, Klamm "
                   f"{fmt_value(ident, row['klamm'])}; the brokers answer Kafka "
                   f"{fmt_value(ident, k)}, Klamm {fmt_value(ident, m)}. Change the row"
                   f"\n    {row['line']}\n  to\n    {table_row(ident, k, m, row['why'])}")
            if beyond and not row["why"].lower().startswith("deliberate"):
                msg += (f"\n  (Klamm advertises {beyond}: only if that is deliberate, with a why "
                        f"starting \"deliberate\"; otherwise lower it in the broker)")
            problems.append(msg)
            continue
        if beyond and not row["why"].lower().startswith("deliberate"):
            problems.append(f"{name}: Klamm advertises {beyond}; its row's why must start with "
                            f"\"deliberate\" (and say why), or the broker must stop advertising "
                            f"it. Row:\n    {row['line']}")
    return problems


def sort_key(ident):
    return (0, ident[1], "") if ident[0] == "api" else (1, 0, ident[1])


# ---------------------------------------------------------------------------- COMPAT.md

RANGE_RE = re.compile(r"^(\d+)(?:-(\d+))?$")
FEATURE_RE = re.compile(r"^(\d+(?:-\d+)?)\s*\((?:finalized\s+(\d+(?:-\d+)?)|(not finalized))\)$")
ABSENT = {"—", "-", "–", "none"}


def parse_range(text, where):
    m = RANGE_RE.match(text)
    if not m:
        raise Failure(f"{where}: '{text}' is not a version range (N, N-M or —)")
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) is not None else lo
    if lo > hi:
        raise Failure(f"{where}: '{text}': min above max")
    return (lo, hi)


def parse_cell(ident, text, where):
    text = text.strip().strip("`").strip()
    if text.lower() in ABSENT:
        return None
    if ident[0] == "api":
        return parse_range(text, where)
    m = FEATURE_RE.match(text)
    if not m:
        raise Failure(f"{where}: '{text}' is not a feature cell "
                      f"('MIN-MAX (finalized LEVEL)', 'MIN-MAX (not finalized)' or —)")
    supported = parse_range(m.group(1), where)
    finalized = parse_range(m.group(2), where) if m.group(2) else None
    return (supported, finalized)


def split_row(line):
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    return cells


def parse_expected(text):
    """The table between the markers in COMPAT.md as {ident: row}."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise Failure(f"COMPAT.md must hold {BEGIN} and {END} once each")
    start = text.index(BEGIN)
    end = text.index(END)
    if end < start:
        raise Failure(f"{END} comes before {BEGIN} in COMPAT.md")
    first_line = text[:start].count("\n") + 1
    lines = text[start:end].splitlines()
    rows = {}
    header_seen = False
    for offset, line in enumerate(lines):
        lineno = first_line + offset
        line = line.strip()
        if not line.startswith("|"):
            continue
        cells = split_row(line)
        if not header_seen:
            if cells != COLUMNS:
                raise Failure(f"COMPAT.md line {lineno}: table header must be "
                              f"| {' | '.join(COLUMNS)} |, not {line}")
            header_seen = True
            continue
        if all(re.fullmatch(r":?-+:?", c) for c in cells):
            continue
        where = f"COMPAT.md line {lineno}"
        if len(cells) != len(COLUMNS):
            raise Failure(f"{where}: {len(cells)} cells, want {len(COLUMNS)}: {line}")
        name, key, kafka_cell, klamm_cell, why = cells
        name = name.strip("`")
        if key == "feature":
            ident = ("feature", name)
        else:
            if not key.isdigit():
                raise Failure(f"{where}: key '{key}' is neither an api key nor 'feature'")
            ident = ("api", int(key))
            if API_NAMES.get(ident[1]) != name:
                raise Failure(f"{where}: api key {key} is {API_NAMES.get(ident[1], 'unknown')}, "
                              f"not {name}")
        if ident in rows:
            raise Failure(f"{where}: a second row for {name}")
        if not why:
            raise Failure(f"{where}: the why cell is empty")
        rows[ident] = {"kafka": parse_cell(ident, kafka_cell, where),
                       "klamm": parse_cell(ident, klamm_cell, where),
                       "why": why, "line": line, "lineno": lineno}
    if not header_seen:
        raise Failure("no table between the apiversions markers in COMPAT.md")
    if not rows:
        raise Failure("the apiversions table in COMPAT.md has no rows: nothing to compare "
                      "against (a vacuous pass is a failure)")
    return rows


# ---------------------------------------------------------------------------- self-checks

def self_check(live=None, expected=None):
    """The comparator must catch every kind of drift. With the live answers and the
    parsed COMPAT.md table it also alters a real row; without, only synthetic data."""
    kafka = {("api", 2): (1, 11), ("api", 3): (0, 13), ("api", 55): (0, 2),
             ("feature", "transaction.version"): ((0, 2), (2, 2))}
    klamm = {("api", 2): (1, 10), ("api", 3): (0, 13), ("api", 30): (0, 3),
             ("feature", "transaction.version"): ((0, 1), None)}
    md = "\n".join([
        "intro", BEGIN, "",
        "| API | key | Kafka 4.4 | Klamm | why |",
        "|---|---|---|---|---|",
        "| ListOffsets | 2 | 1-11 | 1-10 | not yet |",
        "| DescribeQuorum | 55 | 0-2 | — | KRaft only |",
        "| CreateAcls | 30 | — | 0-3 | deliberate: old clients |",
        "| transaction.version | feature | 0-2 (finalized 2) | 0-1 (not finalized) | not yet |",
        "", END, "outro"])
    checks = 0
    exp = parse_expected(md)
    if len(exp) != 4 or compare(kafka, klamm, exp):
        raise Failure(f"self-check: the sample table should parse to 4 rows that match: "
                      f"{exp} {compare(kafka, klamm, exp)}")
    checks += 1

    def expect_problem(kf, kl, ex, needle, what):
        nonlocal checks
        got = compare(kf, kl, ex)
        if len(got) != 1 or needle not in got[0]:
            raise Failure(f"self-check '{what}': wanted one problem containing {needle!r}, "
                          f"got {got}")
        checks += 1

    # A raised max in the broker: the row must change, and the message shows the new row.
    expect_problem(kafka, {**klamm, ("api", 2): (1, 11)}, exp, "Delete the row", "max raised to Kafka's")
    expect_problem(kafka, {**klamm, ("api", 2): (2, 10)}, exp,
                   "| ListOffsets | 2 | 1-11 | 2-10 | not yet |", "min changed")
    # An API Klamm stops or starts advertising.
    expect_problem(kafka, {k: v for k, v in klamm.items() if k != ("api", 3)}, exp,
                   "| Metadata | 3 | 0-13 | — | WHY |", "API dropped")
    expect_problem(kafka, {**klamm, ("api", 55): (0, 2)}, exp, "Delete the row", "API added")
    # Beyond Kafka without a row, and with a row that does not say deliberate.
    expect_problem(kafka, {**klamm, ("api", 3): (0, 14)}, exp, "max 14 above Kafka's 13", "higher max")
    not_deliberate = dict(exp)
    not_deliberate[("api", 30)] = {**exp[("api", 30)], "why": "old clients"}
    expect_problem(kafka, klamm, not_deliberate, "must start with \"deliberate\"", "why not deliberate")
    expect_problem(kafka, {**klamm, ("api", 2): (1, 12)}, exp,
                   "max 12 above Kafka's 11", "row changed to beyond Kafka")
    # Features.
    expect_problem(kafka, {**klamm, ("feature", "transaction.version"): ((0, 2), (2, 2))}, exp,
                   "Delete the row", "feature raised")
    expect_problem(kafka, {**klamm, ("feature", "transaction.version"): ((0, 1), (1, 1))}, exp,
                   "0-1 (finalized 1)", "feature finalized")
    # A row removed from the table.
    fewer = {k: v for k, v in exp.items() if k != ("api", 2)}
    expect_problem(kafka, klamm, fewer, "no row in COMPAT.md", "row missing")
    # The parser refuses what it cannot read, and an empty table.
    for bad, needle in [
        (md.replace(END, ""), "once each"),
        (md.replace("| ListOffsets | 2 |", "| Metadata | 2 |"), "api key 2 is ListOffsets"),
        (md.replace("1-10 |", "1..10 |"), "not a version range"),
        (md.replace("| not yet |", "|  |", 1), "why cell is empty"),
        ("\n".join(line for line in md.splitlines()
                   if not line.startswith("| ") or line.startswith("| API")), "no rows"),
    ]:
        try:
            parse_expected(bad)
        except Failure as e:
            if needle not in str(e):
                raise Failure(f"self-check parser: wanted {needle!r}, got {e}")
        else:
            raise Failure(f"self-check parser: accepted a table that should fail ({needle})")
        checks += 1

    if live is not None:
        # The real table, one real row altered: the comparison must name exactly that row.
        kafka_live, klamm_live = live
        ident = min(expected, key=sort_key)
        row = expected[ident]
        if ident[0] == "api" and row["klamm"] is not None:
            altered = (row["klamm"][0], row["klamm"][1] + 1)
        else:
            altered = (0, 99) if ident[0] == "api" else ((0, 99), None)
        bad = dict(expected)
        bad[ident] = {**row, "klamm": altered, "line": row["line"] + " (altered)"}
        got = compare(kafka_live, klamm_live, bad)
        if not any(display_name(ident) in p and "(altered)" in p for p in got):
            raise Failure(f"self-check: altering the row of {display_name(ident)} in the live "
                          f"comparison was not reported: {got}")
        checks += 1
    return checks


def check_names_against_jar(jar):
    """API_NAMES must match the apiKey/name pairs of the Request JSON specs in the jar."""
    found = {}
    with zipfile.ZipFile(jar) as z:
        for info in z.infolist():
            m = re.fullmatch(r"common/message/(\w+)Request\.json", info.filename)
            if not m:
                continue
            text = z.read(info).decode()
            key = re.search(r'"apiKey"\s*:\s*(\d+)', text)
            name = re.search(r'"name"\s*:\s*"(\w+)Request"', text)
            if key and name:
                found[int(key.group(1))] = name.group(1)
    if not found:
        raise Failure(f"no common/message/*Request.json in {jar}")
    if found != API_NAMES:
        diff = sorted(set(found.items()) ^ set(API_NAMES.items()))
        raise Failure(f"API_NAMES differs from {os.path.basename(jar)}: {diff}")
    return len(found)


# ---------------------------------------------------------------------------- brokers

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, n=40):
    try:
        with open(path, "rb") as f:
            return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
    except OSError:
        return "<no log>"


class Klamm:
    def __init__(self, work):
        self.bin = os.environ.get("KLAMM_BIN") or "/root/.cache/klamm/target/release/klamm"
        self.port = free_port()
        self.data = os.path.join(work, "klamm-data")
        self.log = os.path.join(work, "klamm.log")
        self.proc = None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def start(self):
        if not os.access(self.bin, os.X_OK):
            raise Failure(f"klamm binary not found at {self.bin} (set KLAMM_BIN)")
        # KLAMM_* variables would change the broker's defaults.
        env = {k: v for k, v in os.environ.items() if not k.startswith("KLAMM_")}
        env["NO_COLOR"] = "1"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [self.bin, "--listen", self.address, "--data-dir", self.data],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        ready = f"klamm ready on {self.address}".encode()
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            with open(self.log, "rb") as f:
                if ready in re.sub(rb"\x1b\[[0-9;]*m", b"", f.read()):
                    return
            if self.proc.poll() is not None:
                raise Failure(f"klamm exited with {self.proc.returncode}:\n{tail(self.log)}")
            time.sleep(0.05)
        raise Failure(f"klamm not ready within {READY_TIMEOUT:.0f} s:\n{tail(self.log)}")

    def stop(self):
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


class Kafka:
    """The reference broker from kafka.sh: started in the background at once (the JVM takes
    seconds), waited for with wait_ready(), stopped with `kafka.sh stop DIR`."""

    def __init__(self, work):
        self.dir = os.path.join(work, "kafka")
        self.proc = None
        self.address = None

    def start(self):
        self.out = open(os.path.join(os.path.dirname(self.dir), "kafka.sh.out"), "w+b")
        self.proc = subprocess.Popen([KAFKA_SH, "start", self.dir], stdout=self.out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def wait_ready(self):
        rc = self.proc.wait(timeout=180)
        self.out.seek(0)
        text = self.out.read().decode("utf-8", "replace")
        m = re.search(r"^(127\.0\.0\.1:\d+)$", text, re.M)
        if rc != 0 or not m:
            raise Failure(f"kafka.sh start {self.dir} exited {rc}:\n{text[-4000:]}")
        self.address = m.group(1)

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            # Interrupted while kafka.sh start still waits for the broker: end that script
            # (by its PID); the JVM it started is in DIR/pid, which `kafka.sh stop` reads.
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        subprocess.run([KAFKA_SH, "stop", self.dir], stdin=subprocess.DEVNULL, check=False)

    def jar(self):
        cache = os.environ.get("KLAMM_CACHE") or os.path.expanduser("~/.cache/klamm")
        return os.path.join(cache, f"kafka-{KAFKA_VERSION}", "libs",
                            f"kafka-clients-{KAFKA_VERSION}.jar")


# ---------------------------------------------------------------------------- report

def print_tables(kafka, klamm, expected):
    idents = sorted(set(kafka) | set(klamm), key=sort_key)
    apis = [i for i in idents if i[0] == "api"]
    feats = [i for i in idents if i[0] == "feature"]

    def show(header, rows):
        widths = [max(len(str(r[c])) for r in [header] + rows) for c in range(len(header))]
        for r in [header] + rows:
            print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip())

    rows = []
    for i in apis:
        k, m = kafka.get(i), klamm.get(i)
        listed = "" if k == m else ("listed" if i in expected else "NOT LISTED")
        rows.append([display_name(i), i[1], fmt_range(k), fmt_range(m), verdict(i, k, m), listed])
    print(f"\nApiVersions: Apache Kafka {KAFKA_VERSION} against Klamm "
          f"(client listeners, ApiVersions v{FLEXIBLE_VERSION})\n")
    show(["API", "key", f"Kafka {KAFKA_VERSION}", "Klamm", "verdict", "COMPAT.md"], rows)
    rows = []
    for i in feats:
        k, m = kafka.get(i), klamm.get(i)
        listed = "" if k == m else ("listed" if i in expected else "NOT LISTED")
        rows.append([i[1], fmt_feature(k), fmt_feature(m), verdict(i, k, m), listed])
    print("\nFeatures (supported range, finalized level)\n")
    show(["feature", f"Kafka {KAFKA_VERSION}", "Klamm", "verdict", "COMPAT.md"], rows)
    counts = {}
    for i in apis:
        v = verdict(i, kafka.get(i), klamm.get(i))
        counts[v] = counts.get(v, 0) + 1
    print(f"\n{len(apis)} APIs: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items(),
                                                                      key=lambda x: -x[1])))


def run(kafka_addr, klamm_addr, jar=None):
    with open(COMPAT_MD, encoding="utf-8") as f:
        expected = parse_expected(f.read())
    print(f"COMPAT.md: {len(expected)} rows of deliberate differences")
    if jar is not None:
        print(f"API_NAMES: {check_names_against_jar(jar)} API keys, as in {os.path.basename(jar)}")
    kafka_answer = query(kafka_addr, f"Kafka {kafka_addr}")
    klamm_answer = query(klamm_addr, f"Klamm {klamm_addr}")
    kafka, klamm = entries(kafka_answer), entries(klamm_answer)
    if ("api", 18) not in kafka or ("api", 18) not in klamm:
        raise Failure("a broker's ApiVersions does not list ApiVersions itself")
    if len(kafka) < 40:
        raise Failure(f"Kafka advertises only {len(kafka)} entries: not the reference broker?")
    print_tables(kafka, klamm, expected)
    n = self_check((kafka, klamm), expected)
    print(f"self-checks: {n} passed (each altered expectation was reported)")
    problems = compare(kafka, klamm, expected)
    if problems:
        print(f"\nFAIL: the brokers' ApiVersions and COMPAT.md's table "
              f"(## ApiVersions against Kafka 4.4) disagree in {len(problems)} place(s):\n")
        for p in problems:
            print(f"- {p}\n")
        return 1
    print(f"\nPASS: every difference is the row COMPAT.md lists ({len(expected)} rows)")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kafka", help="HOST:PORT of a running Kafka 4.4 (instead of starting one)")
    ap.add_argument("--klamm", help="HOST:PORT of a running Klamm (instead of starting one)")
    ap.add_argument("--self-check", action="store_true", help="only the comparator checks")
    args = ap.parse_args()
    started = time.monotonic()
    try:
        n = self_check()
        print(f"self-checks (synthetic): {n} passed")
        if args.self_check:
            return 0
        if args.kafka and args.klamm:
            return run(args.kafka, args.klamm)
        if args.kafka or args.klamm:
            ap.error("give both --kafka and --klamm, or neither")
        return run_both(started)
    except Failure as e:
        print(f"\nFAIL: {e}")
        return 1


def run_both(started):
    work = tempfile.mkdtemp(prefix="apiversions-")
    kafka, klamm = Kafka(work), Klamm(work)
    # A stop from outside (timeout, Ctrl-C) still stops both brokers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ok = False
    try:
        kafka.start()
        klamm.start()
        kafka.wait_ready()
        print(f"brokers: Kafka {KAFKA_VERSION} on {kafka.address}, Klamm on {klamm.address} "
              f"({os.environ.get('KLAMM_BIN') or klamm.bin}), ready after "
              f"{time.monotonic() - started:.1f} s")
        rc = run(kafka.address, klamm.address, jar=kafka.jar())
        ok = rc == 0
        return rc
    finally:
        klamm.stop()
        kafka.stop()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"(logs kept in {work})")
        print(f"apiversions_compare: {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
