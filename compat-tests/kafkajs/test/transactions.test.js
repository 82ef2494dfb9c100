'use strict'
// kafkajs transactions against Klamm: a transactional producer (idempotent, transactionalId,
// maxInFlightRequests 1) commits, aborts, sends offsets and gets fenced; what it wrote is
// read back with kcat (librdkafka) at read_committed and read_uncommitted and with kafkajs
// consumers (readUncommitted false/true), byte for byte and offset for offset.
//
// Kafka's behaviour, asserted here: each transaction ends with one control record per
// partition it wrote (it takes an offset, never reaches an application); aborted records
// reach read_uncommitted consumers only; an open transaction holds read_committed consumers
// at its first offset; offsets sent with sendOffsets are committed only with the
// transaction; a second producer with the same transactionalId aborts the first one's
// open transaction, and the first one's EndTxn is refused with INVALID_PRODUCER_EPOCH (what
// Kafka answers PRODUCER_FENCED as to EndTxn v0/v1, the versions kafkajs speaks).
// Kafka writes transaction markers after answering EndTxn, so what a commit makes visible is
// polled for.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const { startBroker, makeKafka, runKcat, kcatProduce, sleep } = require('../lib/fixture')

const WAIT_MS = 20000

// ----------------------------------------------------------------------------- kcat read-back
// Lengths make keys and values byte-exact whatever bytes they hold (as lib/fixture.js does).
const FMT = 'R|%p|%o|%K|%S|%k%s|%h\\n'

function parseFmt (buf) {
  const msgs = []
  let i = 0
  const field = () => {
    const j = buf.indexOf(0x7c, i)
    if (j < 0) throw new Error(`unparsable kcat output at ${i}`)
    const s = buf.slice(i, j).toString()
    i = j + 1
    return s
  }
  while (i < buf.length) {
    if (buf[i] !== 0x52 || buf[i + 1] !== 0x7c) throw new Error(`unparsable kcat output at ${i}`)
    i += 2
    const partition = Number(field())
    const offset = Number(field())
    const klen = Number(field())
    const vlen = Number(field())
    let key = null
    let value = null
    if (klen >= 0) { key = buf.slice(i, i + klen); i += klen }
    if (vlen >= 0) { value = buf.slice(i, i + vlen); i += vlen }
    if (buf[i] !== 0x7c) throw new Error(`kcat output: expected '|' after payload at ${i}`)
    i += 1
    const nl = buf.indexOf(0x0a, i)
    const headers = buf.slice(i, nl).toString()
    i = nl + 1
    msgs.push({ partition, offset, key, value, headers })
  }
  return msgs
}

/** One partition from the beginning to its end (the LSO at read_committed), via kcat. */
function kcatRead (broker, topic, partition, isolation) {
  const args = ['-C', '-t', topic, '-p', String(partition), '-o', 'beginning', '-e', '-f', FMT,
    '-X', `isolation.level=${isolation}`]
  return parseFmt(runKcat(broker, args).stdout)
}

async function kcatReadUntil (broker, topic, partition, isolation, count, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const msgs = kcatRead(broker, topic, partition, isolation)
    if (msgs.length >= count || Date.now() > deadline) return msgs
    await sleep(100)
  }
}

const buf = (x) => (x === null || x === undefined) ? null : Buffer.isBuffer(x) ? x : Buffer.from(String(x))

/** got: [{offset, key, value}], want: [[offset, message]] sent by kafkajs. */
function assertMessages (got, want, what) {
  assert.deepEqual(got.map(m => m.offset), want.map(([o]) => o), `${what}: offsets`)
  got.forEach((m, i) => {
    assert.deepEqual(m.key, buf(want[i][1].key), `${what}: key of #${i}`)
    assert.deepEqual(m.value, buf(want[i][1].value), `${what}: value of #${i}`)
  })
}

function msgs (tag, n, partition) {
  return Array.from({ length: n }, (_, i) => ({
    partition,
    key: i % 3 === 0 ? null : `${tag}-k${i}`,
    value: Buffer.concat([Buffer.from(`${tag}-${i}|`), crypto.randomBytes(i * 7)]),
    headers: { tag, i: String(i) }
  }))
}

// ----------------------------------------------------------------------------- kafkajs consumer
/** A kafkajs group consumer of `topics` from the beginning; got holds what it received. */
async function startConsumer (kafka, groupId, topics, readUncommitted) {
  const consumer = kafka.consumer({ groupId, readUncommitted, sessionTimeout: 10000, heartbeatInterval: 500, maxWaitTimeInMs: 200 })
  const got = []
  let joined = false
  consumer.on(consumer.events.GROUP_JOIN, () => { joined = true })
  await consumer.connect()
  for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ topic, partition, message }) => {
      got.push({ topic, partition, offset: Number(message.offset), key: message.key, value: message.value, headers: message.headers })
    }
  })
  const deadline = Date.now() + WAIT_MS
  while (!joined && Date.now() < deadline) await sleep(50)
  assert.ok(joined, `consumer of group ${groupId} did not join within ${WAIT_MS} ms`)
  return {
    got,
    async waitFor (count, settleMs = 800) {
      const until = Date.now() + WAIT_MS
      while (got.length < count && Date.now() < until) await sleep(50)
      await sleep(settleMs) // anything extra (duplicates, aborted or control records) shows up here
      return got
    },
    stop: () => consumer.disconnect().catch(() => {})
  }
}

async function consumeAll (kafka, groupId, topics, readUncommitted, count) {
  const c = await startConsumer(kafka, groupId, topics, readUncommitted)
  try {
    return [...await c.waitFor(count)]
  } finally {
    await c.stop()
  }
}

const inPartition = (got, topic, partition) =>
  got.filter(m => m.topic === topic && m.partition === partition).sort((a, b) => a.offset - b.offset)

/** The offsets kafkajs reports for one send to one partition: baseOffset, baseOffset+1, ... */
function sentOffsets (res, topic, partition, n) {
  const r = res.find(x => x.topicName === topic && x.partition === partition)
  assert.ok(r, `no send result for ${topic}[${partition}]: ${JSON.stringify(res)}`)
  assert.equal(r.errorCode, 0)
  return Array.from({ length: n }, (_, i) => Number(r.baseOffset) + i)
}

describe('kafkajs transactions', () => {
  let broker, kafka, admin
  const producers = []

  const txProducer = async (transactionalId) => {
    const p = kafka.producer({ transactionalId, idempotent: true, maxInFlightRequests: 1 })
    await p.connect()
    producers.push(p)
    return p
  }

  before(async () => {
    broker = await startBroker({ args: ['--num-partitions', '1'] })
    kafka = makeKafka(broker)
    admin = kafka.admin()
    await admin.connect()
  })

  after(async () => {
    for (const p of producers) await p.disconnect().catch(() => {})
    await admin?.disconnect().catch(() => {})
    await broker?.destroy()
  })

  it('commit over two topics and several partitions: read_committed sees it whole', { timeout: 90000 }, async () => {
    await admin.createTopics({ topics: [{ topic: 'kjs-tx-a', numPartitions: 3 }, { topic: 'kjs-tx-b', numPartitions: 1 }] })
    const p = await txProducer('kjs-tx-commit')
    const a = [0, 1, 2].map(part => msgs(`a${part}`, 4, part))
    const b = msgs('b0', 5, 0)
    const txn = await p.transaction()
    const res = await txn.sendBatch({ topicMessages: [{ topic: 'kjs-tx-a', messages: a.flat() }, { topic: 'kjs-tx-b', messages: b }] })
    await txn.commit()
    for (const part of [0, 1, 2]) assert.deepEqual(sentOffsets(res, 'kjs-tx-a', part, 4), [0, 1, 2, 3])
    // A second transaction on a[0]: after the first one's commit marker (offset 4).
    const more = msgs('a0-more', 2, 0)
    const txn2 = await p.transaction()
    const res2 = await txn2.send({ topic: 'kjs-tx-a', messages: more })
    await txn2.commit()
    assert.deepEqual(sentOffsets(res2, 'kjs-tx-a', 0, 2), [5, 6])

    const want = {
      'kjs-tx-a/0': [...a[0].map((m, i) => [i, m]), [5, more[0]], [6, more[1]]],
      'kjs-tx-a/1': a[1].map((m, i) => [i, m]),
      'kjs-tx-a/2': a[2].map((m, i) => [i, m]),
      'kjs-tx-b/0': b.map((m, i) => [i, m])
    }
    for (const [tp, w] of Object.entries(want)) {
      const [topic, part] = tp.split('/')
      assertMessages(await kcatReadUntil(broker, topic, Number(part), 'read_committed', w.length), w, `kcat ${tp}`)
    }
    const got = await consumeAll(kafka, 'kjs-tx-g-commit', ['kjs-tx-a', 'kjs-tx-b'], false, 19)
    assert.equal(got.length, 19, 'kafkajs read_committed: message count')
    for (const [tp, w] of Object.entries(want)) {
      const [topic, part] = tp.split('/')
      const inP = inPartition(got, topic, Number(part))
      assertMessages(inP, w, `kafkajs ${tp}`)
      inP.forEach((m, i) => assert.deepEqual(Object.fromEntries(Object.entries(m.headers).map(([k, v]) => [k, v.toString()])),
        w[i][1].headers, `kafkajs ${tp}: headers of #${i}`))
    }
  })

  it('abort: aborted records reach read_uncommitted consumers only', { timeout: 90000 }, async () => {
    const topic = 'kjs-tx-abort'
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
    const p = await txProducer('kjs-tx-abort')
    const c1 = msgs('c1', 3, 0)
    const a1 = msgs('a1', 4, 0)
    const c2 = msgs('c2', 2, 0)
    let t = await p.transaction()
    assert.deepEqual(sentOffsets(await t.send({ topic, messages: c1 }), topic, 0, 3), [0, 1, 2])
    await t.commit()
    t = await p.transaction()
    assert.deepEqual(sentOffsets(await t.send({ topic, messages: a1 }), topic, 0, 4), [4, 5, 6, 7])
    await t.abort()
    t = await p.transaction()
    assert.deepEqual(sentOffsets(await t.send({ topic, messages: c2 }), topic, 0, 2), [9, 10])
    await t.commit()

    const committedOnly = [[0, c1[0]], [1, c1[1]], [2, c1[2]], [9, c2[0]], [10, c2[1]]]
    const all = [[0, c1[0]], [1, c1[1]], [2, c1[2]], ...a1.map((m, i) => [4 + i, m]), [9, c2[0]], [10, c2[1]]]
    // kcat -e stops at the end: wait until the last commit's marker made c2 visible.
    assertMessages(await kcatReadUntil(broker, topic, 0, 'read_committed', 5), committedOnly, 'kcat read_committed')
    assertMessages(kcatRead(broker, topic, 0, 'read_uncommitted'), all, 'kcat read_uncommitted')
    assertMessages(await consumeAll(kafka, 'kjs-tx-g-abort-rc', [topic], false, 5), committedOnly, 'kafkajs readUncommitted: false')
    assertMessages(await consumeAll(kafka, 'kjs-tx-g-abort-ru', [topic], true, 9), all, 'kafkajs readUncommitted: true')
  })

  it('an open transaction holds read_committed consumers until it commits', { timeout: 90000 }, async () => {
    const topic = 'kjs-tx-lso'
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
    kcatProduce(broker, topic, 0, Buffer.from('before\n'))
    const p = await txProducer('kjs-tx-lso')
    const t = await p.transaction()
    const inTxn = msgs('open', 2, 0)
    assert.deepEqual(sentOffsets(await t.send({ topic, messages: inTxn }), topic, 0, 2), [1, 2])
    kcatProduce(broker, topic, 0, Buffer.from('after\n')) // non-transactional, offset 3
    const c = await startConsumer(kafka, 'kjs-tx-g-lso', [topic], false)
    try {
      const early = await c.waitFor(1, 1500)
      assert.deepEqual(early.map(m => [m.offset, m.value.toString()]), [[0, 'before']], 'read_committed stops at the LSO')
      assert.deepEqual(kcatRead(broker, topic, 0, 'read_committed').map(m => m.offset), [0], 'kcat read_committed')
      assert.deepEqual(kcatRead(broker, topic, 0, 'read_uncommitted').map(m => m.offset), [0, 1, 2, 3], 'kcat read_uncommitted')
      await t.commit()
      const got = await c.waitFor(4)
      assert.deepEqual(got.map(m => m.offset), [0, 1, 2, 3], 'after commit')
      assert.deepEqual(got[1].value, inTxn[0].value)
      assert.deepEqual(got[2].value, inTxn[1].value)
      assert.equal(got[3].value.toString(), 'after')
    } finally {
      await c.stop()
    }
  })

  it('sendOffsets: the group offset is committed with the transaction, never by an abort', { timeout: 90000 }, async () => {
    const input = 'kjs-tx-so-in'
    const output = 'kjs-tx-so-out'
    const groupId = 'kjs-tx-g-so'
    await admin.createTopics({ topics: [{ topic: input, numPartitions: 1 }, { topic: output, numPartitions: 1 }] })
    kcatProduce(broker, input, 0, Buffer.from(Array.from({ length: 10 }, (_, i) => `in-${i}`).join('\n') + '\n'))
    const offsetOf = async () => {
      const [r] = await admin.fetchOffsets({ groupId, topics: [input] })
      return r.partitions.find(x => x.partition === 0).offset
    }
    const waitOffset = async (want) => {
      const deadline = Date.now() + WAIT_MS
      let v = await offsetOf()
      while (v !== want && Date.now() < deadline) { await sleep(50); v = await offsetOf() }
      assert.equal(v, want, 'committed offset of the group')
    }
    const p = await txProducer('kjs-tx-so')
    let t = await p.transaction()
    await t.send({ topic: output, messages: [{ partition: 0, value: 'out-1' }] })
    await t.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: 0, offset: '4' }] }] })
    assert.equal(await offsetOf(), '-1', 'offset before the commit')
    await t.commit()
    await waitOffset('4')

    t = await p.transaction()
    await t.send({ topic: output, messages: [{ partition: 0, value: 'out-aborted' }] })
    await t.sendOffsets({ consumerGroupId: groupId, topics: [{ topic: input, partitions: [{ partition: 0, offset: '8' }] }] })
    await t.abort()
    for (let i = 0; i < 10; i++) {
      assert.equal(await offsetOf(), '4', 'offset after the abort')
      await sleep(100)
    }
    // A kafkajs consumer of the group resumes where the committed transaction left it.
    const got = await consumeAll(kafka, groupId, [input], false, 6)
    assert.deepEqual(got.map(m => [m.offset, m.value.toString()]), [4, 5, 6, 7, 8, 9].map(i => [i, `in-${i}`]))
    assertMessages(await kcatReadUntil(broker, output, 0, 'read_committed', 1), [[0, { key: null, value: 'out-1' }]], 'output at read_committed')
  })

  it('fencing: a second producer with the same transactionalId aborts the first one\'s transaction', { timeout: 90000 }, async () => {
    const topic = 'kjs-tx-fence'
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
    const p1 = await txProducer('kjs-tx-fence')
    const t1 = await p1.transaction()
    const zombie = msgs('zombie', 3, 0)
    assert.deepEqual(sentOffsets(await t1.send({ topic, messages: zombie }), topic, 0, 3), [0, 1, 2])
    const p2 = await txProducer('kjs-tx-fence')
    const t2 = await p2.transaction() // InitProducerId: aborts t1, bumps the epoch
    await assert.rejects(t1.commit(), (e) => {
      assert.equal(e.type, 'INVALID_PRODUCER_EPOCH', `fenced producer's commit: ${e.name}: ${e.message}`)
      return true
    })
    const fresh = msgs('fresh', 2, 0)
    assert.deepEqual(sentOffsets(await t2.send({ topic, messages: fresh }), topic, 0, 2), [4, 5])
    await t2.commit()
    const committedOnly = fresh.map((m, i) => [4 + i, m])
    assertMessages(await kcatReadUntil(broker, topic, 0, 'read_committed', 2), committedOnly, 'kcat read_committed')
    assertMessages(kcatRead(broker, topic, 0, 'read_uncommitted'), [...zombie.map((m, i) => [i, m]), ...committedOnly], 'kcat read_uncommitted')
    assertMessages(await consumeAll(kafka, 'kjs-tx-g-fence', [topic], false, 2), committedOnly, 'kafkajs readUncommitted: false')
  })
})
