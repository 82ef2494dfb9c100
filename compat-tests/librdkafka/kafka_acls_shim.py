#!/usr/bin/env python3
"""A stand-in for Kafka's bin/kafka-acls.sh, for librdkafka's test suite (test_kafka_cmd()).

0109_auto_create_topics, 0115_producer_auth and 0119_consumer_auth add ACLs with

    kafka-acls.sh --bootstrap-server B --add --deny-principal 'User:*' --operation All \
                  --deny-host '*' --topic T

Standard library only; it speaks the wire protocol to the first reachable --bootstrap-server
(PLAINTEXT, as the tests call the tool only when their own connection is unauthenticated) with
the connection and encoding helpers of kafka_topics_shim.py, and the non-flexible v1 of the
ACL APIs (KIP-140, with KIP-290 resource pattern types):

    --add     CreateAcls v1: every (resource, principal, host, operation) of the options, ALLOW
              for --allow-principal/--allow-host and DENY for --deny-principal/--deny-host
    --remove  DeleteAcls v1: one filter per (resource, principal, host, operation) given
    --list    DescribeAcls v1: the ACLs of the resources given (all of them without one)

Resources: --topic T, --group G, --transactional-id ID (each may repeat), --cluster;
--resource-pattern-type literal (default), prefixed, and for --list/--remove also any and
match.  As with Kafka's tool, a principal without a host gets host '*', no --operation means
All, and --list/--remove without --principal match any principal.  --producer, --consumer and
--command-config are not supported.  Exit status 0 on success; 1 with the Kafka error name and
the broker's message on stderr otherwise.
"""

import argparse
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kafka_topics_shim import (  # noqa: E402
    Connection, ToolError, error_text, i8, i32, nullable_string, string, array, SPOKEN)

API_CREATE_ACLS, API_DESCRIBE_ACLS, API_DELETE_ACLS = 30, 29, 31
SPOKEN.update({API_CREATE_ACLS: (1, 1), API_DESCRIBE_ACLS: (1, 1), API_DELETE_ACLS: (1, 1)})

# org.apache.kafka.common.resource.ResourceType, PatternType; org.apache.kafka.common.acl.*
RESOURCE_TYPES = {"ANY": 1, "TOPIC": 2, "GROUP": 3, "CLUSTER": 4, "TRANSACTIONAL_ID": 5}
PATTERN_TYPES = {"ANY": 1, "MATCH": 2, "LITERAL": 3, "PREFIXED": 4}
OPERATIONS = {"ANY": 1, "ALL": 2, "READ": 3, "WRITE": 4, "CREATE": 5, "DELETE": 6, "ALTER": 7,
              "DESCRIBE": 8, "CLUSTER_ACTION": 9, "DESCRIBE_CONFIGS": 10, "ALTER_CONFIGS": 11,
              "IDEMPOTENT_WRITE": 12}
PERMISSIONS = {"ANY": 1, "DENY": 2, "ALLOW": 3}
CLUSTER_NAME = "kafka-cluster"


def name_of(table, code):
    return next((k for k, v in table.items() if v == code), str(code))


def operation_code(op):
    """Kafka's tool takes operations as "Read", "DescribeConfigs", "describe_configs", ..."""
    key = op.strip().replace("-", "_")
    key = "".join("_" + c if c.isupper() and i and not key[i - 1].isupper() and key[i - 1] != "_"
                  else c for i, c in enumerate(key)).upper()
    if key not in OPERATIONS or key == "ANY":
        raise ToolError("Invalid operation %r (known: %s)" % (op, ", ".join(
            k for k in OPERATIONS if k != "ANY")))
    return OPERATIONS[key]


def binding_text(principal, host, op, perm):
    return "(principal=%s, host=%s, operation=%s, permissionType=%s)" % (
        principal, host, name_of(OPERATIONS, op), name_of(PERMISSIONS, perm))


def resource_text(rtype, name, pattern):
    return "ResourcePattern(resourceType=%s, name=%s, patternType=%s)" % (
        name_of(RESOURCE_TYPES, rtype), name, name_of(PATTERN_TYPES, pattern))


# ---------------------------------------------------------------- requests


def create_acls(conn, creations):
    conn.version(API_CREATE_ACLS, "CreateAcls")
    body = array(creations, lambda c: i8(c[0]) + string(c[1]) + i8(c[2]) + string(c[3])
                 + string(c[4]) + i8(c[5]) + i8(c[6]))
    r = conn.request(API_CREATE_ACLS, 1, body)
    r.i32()  # throttle_time_ms
    results = r.array(lambda r: (r.i16(), r.string()))
    if len(results) != len(creations):
        raise ToolError("CreateAcls answered %d results for %d ACLs" % (len(results), len(creations)))
    failed = [(c, e, m) for c, (e, m) in zip(creations, results) if e]
    if failed:
        raise ToolError("Error while executing ACL command: " + "; ".join(
            "%s %s: %s" % (resource_text(c[0], c[1], c[2]), binding_text(*c[3:]), error_text(e, m))
            for c, e, m in failed))


def filter_body(f):
    rtype, name, pattern, principal, host, op, perm = f
    return (i8(rtype) + nullable_string(name) + i8(pattern) + nullable_string(principal)
            + nullable_string(host) + i8(op) + i8(perm))


def describe_acls(conn, f):
    """[(resource_type, name, pattern_type, [(principal, host, operation, permission)])]"""
    conn.version(API_DESCRIBE_ACLS, "DescribeAcls")
    r = conn.request(API_DESCRIBE_ACLS, 1, filter_body(f))
    r.i32()  # throttle_time_ms
    err, msg = r.i16(), r.string()
    if err:
        raise ToolError("Error while executing ACL command: DescribeAcls failed: %s" % error_text(err, msg))
    return r.array(lambda r: (r.i8(), r.string(), r.i8(),
                              r.array(lambda r: (r.string(), r.string(), r.i8(), r.i8()))))


def delete_acls(conn, filters):
    conn.version(API_DELETE_ACLS, "DeleteAcls")
    r = conn.request(API_DELETE_ACLS, 1, array(filters, filter_body))
    r.i32()  # throttle_time_ms
    deleted, failed = [], []
    for _ in range(r.i32()):
        err, msg = r.i16(), r.string()
        if err:
            failed.append(error_text(err, msg))
        for _ in range(r.i32()):
            merr, mmsg = r.i16(), r.string()
            acl = (r.i8(), r.string(), r.i8(), r.string(), r.string(), r.i8(), r.i8())
            if merr:
                failed.append("%s: %s" % (resource_text(*acl[:3]), error_text(merr, mmsg)))
            else:
                deleted.append(acl)
    if failed:
        raise ToolError("Error while executing ACL command: DeleteAcls failed: %s" % "; ".join(failed))
    return deleted


def print_acls(conn, resources, pattern):
    filters = ([(rt, name, pattern, None, None, OPERATIONS["ANY"], PERMISSIONS["ANY"])
                for rt, name in resources]
               or [(RESOURCE_TYPES["ANY"], None, PATTERN_TYPES["ANY"], None, None,
                    OPERATIONS["ANY"], PERMISSIONS["ANY"])])
    for f in filters:
        for rtype, name, ptype, acls in describe_acls(conn, f):
            print("Current ACLs for resource `%s`: \n \t%s \n" % (
                resource_text(rtype, name, ptype), "\n\t".join(binding_text(*a) for a in acls)))


# ---------------------------------------------------------------- main


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="kafka-acls.sh", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap-server", required=True)
    acts = ap.add_mutually_exclusive_group(required=True)
    for a in ("add", "remove", "list"):
        acts.add_argument("--" + a, action="store_true")
    for a in ("allow-principal", "deny-principal", "allow-host", "deny-host", "operation",
              "topic", "group", "transactional-id"):
        ap.add_argument("--" + a, action="append", default=[])
    ap.add_argument("--principal", action="append", default=[], help="--list filter")
    ap.add_argument("--cluster", action="store_true")
    ap.add_argument("--resource-pattern-type", default="literal")
    ap.add_argument("--force", action="store_true", help="accepted (--remove never prompts here)")
    for a in ("producer", "consumer"):
        ap.add_argument("--" + a, action="store_true")
    ap.add_argument("--command-config")
    ap.add_argument("--timeout", type=float, default=60.0, help="socket timeout, seconds")
    opts = ap.parse_args(argv)
    if opts.producer or opts.consumer or opts.command_config:
        ap.error("--producer, --consumer and --command-config are not supported by this stand-in")
    opts.pattern = PATTERN_TYPES.get(opts.resource_pattern_type.upper())
    if opts.pattern is None or (opts.add and opts.pattern in (PATTERN_TYPES["ANY"], PATTERN_TYPES["MATCH"])):
        ap.error("--resource-pattern-type %r: literal or prefixed%s" % (
            opts.resource_pattern_type, "" if opts.add else ", any or match"))
    opts.resources = ([(RESOURCE_TYPES["TOPIC"], t) for t in opts.topic]
                      + [(RESOURCE_TYPES["GROUP"], g) for g in opts.group]
                      + [(RESOURCE_TYPES["TRANSACTIONAL_ID"], t) for t in opts.transactional_id]
                      + ([(RESOURCE_TYPES["CLUSTER"], CLUSTER_NAME)] if opts.cluster else []))
    if (opts.add or opts.remove) and not opts.resources:
        ap.error("--add and --remove need a resource: --topic, --group, --transactional-id or --cluster")
    if opts.add and not (opts.allow_principal or opts.deny_principal):
        ap.error("--add needs --allow-principal or --deny-principal")
    return opts


def bindings(opts):
    """(principal, host, operation, permission) of the options, as Kafka's AclCommand builds them."""
    ops = [operation_code(o) for o in opts.operation] or [OPERATIONS["ALL"]]
    out = []
    for perm, principals, hosts in ((PERMISSIONS["ALLOW"], opts.allow_principal, opts.allow_host),
                                    (PERMISSIONS["DENY"], opts.deny_principal, opts.deny_host)):
        for p in principals:
            for h in hosts or ["*"]:
                for op in ops:
                    out.append((p, h, op, perm))
    return out


def main(argv):
    opts = parse_args(argv)
    try:
        conn = Connection(opts.bootstrap_server, opts.timeout)
        try:
            if opts.add:
                acls = bindings(opts)
                for rtype, name in opts.resources:
                    print("Adding ACLs for resource `%s`: \n \t%s \n" % (
                        resource_text(rtype, name, opts.pattern),
                        "\n\t".join(binding_text(*a) for a in acls)))
                create_acls(conn, [(rtype, name, opts.pattern) + a
                                   for rtype, name in opts.resources for a in acls])
                print_acls(conn, opts.resources, opts.pattern)
            elif opts.remove:
                if opts.allow_principal or opts.deny_principal:
                    filters = [(rtype, name, opts.pattern) + a
                               for rtype, name in opts.resources for a in bindings(opts)]
                else:
                    filters = [(rtype, name, opts.pattern, None, None, OPERATIONS["ANY"], PERMISSIONS["ANY"])
                               for rtype, name in opts.resources]
                for acl in delete_acls(conn, filters):
                    print("Removed ACL %s %s" % (resource_text(*acl[:3]), binding_text(*acl[3:])))
            else:
                if opts.principal:
                    for p in opts.principal:
                        for rtype, name in opts.resources or [(RESOURCE_TYPES["ANY"], None)]:
                            pattern = opts.pattern if name is not None else PATTERN_TYPES["ANY"]
                            for rt, n, pt, acls in describe_acls(
                                    conn, (rtype, name, pattern, p, None, OPERATIONS["ANY"], PERMISSIONS["ANY"])):
                                print("Current ACLs for resource `%s`: \n \t%s \n" % (
                                    resource_text(rt, n, pt), "\n\t".join(binding_text(*a) for a in acls)))
                else:
                    print_acls(conn, opts.resources, opts.pattern)
        finally:
            conn.close()
    except ToolError as e:
        print(str(e), file=sys.stderr)
        return 1
    except (OSError, struct.error) as e:
        print("Error while executing ACL command: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
