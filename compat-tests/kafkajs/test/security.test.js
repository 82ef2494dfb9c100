'use strict'
// kafkajs over Klamm's security listeners (Kafka's `listeners` syntax): SSL, SASL_PLAINTEXT
// and SASL_SSL with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, mutual TLS
// (`--ssl-client-auth required`) and unsecured OAUTHBEARER tokens.  The PKI (a CA, the
// broker's certificate for IP:127.0.0.1 and localhost, a client certificate, and a client
// certificate from a CA the broker does not trust) is made once with the openssl CLI into a
// temporary directory.  Every broker also has a PLAINTEXT listener (its first, which the
// fixture waits for) that kcat reads back from, byte for byte; messages written over one
// listener are also read back with kafkajs consumers over the others.
//
// What is asserted about refusals is what kafkajs 2.2.4 reports against Kafka:
// * a wrong password or an unknown user: the broker answers SaslAuthenticate with
//   SASL_AUTHENTICATION_FAILED and Kafka's message, and `connect()` rejects with
//   KafkaJSSASLAuthenticationError (not retried);
// * an expired OAUTHBEARER token: Kafka answers with error code NONE and the RFC 7628 error
//   challenge {"status":"invalid_token"}, and only the client's %x01 reply gets
//   SASL_AUTHENTICATION_FAILED.  kafkajs does not read the challenge, so its connect()
//   resolves and its first request closes the connection; the whole exchange is checked with
//   a raw client as well;
// * a mechanism the broker does not enable: SaslHandshake answers UNSUPPORTED_SASL_MECHANISM
//   (kafkajs: KafkaJSProtocolError of that type);
// * a client without SASL on a SASL listener: ApiVersions is answered, the first other
//   request closes the connection; a client without TLS on the SSL listener: closed;
// * a TLS client without a certificate, or with one from another CA, against
//   `--ssl-client-auth required`: the server's TLS alert (rustls: certificate_required,
//   unknown_ca), and kafkajs's connect() rejects after its retries.
// Nothing a refused client sent is written.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { execFileSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { Kafka, logLevel } = require('kafkajs')
const { startBroker, makeKafka, kcatConsume, kcatMetadata } = require('../lib/fixture')

const WAIT_MS = 20000
const ALICE = { username: 'alice', password: 'secret' }
// A non-ASCII password: SCRAM salts the UTF-8 bytes (Kafka does no SASLprep), PLAIN sends them.
const BOB = { username: 'bob', password: 'pä$$wörd✓' }

// ------------------------------------------------------------------------------------- PKI

let pkiDir = null

function openssl (args) {
  execFileSync('openssl', args, { cwd: pkiDir, stdio: ['ignore', 'ignore', 'pipe'] })
}

/** A CA, a broker certificate signed by it, client certificates from it and from another CA. */
function makePki () {
  pkiDir = fs.mkdtempSync(path.join(os.tmpdir(), 'klamm-kafkajs-pki-'))
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  const ca = (name, cn) => openssl(['req', '-x509', ...ec, '-keyout', `${name}.key`, '-out', `${name}.pem`,
    '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
  // X.509 v3 (rustls refuses v1): `x509 -req` writes v3 only with -extfile.
  const leaf = (name, subj, caName, ext) => {
    fs.writeFileSync(path.join(pkiDir, `${name}.ext`), ext + '\n')
    openssl(['req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subj])
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${caName}.pem`, '-CAkey', `${caName}.key`,
      '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`])
  }
  ca('ca', 'klamm-test-ca')
  ca('rogue-ca', 'klamm-rogue-ca')
  leaf('broker', '/CN=localhost', 'ca', 'subjectAltName=IP:127.0.0.1,DNS:localhost')
  leaf('client', '/O=klamm/CN=kafkajs-client', 'ca', 'extendedKeyUsage=clientAuth')
  leaf('rogue-client', '/CN=rogue-client', 'rogue-ca', 'extendedKeyUsage=clientAuth')
  const read = (f) => fs.readFileSync(path.join(pkiDir, f), 'utf8')
  return {
    file: (f) => path.join(pkiDir, f),
    ca: read('ca.pem'),
    client: { cert: read('client.pem'), key: read('client.key') },
    rogue: { cert: read('rogue-client.pem'), key: read('rogue-client.key') }
  }
}

// --------------------------------------------------------------------------------- brokers

/**
 * A broker with `--listeners` for `protocols` (PLAINTEXT first: the fixture waits for the
 * first listener's "ready" line, and kcat reads back over it).
 */
function startListeners (protocols, args) {
  return startBroker({ listeners: protocols, args })
}

/** A kafkajs client for one listener of `broker`. */
function client (broker, protocol, { ssl, sasl, retries = 3, extra = {} } = {}) {
  const opts = { brokers: [`127.0.0.1:${broker.ports[protocol]}`], retry: { retries, initialRetryTime: 100, maxRetryTime: 1000 }, ...extra }
  if (ssl) opts.ssl = ssl
  if (sasl) opts.sasl = sasl
  return makeKafka(broker, opts)
}

/**
 * Just enough of the protocol to walk a SASL exchange by hand: SaslHandshake v1 and
 * SaslAuthenticate v1 (request header v1, response header v0), one request at a time.
 */
class RawClient {
  static connect (port) {
    return new Promise((resolve, reject) => {
      const sock = net.connect(port, '127.0.0.1')
      sock.once('error', reject)
      sock.once('connect', () => { sock.removeListener('error', reject); resolve(new RawClient(sock)) })
    })
  }

  constructor (sock) {
    this.sock = sock
    this.buf = Buffer.alloc(0)
    this.waiter = null
    this.correlationId = 0
    this.closed = new Promise(resolve => sock.once('close', resolve))
    sock.on('error', () => {})
    sock.on('data', (chunk) => { this.buf = Buffer.concat([this.buf, chunk]); this.deliver() })
    sock.on('close', () => { if (this.waiter) this.waiter.reject(new Error('connection closed before the response')) })
  }

  deliver () {
    if (!this.waiter || this.buf.length < 4 || this.buf.length < 4 + this.buf.readInt32BE(0)) return
    const frame = this.buf.subarray(4, 4 + this.buf.readInt32BE(0))
    this.buf = this.buf.subarray(4 + frame.length)
    const w = this.waiter
    this.waiter = null
    w.resolve(frame)
  }

  request (apiKey, apiVersion, body) {
    const clientId = Buffer.from('klamm-raw')
    const header = Buffer.alloc(10)
    header.writeInt16BE(apiKey, 0)
    header.writeInt16BE(apiVersion, 2)
    header.writeInt32BE(++this.correlationId, 4)
    header.writeInt16BE(clientId.length, 8)
    const msg = Buffer.concat([header, clientId, body])
    const size = Buffer.alloc(4)
    size.writeInt32BE(msg.length)
    const expect = this.correlationId
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no response to api ${apiKey} within 10 s`)), 10000)
      this.waiter = {
        resolve: (frame) => {
          clearTimeout(timer)
          if (frame.readInt32BE(0) !== expect) reject(new Error(`correlation id ${frame.readInt32BE(0)}, expected ${expect}`))
          else resolve(frame.subarray(4))
        },
        reject: (e) => { clearTimeout(timer); reject(e) }
      }
      this.sock.write(Buffer.concat([size, msg]))
      this.deliver()
    })
  }

  async saslHandshake (mechanism) {
    const m = Buffer.from(mechanism)
    const len = Buffer.alloc(2)
    len.writeInt16BE(m.length)
    const r = await this.request(17, 1, Buffer.concat([len, m]))
    const mechanisms = []
    let o = 6
    for (let n = r.readInt32BE(2); n > 0; n--) {
      const l = r.readInt16BE(o)
      mechanisms.push(r.subarray(o + 2, o + 2 + l).toString())
      o += 2 + l
    }
    return { errorCode: r.readInt16BE(0), mechanisms }
  }

  async saslAuthenticate (authBytes) {
    const len = Buffer.alloc(4)
    len.writeInt32BE(authBytes.length)
    const r = await this.request(36, 1, Buffer.concat([len, authBytes]))
    const errorCode = r.readInt16BE(0)
    const ml = r.readInt16BE(2)
    const errorMessage = ml < 0 ? null : r.subarray(4, 4 + ml).toString()
    let o = 4 + Math.max(ml, 0)
    const bl = r.readInt32BE(o)
    o += 4
    const bytes = bl < 0 ? null : r.subarray(o, o + bl)
    o += Math.max(bl, 0)
    return { errorCode, errorMessage, authBytes: bytes && bytes.toString(), sessionLifetimeMs: Number(r.readBigInt64BE(o)) }
  }

  destroy () { this.sock.destroy() }
}

// ------------------------------------------------------------------------- produce/consume

/** Distinct, binary messages (keys, null key, tombstone, headers) for `tag`. */
function messagesFor (tag, partition = 0) {
  return [
    { partition, key: Buffer.from(`${tag}-k0`), value: crypto.randomBytes(300), headers: { tag: Buffer.from(tag), bin: Buffer.from([0, 0xff, 0x0a]) } },
    { partition, key: null, value: Buffer.from(`${tag} ✓ ünïcødé`) },
    { partition, key: Buffer.from(`${tag}-tomb`), value: null },
    { partition, key: Buffer.alloc(0), value: Buffer.concat([Buffer.from(tag), crypto.randomBytes(20000)]) }
  ]
}

async function produce (kafka, topic, messages) {
  const producer = kafka.producer({ idempotent: false, allowAutoTopicCreation: true })
  await producer.connect()
  try {
    return await producer.send({ topic, acks: -1, messages })
  } finally {
    await producer.disconnect().catch(() => {})
  }
}

/** A kafkajs consumer in `groupId` reads `topic` from the beginning until `count` messages arrived. */
async function consumeN (kafka, groupId, topic, count) {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500, maxWaitTimeInMs: 100 })
  const got = []
  try {
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    let done
    const finished = new Promise(resolve => { done = resolve })
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        got.push({ partition, offset: Number(message.offset), key: message.key, value: message.value, headers: message.headers })
        if (got.length >= count) done()
      }
    })
    let timer
    await Promise.race([finished, new Promise(resolve => { timer = setTimeout(resolve, WAIT_MS) })])
    clearTimeout(timer)
  } finally {
    await consumer.disconnect().catch(() => {})
  }
  return got.sort((a, b) => a.partition - b.partition || a.offset - b.offset)
}

const buf = (x) => (x === null || x === undefined) ? null : Buffer.isBuffer(x) ? x : Buffer.from(String(x))

/** `got` (kcat's or a kafkajs consumer's view, in offset order) holds `sent` from offset `from`. */
function assertSame (got, sent, what, from = 0) {
  assert.equal(got.length, sent.length, `${what}: message count`)
  got.forEach((m, i) => {
    assert.equal(m.offset, from + i, `${what}: offset of #${i}`)
    assert.deepEqual(buf(m.key), buf(sent[i].key), `${what}: key of #${i}`)
    assert.deepEqual(buf(m.value), buf(sent[i].value), `${what}: value of #${i}`)
    if (m.headers && typeof m.headers === 'object' && !Array.isArray(m.headers)) {
      assert.deepEqual(m.headers, sent[i].headers || {}, `${what}: headers of #${i}`)
    }
  })
}

/** kafkajs errors wrap their cause; the names along the chain. */
function errorNames (e) {
  const names = []
  for (let x = e; x && names.length < 5; x = x.originalError || x.cause) names.push(x.name)
  return names
}

/** connect() rejects with KafkaJSSASLAuthenticationError (which kafkajs does not retry); the error. */
async function assertSaslRefused (kafka, what) {
  const producer = kafka.producer({ idempotent: false })
  let err = null
  await producer.connect().catch(e => { err = e })
  await producer.disconnect().catch(() => {})
  assert.ok(err, `${what}: connect() resolved`)
  assert.equal(err.name, 'KafkaJSSASLAuthenticationError', `${what}: ${errorNames(err).join(' <- ')}: ${err.message}`)
  return err
}

async function assertConnectRefused (kafka, what) {
  const producer = kafka.producer({ idempotent: false })
  let err = null
  await producer.connect().catch(e => { err = e })
  await producer.disconnect().catch(() => {})
  assert.ok(err, `${what}: connect() resolved`)
  return err
}

// ------------------------------------------------------------------------------------- tests

let pki

describe('kafkajs security', () => {
  before(() => { pki = makePki() })
  after(() => { if (pkiDir && !process.env.KEEP_DATA) fs.rmSync(pkiDir, { recursive: true, force: true }) })

  describe('SSL, SASL_PLAINTEXT and SASL_SSL listeners (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)', () => {
    let broker
    const tls = () => ({ ca: [pki.ca] })

    before(async () => {
      broker = await startListeners(['PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL'], [
        '--ssl-certificate', pki.file('broker.pem'), '--ssl-key', pki.file('broker.key'),
        '--bootstrap-users', `${ALICE.username}:${ALICE.password},${BOB.username}:${BOB.password}`
      ])
    })
    after(async () => { await broker?.destroy() })

    it('SSL: Metadata names the SSL listener; produce, then kcat over PLAINTEXT reads it byte for byte', async () => {
      const kafka = client(broker, 'SSL', { ssl: tls() })
      const admin = kafka.admin()
      await admin.connect()
      try {
        const { brokers } = await admin.describeCluster()
        assert.deepEqual(brokers.map(b => [b.host, b.port]), [['127.0.0.1', broker.ports.SSL]])
      } finally {
        await admin.disconnect()
      }
      const sent = messagesFor('ssl')
      const res = await produce(kafka, 'sec-ssl', sent)
      assert.equal(res[0].errorCode, 0)
      assertSame(kcatConsume(broker, 'sec-ssl', 0), sent, 'sec-ssl via kcat')
    })

    for (const [protocol, ssl] of [['SASL_PLAINTEXT', null], ['SASL_SSL', tls]]) {
      for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512']) {
        for (const user of [ALICE, BOB]) {
          it(`${protocol} ${mechanism} as ${user.username}: produce, read back over PLAINTEXT`, async () => {
            const topic = `sec-${protocol}-${mechanism}-${user.username}`.toLowerCase().replace(/_/g, '-')
            const kafka = client(broker, protocol, { ssl: ssl && ssl(), sasl: { mechanism, ...user } })
            const sent = messagesFor(topic)
            const res = await produce(kafka, topic, sent)
            assert.equal(res[0].errorCode, 0)
            assertSame(kcatConsume(broker, topic, 0), sent, `${topic} via kcat`)
          })
        }
      }
    }

    it('written over every listener, read back byte for byte by kafkajs consumers over each one', { timeout: 60000 }, async () => {
      const topic = 'sec-cross'
      const clients = {
        PLAINTEXT: client(broker, 'PLAINTEXT'),
        SSL: client(broker, 'SSL', { ssl: tls() }),
        SASL_PLAINTEXT: client(broker, 'SASL_PLAINTEXT', { sasl: { mechanism: 'scram-sha-512', ...BOB } }),
        SASL_SSL: client(broker, 'SASL_SSL', { ssl: tls(), sasl: { mechanism: 'scram-sha-256', ...ALICE } })
      }
      // Metadata (and so FindCoordinator's answer, which the consumers below follow) names the
      // listener the client came in on.
      for (const [protocol, kafka] of Object.entries(clients)) {
        const admin = kafka.admin()
        await admin.connect()
        try {
          const { brokers } = await admin.describeCluster()
          assert.deepEqual(brokers.map(b => [b.host, b.port]), [['127.0.0.1', broker.ports[protocol]]], protocol)
        } finally {
          await admin.disconnect()
        }
      }
      const sent = []
      for (const [protocol, kafka] of Object.entries(clients)) {
        const batch = messagesFor(`cross-${protocol}`)
        const res = await produce(kafka, topic, batch)
        assert.equal(res[0].baseOffset, String(sent.length), `${protocol}: baseOffset`)
        sent.push(...batch)
      }
      assertSame(kcatConsume(broker, topic, 0), sent, `${topic} via kcat`)
      for (const [protocol, kafka] of Object.entries(clients)) {
        const got = await consumeN(kafka, `sec-cross-${protocol}`, topic, sent.length)
        assertSame(got, sent, `${topic} consumed over ${protocol}`)
      }
    })

    it('wrong password, unknown user: KafkaJSSASLAuthenticationError with the broker\'s message', async () => {
      const cases = [
        ['SASL_PLAINTEXT', 'plain', { username: 'alice', password: 'wrong' }],
        ['SASL_SSL', 'plain', { username: 'alice', password: 'wrong' }],
        ['SASL_PLAINTEXT', 'scram-sha-256', { username: 'alice', password: 'wrong' }],
        ['SASL_SSL', 'scram-sha-512', { username: 'bob', password: 'pa$$word' }],
        ['SASL_PLAINTEXT', 'scram-sha-512', { username: 'mallory', password: 'secret' }],
        ['SASL_SSL', 'plain', { username: 'mallory', password: 'secret' }]
      ]
      for (const [protocol, mechanism, creds] of cases) {
        const what = `${protocol} ${mechanism} ${creds.username}/${creds.password}`
        const kafka = client(broker, protocol, { ssl: protocol === 'SASL_SSL' ? tls() : undefined, sasl: { mechanism, ...creds } })
        const err = await assertSaslRefused(kafka, what)
        // kafkajs's prefix, then the broker's error_message (Kafka's texts: PlainSaslServer's own,
        // and for SCRAM the generic one that does not tell an unknown user from a wrong password).
        const prefix = { plain: 'SASL PLAIN', 'scram-sha-256': 'SASL SCRAM SHA256', 'scram-sha-512': 'SASL SCRAM SHA512' }[mechanism]
        const brokerMessage = mechanism === 'plain'
          ? 'Authentication failed: Invalid username or password'
          : `Authentication failed during authentication due to invalid credentials with SASL mechanism ${mechanism.toUpperCase()}`
        assert.equal(err.message, `${prefix} authentication failed: ${brokerMessage}`, what)
      }
      // The right password still works afterwards.
      const ok = client(broker, 'SASL_PLAINTEXT', { sasl: { mechanism: 'scram-sha-256', ...ALICE } })
      await produce(ok, 'sec-after-failures', [{ partition: 0, value: 'ok' }])
      assert.deepEqual(kcatConsume(broker, 'sec-after-failures', 0).map(m => m.value.toString()), ['ok'])
    })

    it('OAUTHBEARER is not enabled by default: UNSUPPORTED_SASL_MECHANISM', async () => {
      const kafka = client(broker, 'SASL_PLAINTEXT', {
        sasl: { mechanism: 'oauthbearer', oauthBearerProvider: async () => ({ value: unsecuredToken('alice', 3600) }) }
      })
      const err = await assertConnectRefused(kafka, 'OAUTHBEARER on a default broker')
      assert.equal(err.type, 'UNSUPPORTED_SASL_MECHANISM', `${errorNames(err).join(' <- ')}: ${err.message}`)
    })

    it('a client without SASL on a SASL listener, or without TLS on the SSL listener, does not get in', async () => {
      // Without SASL, kafkajs's connect() sends only ApiVersions, which Kafka answers before
      // authentication; its first Metadata request closes the connection (Kafka: "Unexpected
      // Kafka request of type METADATA during SASL handshake"), so send() rejects.
      for (const [protocol, opts] of [['SASL_PLAINTEXT', {}], ['SASL_SSL', { ssl: tls() }]]) {
        const topic = `sec-nosasl-${protocol.toLowerCase().replace(/_/g, '-')}`
        const producer = client(broker, protocol, { ...opts, retries: 1 }).producer({ idempotent: false, allowAutoTopicCreation: true })
        let err = null
        try {
          await producer.connect()
          await producer.send({ topic, messages: [{ value: 'must not be written' }] })
        } catch (e) {
          err = e
        } finally {
          await producer.disconnect().catch(() => {})
        }
        assert.ok(err, `${protocol} without SASL: send() resolved`)
        assert.ok(!kcatMetadata(broker).topics.some(t => t.topic === topic), `${topic} was created`)
      }
      // A plaintext client on the SSL listener: the TLS handshake fails, connect() rejects.
      await assertConnectRefused(client(broker, 'SSL', { retries: 1 }), 'SSL listener without TLS')
    })
  })

  describe('mutual TLS (--ssl-client-auth required)', () => {
    let broker

    before(async () => {
      broker = await startListeners(['PLAINTEXT', 'SSL'], [
        '--ssl-certificate', pki.file('broker.pem'), '--ssl-key', pki.file('broker.key'),
        '--ssl-client-auth', 'required', '--ssl-ca', pki.file('ca.pem')
      ])
    })
    after(async () => { await broker?.destroy() })

    it('a client certificate from the CA: produce and consume over SSL, kcat over PLAINTEXT', { timeout: 60000 }, async () => {
      const kafka = client(broker, 'SSL', { ssl: { ca: [pki.ca], cert: pki.client.cert, key: pki.client.key } })
      const sent = messagesFor('mtls')
      await produce(kafka, 'sec-mtls', sent)
      assertSame(kcatConsume(broker, 'sec-mtls', 0), sent, 'sec-mtls via kcat')
      assertSame(await consumeN(kafka, 'sec-mtls', 'sec-mtls', sent.length), sent, 'sec-mtls consumed over mTLS')
    })

    it('a client without a certificate, or with one from another CA, is refused', async () => {
      for (const [what, ssl] of [
        ['no client certificate', { ca: [pki.ca] }],
        ['certificate from an untrusted CA', { ca: [pki.ca], cert: pki.rogue.cert, key: pki.rogue.key }]
      ]) {
        const err = await assertConnectRefused(client(broker, 'SSL', { ssl, retries: 1 }), what)
        const cause = err.cause || err
        assert.equal(cause.name, 'KafkaJSConnectionError', `${what}: ${errorNames(err).join(' <- ')}: ${err.message}`)
        assert.match(cause.message, /SSL alert number \d+/, what)
      }
    })
  })

  describe('OAUTHBEARER (unsecured JWS) with --sasl-enabled-mechanisms OAUTHBEARER,PLAIN', () => {
    let broker

    before(async () => {
      broker = await startListeners(['PLAINTEXT', 'SASL_PLAINTEXT', 'SASL_SSL'], [
        '--ssl-certificate', pki.file('broker.pem'), '--ssl-key', pki.file('broker.key'),
        '--sasl-enabled-mechanisms', 'OAUTHBEARER,PLAIN',
        '--bootstrap-users', `${ALICE.username}:${ALICE.password}`
      ])
    })
    after(async () => { await broker?.destroy() })

    const oauth = (sub, lifetimeSec) => ({
      mechanism: 'oauthbearer',
      oauthBearerProvider: async () => ({ value: unsecuredToken(sub, lifetimeSec) })
    })

    it('a valid token: produce over SASL_SSL, consume over SASL_PLAINTEXT', { timeout: 60000 }, async () => {
      const sent = messagesFor('oauth')
      await produce(client(broker, 'SASL_SSL', { ssl: { ca: [pki.ca] }, sasl: oauth('carol', 3600) }), 'sec-oauth', sent)
      assertSame(kcatConsume(broker, 'sec-oauth', 0), sent, 'sec-oauth via kcat')
      const got = await consumeN(client(broker, 'SASL_PLAINTEXT', { sasl: oauth('dave', 3600) }), 'sec-oauth', 'sec-oauth', sent.length)
      assertSame(got, sent, 'sec-oauth consumed with OAUTHBEARER')
    })

    it('an expired token is refused: the error challenge, then SASL_AUTHENTICATION_FAILED', async () => {
      // Kafka (OAuthBearerSaslServer, RFC 7628) answers an invalid token with error code NONE and
      // the challenge {"status":"invalid_token"}; the client must reply %x01, which gets
      // SASL_AUTHENTICATION_FAILED.  kafkajs 2.2.4 does not read the challenge: its connect()
      // resolves, and its first request after that closes the connection.  (Kafka answers that
      // request with ILLEGAL_SASL_STATE before closing; Klamm closes without an answer, so kafkajs
      // reports a closed connection instead.  Only the rejection is asserted.)  The full exchange
      // is checked with a raw client, then what kafkajs sees.
      const raw = await RawClient.connect(broker.ports.SASL_PLAINTEXT)
      try {
        const hs = await raw.saslHandshake('OAUTHBEARER')
        assert.equal(hs.errorCode, 0)
        assert.ok(hs.mechanisms.includes('OAUTHBEARER'), JSON.stringify(hs.mechanisms))
        const token = unsecuredToken('carol', -3600)
        const first = await raw.saslAuthenticate(Buffer.from(`n,,\x01auth=Bearer ${token}\x01\x01`))
        assert.equal(first.errorCode, 0, `first SaslAuthenticate: ${JSON.stringify(first)}`)
        assert.equal(JSON.parse(first.authBytes).status, 'invalid_token', first.authBytes)
        const second = await raw.saslAuthenticate(Buffer.from([1]))
        assert.equal(second.errorCode, 58, `reply to %x01: ${JSON.stringify(second)}`)
        assert.ok(second.errorMessage, 'SASL_AUTHENTICATION_FAILED without a message')
        // The broker closes the connection after the failure.
        let timer
        const closed = await Promise.race([raw.closed.then(() => true), new Promise(resolve => { timer = setTimeout(resolve, 5000, false) })])
        clearTimeout(timer)
        assert.ok(closed, 'connection still open 5 s after SASL_AUTHENTICATION_FAILED')
      } finally {
        raw.destroy()
      }

      const logs = []
      const captured = client(broker, 'SASL_PLAINTEXT', {
        sasl: oauth('carol', -3600),
        retries: 1,
        extra: { logLevel: logLevel.DEBUG, logCreator: () => ({ log }) => { logs.push(log) } }
      })
      const producer = captured.producer({ idempotent: false, allowAutoTopicCreation: true })
      let err = null
      try {
        await producer.connect()
        await producer.send({ topic: 'sec-oauth-expired', messages: [{ value: 'must not be written' }] })
      } catch (e) {
        err = e
      } finally {
        await producer.disconnect().catch(() => {})
      }
      assert.ok(err, 'send() with an expired token resolved')
      const challenges = logs.filter(l => /^Response SaslAuthenticate\(/.test(l.message))
      assert.ok(challenges.length > 0, 'no SaslAuthenticate response logged')
      for (const l of challenges) {
        assert.equal(l.data.errorCode, 0)
        assert.match(Buffer.from(l.data.authBytes.data ?? l.data.authBytes).toString(), /"status":"invalid_token"/)
      }
      assert.ok(!kcatMetadata(broker).topics.some(t => t.topic === 'sec-oauth-expired'), 'sec-oauth-expired was created')
    })

    it('PLAIN still works, SCRAM is not enabled', async () => {
      await produce(client(broker, 'SASL_PLAINTEXT', { sasl: { mechanism: 'plain', ...ALICE } }), 'sec-oauth-plain', [{ partition: 0, value: 'plain' }])
      assert.deepEqual(kcatConsume(broker, 'sec-oauth-plain', 0).map(m => m.value.toString()), ['plain'])
      const err = await assertConnectRefused(client(broker, 'SASL_PLAINTEXT', { sasl: { mechanism: 'scram-sha-256', ...ALICE } }), 'SCRAM')
      assert.equal(err.type, 'UNSUPPORTED_SASL_MECHANISM', `${errorNames(err).join(' <- ')}: ${err.message}`)
    })
  })
})

/** Kafka's unsecured JWS: base64url({"alg":"none"}).base64url(claims). (empty signature). */
function unsecuredToken (sub, lifetimeSec) {
  const now = Math.floor(Date.now() / 1000)
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url')
  const iat = lifetimeSec < 0 ? now + 2 * lifetimeSec : now
  return `${b64({ alg: 'none' })}.${b64({ sub, iat, exp: now + lifetimeSec })}.`
}
