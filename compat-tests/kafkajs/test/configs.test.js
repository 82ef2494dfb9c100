'use strict'
// kafkajs topic and broker configs against Klamm: admin.describeConfigs (DescribeConfigs
// v2, synonyms), admin.alterConfigs (the legacy whole-set AlterConfigs), createTopics with
// configEntries, Kafka's errors (INVALID_CONFIG, UNKNOWN_TOPIC_OR_PARTITION,
// INVALID_REQUEST for the read-only broker resource), a topic's max.message.bytes
// limiting what the producer may send, and configs surviving a broker restart.
//
// Run alone:  KLAMM_BIN=... node --test --test-reporter=spec compat-tests/kafkajs/configs.test.js

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { ConfigResourceTypes, ConfigSource } = require('kafkajs')
const { startBroker, makeKafka, kcatConsume } = require('../lib/fixture')

const TOPIC = ConfigResourceTypes.TOPIC
const BROKER = ConfigResourceTypes.BROKER

// Kafka 4.x defaults of a topic that sets nothing, on a broker with no overrides.
const KAFKA_DEFAULTS = {
  'cleanup.policy': 'delete',
  'compression.type': 'producer',
  'delete.retention.ms': '86400000',
  'max.message.bytes': '1048588',
  'message.timestamp.type': 'CreateTime',
  'min.cleanable.dirty.ratio': '0.5',
  'min.insync.replicas': '1',
  'retention.bytes': '-1',
  'retention.ms': '604800000',
  'segment.bytes': '1073741824',
  'segment.ms': '604800000',
  'unclean.leader.election.enable': 'false'
}

/** Kafka error types carried by a kafkajs error (protocol, aggregate or retries-exceeded). */
function errorTypes (e) {
  const out = []
  for (const x of [e, e.cause, e.originalError, ...(e.errors || [])]) if (x && x.type) out.push(x.type)
  return out
}

async function rejectsWith (promise, type) {
  await assert.rejects(promise, (e) => {
    assert.ok(errorTypes(e).includes(type), `expected ${type}, got ${errorTypes(e)} (${e.message})`)
    return true
  })
}

describe('kafkajs configs', () => {
  let broker, kafka, admin

  before(async () => {
    broker = await startBroker()
    kafka = makeKafka(broker)
    admin = kafka.admin()
    await admin.connect()
  })

  after(async () => {
    await admin?.disconnect().catch(() => {})
    await broker?.destroy()
  })

  /** configName -> entry of one topic (all configs, or configNames). */
  async function topicConfigs (topic, { configNames, includeSynonyms = false } = {}) {
    const res = await admin.describeConfigs({
      includeSynonyms,
      resources: [{ type: TOPIC, name: topic, configNames }]
    })
    assert.equal(res.resources.length, 1)
    const [r] = res.resources
    assert.equal(r.errorCode, 0)
    assert.equal(r.resourceName, topic)
    assert.equal(r.resourceType, TOPIC)
    return Object.fromEntries(r.configEntries.map(e => [e.configName, e]))
  }

  /** {name: value} of what the topic sets itself. */
  async function overrides (topic) {
    const all = await topicConfigs(topic)
    return Object.fromEntries(Object.values(all)
      .filter(e => e.configSource === ConfigSource.TOPIC_CONFIG)
      .map(e => [e.configName, e.configValue]))
  }

  async function listed (topic) {
    return (await admin.listTopics()).includes(topic)
  }

  it('describeConfigs of a topic that sets nothing: Kafka defaults, DEFAULT_CONFIG, not read-only', async () => {
    await admin.createTopics({ topics: [{ topic: 'cfg-defaults', numPartitions: 1 }] })
    const all = await topicConfigs('cfg-defaults')
    for (const [name, value] of Object.entries(KAFKA_DEFAULTS)) {
      assert.ok(all[name], `${name} missing from describeConfigs`)
      assert.equal(all[name].configValue, value, name)
    }
    for (const e of Object.values(all)) {
      assert.equal(e.configSource, ConfigSource.DEFAULT_CONFIG, e.configName)
      assert.equal(e.isDefault, true, e.configName)
      assert.equal(e.readOnly, false, e.configName)
      assert.equal(e.isSensitive, false, e.configName)
    }
    // configNames limits the answer to those configs; synonyms only when asked for.
    const some = await topicConfigs('cfg-defaults', { configNames: ['cleanup.policy', 'retention.bytes'] })
    assert.deepEqual(Object.keys(some).sort(), ['cleanup.policy', 'retention.bytes'])
    assert.deepEqual(some['cleanup.policy'].configSynonyms, [])
    const syn = await topicConfigs('cfg-defaults', { configNames: ['cleanup.policy'], includeSynonyms: true })
    assert.deepEqual(syn['cleanup.policy'].configSynonyms, [
      { configName: 'log.cleanup.policy', configValue: 'delete', configSource: ConfigSource.DEFAULT_CONFIG }
    ])
  })

  it('createTopics with configEntries: values reported as TOPIC_CONFIG with the broker default behind them', async () => {
    const created = await admin.createTopics({
      topics: [{
        topic: 'cfg-created',
        numPartitions: 1,
        configEntries: [
          { name: 'cleanup.policy', value: 'compact' },
          { name: 'retention.ms', value: '3600000' },
          { name: 'max.message.bytes', value: '65536' }
        ]
      }]
    })
    assert.equal(created, true)
    assert.deepEqual(await overrides('cfg-created'),
      { 'cleanup.policy': 'compact', 'retention.ms': '3600000', 'max.message.bytes': '65536' })
    const c = await topicConfigs('cfg-created', { configNames: ['max.message.bytes', 'retention.bytes'], includeSynonyms: true })
    assert.equal(c['max.message.bytes'].isDefault, false)
    assert.equal(c['max.message.bytes'].readOnly, false)
    assert.deepEqual(c['max.message.bytes'].configSynonyms, [
      { configName: 'max.message.bytes', configValue: '65536', configSource: ConfigSource.TOPIC_CONFIG },
      { configName: 'message.max.bytes', configValue: '1048588', configSource: ConfigSource.DEFAULT_CONFIG }
    ])
    assert.equal(c['retention.bytes'].configValue, '-1')
    assert.equal(c['retention.bytes'].isDefault, true)
  })

  it('createTopics with an unknown config name or a bad value fails with INVALID_CONFIG', async () => {
    const bad = [
      [{ name: 'no.such.config', value: '1' }],
      [{ name: 'retention.ms', value: '-2' }],
      [{ name: 'retention.ms', value: 'abc' }],
      [{ name: 'cleanup.policy', value: 'shred' }],
      [{ name: 'retention.ms', value: '1000' }, { name: 'compression.type', value: 'brotli' }]
    ]
    for (const [i, configEntries] of bad.entries()) {
      const topic = `cfg-bad-${i}`
      for (const validateOnly of [true, false]) {
        await rejectsWith(admin.createTopics({
          validateOnly,
          waitForLeaders: false,
          topics: [{ topic, numPartitions: 1, configEntries }]
        }), 'INVALID_CONFIG')
      }
      assert.equal(await listed(topic), false, `${topic} must not be created`)
    }
  })

  it('alterConfigs replaces the whole set; validateOnly changes nothing', async () => {
    await admin.createTopics({
      topics: [{
        topic: 'cfg-alter',
        numPartitions: 1,
        configEntries: [{ name: 'retention.ms', value: '1000' }, { name: 'cleanup.policy', value: 'compact' }]
      }]
    })
    const res = await admin.alterConfigs({
      resources: [{
        type: TOPIC,
        name: 'cfg-alter',
        configEntries: [{ name: 'retention.bytes', value: '1048576' }, { name: 'cleanup.policy', value: 'compact,delete' }]
      }]
    })
    assert.deepEqual(res.resources.map(r => [r.errorCode, r.resourceType, r.resourceName]), [[0, TOPIC, 'cfg-alter']])
    // retention.ms was left out of the request: back to Kafka's default.
    assert.deepEqual(await overrides('cfg-alter'), { 'retention.bytes': '1048576', 'cleanup.policy': 'compact,delete' })
    const c = await topicConfigs('cfg-alter', { configNames: ['retention.ms'] })
    assert.equal(c['retention.ms'].configValue, '604800000')
    assert.equal(c['retention.ms'].configSource, ConfigSource.DEFAULT_CONFIG)

    const v = await admin.alterConfigs({
      validateOnly: true,
      resources: [{ type: TOPIC, name: 'cfg-alter', configEntries: [{ name: 'segment.ms', value: '60000' }] }]
    })
    assert.equal(v.resources[0].errorCode, 0)
    assert.deepEqual(await overrides('cfg-alter'), { 'retention.bytes': '1048576', 'cleanup.policy': 'compact,delete' })
  })

  it('alterConfigs with an unknown config name or a bad value fails with INVALID_CONFIG and changes nothing', async () => {
    await admin.createTopics({
      topics: [{ topic: 'cfg-alter-bad', numPartitions: 1, configEntries: [{ name: 'retention.ms', value: '1000' }] }]
    })
    const bad = [
      [{ name: 'no.such.config', value: '1' }],
      [{ name: 'retention.ms', value: '-2' }],
      [{ name: 'retention.ms', value: 'abc' }],
      [{ name: 'segment.ms', value: '60000' }, { name: 'max.message.bytes', value: '99999999999' }]
    ]
    for (const configEntries of bad) {
      for (const validateOnly of [true, false]) {
        await rejectsWith(admin.alterConfigs({
          validateOnly,
          resources: [{ type: TOPIC, name: 'cfg-alter-bad', configEntries }]
        }), 'INVALID_CONFIG')
      }
    }
    assert.deepEqual(await overrides('cfg-alter-bad'), { 'retention.ms': '1000' })
  })

  it('unknown topics: UNKNOWN_TOPIC_OR_PARTITION for describeConfigs and alterConfigs', async () => {
    await rejectsWith(admin.describeConfigs({ resources: [{ type: TOPIC, name: 'cfg-missing' }] }),
      'UNKNOWN_TOPIC_OR_PARTITION')
    await rejectsWith(admin.alterConfigs({
      resources: [{ type: TOPIC, name: 'cfg-missing', configEntries: [{ name: 'retention.ms', value: '1000' }] }]
    }), 'UNKNOWN_TOPIC_OR_PARTITION')
    assert.equal(await listed('cfg-missing'), false)
  })

  it('broker resource: described read-only, altering it fails with INVALID_REQUEST', async () => {
    const res = await admin.describeConfigs({
      resources: [{ type: BROKER, name: '1', configNames: ['node.id', 'broker.id', 'message.max.bytes'] }]
    })
    const [r] = res.resources
    assert.equal(r.errorCode, 0)
    const byName = Object.fromEntries(r.configEntries.map(e => [e.configName, e]))
    assert.deepEqual(Object.keys(byName).sort(), ['broker.id', 'message.max.bytes', 'node.id'])
    assert.equal(byName['node.id'].configValue, '1')
    assert.equal(byName['node.id'].readOnly, true)
    assert.equal(byName['broker.id'].readOnly, true)
    assert.equal(byName['message.max.bytes'].configValue, '1048588')
    assert.equal(byName['message.max.bytes'].configSource, ConfigSource.DEFAULT_CONFIG)
    await rejectsWith(admin.alterConfigs({
      resources: [{ type: BROKER, name: '1', configEntries: [{ name: 'node.id', value: '2' }] }]
    }), 'INVALID_REQUEST')
  })

  it('a topic\'s max.message.bytes rejects larger batches with MESSAGE_TOO_LARGE', async () => {
    await admin.createTopics({ topics: [{ topic: 'cfg-mmb', numPartitions: 1 }] })
    await admin.alterConfigs({
      resources: [{ type: TOPIC, name: 'cfg-mmb', configEntries: [{ name: 'max.message.bytes', value: '1024' }] }]
    })
    const producer = kafka.producer({ idempotent: false, allowAutoTopicCreation: false, retry: { retries: 0 } })
    await producer.connect()
    try {
      await rejectsWith(producer.send({ topic: 'cfg-mmb', messages: [{ partition: 0, value: Buffer.alloc(4000, 66) }] }),
        'MESSAGE_TOO_LARGE')
      const ok = await producer.send({ topic: 'cfg-mmb', messages: [{ partition: 0, value: 'small' }] })
      assert.equal(ok[0].errorCode, 0)
      assert.equal(ok[0].baseOffset, '0')
      // Without the topic's limit (alterConfigs with an empty set) the large record passes.
      await admin.alterConfigs({ resources: [{ type: TOPIC, name: 'cfg-mmb', configEntries: [] }] })
      const big = await producer.send({ topic: 'cfg-mmb', messages: [{ partition: 0, value: Buffer.alloc(4000, 66) }] })
      assert.equal(big[0].baseOffset, '1')
    } finally {
      await producer.disconnect()
    }
    const got = kcatConsume(broker, 'cfg-mmb', 0)
    assert.deepEqual(got.map(m => [m.offset, m.value.length]), [[0, 5], [1, 4000]])
  })

  it('configs survive a broker restart', async () => {
    await admin.createTopics({
      topics: [{ topic: 'cfg-restart', numPartitions: 1, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }]
    })
    await admin.alterConfigs({
      resources: [{
        type: TOPIC,
        name: 'cfg-restart',
        configEntries: [{ name: 'retention.ms', value: '86400000' }, { name: 'max.message.bytes', value: '2048' }]
      }]
    })
    const before = await overrides('cfg-restart')
    assert.deepEqual(before, { 'retention.ms': '86400000', 'max.message.bytes': '2048' })
    await admin.disconnect()
    await broker.stop('SIGTERM')
    await broker.start()
    admin = makeKafka(broker).admin()
    await admin.connect()
    assert.deepEqual(await overrides('cfg-restart'), before)
  })
})
