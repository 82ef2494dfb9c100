'use strict'
// kafkajs producer against Klamm; everything it writes is read back with kcat and
// compared byte for byte (keys, values, headers, offsets, timestamps).

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const {
  startBroker, makeKafka, codecs, codecTypes, kcatConsume, kcatConsumeUntil, kcatJson, kcatMetadata
} = require('../lib/fixture')

const PARTITIONS = 3 // broker's --num-partitions, for auto-created topics

const buf = (x) => (x === null || x === undefined) ? null : Buffer.isBuffer(x) ? x : Buffer.from(String(x))

/** Compare kcat's view of a partition with what kafkajs sent (in order, from offset `from`). */
function assertSameMessages (got, sent, what, from = 0) {
  assert.equal(got.length, sent.length, `${what}: message count`)
  got.forEach((m, i) => {
    assert.equal(m.offset, from + i, `${what}: offset of message #${i}`)
    assert.deepEqual(m.key, buf(sent[i].key), `${what}: key of message #${i}`)
    assert.deepEqual(m.value, buf(sent[i].value), `${what}: value of message #${i}`)
    if (sent[i].timestamp !== undefined) assert.equal(m.timestamp, sent[i].timestamp, `${what}: timestamp of #${i}`)
  })
}

describe('kafkajs producer', () => {
  let broker, kafka, producer

  before(async () => {
    broker = await startBroker({ args: ['--num-partitions', String(PARTITIONS)] })
    kafka = makeKafka(broker)
    producer = kafka.producer({ idempotent: false, allowAutoTopicCreation: true })
    await producer.connect()
  })

  after(async () => {
    await producer?.disconnect().catch(() => {})
    await broker?.destroy()
  })

  it('keys, null keys, empty keys, binary data, tombstones and timestamps', async () => {
    const base = Date.now() - 10000
    const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
    const sent = [
      { key: 'k1', value: 'v1', timestamp: String(base) },
      { key: null, value: 'no key', timestamp: String(base + 1) },
      { key: '', value: '', timestamp: String(base + 2) },
      { key: Buffer.from([0, 1, 2, 0xff, 0x0a]), value: allBytes, timestamp: String(base + 3) },
      { key: 'tombstone', value: null, timestamp: String(base + 4) },
      { key: null, value: null, timestamp: String(base + 5) },
      { key: 'ключ', value: 'ünïcødé ✓ 😀', timestamp: String(base + 6) },
      { key: 'random', value: crypto.randomBytes(20000), timestamp: String(base - 100000) }
    ]
    const res = await producer.send({ topic: 'kjs-basic', messages: sent.map(m => ({ ...m, partition: 0 })) })
    assert.equal(res.length, 1)
    assert.equal(res[0].topicName, 'kjs-basic')
    assert.equal(res[0].partition, 0)
    assert.equal(res[0].errorCode, 0)
    assert.equal(res[0].baseOffset, '0')
    assertSameMessages(kcatConsume(broker, 'kjs-basic', 0), sent, 'kjs-basic')
    // A second send continues at the next offset.
    const res2 = await producer.send({ topic: 'kjs-basic', messages: [{ partition: 0, key: 'next', value: 'after' }] })
    assert.equal(res2[0].baseOffset, String(sent.length))
    const got = kcatConsume(broker, 'kjs-basic', 0)
    assert.equal(got.length, sent.length + 1)
    assert.equal(got[sent.length].value.toString(), 'after')
  })

  it('headers: strings, buffers, repeated names, empty values', async () => {
    const messages = [
      { partition: 0, key: 'h', value: 'with headers', headers: { a: '1', b: Buffer.from('two'), empty: '', utf: 'ü✓', multi: ['x', 'y', 'z'] } },
      { partition: 0, key: 'n', value: 'no headers' }
    ]
    await producer.send({ topic: 'kjs-headers', messages })
    const js = kcatJson(broker, 'kjs-headers', 0)
    assert.equal(js.length, 2)
    assert.deepEqual(js[0].headers, ['a', '1', 'b', 'two', 'empty', '', 'utf', 'ü✓', 'multi', 'x', 'multi', 'y', 'multi', 'z'])
    assert.equal(js[0].key, 'h')
    assert.equal(js[0].payload, 'with headers')
    assert.ok(!js[1].headers || js[1].headers.length === 0, `unexpected headers: ${JSON.stringify(js[1].headers)}`)
  })

  for (const codec of ['none', 'gzip', 'snappy', 'lz4', 'zstd']) {
    const skip = codecs[codec] === true ? false : codecs[codec]
    it(`compression ${codec}`, { skip }, async () => {
      const topic = `kjs-codec-${codec}`
      const batch1 = Array.from({ length: 300 }, (_, i) => ({
        partition: 1,
        key: `key-${i}`,
        value: i % 3 === 0 ? `text ${i} `.repeat(1 + (i % 40)) : i % 3 === 1 ? crypto.randomBytes(1 + (i % 300)) : Buffer.alloc(1 + i * 7)
      }))
      const batch2 = [{ partition: 1, key: null, value: 'second batch' }, { partition: 1, key: 'last', value: null }]
      await producer.send({ topic, compression: codecTypes[codec], messages: batch1 })
      await producer.send({ topic, compression: codecTypes[codec], messages: batch2 })
      const sent = [...batch1, ...batch2]
      assertSameMessages(kcatConsume(broker, topic, 1), sent, `codec ${codec}`)
      // From the middle of the first (compressed) batch.
      assertSameMessages(kcatConsume(broker, topic, 1, 150), sent.slice(150), `codec ${codec} from offset 150`, 150)
    })
  }

  for (const acks of [0, 1, -1]) {
    it(`acks=${acks}`, async () => {
      const topic = `kjs-acks-${acks < 0 ? 'all' : acks}`
      const sent = Array.from({ length: 40 }, (_, i) => ({ partition: 2, key: `k${i}`, value: `acks ${acks} #${i}` }))
      for (let i = 0; i < sent.length; i += 10) {
        const res = await producer.send({ topic, acks, messages: sent.slice(i, i + 10) })
        if (acks !== 0) {
          assert.equal(res[0].errorCode, 0)
          assert.equal(res[0].baseOffset, String(i), `baseOffset of send #${i / 10}`)
        }
      }
      assertSameMessages(await kcatConsumeUntil(broker, topic, 2, sent.length), sent, `acks=${acks}`)
    })
  }

  it('sendBatch over several topics and partitions', async () => {
    const topicMessages = [
      { topic: 'kjs-batch-a', messages: [0, 1, 2].flatMap(p => [{ partition: p, value: `a${p}-0` }, { partition: p, value: `a${p}-1` }]) },
      { topic: 'kjs-batch-b', messages: [{ partition: 2, key: 'kb', value: 'b2-0' }] }
    ]
    const res = await producer.sendBatch({ topicMessages, compression: codecTypes.gzip })
    const seen = res.map(r => `${r.topicName}/${r.partition}@${r.baseOffset}`).sort()
    assert.deepEqual(seen, ['kjs-batch-a/0@0', 'kjs-batch-a/1@0', 'kjs-batch-a/2@0', 'kjs-batch-b/2@0'])
    for (const p of [0, 1, 2]) {
      assert.deepEqual(kcatConsume(broker, 'kjs-batch-a', p).map(m => m.value.toString()), [`a${p}-0`, `a${p}-1`])
    }
    assert.deepEqual(kcatConsume(broker, 'kjs-batch-b', 2).map(m => [m.key.toString(), m.value.toString()]), [['kb', 'b2-0']])
  })

  it('default partitioner: auto-created topic, same key always in the same partition', async () => {
    const topic = 'kjs-partitioner'
    const sent = Array.from({ length: 60 }, (_, i) => ({ key: `key${i % 6}`, value: `v${i}` }))
    const res = await producer.send({ topic, messages: sent })
    assert.ok(res.every(r => r.errorCode === 0))
    const md = kcatMetadata(broker, topic)
    assert.equal(md.topics[0].partitions.length, PARTITIONS)
    const all = kcatConsume(broker, topic, null)
    assert.equal(all.length, sent.length)
    const where = new Map()
    for (const m of all) {
      const k = m.key.toString()
      if (!where.has(k)) where.set(k, new Set())
      where.get(k).add(m.partition)
    }
    for (const [k, ps] of where) assert.equal(ps.size, 1, `key ${k} in partitions ${[...ps]}`)
    // Per partition, kafkajs's order is kept.
    for (let p = 0; p < PARTITIONS; p++) {
      const inP = all.filter(m => m.partition === p).map(m => m.value.toString())
      const expected = sent.filter(m => where.get(m.key).has(p)).map(m => m.value)
      assert.deepEqual(inP, expected, `order in partition ${p}`)
    }
  })

  it('large message (900 KB) with gzip and without compression', async () => {
    const value = Buffer.concat([crypto.randomBytes(400000), Buffer.alloc(500000, 'abcdefgh')])
    for (const [topic, compression] of [['kjs-large-none', codecTypes.none], ['kjs-large-gzip', codecTypes.gzip]]) {
      await producer.send({ topic, compression, messages: [{ partition: 0, key: 'big', value }] })
      const got = kcatConsume(broker, topic, 0)
      assert.equal(got.length, 1)
      assert.ok(got[0].value.equals(value), `${topic}: payload differs (${got[0].value.length} bytes back)`)
    }
  })

  it('data survives a SIGKILL restart and the same producer keeps working', async () => {
    const topic = 'kjs-restart'
    const first = Array.from({ length: 20 }, (_, i) => ({ partition: 0, key: `k${i}`, value: crypto.randomBytes(50) }))
    await producer.send({ topic, acks: -1, compression: codecTypes.gzip, messages: first })
    const before = kcatConsume(broker, topic, 0)
    await broker.stop('SIGKILL')
    await broker.start()
    assertSameMessages(kcatConsume(broker, topic, 0), first, 'after SIGKILL restart')
    const second = [{ partition: 0, key: 'post', value: 'restart' }]
    const res = await producer.send({ topic, acks: -1, messages: second })
    assert.equal(res[0].baseOffset, String(first.length))
    const after = kcatConsume(broker, topic, 0)
    assertSameMessages(after, [...first, ...second], 'after produce post restart')
    assert.deepEqual(after.slice(0, first.length).map(m => m.timestamp), before.map(m => m.timestamp))
  })
})
