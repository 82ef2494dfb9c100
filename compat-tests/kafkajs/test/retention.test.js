'use strict'
// kafkajs DeleteRecords and retention against Klamm: admin.deleteTopicRecords (an offset
// inside a batch, -1 = the high watermark, several partitions, OFFSET_OUT_OF_RANGE past
// the high watermark), admin.fetchTopicOffsets low/high following it, group consumers
// from the beginning starting exactly at the new log start, a group whose committed
// offset fell below it reset per fromBeginning (earliest / latest), and retention by
// time (retention.ms set at creation or later with alterConfigs) deleting only the
// expired batches at the front, all read back byte-exact with kafkajs and kcat, and a
// trimmed log staying trimmed across a SIGKILL restart.
//
// The broker runs its retention check every 100 ms (--log-retention-check-interval-ms).
// "Nothing more was trimmed" is never concluded from a sleep: retentionPasses() waits until
// probe topics created afterwards lost their expired record.
//
// Run alone:  KLAMM_BIN=... node --test --test-reporter=spec compat-tests/kafkajs/test/retention.test.js

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const { ConfigResourceTypes } = require('kafkajs')
const { startBroker, makeKafka, kcatConsume, sleep } = require('../lib/fixture')

const HOUR_MS = 3600000
const WAIT_MS = 10000

/** n messages with keys (some null), binary values, headers and timestamps ts, ts+1, ... */
function messages (tag, n, ts, partition = 0) {
  return Array.from({ length: n }, (_, i) => ({
    partition,
    key: i % 3 === 0 ? null : Buffer.from(`${tag}-k${i}`),
    value: crypto.randomBytes(1 + (i * 37) % 200),
    headers: i % 2 ? { i: Buffer.from(String(i)), tag: Buffer.from(tag) } : {},
    timestamp: String(ts + i)
  }))
}

/** What a consumer or kcat must give back for `sent` starting at `first`. */
function expected (sent, first) {
  return sent.map((m, i) => ({
    offset: first + i,
    key: m.key === null ? null : m.key.toString('hex'),
    value: m.value.toString('hex'),
    timestamp: m.timestamp
  }))
}

function normalize (got) {
  return got.map(m => ({
    offset: Number(m.offset),
    key: m.key === null ? null : m.key.toString('hex'),
    value: m.value.toString('hex'),
    timestamp: String(m.timestamp)
  }))
}

function headersOf (m) {
  return Object.fromEntries(Object.entries(m.headers || {}).map(([k, v]) => [k, Buffer.from(v).toString('hex')]))
}

describe('kafkajs DeleteRecords and retention', () => {
  let broker, kafka, admin, producer
  let groupSeq = 0

  before(async () => {
    broker = await startBroker({ args: ['--log-retention-check-interval-ms', '100'] })
    kafka = makeKafka(broker)
    admin = kafka.admin()
    await admin.connect()
    producer = kafka.producer({ idempotent: false, allowAutoTopicCreation: false })
    await producer.connect()
  })

  after(async () => {
    await producer?.disconnect().catch(() => {})
    await admin?.disconnect().catch(() => {})
    await broker?.destroy()
  })

  async function create (topic, configEntries = [], numPartitions = 1) {
    assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions, configEntries }] }), true)
  }

  /** Sends each array of messages in its own request (one batch per partition); returns base offsets. */
  async function sendBatches (topic, batches) {
    const bases = []
    for (const msgs of batches) {
      const res = await producer.send({ topic, acks: -1, messages: msgs })
      bases.push(res.map(r => Number(r.baseOffset)))
    }
    return bases
  }

  async function offsets (topic) {
    const o = await admin.fetchTopicOffsets(topic)
    return o.sort((a, b) => a.partition - b.partition).map(p => ({ partition: p.partition, low: p.low, high: p.high }))
  }

  async function waitLow (topic, want, partition = 0) {
    const deadline = Date.now() + WAIT_MS
    let o
    for (;;) {
      o = (await offsets(topic)).find(p => p.partition === partition)
      if (o.low === String(want) || Date.now() > deadline) break
      await sleep(50)
    }
    assert.equal(o.low, String(want), `${topic}/${partition}: low ${o.low}, want ${want} (high ${o.high})`)
    return o
  }

  /** Whole retention passes ran since the call: probe topics created one after the other lost their expired record. */
  async function retentionPasses (n = 2) {
    for (let i = 0; i < n; i++) {
      const probe = `kjs-probe-${Date.now()}-${i}`
      await create(probe, [{ name: 'retention.ms', value: '60000' }])
      await sendBatches(probe, [[{ partition: 0, value: 'p', timestamp: String(Date.now() - HOUR_MS) }]])
      assert.deepEqual(await waitLow(probe, 1), { partition: 0, low: '1', high: '1' })
    }
  }

  /** A group consumer (new group unless given) until `count` messages arrived (bounded); sorted by offset. */
  async function consumeN (topic, count, { groupId = `kjs-ret-${++groupSeq}`, fromBeginning = true, onRunning } = {}) {
    const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500, maxWaitTimeInMs: 100 })
    const got = []
    try {
      await consumer.connect()
      await consumer.subscribe({ topic, fromBeginning })
      let done
      const finished = new Promise(resolve => { done = resolve })
      if (count === 0) done()
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          got.push({ partition, ...message })
          if (got.length >= count) done()
        }
      })
      if (onRunning) await onRunning(consumer)
      let timer
      await Promise.race([finished, new Promise(resolve => { timer = setTimeout(resolve, 20000) })])
      clearTimeout(timer)
    } finally {
      await consumer.disconnect().catch(() => {})
    }
    return got.sort((a, b) => Number(a.offset) - Number(b.offset))
  }

  /** kafkajs's deleteTopicRecords looks the leaders up in its metadata cache only (it
   *  fails with "Could not find the leader" for a topic it has not loaded yet). */
  async function deleteRecords (topic, partitions) {
    await admin.fetchTopicMetadata({ topics: [topic] })
    return admin.deleteTopicRecords({ topic, partitions })
  }

  function deleteErrors (e) {
    const parts = e.partitions || (e.cause && e.cause.partitions) || []
    return parts.map(p => [p.partition, p.error && p.error.type])
  }

  it('deleteTopicRecords moves the low watermark; consumers from the beginning start there', { timeout: 60000 }, async () => {
    const topic = 'kjs-dr'
    await create(topic)
    const ts = Date.now() - 60000
    const a = messages('a', 10, ts)
    const b = messages('b', 10, ts + 100)
    assert.deepEqual(await sendBatches(topic, [a, b]), [[0], [10]])
    assert.deepEqual(await offsets(topic), [{ partition: 0, low: '0', high: '20' }])

    // Inside the first batch.
    await deleteRecords(topic, [{ partition: 0, offset: '5' }])
    assert.deepEqual(await offsets(topic), [{ partition: 0, low: '5', high: '20' }])
    const want = expected([...a, ...b].slice(5), 5)
    const got = await consumeN(topic, 15)
    assert.deepEqual(normalize(got), want)
    assert.deepEqual(got.map(headersOf), [...a, ...b].slice(5).map(headersOf))
    assert.deepEqual(normalize(kcatConsume(broker, topic, 0)), want)

    // Below the log start: nothing moves.
    await deleteRecords(topic, [{ partition: 0, offset: '2' }])
    assert.deepEqual(await offsets(topic), [{ partition: 0, low: '5', high: '20' }])

    // -1: up to the high watermark; new records continue the offsets.
    await deleteRecords(topic, [{ partition: 0, offset: '-1' }])
    assert.deepEqual(await offsets(topic), [{ partition: 0, low: '20', high: '20' }])
    assert.deepEqual(kcatConsume(broker, topic, 0), [])
    const c = messages('c', 2, Date.now())
    assert.deepEqual(await sendBatches(topic, [c]), [[20]])
    assert.deepEqual(await offsets(topic), [{ partition: 0, low: '20', high: '22' }])
    assert.deepEqual(normalize(await consumeN(topic, 2)), expected(c, 20))
  })

  it('deleteTopicRecords on several partitions; past the high watermark is OFFSET_OUT_OF_RANGE', async () => {
    const topic = 'kjs-dr-multi'
    await create(topic, [], 3)
    const sent = [0, 1, 2].map(p => messages(`p${p}`, 6, Date.now() - 1000, p))
    for (const msgs of sent) await sendBatches(topic, [msgs])
    await deleteRecords(topic, [{ partition: 0, offset: '2' }, { partition: 1, offset: '-1' }])
    assert.deepEqual(await offsets(topic), [
      { partition: 0, low: '2', high: '6' }, { partition: 1, low: '6', high: '6' }, { partition: 2, low: '0', high: '6' }])

    await assert.rejects(deleteRecords(topic, [{ partition: 2, offset: '7' }]), (e) => {
      assert.deepEqual(deleteErrors(e), [[2, 'OFFSET_OUT_OF_RANGE']], `${e.name}: ${e.message}`)
      return true
    })
    assert.deepEqual(await offsets(topic), [
      { partition: 0, low: '2', high: '6' }, { partition: 1, low: '6', high: '6' }, { partition: 2, low: '0', high: '6' }])
    const got = normalize(kcatConsume(broker, topic, null).sort((x, y) => x.partition - y.partition || x.offset - y.offset))
    assert.deepEqual(got, [...expected(sent[0].slice(2), 2), ...expected(sent[2], 0)])
  })

  it('a group whose committed offset fell below the log start resets per fromBeginning', { timeout: 60000 }, async () => {
    const topic = 'kjs-dr-reset'
    await create(topic)
    const a = messages('a', 10, Date.now() - 60000)
    const b = messages('b', 10, Date.now() - 50000)
    assert.deepEqual(await sendBatches(topic, [a, b]), [[0], [10]])
    await deleteRecords(topic, [{ partition: 0, offset: '5' }])

    // Earliest: from the log start (inside the first batch).
    await admin.setOffsets({ groupId: 'kjs-reset-earliest', topic, partitions: [{ partition: 0, offset: '2' }] })
    const got = await consumeN(topic, 15, { groupId: 'kjs-reset-earliest', fromBeginning: true })
    assert.deepEqual(normalize(got), expected([...a, ...b].slice(5), 5))

    // Latest: from the high watermark; only what is produced afterwards arrives.
    await admin.setOffsets({ groupId: 'kjs-reset-latest', topic, partitions: [{ partition: 0, offset: '3' }] })
    const late = messages('late', 2, Date.now())
    const got2 = await consumeN(topic, 2, {
      groupId: 'kjs-reset-latest',
      fromBeginning: false,
      // Produce only once the reset is done: kafkajs commits its default offset (-1,
      // latest) for the group on OFFSET_OUT_OF_RANGE, and the next fetch cycle resolves
      // it with ListOffsets; two completed fetches after the commit was seen mean the
      // consumer sits at the end (20).
      onRunning: async (consumer) => {
        let fetches = 0
        const off = consumer.on(consumer.events.FETCH, () => { fetches++ })
        const deadline = Date.now() + WAIT_MS
        let committed
        for (;;) {
          const [t] = await admin.fetchOffsets({ groupId: 'kjs-reset-latest', topics: [topic] })
          committed = t.partitions.find(p => p.partition === 0).offset
          if (committed === '-1' || Date.now() > deadline) break
          await sleep(50)
        }
        assert.equal(committed, '-1', 'the consumer did not reset its out-of-range offset')
        const seen = fetches
        while (fetches < seen + 2 && Date.now() < deadline) await sleep(20)
        off()
        assert.ok(fetches >= seen + 2, `only ${fetches - seen} fetches after the reset`)
        await sendBatches(topic, [late])
      }
    })
    assert.deepEqual(normalize(got2), expected(late, 20))
  })

  it('retention.ms deletes the expired batches at the front; recent ones read back byte-exact', { timeout: 60000 }, async () => {
    const topic = 'kjs-ret-ms'
    await create(topic, [{ name: 'retention.ms', value: '60000' }])
    const old = messages('old', 5, Date.now() - HOUR_MS)
    const recent = messages('new', 4, Date.now())
    const oldAfter = messages('old-after', 2, Date.now() - HOUR_MS)
    assert.deepEqual(await sendBatches(topic, [old, recent, oldAfter]), [[0], [5], [9]])
    assert.deepEqual(await waitLow(topic, 5), { partition: 0, low: '5', high: '11' })
    await retentionPasses()
    // The expired batch behind a recent one stays: retention deletes from the front only.
    assert.deepEqual(await offsets(topic), [{ partition: 0, low: '5', high: '11' }])
    const want = expected([...recent, ...oldAfter], 5)
    const got = await consumeN(topic, 6)
    assert.deepEqual(normalize(got), want)
    assert.deepEqual(got.map(headersOf), [...recent, ...oldAfter].map(headersOf))
    assert.deepEqual(normalize(kcatConsume(broker, topic, 0)), want)
  })

  it('retention.ms set later with alterConfigs takes effect without a restart', { timeout: 60000 }, async () => {
    const topic = 'kjs-ret-later'
    await create(topic)
    const old = messages('old', 3, Date.now() - HOUR_MS)
    const recent = messages('new', 3, Date.now())
    assert.deepEqual(await sendBatches(topic, [old, recent]), [[0], [3]])
    await retentionPasses()
    assert.deepEqual(await offsets(topic), [{ partition: 0, low: '0', high: '6' }])
    await admin.alterConfigs({
      validateOnly: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: '60000' }] }]
    })
    assert.deepEqual(await waitLow(topic, 3), { partition: 0, low: '3', high: '6' })
    assert.deepEqual(normalize(kcatConsume(broker, topic, 0)), expected(recent, 3))
  })

  // Last: restarts the shared broker.
  it('deleted records and trimmed logs stay gone after a SIGKILL restart', { timeout: 60000 }, async () => {
    const before = { dr: await offsets('kjs-dr'), ret: await offsets('kjs-ret-ms'), multi: await offsets('kjs-dr-multi') }
    assert.deepEqual(before.dr, [{ partition: 0, low: '20', high: '22' }])
    assert.deepEqual(before.ret, [{ partition: 0, low: '5', high: '11' }])
    await producer.disconnect()
    await admin.disconnect()
    const stopped = await broker.stop('SIGKILL')
    assert.equal(stopped.signal, 'SIGKILL')
    await broker.start()
    admin = kafka.admin()
    await admin.connect()
    producer = kafka.producer({ idempotent: false, allowAutoTopicCreation: false })
    await producer.connect()
    assert.deepEqual(await offsets('kjs-dr'), before.dr)
    assert.deepEqual(await offsets('kjs-ret-ms'), before.ret)
    assert.deepEqual(await offsets('kjs-dr-multi'), before.multi)
    // Emptied partition 1 of kjs-dr-multi resumes at its old end offset.
    const more = messages('more', 2, Date.now(), 1)
    assert.deepEqual(await sendBatches('kjs-dr-multi', [more]), [[6]])
    assert.deepEqual(normalize(kcatConsume(broker, 'kjs-dr-multi', 1)), expected(more, 6))
  })
})
