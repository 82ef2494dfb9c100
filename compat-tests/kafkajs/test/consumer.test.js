'use strict'
// kafkajs consumer against Klamm.  kafkajs consumers always join a consumer group, so
// these tests need the group APIs (FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
// LeaveGroup, OffsetCommit, OffsetFetch).  The broker's ApiVersions answer decides:
// when it does not advertise them, every test here is skipped with
// "needs consumer groups (issue 4)"; when it does, the tests run and must pass.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const { startBroker, makeKafka, codecs, kcatProduce, missingGroupApis } = require('../lib/fixture')

const SKIP_REASON = 'needs consumer groups (issue 4)'
const WAIT_MS = 30000

let broker
let missing = []

/** Runs a kafkajs consumer in `groupId` until `count` messages arrived (or WAIT_MS). */
async function consumeN (kafka, groupId, topics, count, { fromBeginning = true, autoCommit = true } = {}) {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500, maxWaitTimeInMs: 200 })
  const got = []
  try {
    await consumer.connect()
    for (const topic of topics) await consumer.subscribe({ topic, fromBeginning })
    let done
    const finished = new Promise(resolve => { done = resolve })
    await consumer.run({
      autoCommit,
      eachMessage: async ({ topic, partition, message }) => {
        got.push({ topic, partition, offset: Number(message.offset), key: message.key, value: message.value, headers: message.headers, timestamp: message.timestamp })
        if (got.length >= count) done()
      }
    })
    await Promise.race([finished, new Promise(resolve => setTimeout(resolve, WAIT_MS))])
  } finally {
    await consumer.disconnect().catch(() => {})
  }
  return got.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition || a.offset - b.offset)
}

describe('kafkajs consumer', () => {
  let kafka

  before(async () => {
    broker = await startBroker({ args: ['--num-partitions', '2'] })
    missing = await missingGroupApis(broker)
    kafka = makeKafka(broker)
  })

  after(async () => { await broker?.destroy() })

  // Evaluated lazily: `missing` is known only after before() ran.
  const groupTest = (name, fn) => it(name, { timeout: 90000 }, async (t) => {
    if (missing.length > 0) {
      t.skip(`${SKIP_REASON}; broker does not advertise ${missing.join(', ')}`)
      return
    }
    await fn(t)
  })

  groupTest('reads kcat-produced keys, null keys, tombstones and headers', async () => {
    kcatProduce(broker, 'kjs-c-basic', 0, Buffer.from('k1:v1\n:nullkey\nk3:\nk4:v4\n'), ['-K', ':', '-Z', '-H', 'h1=a', '-H', 'h2=b'])
    const got = await consumeN(kafka, 'g-basic', ['kjs-c-basic'], 4)
    assert.deepEqual(got.map(m => [m.partition, m.offset, m.key && m.key.toString(), m.value && m.value.toString()]),
      [[0, 0, 'k1', 'v1'], [0, 1, null, 'nullkey'], [0, 2, 'k3', null], [0, 3, 'k4', 'v4']])
    for (const m of got) {
      assert.deepEqual(Object.fromEntries(Object.entries(m.headers).map(([k, v]) => [k, v.toString()])), { h1: 'a', h2: 'b' })
    }
  })

  groupTest('reads binary data from every partition', async () => {
    const values = [0, 1].map(() => Array.from({ length: 20 }, () => crypto.randomBytes(64).toString('hex')))
    for (const p of [0, 1]) kcatProduce(broker, 'kjs-c-multi', p, Buffer.from(values[p].join('\n') + '\n'))
    const got = await consumeN(kafka, 'g-multi', ['kjs-c-multi'], 40)
    for (const p of [0, 1]) {
      const inP = got.filter(m => m.partition === p)
      assert.deepEqual(inP.map(m => m.offset), values[p].map((_, i) => i))
      assert.deepEqual(inP.map(m => m.value.toString()), values[p])
    }
  })

  for (const codec of ['gzip', 'snappy', 'lz4', 'zstd']) {
    groupTest(`reads kcat ${codec}-compressed batches`, async (t) => {
      if (codecs[codec] !== true) { t.skip(codecs[codec]); return }
      const topic = `kjs-c-${codec}`
      const values = Array.from({ length: 200 }, (_, i) => `${codec} message ${i} `.repeat(1 + (i % 10)))
      kcatProduce(broker, topic, 0, Buffer.from(values.join('\n') + '\n'), ['-z', codec, '-X', 'linger.ms=50'])
      const got = await consumeN(kafka, `g-${codec}`, [topic], values.length)
      assert.deepEqual(got.map(m => m.value.toString()), values)
      assert.deepEqual(got.map(m => m.offset), values.map((_, i) => i))
    })
  }

  groupTest('committed offsets: a new consumer of the same group resumes after them', async () => {
    const topic = 'kjs-c-commit'
    kcatProduce(broker, topic, 0, Buffer.from('a\nb\nc\n'))
    const first = await consumeN(kafka, 'g-commit', [topic], 3)
    assert.deepEqual(first.map(m => m.value.toString()), ['a', 'b', 'c'])
    kcatProduce(broker, topic, 0, Buffer.from('d\ne\n'))
    const second = await consumeN(kafka, 'g-commit', [topic], 2)
    assert.deepEqual(second.map(m => [m.offset, m.value.toString()]), [[3, 'd'], [4, 'e']])
    const admin = kafka.admin()
    await admin.connect()
    try {
      const offs = await admin.fetchOffsets({ groupId: 'g-commit', topics: [topic] })
      assert.deepEqual(offs[0].partitions.filter(p => p.partition === 0).map(p => p.offset), ['5'])
    } finally {
      await admin.disconnect()
    }
  })
})
