'use strict'
// kafkajs 2.2.4 against Klamm's ACLs (`--authorizer`, Kafka's StandardAuthorizer rules) over
// SASL_PLAINTEXT: createAcls / describeAcls / deleteAcls as the super user (CreateAcls,
// DescribeAcls, DeleteAcls v1, which carry the resource pattern type), and what kafkajs reports
// when the broker refuses a request:
// * Produce without WRITE on the topic, or Metadata without DESCRIBE: KafkaJSProtocolError
//   TOPIC_AUTHORIZATION_FAILED (not retried);
// * JoinGroup without READ on the group: the consumer crashes (CRASH event, no restart) with
//   GROUP_AUTHORIZATION_FAILED.  (FindCoordinator needs DESCRIBE on the group; kafkajs swallows
//   its refusal into KafkaJSGroupCoordinatorNotFound, so the refused consumer here may describe
//   the group but not read it.)
// * CreateAcls / DeleteAcls without ALTER on the cluster, DescribeAcls without DESCRIBE:
//   CLUSTER_AUTHORIZATION_FAILED;
// * any ACL request to a broker without an authorizer: SECURITY_DISABLED.
// * a topic no ACL names, with --allow-everyone-if-no-acl-found true: open to User:ANONYMOUS;
//   once an ACL names it, closed to everyone that ACL does not allow.
// Producers are not idempotent (InitProducerId would need IDEMPOTENT_WRITE).  PLAINTEXT clients
// (kcat among them) are User:ANONYMOUS, so under the authorizer the data is checked byte for
// byte by kafkajs consumers of users that may read it; kcat reads back only where ANONYMOUS may.
// Kafka answers the refused requests at once, so every refusal is awaited with a deadline
// (never concluded from a sleep).

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const {
  AclResourceTypes: RT,
  ResourcePatternTypes: PT,
  AclOperationTypes: OP,
  AclPermissionTypes: PERM,
  logLevel
} = require('kafkajs')
const { startBroker, makeKafka, kcatConsume } = require('../lib/fixture')

const WAIT_MS = 10000
const USERS = { admin: 'admin-pw', alice: 'alice-pw', bob: 'bob-pw' }

/** A kafkajs client of `broker` on one listener, as `user` (SASL) or anonymous (PLAINTEXT). */
function client (broker, user, mechanism = 'plain') {
  if (!user) return makeKafka(broker, { brokers: [`127.0.0.1:${broker.ports.PLAINTEXT}`], retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 500 } })
  return makeKafka(broker, {
    brokers: [`127.0.0.1:${broker.ports.SASL_PLAINTEXT}`],
    sasl: { mechanism, username: user, password: USERS[user] },
    retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 500 }
  })
}

/** Races `promise` against a deadline; rejects with `what` when the deadline passes first. */
async function within (promise, what, ms = WAIT_MS) {
  let timer
  const deadline = new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms) })
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}

/** The rejection of `promise` (bounded); fails the test when it resolves. */
async function refusal (promise, what) {
  const r = await within(promise.then(v => ({ ok: v }), e => ({ err: e })), what)
  assert.ok(r.err, `${what}: resolved with ${JSON.stringify(r.ok)}`)
  return r.err
}

/** kafkajs errors wrap their cause; the names and types along the chain. */
function chain (e) {
  const out = []
  for (let x = e; x && out.length < 5; x = x.originalError || x.cause) out.push(`${x.name}${x.type ? `(${x.type})` : ''}`)
  return out.join(' <- ')
}

/**
 * Asserts that `err` is kafkajs's protocol error for `type` (Kafka error code `code`), or with
 * `wrapped`, a KafkaJSNonRetriableError around it (how a producer reports a topic that Metadata
 * refused).
 */
function assertProtocolError (err, type, code, what, { wrapped = false } = {}) {
  if (wrapped) {
    assert.equal(err.name, 'KafkaJSNonRetriableError', `${what}: ${chain(err)}: ${err.message}`)
    err = err.cause
  }
  assert.equal(err?.name, 'KafkaJSProtocolError', `${what}: ${chain(err)}: ${err?.message}`)
  assert.equal(err.type, type, `${what}: ${chain(err)}: ${err.message}`)
  assert.equal(err.code, code, what)
  assert.equal(err.retriable, false, what)
}

const acl = (resourceType, resourceName, resourcePatternType, principal, host, operation, permissionType) =>
  ({ resourceType, resourceName, resourcePatternType, principal, host, operation, permissionType })

/** A filter: everything ANY unless given. */
const filter = (f = {}) => ({
  resourceType: RT.ANY,
  resourcePatternType: PT.ANY,
  operation: OP.ANY,
  permissionType: PERM.ANY,
  ...f
})

const byKey = (...keys) => (a, b) => {
  for (const k of keys) {
    if (a[k] < b[k]) return -1
    if (a[k] > b[k]) return 1
  }
  return 0
}
const aclOrder = byKey('principal', 'host', 'operation', 'permissionType')
const resourceOrder = byKey('resourceType', 'resourceName', 'resourcePatternType')

/** describeAcls' `resources` as expected for `acls` (grouped by resource pattern), in one order. */
function asResources (acls) {
  const groups = new Map()
  for (const a of acls) {
    const k = `${a.resourceType}|${a.resourceName}|${a.resourcePatternType}`
    if (!groups.has(k)) groups.set(k, { resourceType: a.resourceType, resourceName: a.resourceName, resourcePatternType: a.resourcePatternType, acls: [] })
    groups.get(k).acls.push({ principal: a.principal, host: a.host, operation: a.operation, permissionType: a.permissionType })
  }
  return canonical([...groups.values()])
}

function canonical (resources) {
  return resources.map(r => ({ ...r, acls: [...r.acls].sort(aclOrder) })).sort(resourceOrder)
}

/** deleteAcls' matching ACLs as expected for `acls`, in one order. */
const asMatching = (acls) => [...acls].sort(byKey('resourceType', 'resourceName', 'resourcePatternType', 'principal', 'host', 'operation', 'permissionType'))

/**
 * deleteAcls' answer without the error messages (checked on their own, in the "error messages"
 * test): [{ errorCode, matchingAcls: [binding...] }], each matching ACL with error code 0.
 */
function canonicalDelete ({ filterResponses }) {
  return filterResponses.map(({ errorCode, errorMessage, matchingAcls }) => ({
    errorCode,
    matchingAcls: asMatching(matchingAcls.map(({ errorCode, errorMessage, ...a }) => {
      assert.equal(errorCode, 0, `matching ACL ${JSON.stringify(a)}: error code (${errorMessage})`)
      return a
    }))
  }))
}

function messagesFor (tag) {
  return [
    { partition: 0, key: Buffer.from(`${tag}-k0`), value: crypto.randomBytes(300), headers: { tag: Buffer.from(tag), bin: Buffer.from([0, 0xff, 0x0a]) } },
    { partition: 0, key: null, value: Buffer.from(`${tag} ✓ ünïcødé`) },
    { partition: 0, key: Buffer.from(`${tag}-tomb`), value: null },
    { partition: 0, key: Buffer.alloc(0), value: Buffer.concat([Buffer.from(tag), crypto.randomBytes(20000)]) }
  ]
}

async function produce (kafka, topic, messages) {
  const producer = kafka.producer({ idempotent: false, allowAutoTopicCreation: false })
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
  let crashed = null
  try {
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    let done
    const finished = new Promise(resolve => { done = resolve })
    consumer.on(consumer.events.CRASH, ({ payload }) => { crashed = payload.error; done() })
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        got.push({ partition, offset: Number(message.offset), key: message.key, value: message.value, headers: message.headers })
        if (got.length >= count) done()
      }
    })
    await within(finished, `${groupId} consuming ${count} messages of ${topic} (got ${got.length})`, 20000)
  } finally {
    await consumer.disconnect().catch(() => {})
  }
  assert.equal(crashed, null, `consumer of ${groupId} crashed: ${crashed && chain(crashed)}`)
  return got
}

const buf = (x) => (x === null || x === undefined) ? null : Buffer.isBuffer(x) ? x : Buffer.from(String(x))

function assertSame (got, sent, what) {
  assert.equal(got.length, sent.length, `${what}: message count`)
  got.forEach((m, i) => {
    assert.equal(m.offset, i, `${what}: offset of #${i}`)
    assert.deepEqual(buf(m.key), buf(sent[i].key), `${what}: key of #${i}`)
    assert.deepEqual(buf(m.value), buf(sent[i].value), `${what}: value of #${i}`)
    // kcat prints headers as text; kafkajs consumers give them as buffers, compared exactly.
    if (typeof m.headers !== 'string') assert.deepEqual(m.headers, sent[i].headers || {}, `${what}: headers of #${i}`)
  })
}

/** kafkajs `admin` as `user`, connected; `fn(admin)`, then disconnect. */
async function asAdmin (kafka, fn) {
  const admin = kafka.admin()
  await admin.connect()
  try {
    return await fn(admin)
  } finally {
    await admin.disconnect().catch(() => {})
  }
}

describe('kafkajs ACLs', () => {
  describe('--authorizer --super-users User:admin, SASL_PLAINTEXT', () => {
    let broker, admin

    before(async () => {
      broker = await startBroker({
        listeners: ['PLAINTEXT', 'SASL_PLAINTEXT'],
        args: ['--authorizer', '--super-users', 'User:admin', '--num-partitions', '1',
          '--bootstrap-users', Object.entries(USERS).map(([u, p]) => `${u}:${p}`).join(',')]
      })
      admin = client(broker, 'admin', 'scram-sha-512').admin()
      await admin.connect()
      await admin.createTopics({
        waitForLeaders: true,
        topics: ['acl-t', 'acl-pfx-ok', 'acl-pfx-denied', 'acl-other'].map(topic => ({ topic, numPartitions: 1 }))
      })
    })

    after(async () => {
      await admin?.disconnect().catch(() => {})
      await broker?.destroy()
    })

    const describeAll = async () => canonical((await admin.describeAcls(filter())).resources)

    it('createAcls, describeAcls and deleteAcls as the super user: every pattern type, exact answers', async () => {
      assert.deepEqual(await describeAll(), [], 'no ACLs at start')
      const a = {
        topicRead: acl(RT.TOPIC, 'crud', PT.LITERAL, 'User:carol', '*', OP.READ, PERM.ALLOW),
        topicDenyHost: acl(RT.TOPIC, 'crud', PT.LITERAL, 'User:carol', '127.0.0.1', OP.WRITE, PERM.DENY),
        topicPrefixed: acl(RT.TOPIC, 'crud-', PT.PREFIXED, 'User:carol', '*', OP.DESCRIBE, PERM.ALLOW),
        topicWildcard: acl(RT.TOPIC, '*', PT.LITERAL, 'User:dave', '*', OP.DESCRIBE, PERM.ALLOW),
        group: acl(RT.GROUP, 'crud-g', PT.LITERAL, 'User:carol', '*', OP.READ, PERM.ALLOW),
        cluster: acl(RT.CLUSTER, 'kafka-cluster', PT.LITERAL, 'User:dave', '*', OP.ALTER, PERM.ALLOW),
        txn: acl(RT.TRANSACTIONAL_ID, 'crud-tx', PT.PREFIXED, 'User:*', '*', OP.WRITE, PERM.ALLOW)
      }
      assert.equal(await admin.createAcls({ acl: Object.values(a) }), true)
      // Creating the same binding again is not an error and adds nothing.
      assert.equal(await admin.createAcls({ acl: [a.topicRead] }), true)

      const cases = [
        ['everything', filter(), Object.values(a)],
        ['TOPIC crud LITERAL (the name only, not * nor prefixes)', filter({ resourceType: RT.TOPIC, resourceName: 'crud', resourcePatternType: PT.LITERAL }), [a.topicRead, a.topicDenyHost]],
        ['TOPIC crud MATCH (the literal and *; crud- does not prefix crud)', filter({ resourceType: RT.TOPIC, resourceName: 'crud', resourcePatternType: PT.MATCH }), [a.topicRead, a.topicDenyHost, a.topicWildcard]],
        ['TOPIC crud-x MATCH (* and the prefix)', filter({ resourceType: RT.TOPIC, resourceName: 'crud-x', resourcePatternType: PT.MATCH }), [a.topicPrefixed, a.topicWildcard]],
        ['TOPIC any name PREFIXED', filter({ resourceType: RT.TOPIC, resourcePatternType: PT.PREFIXED }), [a.topicPrefixed]],
        ['any resource crud-tx ANY pattern', filter({ resourceName: 'crud-tx' }), [a.txn]],
        ['principal User:dave', filter({ principal: 'User:dave' }), [a.topicWildcard, a.cluster]],
        ['principal User:* (the wildcard principal itself only)', filter({ principal: 'User:*' }), [a.txn]],
        ['host 127.0.0.1 (only ACLs for that host, not *)', filter({ host: '127.0.0.1' }), [a.topicDenyHost]],
        ['WRITE DENY', filter({ operation: OP.WRITE, permissionType: PERM.DENY }), [a.topicDenyHost]],
        ['ALLOW on GROUP', filter({ resourceType: RT.GROUP, permissionType: PERM.ALLOW }), [a.group]],
        ['CLUSTER', filter({ resourceType: RT.CLUSTER }), [a.cluster]],
        ['TOPIC nothing LITERAL', filter({ resourceType: RT.TOPIC, resourceName: 'nothing', resourcePatternType: PT.LITERAL }), []]
      ]
      for (const [what, f, want] of cases) {
        const { resources } = await admin.describeAcls(f)
        assert.deepEqual(canonical(resources), asResources(want), `describeAcls ${what}`)
      }

      // deleteAcls answers one result per filter, each with the bindings it removed.
      const del = await admin.deleteAcls({
        filters: [
          filter({ resourceType: RT.TOPIC, resourceName: 'crud', resourcePatternType: PT.LITERAL }),
          filter({ resourceType: RT.TRANSACTIONAL_ID, resourceName: 'crud-tx-1', resourcePatternType: PT.MATCH }),
          filter({ resourceType: RT.GROUP, resourceName: 'nope', resourcePatternType: PT.LITERAL })
        ]
      })
      assert.deepEqual(canonicalDelete(del), [
        { errorCode: 0, matchingAcls: asMatching([a.topicRead, a.topicDenyHost]) },
        { errorCode: 0, matchingAcls: asMatching([a.txn]) },
        { errorCode: 0, matchingAcls: [] }
      ])
      assert.deepEqual(await describeAll(), asResources([a.topicPrefixed, a.topicWildcard, a.group, a.cluster]), 'after the first deleteAcls')

      // Two filters matching the same binding: Kafka reports it under both.
      const del2 = await admin.deleteAcls({ filters: [filter({ principal: 'User:dave' }), filter()] })
      assert.deepEqual(canonicalDelete(del2), [
        { errorCode: 0, matchingAcls: asMatching([a.topicWildcard, a.cluster]) },
        { errorCode: 0, matchingAcls: asMatching([a.topicPrefixed, a.topicWildcard, a.group, a.cluster]) }
      ])
      assert.deepEqual(await describeAll(), [], 'after deleting everything')
      const del3 = await admin.deleteAcls({ filters: [filter()] })
      assert.deepEqual(canonicalDelete(del3), [{ errorCode: 0, matchingAcls: [] }])
    })

    it('alice with READ+WRITE on a topic and READ on a group produces and consumes byte for byte', async () => {
      await admin.createAcls({
        acl: [
          acl(RT.TOPIC, 'acl-t', PT.LITERAL, 'User:alice', '*', OP.READ, PERM.ALLOW),
          acl(RT.TOPIC, 'acl-t', PT.LITERAL, 'User:alice', '*', OP.WRITE, PERM.ALLOW),
          acl(RT.GROUP, 'acl-g', PT.LITERAL, 'User:alice', '*', OP.READ, PERM.ALLOW)
        ]
      })
      const alice = client(broker, 'alice', 'scram-sha-256')
      // Metadata lists only the topics she may describe (READ and WRITE imply DESCRIBE).
      assert.deepEqual((await asAdmin(alice, a => a.listTopics())).sort(), ['acl-t'])
      const sent = messagesFor('alice')
      const res = await within(produce(alice, 'acl-t', sent), 'alice producing')
      assert.deepEqual(res.map(r => [r.topicName, r.partition, r.errorCode, r.baseOffset]), [['acl-t', 0, 0, '0']])
      assertSame(await consumeN(alice, 'acl-g', 'acl-t', sent.length), sent, 'acl-t consumed by alice')
      // Her consumer's offset commits (READ on the group and the topic) went through.
      const offsets = await admin.fetchOffsets({ groupId: 'acl-g', topics: ['acl-t'] })
      assert.deepEqual(offsets.map(t => [t.topic, t.partitions.map(p => [p.partition, p.offset])]), [['acl-t', [[0, String(sent.length)]]]])
    })

    it('bob: producer refused with TOPIC_AUTHORIZATION_FAILED, consumer joining the group with GROUP_AUTHORIZATION_FAILED', async () => {
      // bob may read acl-t (so Metadata describes it) and describe acl-g (so FindCoordinator
      // answers), but neither write the topic nor read the group.
      await admin.createAcls({
        acl: [
          acl(RT.TOPIC, 'acl-t', PT.LITERAL, 'User:bob', '*', OP.READ, PERM.ALLOW),
          acl(RT.GROUP, 'acl-g', PT.LITERAL, 'User:bob', '*', OP.DESCRIBE, PERM.ALLOW)
        ]
      })
      const bob = client(broker, 'bob', 'scram-sha-512')
      const before = await admin.fetchTopicOffsets('acl-t')

      // Produce (WRITE on the topic) is refused.
      let err = await refusal(produce(bob, 'acl-t', [{ partition: 0, value: 'bob was here' }]), 'bob producing to acl-t')
      assertProtocolError(err, 'TOPIC_AUTHORIZATION_FAILED', 29, 'bob producing to acl-t')
      // A topic he may not even describe: Metadata refuses it the same way.
      err = await refusal(produce(bob, 'acl-other', [{ partition: 0, value: 'bob was here' }]), 'bob producing to acl-other')
      assertProtocolError(err, 'TOPIC_AUTHORIZATION_FAILED', 29, 'bob producing to acl-other', { wrapped: true })
      assert.deepEqual(await admin.fetchTopicOffsets('acl-t'), before, 'acl-t changed after bob\'s refused produce')

      // JoinGroup (READ on the group) is refused: the consumer crashes and does not restart.
      const consumer = bob.consumer({ groupId: 'acl-g', sessionTimeout: 10000, heartbeatInterval: 500, maxWaitTimeInMs: 100 })
      const crash = new Promise(resolve => consumer.on(consumer.events.CRASH, ({ payload }) => resolve(payload)))
      let consumed = 0
      try {
        await consumer.connect()
        await consumer.subscribe({ topic: 'acl-t', fromBeginning: true })
        await consumer.run({ eachMessage: async () => { consumed++ } })
        const payload = await within(crash, 'bob\'s consumer crashing')
        assertProtocolError(payload.error, 'GROUP_AUTHORIZATION_FAILED', 30, 'bob joining acl-g')
        assert.equal(payload.restart, false, 'the consumer restarts after GROUP_AUTHORIZATION_FAILED')
        assert.equal(consumed, 0, 'bob consumed messages')
      } finally {
        await consumer.disconnect().catch(() => {})
      }
      // The group's committed offsets are untouched.
      const offsets = await admin.fetchOffsets({ groupId: 'acl-g', topics: ['acl-t'] })
      assert.deepEqual(offsets[0].partitions.map(p => p.offset), ['4'])
    })

    it('a DENY beats a prefixed ALLOW; deleting the DENY lets the write through', async () => {
      const deny = acl(RT.TOPIC, 'acl-pfx-denied', PT.LITERAL, 'User:alice', '127.0.0.1', OP.WRITE, PERM.DENY)
      await admin.createAcls({
        acl: [
          acl(RT.TOPIC, 'acl-pfx-', PT.PREFIXED, 'User:alice', '*', OP.WRITE, PERM.ALLOW),
          acl(RT.TOPIC, 'acl-pfx-', PT.PREFIXED, 'User:alice', '*', OP.READ, PERM.ALLOW),
          acl(RT.GROUP, 'acl-pfx-', PT.PREFIXED, 'User:alice', '*', OP.READ, PERM.ALLOW),
          deny
        ]
      })
      const alice = client(broker, 'alice', 'plain')
      // Denying WRITE does not deny DESCRIBE: both prefixed topics are listed, acl-other is not.
      assert.deepEqual((await asAdmin(alice, a => a.listTopics())).sort(), ['acl-pfx-denied', 'acl-pfx-ok', 'acl-t'])

      const ok = messagesFor('pfx-ok')
      await within(produce(alice, 'acl-pfx-ok', ok), 'alice producing to acl-pfx-ok')
      const err = await refusal(produce(alice, 'acl-pfx-denied', [{ partition: 0, value: 'denied' }]), 'alice producing to acl-pfx-denied')
      assertProtocolError(err, 'TOPIC_AUTHORIZATION_FAILED', 29, 'alice producing to acl-pfx-denied')
      assert.deepEqual((await admin.fetchTopicOffsets('acl-pfx-denied')).map(p => p.high), ['0'], 'acl-pfx-denied was written')

      const del = await admin.deleteAcls({ filters: [filter({ resourceType: RT.TOPIC, resourceName: 'acl-pfx-denied', resourcePatternType: PT.LITERAL })] })
      assert.deepEqual(canonicalDelete(del), [{ errorCode: 0, matchingAcls: asMatching([deny]) }])
      const later = messagesFor('pfx-denied-later')
      await within(produce(alice, 'acl-pfx-denied', later), 'alice producing to acl-pfx-denied after the DENY is gone')
      assertSame(await consumeN(alice, 'acl-pfx-g', 'acl-pfx-ok', ok.length), ok, 'acl-pfx-ok consumed by alice')
      assertSame(await consumeN(alice, 'acl-pfx-g2', 'acl-pfx-denied', later.length), later, 'acl-pfx-denied consumed by alice')
    })

    it('createAcls, describeAcls, deleteAcls without ALTER/DESCRIBE on the cluster: CLUSTER_AUTHORIZATION_FAILED', async () => {
      const mine = acl(RT.TOPIC, 'alice-own', PT.LITERAL, 'User:alice', '*', OP.ALL, PERM.ALLOW)
      for (const [who, kafka] of [['alice', client(broker, 'alice', 'scram-sha-512')], ['ANONYMOUS over PLAINTEXT', client(broker, null)]]) {
        await asAdmin(kafka, async (a) => {
          let err = await refusal(a.createAcls({ acl: [mine] }), `${who}: createAcls`)
          assertProtocolError(err, 'CLUSTER_AUTHORIZATION_FAILED', 31, `${who}: createAcls`)
          err = await refusal(a.describeAcls(filter()), `${who}: describeAcls`)
          assertProtocolError(err, 'CLUSTER_AUTHORIZATION_FAILED', 31, `${who}: describeAcls`)
          err = await refusal(a.deleteAcls({ filters: [filter()] }), `${who}: deleteAcls`)
          assertProtocolError(err, 'CLUSTER_AUTHORIZATION_FAILED', 31, `${who}: deleteAcls`)
        })
      }
      assert.deepEqual((await admin.describeAcls(filter({ resourceName: 'alice-own' }))).resources, [], 'a refused createAcls created something')
      const alices = (await admin.describeAcls(filter({ principal: 'User:alice' }))).resources
      assert.equal(alices.reduce((n, r) => n + r.acls.length, 0), 6, 'a refused deleteAcls deleted something')

      // ALTER on the cluster lets alice manage ACLs (and implies DESCRIBE, for describeAcls).
      const alter = acl(RT.CLUSTER, 'kafka-cluster', PT.LITERAL, 'User:alice', '*', OP.ALTER, PERM.ALLOW)
      await admin.createAcls({ acl: [alter] })
      await asAdmin(client(broker, 'alice', 'plain'), async (a) => {
        assert.equal(await a.createAcls({ acl: [mine] }), true)
        assert.deepEqual(canonical((await a.describeAcls(filter({ resourceName: 'alice-own' }))).resources), asResources([mine]))
        const del = await a.deleteAcls({ filters: [filter({ resourceName: 'alice-own' }), filter({ resourceType: RT.CLUSTER })] })
        assert.deepEqual(canonicalDelete(del), [
          { errorCode: 0, matchingAcls: asMatching([mine]) },
          { errorCode: 0, matchingAcls: asMatching([alter]) }
        ])
        // Having deleted her own ALTER, she is refused again at once.
        const err = await refusal(a.createAcls({ acl: [mine] }), 'alice: createAcls after losing ALTER')
        assertProtocolError(err, 'CLUSTER_AUTHORIZATION_FAILED', 31, 'alice: createAcls after losing ALTER')
      })
    })

    it('error messages of successful ACL answers are Kafka\'s: "" from CreateAcls and DescribeAcls, null from DeleteAcls', async () => {
      // Kafka leaves CreateAcls' and DescribeAcls' error message unset on success, so they go out
      // as the generated default, the empty string; DeleteAcls sets its filter results' and
      // matching ACLs' messages from ApiError.NONE, whose message is null.  kafkajs's admin API
      // hides these fields (and DeleteAcls' are compared without them above), so this reads what
      // the client decoded from each response, which kafkajs logs at DEBUG.
      const wire = []
      const logged = makeKafka(broker, {
        brokers: [`127.0.0.1:${broker.ports.SASL_PLAINTEXT}`],
        sasl: { mechanism: 'plain', username: 'admin', password: USERS.admin },
        logLevel: logLevel.DEBUG,
        logCreator: () => ({ log }) => {
          const m = /^Response (\w+Acls)\(key: \d+, version: (\d+)\)$/.exec(log.message)
          if (m && log.data) wire.push({ api: m[1], version: Number(m[2]), data: log.data })
        }
      })
      const b = acl(RT.TOPIC, 'wire', PT.PREFIXED, 'User:erin', '*', OP.WRITE, PERM.ALLOW)
      await asAdmin(logged, async (a) => {
        await a.createAcls({ acl: [b] })
        await a.describeAcls(filter({ principal: 'User:erin' }))
        await a.deleteAcls({ filters: [filter({ principal: 'User:erin' })] })
      })
      const seen = (api) => {
        const r = wire.filter(w => w.api === api)
        assert.equal(r.length, 1, `${api} responses logged: ${JSON.stringify(wire.map(w => w.api))}`)
        assert.equal(r[0].version, 1, `${api} version (kafkajs 2.2.4 speaks v0-v1)`)
        return r[0].data
      }
      assert.deepEqual(seen('CreateAcls').creationResponses, [{ errorCode: 0, errorMessage: '' }], 'CreateAcls results')
      const described = seen('DescribeAcls')
      assert.deepEqual([described.errorCode, described.errorMessage], [0, ''], 'DescribeAcls error code and message')
      const deleted = seen('DeleteAcls').filterResponses
      assert.deepEqual(deleted.map(f => [f.errorCode, f.errorMessage]), [[0, null]], 'DeleteAcls filter result error code and message')
      assert.deepEqual(deleted[0].matchingAcls.map(m => [m.errorCode, m.errorMessage]), [[0, null]], 'DeleteAcls matching ACL error code and message')
    })
  })

  describe('--allow-everyone-if-no-acl-found true', () => {
    let broker

    before(async () => {
      broker = await startBroker({
        listeners: ['PLAINTEXT', 'SASL_PLAINTEXT'],
        args: ['--authorizer', '--super-users', 'User:admin', '--allow-everyone-if-no-acl-found', 'true',
          '--num-partitions', '1', '--bootstrap-users', `admin:${USERS.admin}`]
      })
    })
    after(async () => { await broker?.destroy() })

    it('a topic no ACL names is open to ANONYMOUS; one that an ACL names is not', async () => {
      await asAdmin(client(broker, 'admin'), async (a) => {
        await a.createTopics({ waitForLeaders: true, topics: [{ topic: 'open' }, { topic: 'named' }] })
        await a.createAcls({ acl: [acl(RT.TOPIC, 'named', PT.LITERAL, 'User:alice', '*', OP.READ, PERM.ALLOW)] })
      })
      const anonymous = client(broker, null)
      const sent = messagesFor('open')
      await within(produce(anonymous, 'open', sent), 'ANONYMOUS producing to open')
      assertSame(kcatConsume(broker, 'open', 0), sent, 'open via kcat (ANONYMOUS over PLAINTEXT)')
      const err = await refusal(produce(anonymous, 'named', [{ partition: 0, value: 'no' }]), 'ANONYMOUS producing to named')
      assertProtocolError(err, 'TOPIC_AUTHORIZATION_FAILED', 29, 'ANONYMOUS producing to named', { wrapped: true })
    })
  })

  describe('without --authorizer', () => {
    let broker

    before(async () => { broker = await startBroker({ listeners: ['PLAINTEXT'] }) })
    after(async () => { await broker?.destroy() })

    it('createAcls, describeAcls and deleteAcls: SECURITY_DISABLED', async () => {
      await asAdmin(client(broker, null), async (a) => {
        let err = await refusal(a.createAcls({ acl: [acl(RT.TOPIC, 't', PT.LITERAL, 'User:alice', '*', OP.READ, PERM.ALLOW)] }), 'createAcls')
        assertProtocolError(err, 'SECURITY_DISABLED', 54, 'createAcls')
        err = await refusal(a.describeAcls(filter()), 'describeAcls')
        assertProtocolError(err, 'SECURITY_DISABLED', 54, 'describeAcls')
        err = await refusal(a.deleteAcls({ filters: [filter()] }), 'deleteAcls')
        assertProtocolError(err, 'SECURITY_DISABLED', 54, 'deleteAcls')
      })
    })
  })
})
