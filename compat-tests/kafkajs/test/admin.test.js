'use strict'
// kafkajs admin client against Klamm.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { startBroker, makeKafka, kcatConsume, kcatMetadata, sleep } = require('../lib/fixture')

const DEFAULT_PARTITIONS = 2 // broker's --num-partitions

/** Kafka error types carried by a kafkajs error (protocol, aggregate or retries-exceeded). */
function errorTypes (e) {
  const out = []
  for (const x of [e, e.cause, ...(e.errors || [])]) if (x && x.type) out.push(x.type)
  return out
}

describe('kafkajs admin', () => {
  let broker, kafka, admin, producer

  before(async () => {
    broker = await startBroker({ args: ['--num-partitions', String(DEFAULT_PARTITIONS)] })
    kafka = makeKafka(broker)
    admin = kafka.admin()
    await admin.connect()
    producer = kafka.producer({ allowAutoTopicCreation: false })
    await producer.connect()
  })

  after(async () => {
    await admin?.disconnect().catch(() => {})
    await producer?.disconnect().catch(() => {})
    await broker?.destroy()
  })

  it('describeCluster reports the single node as controller', async () => {
    const c = await admin.describeCluster()
    assert.deepEqual(c.brokers, [{ nodeId: 1, host: '127.0.0.1', port: broker.port }])
    assert.equal(c.controller, 1)
    assert.equal(typeof c.clusterId, 'string')
    assert.ok(c.clusterId.length > 0, 'clusterId should not be empty')
  })

  it('createTopics with partitions, then fetchTopicMetadata and listTopics', async () => {
    const created = await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic: 'admin-a', numPartitions: 3 }, { topic: 'admin-b', numPartitions: 1 }]
    })
    assert.equal(created, true)
    const md = await admin.fetchTopicMetadata({ topics: ['admin-a', 'admin-b'] })
    const byName = Object.fromEntries(md.topics.map(t => [t.name, t]))
    assert.deepEqual(Object.keys(byName).sort(), ['admin-a', 'admin-b'])
    const parts = byName['admin-a'].partitions.sort((a, b) => a.partitionId - b.partitionId)
    assert.deepEqual(parts.map(p => p.partitionId), [0, 1, 2])
    for (const p of parts) {
      assert.equal(p.partitionErrorCode, 0, `partition ${p.partitionId} error`)
      assert.equal(p.leader, 1)
      assert.deepEqual(p.replicas, [1])
      assert.deepEqual(p.isr, [1])
    }
    assert.equal(byName['admin-b'].partitions.length, 1)
    const topics = await admin.listTopics()
    assert.ok(topics.includes('admin-a') && topics.includes('admin-b'), `listTopics: ${topics}`)
    // kcat sees the same layout.
    const kmd = kcatMetadata(broker, 'admin-a')
    assert.equal(kmd.topics[0].partitions.length, 3)
  })

  it('createTopics of an existing topic resolves to false and keeps the topic', async () => {
    await admin.createTopics({ topics: [{ topic: 'admin-dup', numPartitions: 2 }] })
    const again = await admin.createTopics({ topics: [{ topic: 'admin-dup', numPartitions: 5 }] })
    assert.equal(again, false)
    const md = await admin.fetchTopicMetadata({ topics: ['admin-dup'] })
    assert.equal(md.topics[0].partitions.length, 2)
  })

  it('createTopics without numPartitions uses the broker default (num.partitions)', async () => {
    assert.equal(await admin.createTopics({ topics: [{ topic: 'admin-default' }] }), true)
    const md = await admin.fetchTopicMetadata({ topics: ['admin-default'] })
    assert.equal(md.topics[0].partitions.length, DEFAULT_PARTITIONS)
  })

  it('createTopics with replicationFactor 3 on one node fails with INVALID_REPLICATION_FACTOR', async () => {
    await assert.rejects(
      admin.createTopics({ topics: [{ topic: 'admin-rf3', numPartitions: 1, replicationFactor: 3 }] }),
      (e) => {
        assert.ok(errorTypes(e).includes('INVALID_REPLICATION_FACTOR'), `error types: ${errorTypes(e)} (${e.message})`)
        return true
      })
    const topics = await admin.listTopics()
    assert.ok(!topics.includes('admin-rf3'), 'topic must not be created')
  })

  it('createTopics with validateOnly does not create the topic', async () => {
    // waitForLeaders would send a Metadata request that may auto-create the topic.
    await admin.createTopics({ validateOnly: true, waitForLeaders: false, topics: [{ topic: 'admin-validate', numPartitions: 2 }] })
    const topics = await admin.listTopics()
    assert.ok(!topics.includes('admin-validate'), `validateOnly created the topic: ${topics}`)
    assert.ok(!kcatMetadata(broker).topics.some(t => t.topic === 'admin-validate'))
  })

  it('createPartitions grows a topic and the new partitions take writes', async () => {
    await admin.createTopics({ topics: [{ topic: 'admin-grow', numPartitions: 2 }] })
    await admin.createPartitions({ topicPartitions: [{ topic: 'admin-grow', count: 5 }] })
    const md = await admin.fetchTopicMetadata({ topics: ['admin-grow'] })
    const ids = md.topics[0].partitions.map(p => p.partitionId).sort()
    assert.deepEqual(ids, [0, 1, 2, 3, 4])
    for (const p of md.topics[0].partitions) assert.equal(p.leader, 1)
    const res = await producer.send({ topic: 'admin-grow', messages: [{ partition: 4, value: 'in-new-partition' }] })
    assert.equal(res[0].partition, 4)
    assert.equal(res[0].errorCode, 0)
    const got = kcatConsume(broker, 'admin-grow', 4)
    assert.deepEqual(got.map(m => m.value.toString()), ['in-new-partition'])
    // Shrinking is not allowed.
    await assert.rejects(admin.createPartitions({ topicPartitions: [{ topic: 'admin-grow', count: 3 }] }),
      (e) => {
        assert.ok(errorTypes(e).includes('INVALID_PARTITIONS'), `error types: ${errorTypes(e)} (${e.message})`)
        return true
      })
    const after = await admin.fetchTopicMetadata({ topics: ['admin-grow'] })
    assert.equal(after.topics[0].partitions.length, 5)
  })

  it('fetchTopicOffsets reports low and high watermarks per partition', async () => {
    await admin.createTopics({ topics: [{ topic: 'admin-offsets', numPartitions: 3 }] })
    const counts = [3, 0, 7]
    for (let p = 0; p < counts.length; p++) {
      if (counts[p] === 0) continue
      await producer.send({
        topic: 'admin-offsets',
        messages: Array.from({ length: counts[p] }, (_, i) => ({ partition: p, value: `p${p}-${i}` }))
      })
    }
    const offsets = (await admin.fetchTopicOffsets('admin-offsets')).sort((a, b) => a.partition - b.partition)
    assert.deepEqual(offsets.map(o => ({ partition: o.partition, low: o.low, high: o.high, offset: o.offset })),
      counts.map((c, p) => ({ partition: p, low: '0', high: String(c), offset: String(c) })))
  })

  it('fetchTopicOffsetsByTimestamp finds the first offset at or after a timestamp', async () => {
    await admin.createTopics({ topics: [{ topic: 'admin-ts', numPartitions: 2 }] })
    const base = Date.now() - 60000
    const ts = [0, 1000, 2000, 3000, 4000].map(d => String(base + d))
    await producer.send({
      topic: 'admin-ts',
      messages: ts.map((t, i) => ({ partition: 0, value: `m${i}`, timestamp: t }))
    })
    const at = async (t) => Object.fromEntries(
      (await admin.fetchTopicOffsetsByTimestamp('admin-ts', t)).map(o => [o.partition, o.offset]))
    assert.deepEqual(await at(base - 1), { 0: '0', 1: '0' })
    assert.deepEqual(await at(base + 1000), { 0: '1', 1: '0' })
    assert.deepEqual(await at(base + 2500), { 0: '3', 1: '0' })
    // Past the last timestamp kafkajs falls back to the high watermark.
    assert.deepEqual(await at(base + 10000), { 0: '5', 1: '0' })
    // The stored timestamps are the ones kafkajs sent.
    assert.deepEqual(kcatConsume(broker, 'admin-ts', 0).map(m => m.timestamp), ts)
  })

  it('deleteTopics removes the topic and its data', async () => {
    await admin.createTopics({ topics: [{ topic: 'admin-del', numPartitions: 2 }] })
    await producer.send({ topic: 'admin-del', messages: [{ partition: 0, value: 'old-1' }, { partition: 0, value: 'old-2' }] })
    await admin.deleteTopics({ topics: ['admin-del'], timeout: 5000 })
    let topics = []
    for (let i = 0; i < 20; i++) { // deletion may be asynchronous
      topics = await admin.listTopics()
      if (!topics.includes('admin-del')) break
      await sleep(250)
    }
    assert.ok(!topics.includes('admin-del'), `listTopics still has admin-del: ${topics}`)
    const kmd = kcatMetadata(broker)
    assert.ok(!kmd.topics.some(t => t.topic === 'admin-del'), 'kcat -L still lists admin-del')
    // A new topic of the same name starts empty.
    assert.equal(await admin.createTopics({ topics: [{ topic: 'admin-del', numPartitions: 1 }] }), true)
    const offsets = await admin.fetchTopicOffsets('admin-del')
    assert.deepEqual(offsets.map(o => [o.partition, o.low, o.high]), [[0, '0', '0']])
    assert.deepEqual(kcatConsume(broker, 'admin-del', 0), [])
  })

  it('deleteTopics of an unknown topic fails with UNKNOWN_TOPIC_OR_PARTITION', async () => {
    await assert.rejects(admin.deleteTopics({ topics: ['admin-never-created'], timeout: 5000 }),
      (e) => {
        const what = `${errorTypes(e)} ${e.message}`
        assert.match(what, /UNKNOWN_TOPIC_OR_PARTITION|does not host this topic-partition/)
        return true
      })
  })
})
