"""Security: TLS listeners, SASL and mutual TLS through confluent-kafka, kafka-python and aiokafka.

A PKI made with the openssl CLI once per module (a CA; a broker certificate for
127.0.0.1/localhost; a client certificate signed by the CA; an untrusted self-signed client
certificate) and three brokers started once per module:

* `sec_broker`: PLAINTEXT, SSL, SASL_PLAINTEXT and SASL_SSL listeners (`--listeners`), the
  default mechanisms (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) and `--bootstrap-users`.
  Every client produces over one listener and reads back over another, byte-exact and
  offset-exact; between them the cases of each client cover SSL, PLAINTEXT and
  SASL_PLAINTEXT/SASL_SSL with each of the three mechanisms. A wrong password and an
  unknown user are refused with each client's authentication error.
* `mtls_broker`: `--ssl-client-auth required --ssl-ca`: the CA-signed client certificate
  gets in, no certificate or the untrusted one is refused in the TLS handshake.
* `oauth_broker`: `--sasl-enabled-mechanisms OAUTHBEARER,PLAIN`: librdkafka's unsecured JWS
  tokens (`sasl.oauthbearer.config=principal=...`) get in, a token whose `exp` has passed
  is refused, mechanisms that are not enabled are refused in the SaslHandshake.

No refusal is concluded from a sleep: every negative test waits (bounded) for the error the
client itself reports.
"""
import asyncio
import base64
import json
import logging
import re
import signal
import subprocess
import time
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, Producer

from conftest import new_broker
from kclients import CLIENTS, Rec, assert_same, check_offsets, now_ms, sample_records

# The Kafka-reference mapping of the security flags (--listeners, --ssl-*, --sasl-*,
# --bootstrap-users: listener.security.protocol.map, keystores, JAAS configs and SCRAM
# credentials for compat-tests/kafka/kafka.sh) is future work; until then this module
# runs against Klamm only.
pytestmark = pytest.mark.klamm_only(
    "security flags (--listeners, --ssl-*, --sasl-*, --bootstrap-users) have no "
    "Kafka-reference mapping yet")

USERS = {"alice": "alice-secret", "bob": "bob-pw"}
LISTENERS = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
MECHANISMS = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
ERROR_WAIT = 10.0  # bound on waiting for a client's error report
KP_BOOTSTRAP_MS = 2000  # kafka-python: how long a refused client keeps trying to bootstrap
OPENSSL_TIMEOUT = 30


# --------------------------------------------------------------------------- PKI and brokers
def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                       timeout=OPENSSL_TIMEOUT)
    assert r.returncode == 0, f"openssl {' '.join(args)}:\n{r.stdout.decode(errors='replace')}"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """PEM files: CA, broker (SAN IP:127.0.0.1, DNS:localhost), client signed by the CA,
    and a self-signed ("rogue") client certificate. All X.509 v3 (rustls refuses v1):
    `openssl x509 -req` only writes v3 with `-extfile`."""
    d = tmp_path_factory.mktemp("pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=klamm-compat-ca", cwd=d)
    (d / "broker.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                  "extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
    for name, subj, serial in (("broker", "/CN=localhost", "0x1001"),
                               ("client", "/CN=compat-client/O=klamm", "0x1002")):
        _openssl("req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subj, cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-set_serial", serial, "-days", "2", "-out", f"{name}.pem",
                 "-extfile", f"{name}.ext", cwd=d)
    # Not a CA certificate (a CA used as an end entity is refused for that reason instead).
    _openssl("req", "-x509", *ec, "-keyout", "rogue.key", "-out", "rogue.pem", "-days", "2",
             "-subj", "/CN=rogue-client", "-addext", "basicConstraints=critical,CA:FALSE",
             "-addext", "extendedKeyUsage=clientAuth", cwd=d)
    return SimpleNamespace(dir=d, ca=str(d / "ca.pem"),
                           broker=(str(d / "broker.pem"), str(d / "broker.key")),
                           client=(str(d / "client.pem"), str(d / "client.key")),
                           rogue=(str(d / "rogue.pem"), str(d / "rogue.key")))


_STARTED = []  # (name, broker) of this module, for the logs of failing tests


def _module_broker(tmp_path_factory, pki, name, listeners, *extra):
    args = ["--ssl-certificate", pki.broker[0], "--ssl-key", pki.broker[1],
            "--bootstrap-users", ",".join(f"{u}:{p}" for u, p in USERS.items()), *extra]
    b = new_broker(tmp_path_factory.mktemp(name), "data", "klamm.log", args, listeners)
    _STARTED.append((name, b))
    return b


def _stop(b):
    code = b.stop()
    # A broker that died on its own during the module is a failure by itself.
    assert code in (None, 0, -signal.SIGTERM), f"klamm exited with {code}:\n{b.log_tail()}"


@pytest.fixture(scope="module")
def sec_broker(tmp_path_factory, pki):
    b = _module_broker(tmp_path_factory, pki, "sec", LISTENERS)
    yield b
    _stop(b)


@pytest.fixture(scope="module")
def mtls_broker(tmp_path_factory, pki):
    b = _module_broker(tmp_path_factory, pki, "mtls", ["SSL", "PLAINTEXT", "SASL_SSL"],
                       "--ssl-client-auth", "required", "--ssl-ca", pki.ca)
    yield b
    _stop(b)


@pytest.fixture(scope="module")
def oauth_broker(tmp_path_factory, pki):
    b = _module_broker(tmp_path_factory, pki, "oauth", ["SASL_PLAINTEXT", "SASL_SSL"],
                       "--sasl-enabled-mechanisms", "OAUTHBEARER,PLAIN")
    yield b
    _stop(b)


@pytest.fixture(autouse=True)
def _broker_logs_on_failure(request):
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for name, b in _STARTED:
            print(f"\n----- klamm log of {name}_broker ({b.log_path}) -----\n{b.log_tail(40)}")


# --------------------------------------------------------------------------- client settings
def security(client, pki, protocol, mechanism=None, user="alice", password=None, cert=None):
    """Client settings (in `client`'s own spelling) for one listener; `cert` is a
    (certificate, key) pair of PEM paths for mutual TLS."""
    password = USERS.get(user) if password is None else password
    tls, sasl = protocol in ("SSL", "SASL_SSL"), protocol.startswith("SASL_")
    if client == "confluent":
        conf = {"security.protocol": protocol}
        if tls:
            conf["ssl.ca.location"] = pki.ca
            if cert:
                conf.update({"ssl.certificate.location": cert[0], "ssl.key.location": cert[1]})
        if sasl:
            conf.update({"sasl.mechanism": mechanism, "sasl.username": user,
                         "sasl.password": password})
        return conf
    conf = {"security_protocol": protocol}
    if tls and client == "kafka-python":
        conf["ssl_cafile"] = pki.ca
        if cert:
            conf.update(ssl_certfile=cert[0], ssl_keyfile=cert[1])
    elif tls:  # aiokafka wants an SSLContext
        from aiokafka.helpers import create_ssl_context
        conf["ssl_context"] = create_ssl_context(
            cafile=pki.ca, **({"certfile": cert[0], "keyfile": cert[1]} if cert else {}))
    if sasl:
        conf.update(sasl_mechanism=mechanism, sasl_plain_username=user,
                    sasl_plain_password=password)
    return conf


def short_records(seed):
    """sample_records with fewer small ones: keys, null keys/values, headers, binary, 100 KB."""
    return sample_records(seed=seed, n_small=6)


# --------------------------------------------------------------------------- round trips
# (produce over listener, mechanism) -> (consume over listener, mechanism). Each client runs
# all five: every secured listener/mechanism pair is used by one side or the other, and
# PLAINTEXT reads what a secured listener wrote and the other way round.
ROUNDTRIPS = [
    ("SSL", None, "SASL_PLAINTEXT", "PLAIN"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-256", "SASL_SSL", "SCRAM-SHA-512"),
    ("SASL_SSL", "PLAIN", "PLAINTEXT", None),
    ("SASL_PLAINTEXT", "SCRAM-SHA-512", "SSL", None),
    ("PLAINTEXT", None, "SASL_SSL", "SCRAM-SHA-256"),
]
CODECS = ["none", "gzip", "lz4", "zstd", "snappy"]


def _leg(listener, mech):
    return listener if mech is None else f"{listener}-{mech}"


@pytest.mark.parametrize("case", range(len(ROUNDTRIPS)),
                         ids=[f"{_leg(*r[:2])}--to--{_leg(*r[2:])}" for r in ROUNDTRIPS])
@pytest.mark.parametrize("client", list(CLIENTS))
def test_produce_on_one_listener_consume_on_another(sec_broker, pki, topic, client, case):
    p_listener, p_mech, c_listener, c_mech = ROUNDTRIPS[case]
    recs = short_records(seed=100 + case)
    kc = CLIENTS[client]
    produced = kc.produce(sec_broker.address(p_listener), topic, recs, codec=CODECS[case],
                          conf=security(client, pki, p_listener, p_mech, user="alice"))
    check_offsets("all", produced, 0)
    got = kc.consume(sec_broker.address(c_listener), topic, 0, 0, len(recs),
                     conf=security(client, pki, c_listener, c_mech, user="bob"))
    assert_same(got, recs)
    assert [r.offset for r in got] == list(range(len(recs)))


# --------------------------------------------------------------------------- helpers for refusals
def confluent_events(conf, done, topic=None, timeout=ERROR_WAIT):
    """Run a confluent-kafka producer (sending one record to `topic` if given) until
    `done(errors, deliveries)` holds or `timeout` passes; returns (errors, deliveries): the
    KafkaErrors of its error callback and the delivery reports' errors (None: delivered).
    The producer is destroyed before returning, so it cannot outlive the test."""
    errors, deliveries = [], []
    p = Producer({"error_cb": errors.append, "message.timeout.ms": 5000, **conf})
    try:
        if topic is not None:
            p.produce(topic, b"v", on_delivery=lambda err, _msg: deliveries.append(err))
        deadline = time.monotonic() + timeout
        while not done(errors, deliveries) and time.monotonic() < deadline:
            p.poll(0.05)
        p.purge()
        p.poll(0)
    finally:
        del p
    return errors, deliveries


def confluent_error(conf, want_code, timeout=ERROR_WAIT):
    """Start a confluent-kafka producer and wait (bounded) for its error callback to report
    `want_code`; returns that error and every error seen."""
    def hits(errs):
        return [e for e in errs if e.code() == want_code]
    errors, _ = confluent_events(conf, lambda errs, _d: hits(errs), timeout=timeout)
    assert hits(errors), (f"no {KafkaError(want_code).name()} error within {timeout}s; "
                          f"errors: {[e.str() for e in errors]}")
    return hits(errors)[0], errors


def kafka_python_bootstrap_failure(caplog, bootstrap, conf):
    """A kafka-python producer that cannot get through bootstrap: raises KafkaTimeoutError
    after `bootstrap_timeout_ms`; returns the client's log records (DEBUG) of the attempt."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaTimeoutError
    caplog.set_level(logging.DEBUG, logger="kafka")
    t0 = time.monotonic()
    with pytest.raises(KafkaTimeoutError, match="Unable to bootstrap"):
        p = KafkaProducer(bootstrap_servers=bootstrap, bootstrap_timeout_ms=KP_BOOTSTRAP_MS,
                          request_timeout_ms=5000, enable_idempotence=False, **conf)
        p.close(timeout=1)
    assert time.monotonic() - t0 < KP_BOOTSTRAP_MS / 1000 + 5
    return [r.getMessage() for r in caplog.records if r.name.startswith("kafka")]


def attempts_lost(logs):
    """Why each of kafka-python's connection attempts ended, but for the last one when
    bootstrap_timeout_ms cut it short: "Connection timed out" while connecting,
    RequestTimedOutError while waiting for an answer, or a bare KafkaTimeoutError (a
    refused attempt takes ~100 ms, far below request_timeout_ms, so only the bootstrap
    deadline times an attempt out)."""
    lost = [m.split("Connection lost: ", 1)[1] for m in logs if "Connection lost: " in m]
    if len(lost) > 1 and re.search(r"timed out|timeout", lost[-1], re.IGNORECASE):
        lost.pop()
    return lost


async def _aiokafka_start(bootstrap, conf):
    from aiokafka import AIOKafkaProducer
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=5000, **conf)
    try:
        await asyncio.wait_for(p.start(), ERROR_WAIT)
    finally:
        await p.stop()


def aiokafka_bootstrap_failure(caplog, bootstrap, conf):
    """aiokafka's `start()` gives up after one bootstrap round: KafkaConnectionError; returns
    its log records (DEBUG), which carry the reason."""
    from aiokafka.errors import KafkaConnectionError
    caplog.set_level(logging.DEBUG, logger="aiokafka")
    with pytest.raises(KafkaConnectionError, match="Unable to bootstrap"):
        asyncio.run(_aiokafka_start(bootstrap, conf))
    return [r.getMessage() for r in caplog.records if r.name.startswith("aiokafka")]


# --------------------------------------------------------------------------- SASL refusals
# (listener, mechanism, user, password): a wrong password and an unknown user per mechanism.
BAD_LOGINS = [
    ("SASL_PLAINTEXT", "PLAIN", "alice", "wrong-password"),
    ("SASL_SSL", "PLAIN", "mallory", "alice-secret"),
    ("SASL_SSL", "SCRAM-SHA-256", "alice", "wrong-password"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-256", "mallory", "x"),
    ("SASL_PLAINTEXT", "SCRAM-SHA-512", "bob", "alice-secret"),
    ("SASL_SSL", "SCRAM-SHA-512", "mallory", "bob-pw"),
]
BAD_LOGIN_IDS = [f"{lst}-{mech}-{'unknown-user' if user == 'mallory' else 'wrong-password'}"
                 for lst, mech, user, _ in BAD_LOGINS]
# The broker's messages, as Kafka words them (PlainSaslServer; SaslServerAuthenticator
# for SCRAM's SaslException).
AUTH_MESSAGE = re.compile(r"Authentication failed: Invalid username or password|"
                          r"Authentication failed during authentication due to invalid "
                          r"credentials with SASL mechanism SCRAM-SHA-(256|512)")


@pytest.mark.parametrize("bad", BAD_LOGINS, ids=BAD_LOGIN_IDS)
def test_confluent_bad_login_refused(sec_broker, pki, bad):
    listener, mech, user, password = bad
    conf = security("confluent", pki, listener, mech, user=user, password=password)
    err, errors = confluent_error({"bootstrap.servers": sec_broker.address(listener), **conf},
                                  KafkaError._AUTHENTICATION)
    assert "SASL authentication error" in err.str(), err.str()
    assert AUTH_MESSAGE.search(err.str()), err.str()
    assert mech in err.str() or mech == "PLAIN", err.str()
    assert {e.code() for e in errors} <= {KafkaError._AUTHENTICATION,
                                          KafkaError._ALL_BROKERS_DOWN}, \
        [e.str() for e in errors]


@pytest.mark.parametrize("bad", BAD_LOGINS, ids=BAD_LOGIN_IDS)
def test_aiokafka_bad_login_refused(sec_broker, pki, caplog, bad):
    listener, mech, user, password = bad
    conf = security("aiokafka", pki, listener, mech, user=user, password=password)
    logs = aiokafka_bootstrap_failure(caplog, sec_broker.address(listener), conf)
    refused = [m for m in logs if "[Error 58] SaslAuthenticationFailed" in m]
    assert refused, "no SaslAuthenticationFailed in aiokafka's log:\n" + "\n".join(logs[-20:])
    assert all(AUTH_MESSAGE.search(m) for m in refused), refused


# kafka-python retries bootstrap until bootstrap_timeout_ms, so it gets one case per mechanism.
KP_BAD_LOGINS = [BAD_LOGINS[0], BAD_LOGINS[3], BAD_LOGINS[5]]


@pytest.mark.parametrize("bad", KP_BAD_LOGINS,
                         ids=[BAD_LOGIN_IDS[BAD_LOGINS.index(b)] for b in KP_BAD_LOGINS])
def test_kafka_python_bad_login_refused(sec_broker, pki, caplog, bad):
    """kafka-python surfaces no authentication exception during bootstrap: it logs each
    attempt's failure and raises KafkaTimeoutError("Unable to bootstrap") at
    bootstrap_timeout_ms. Its transport (kafka/net/transport.py `_sock_recv`) reads until
    EAGAIN and drops the bytes it read when the same read loop also sees EOF, so when the
    broker's SaslAuthenticate error (error 58) and its close (100 ms later, after the
    answer, as Kafka's connection.failed.authentication.delay.ms does) arrive together the
    attempt is logged as "socket disconnected" instead. So: every attempt must end in one
    of the two after a SaslAuthenticate request, none may get further (no Metadata)."""
    listener, mech, user, password = bad
    conf = security("kafka-python", pki, listener, mech, user=user, password=password)
    logs = kafka_python_bootstrap_failure(caplog, sec_broker.address(listener), conf)
    lost = attempts_lost(logs)
    assert lost, "no failed connection attempt in kafka-python's log:\n" + "\n".join(logs[-30:])
    auth = [m for m in lost if "[Error 58] SaslAuthenticationFailedError" in m]
    assert all(AUTH_MESSAGE.search(m) for m in auth), auth
    assert all(m in auth or "socket disconnected" in m for m in lost), lost
    assert any("SaslAuthenticateRequest" in m for m in logs), "no SaslAuthenticate sent"
    assert not any("Sending request" in m and "MetadataRequest" in m for m in logs), \
        "kafka-python got past authentication"
    print(f"kafka-python attempts: {len(auth)} reported error 58, "
          f"{len(lost) - len(auth)} 'socket disconnected'")


# --------------------------------------------------------------------------- mutual TLS
@pytest.mark.parametrize("client", list(CLIENTS))
def test_mtls_ca_signed_client_certificate_accepted(mtls_broker, pki, topic, client):
    recs = short_records(seed=7)
    kc = CLIENTS[client]
    produced = kc.produce(mtls_broker.address("SSL"), topic, recs, codec="zstd",
                          conf=security(client, pki, "SSL", cert=pki.client))
    check_offsets("all", produced, 0)
    # Read back over mutual TLS and over the plaintext listener of the same broker.
    for listener, cert in (("SSL", pki.client), ("PLAINTEXT", None)):
        got = kc.consume(mtls_broker.address(listener), topic, 0, 0, len(recs),
                         conf=security(client, pki, listener, cert=cert))
        assert_same(got, recs)


# What each client reports when the broker refuses the handshake. Over TLS 1.3 the client's
# handshake is done before the broker checks its certificate, so the refusal is the
# broker's alert, read with the first response: certificate_required (116) without a
# certificate, unknown_ca (48) for one no trusted CA signed.
ALERT_NO_CERT = "alert certificate required"
ALERT_UNKNOWN_CA = "alert unknown ca"


@pytest.mark.parametrize("cert", ["none", "untrusted"])
def test_mtls_confluent_refused(mtls_broker, pki, cert):
    conf = security("confluent", pki, "SSL", cert=None if cert == "none" else pki.rogue)
    err, errors = confluent_error({"bootstrap.servers": mtls_broker.address("SSL"), **conf},
                                  KafkaError._TRANSPORT)
    # librdkafka 2.16 does not even send a certificate no CA the broker named in its
    # CertificateRequest signed ("No matching issuer found in server trusted certificate
    # authorities, not sending any client certificates"), so both end the same way.
    assert ALERT_NO_CERT in err.str(), err.str()
    assert {e.code() for e in errors} <= {KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN}, \
        [e.str() for e in errors]


@pytest.mark.parametrize("cert", ["none", "untrusted"])
def test_mtls_kafka_python_refused(mtls_broker, pki, caplog, cert):
    conf = security("kafka-python", pki, "SSL", cert=None if cert == "none" else pki.rogue)
    logs = kafka_python_bootstrap_failure(caplog, mtls_broker.address("SSL"), conf)
    lost = attempts_lost(logs)
    want = ALERT_NO_CERT if cert == "none" else ALERT_UNKNOWN_CA
    assert lost and all(want in m for m in lost), lost or logs[-30:]


@pytest.mark.parametrize("cert", ["none", "untrusted"])
def test_mtls_aiokafka_refused(mtls_broker, pki, caplog, cert):
    conf = security("aiokafka", pki, "SSL", cert=None if cert == "none" else pki.rogue)
    logs = aiokafka_bootstrap_failure(caplog, mtls_broker.address("SSL"), conf)
    # aiokafka reports "Connection at ... closed"; aiokafka.conn logs the SSL error (DEBUG).
    want = ALERT_NO_CERT if cert == "none" else ALERT_UNKNOWN_CA
    assert any("Closing connection" in m and want in m for m in logs), logs[-20:]
    assert any("Unable connect to" in m and "closed" in m for m in logs), logs[-20:]


# Kafka applies ssl.client.auth to SASL_SSL only when set with the listener prefix (KIP-684),
# so a SASL_SSL client without a certificate gets in on a broker whose SSL listener requires
# one (Klamm refused it once; this test found it).
def test_mtls_broker_wide_client_auth_not_applied_to_sasl_ssl(mtls_broker, pki, topic):
    conf = security("confluent", pki, "SASL_SSL", "PLAIN")
    errors, deliveries = confluent_events(
        {"bootstrap.servers": mtls_broker.address("SASL_SSL"), **conf},
        lambda errs, dels: errs or dels, topic=topic)
    assert not errors, [e.str() for e in errors]
    assert deliveries == [None]


# --------------------------------------------------------------------------- OAUTHBEARER
def unsecured_jws(sub, exp, iat=None):
    """An unsecured JWS (alg none, empty signature) as Kafka's unsecured validator takes."""
    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    iat = int(time.time()) - 60 if iat is None else iat
    return f"{b64({'alg': 'none'})}.{b64({'sub': sub, 'iat': iat, 'exp': exp})}."


def test_oauthbearer_unsecured_token(oauth_broker, pki, topic):
    recs = short_records(seed=9)
    conf = {"security.protocol": "SASL_SSL", "ssl.ca.location": pki.ca,
            "sasl.mechanism": "OAUTHBEARER", "enable.sasl.oauthbearer.unsecure.jwt": True,
            "sasl.oauthbearer.config": "principal=alice"}
    produced = CLIENTS["confluent"].produce(oauth_broker.address("SASL_SSL"), topic, recs,
                                            conf=conf)
    check_offsets("all", produced, 0)
    # Read back with the other enabled mechanism on the other listener.
    got = CLIENTS["confluent"].consume(oauth_broker.address("SASL_PLAINTEXT"), topic, 0, 0,
                                       len(recs),
                                       conf=security("confluent", pki, "SASL_PLAINTEXT",
                                                     "PLAIN", user="bob"))
    assert_same(got, recs)


def _oauth_cb_conf(exp):
    # librdkafka refuses a token whose lifetime it is told has passed before sending it, so
    # the callback tells it the token lives an hour while the token's own `exp` claim (what
    # the broker checks) is `exp`.
    def oauth_cb(_config):
        return unsecured_jws("alice", exp), time.time() + 3600, "alice"
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": oauth_cb}


def test_oauthbearer_token_from_callback_accepted(oauth_broker, topic):
    """The control for the expired token: the same callback with `exp` in the future."""
    conf = _oauth_cb_conf(int(time.time()) + 600)
    produced = CLIENTS["confluent"].produce(oauth_broker.address("SASL_PLAINTEXT"), topic,
                                            [Rec(b"k", b"v", (), now_ms())], conf=conf)
    assert produced == [(0, 0)]


def test_oauthbearer_expired_token_refused(oauth_broker):
    conf = _oauth_cb_conf(int(time.time()) - 60)
    err, errors = confluent_error(
        {"bootstrap.servers": oauth_broker.address("SASL_PLAINTEXT"), **conf},
        KafkaError._AUTHENTICATION)
    assert "SASL authentication error" in err.str(), err.str()
    assert {e.code() for e in errors} <= {KafkaError._AUTHENTICATION,
                                          KafkaError._ALL_BROKERS_DOWN}, \
        [e.str() for e in errors]


@pytest.mark.parametrize("which", ["scram-on-oauth-broker", "oauthbearer-on-default-broker"])
def test_mechanism_not_enabled_refused(oauth_broker, sec_broker, pki, which):
    if which == "scram-on-oauth-broker":
        broker, conf = oauth_broker, security("confluent", pki, "SASL_PLAINTEXT",
                                              "SCRAM-SHA-256")
        enabled = "OAUTHBEARER,PLAIN"
    else:
        broker, enabled = sec_broker, "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512"
        conf = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "OAUTHBEARER",
                "enable.sasl.oauthbearer.unsecure.jwt": True,
                "sasl.oauthbearer.config": "principal=alice"}
    err, _ = confluent_error({"bootstrap.servers": broker.address("SASL_PLAINTEXT"), **conf},
                             KafkaError._AUTHENTICATION)
    assert "Unsupported SASL mechanism" in err.str(), err.str()
    assert f"broker's supported mechanisms: {enabled}" in err.str(), err.str()
