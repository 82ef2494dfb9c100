'use strict'
// Testing kafkajs retry logic with Klamm's fault injection: the broker runs with its admin
// HTTP port (`--http`), each test sets rules with `POST /faults` (as a user's own test suite
// would), runs kafkajs through them and reads back with kcat (librdkafka), byte for byte and
// offset for offset.
//
// What kafkajs does, and so what is asserted:
// * Produce answered NOT_LEADER_OR_FOLLOWER 3 times (nothing written): kafkajs refreshes
//   its metadata and retries; the send resolves, every message is written once, in order,
//   and the first message cost exactly 4 Produce requests.
// * Produce whose connection is closed before it is handled: kafkajs reconnects and
//   retries; nothing was written by the closed attempt, so even a non-idempotent producer
//   writes every message once.
// * Produce handled but its answer lost (`drop_response`, the connection closes), 3 times
//   in the middle of a 2,000-message stream over 3 partitions: the idempotent producer
//   (`idempotent: true`, `maxInFlightRequests: 1`) resends the batch with the same
//   sequence numbers, the broker answers the duplicate with its first offsets, and the log
//   holds every message exactly once, contiguous, in send order per partition.
// * A consumer group whose coordinator is "loading" for 2 s (FindCoordinator answers
//   COORDINATOR_LOAD_IN_PROGRESS) and whose first JoinGroup has its connection closed.
//   kafkajs 2.2.4 retries COORDINATOR_NOT_AVAILABLE itself (with a retry budget longer than
//   2 s) but bails on COORDINATOR_LOAD_IN_PROGRESS: the consumer crashes with
//   KafkaJSGroupCoordinatorNotFound and does not restart, so the application must start it
//   again (Kafka's Java client retries both). The closed JoinGroup crashes the consumer with
//   KafkaJSConnectionClosedError, from which kafkajs restarts by itself. Either way every
//   message is consumed once; none before the coordinator is found, all within a bound.

const { describe, it, before, after } = require('node:test')
const assert = require('node:assert/strict')
const crypto = require('node:crypto')
const net = require('node:net')
const { startBroker, makeKafka, kcatConsume, kcatProduce, runKcat, sleep } = require('../lib/fixture')

const WAIT_MS = 30000

function freePort () {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

// ----------------------------------------------------------------------------- fault control
/** The broker's /faults and /metrics endpoints. */
class Faults {
  constructor (http) { this.base = `http://${http}` }

  async call (method, path, body) {
    const res = await fetch(this.base + path, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10000)
    })
    return { status: res.status, text: await res.text() }
  }

  /** POST /faults: the rule as the broker lists it (id, matched 0). */
  async add (rule) {
    const { status, text } = await this.call('POST', '/faults', rule)
    assert.equal(status, 201, `POST /faults ${JSON.stringify(rule)}: ${status} ${text}`)
    const view = JSON.parse(text)
    assert.equal(view.matched, 0)
    return view
  }

  async list () {
    const { status, text } = await this.call('GET', '/faults')
    assert.equal(status, 200, `GET /faults: ${status} ${text}`)
    return JSON.parse(text)
  }

  /** The rule as listed now, or undefined once it is used up or expired. */
  async get (id) { return (await this.list()).find(r => r.id === id) }

  async clear () {
    const { status, text } = await this.call('DELETE', '/faults')
    assert.equal(status, 200, `DELETE /faults: ${status} ${text}`)
  }

  /** Sum of a Prometheus series over the label sets that include `labels`. */
  async metric (name, labels = {}) {
    const { text } = await this.call('GET', '/metrics')
    const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
    let total = 0
    for (const line of text.split('\n')) {
      if (line.startsWith('#')) continue
      const sp = line.lastIndexOf(' ')
      const series = line.slice(0, sp)
      const brace = series.indexOf('{')
      const metric = brace < 0 ? series : series.slice(0, brace)
      if (metric !== name) continue
      if (want.every(w => series.includes(w))) total += Number(line.slice(sp + 1))
    }
    return total
  }
}

// ----------------------------------------------------------------------------- data
/** n messages for `partition` (or round-robin over `partitions` when partition is null). */
function msgs (tag, n, partition = 0, partitions = 1) {
  return Array.from({ length: n }, (_, i) => ({
    partition: partition === null ? i % partitions : partition,
    key: i % 4 === 0 ? null : `${tag}-k${i}`,
    value: Buffer.concat([Buffer.from(`${tag}-${i}|`), crypto.randomBytes(i % 97)])
  }))
}

const buf = (x) => (x === null || x === undefined) ? null : Buffer.isBuffer(x) ? x : Buffer.from(String(x))

/** kcat's view of a partition must be exactly `sent`, at offsets 0.. in order. */
function assertLog (got, sent, what) {
  assert.deepEqual(got.map(m => m.offset), sent.map((_, i) => i), `${what}: offsets`)
  got.forEach((m, i) => {
    assert.deepEqual(m.key, buf(sent[i].key), `${what}: key of #${i}`)
    assert.deepEqual(m.value, buf(sent[i].value), `${what}: value of #${i}`)
  })
  assert.equal(new Set(got.map(m => m.value.toString('hex'))).size, got.length, `${what}: duplicate values`)
}

/** kcat until the partition holds `count` messages (then once more, to see extras). */
async function kcatUntil (broker, topic, partition, count) {
  const deadline = Date.now() + WAIT_MS
  let got = kcatConsume(broker, topic, partition)
  while (got.length < count && Date.now() < deadline) {
    await sleep(200)
    got = kcatConsume(broker, topic, partition)
  }
  return got
}

/** The offsets a send result gives each message of `sent` (baseOffset + index per partition). */
function offsetsOf (res, topic, sent) {
  const next = new Map()
  for (const r of res) {
    assert.equal(r.topicName, topic)
    assert.equal(r.errorCode, 0, JSON.stringify(r))
    next.set(r.partition, Number(r.baseOffset))
  }
  return sent.map(m => {
    const o = next.get(m.partition)
    assert.ok(o !== undefined, `no result for partition ${m.partition}: ${JSON.stringify(res)}`)
    next.set(m.partition, o + 1)
    return [m.partition, o]
  })
}

describe('kafkajs through fault injection', () => {
  let broker, faults, kafka, admin
  const clients = []

  before(async () => {
    const http = `127.0.0.1:${await freePort()}`
    broker = await startBroker({ args: ['--http', http] })
    faults = new Faults(http)
    assert.deepEqual(await faults.list(), [])
    kafka = makeKafka(broker)
    admin = kafka.admin()
    await admin.connect()
  })

  after(async () => {
    for (const c of clients) await c.disconnect().catch(() => {})
    await admin?.disconnect().catch(() => {})
    await broker?.destroy()
  })

  const producer = async (kafkaClient, opts) => {
    const p = kafkaClient.producer(opts)
    await p.connect()
    clients.push(p)
    return p
  }

  it('producer retries through NOT_LEADER_OR_FOLLOWER: every message once, in order', { timeout: 60000 }, async () => {
    const topic = 'kjs-f-notleader'
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
    const p = await producer(kafka, { idempotent: false, maxInFlightRequests: 1 })
    const sent = msgs('nl', 100)
    const rule = await faults.add({ api: 'Produce', topic, action: 'error', error: 'NOT_LEADER_OR_FOLLOWER', count: 3 })

    // The first message alone: 3 refused Produce requests, then the retry that writes it.
    const before = await faults.metric('klamm_requests_total', { api: 'Produce' })
    const first = await p.send({ topic, messages: sent.slice(0, 1) })
    assert.deepEqual(offsetsOf(first, topic, sent.slice(0, 1)), [[0, 0]])
    assert.equal(await faults.metric('klamm_requests_total', { api: 'Produce' }) - before, 4,
      '3 refused Produce requests + 1 write')
    assert.equal(await faults.get(rule.id), undefined, 'a counted rule is gone once used up')

    const rest = await p.send({ topic, messages: sent.slice(1) })
    assert.deepEqual(offsetsOf(rest, topic, sent.slice(1)), sent.slice(1).map((_, i) => [0, i + 1]))
    assertLog(await kcatUntil(broker, topic, 0, sent.length), sent, topic)
  })

  it('producer retries through a closed connection: nothing written twice', { timeout: 60000 }, async () => {
    const topic = 'kjs-f-close'
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
    const p = await producer(kafka, { idempotent: false, maxInFlightRequests: 1 })
    const sent = msgs('close', 60)
    const a = await p.send({ topic, messages: sent.slice(0, 20) })
    const accepted = await faults.metric('klamm_connections_accepted_total')
    // The next two Produce requests: the connection closes before anything is written.
    const rule = await faults.add({ api: 'Produce', topic, action: 'close', count: 2 })
    const b = await p.send({ topic, messages: sent.slice(20, 40) })
    assert.equal(await faults.get(rule.id), undefined, 'both closes happened')
    assert.ok(await faults.metric('klamm_connections_accepted_total') - accepted >= 2, 'kafkajs reconnected')
    const c = await p.send({ topic, messages: sent.slice(40) })
    const offs = [...offsetsOf(a, topic, sent.slice(0, 20)), ...offsetsOf(b, topic, sent.slice(20, 40)),
      ...offsetsOf(c, topic, sent.slice(40))]
    assert.deepEqual(offs, sent.map((_, i) => [0, i]))
    assertLog(await kcatUntil(broker, topic, 0, sent.length), sent, topic)
  })

  it('idempotent producer through lost acks mid-stream: no duplicates, no gaps, order kept', { timeout: 90000 }, async () => {
    const topic = 'kjs-f-drop'
    const partitions = 3
    await admin.createTopics({ topics: [{ topic, numPartitions: partitions }] })
    // A retry budget that outlasts 3 lost acks in a row.
    const k = makeKafka(broker, { retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 1000 } })
    const p = await producer(k, { idempotent: true, maxInFlightRequests: 1 })
    const sent = msgs('drop', 2000, null, partitions)
    const accepted = await faults.metric('klamm_connections_accepted_total')
    const delivered = []
    let rule
    for (let i = 0; i < sent.length; i += 50) {
      if (i === 600) {
        // Mid-stream: the next 3 Produce requests are written, then their connection closes.
        rule = await faults.add({ api: 'Produce', topic, action: 'drop_response', count: 3 })
      }
      const batch = sent.slice(i, i + 50)
      delivered.push(...offsetsOf(await p.send({ topic, messages: batch }), topic, batch))
    }
    assert.equal(await faults.get(rule.id), undefined, 'all 3 lost acks happened')
    assert.ok(await faults.metric('klamm_connections_accepted_total') - accepted >= 3, 'kafkajs reconnected')
    for (let part = 0; part < partitions; part++) {
      const inP = sent.filter(m => m.partition === part)
      // What kafkajs was told: contiguous from 0, in send order.
      assert.deepEqual(delivered.filter(([pp]) => pp === part).map(([, o]) => o), inP.map((_, i) => i),
        `partition ${part}: offsets kafkajs was given`)
      // What the log holds: exactly those messages, once each.
      assertLog(await kcatUntil(broker, topic, part, inP.length), inP, `${topic}[${part}]`)
    }
  })

  /**
   * A kafkajs group consumer of `topic` run the way an application would: when kafkajs
   * crashes without restarting itself (CRASH event with restart: false), the application
   * makes a new consumer of the group after 200 ms. Resolves once `count` messages arrived.
   */
  async function consumeWithAppRestart (k, groupId, topic, count, t0) {
    const got = []
    const crashes = []
    let firstAt = null
    let consumer = null
    let restarting = null
    const startOne = async () => {
      const c = k.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500, maxWaitTimeInMs: 100 })
      clients.push(c)
      consumer = c
      c.on(c.events.CRASH, ({ payload }) => {
        crashes.push({ at: Date.now() - t0, name: payload.error.name, restart: payload.restart })
        if (!payload.restart) restarting = sleep(200).then(startOne)
      })
      await c.connect()
      await c.subscribe({ topic, fromBeginning: true })
      await c.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          if (firstAt === null) firstAt = Date.now() - t0
          got.push([partition, Number(message.offset), message.value.toString()])
        }
      })
    }
    await startOne()
    const deadline = Date.now() + WAIT_MS
    while (got.length < count && Date.now() < deadline) await sleep(50)
    const doneAt = Date.now() - t0
    await sleep(500) // anything extra shows up here
    await restarting
    await consumer.disconnect()
    return { got, crashes, firstAt, doneAt }
  }

  // kafkajs 2.2.4 retries FindCoordinator's COORDINATOR_NOT_AVAILABLE itself, but bails on
  // COORDINATOR_LOAD_IN_PROGRESS: the consumer crashes with KafkaJSGroupCoordinatorNotFound
  // (non-retriable, so no automatic restart) and the application has to start it again.
  // (Kafka's Java client retries both.)
  for (const [error, kafkajsRetries] of [['COORDINATOR_NOT_AVAILABLE', true], ['COORDINATOR_LOAD_IN_PROGRESS', false]]) {
    it(`consumer group joins through FindCoordinator ${error} for 2 s and a closed JoinGroup`, { timeout: 60000 }, async (t) => {
      const topic = `kjs-f-group-${error.toLowerCase().replace(/_/g, '-')}`
      await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
      const values = Array.from({ length: 50 }, (_, i) => `group-${i}-${crypto.randomBytes(8).toString('hex')}`)
      kcatProduce(broker, topic, 0, Buffer.from(values.join('\n') + '\n'))

      // kafkajs retries with the client's retry settings: they must outlast the 2 s window.
      const k = makeKafka(broker, { retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 1000 } })
      const t0 = Date.now()
      const rule = await faults.add({ api: 'FindCoordinator', action: 'error', error, duration_ms: 2000 })
      await faults.add({ api: 'JoinGroup', action: 'close', count: 1 })
      let seen
      const snap = sleep(1000).then(async () => { seen = await faults.get(rule.id) })
      const { got, crashes, firstAt, doneAt } = await consumeWithAppRestart(k, `g-${topic}`, topic, values.length, t0)
      await snap
      t.diagnostic(`crashes: ${JSON.stringify(crashes)}; first message after ${firstAt} ms, all after ${doneAt} ms`)

      assert.ok(seen && seen.matched >= 1, `FindCoordinator rule after 1 s: ${JSON.stringify(seen)}`)
      // The closed JoinGroup happened (its rule is used up) and the 2 s window expired.
      assert.deepEqual(await faults.list(), [])
      assert.deepEqual(got, values.map((v, i) => [0, i, v]))
      assert.ok(firstAt !== null && firstAt >= 2000, `first message after ${firstAt} ms: before the coordinator was found`)
      assert.ok(doneAt < 20000, `all messages after ${doneAt} ms`)
      // The closed JoinGroup: kafkajs' consumer crashes and restarts itself, once.
      assert.deepEqual(crashes.filter(c => c.restart).map(c => c.name), ['KafkaJSConnectionClosedError'],
        JSON.stringify(crashes))
      const fatal = crashes.filter(c => !c.restart)
      if (kafkajsRetries) {
        assert.deepEqual(fatal, [], `kafkajs gave up: ${JSON.stringify(crashes)}`)
      } else {
        // Each refused FindCoordinator: a crash kafkajs does not restart from.
        assert.ok(fatal.length >= 1, `kafkajs did not give up: ${JSON.stringify(crashes)}`)
        assert.deepEqual([...new Set(fatal.map(c => c.name))], ['KafkaJSGroupCoordinatorNotFound'])
      }
    })
  }

  /** kcat -J of one partition at `isolation` until it holds `count` messages: [[offset, key, value]]. */
  async function kcatIsolated (topic, isolation, count) {
    const read = () => runKcat(broker, ['-C', '-t', topic, '-p', '0', '-o', 'beginning', '-e', '-J',
      '-X', `isolation.level=${isolation}`]).stdout.toString().split('\n').filter(l => l.trim())
      .map(l => JSON.parse(l)).map(m => [m.offset, m.key, m.payload])
    const deadline = Date.now() + WAIT_MS
    let got = read()
    while (got.length < count && Date.now() < deadline) {
      await sleep(100)
      got = read()
    }
    return got
  }

  it('transactional producer: EndTxn CONCURRENT_TRANSACTIONS is not retried by kafkajs', { timeout: 60000 }, async () => {
    // kafkajs 2.2.4 sends EndTxn once: commit() rejects with the protocol error, and the
    // transaction cannot be used again ("Cannot continue to use transaction once ended").
    // (librdkafka, the Java client, kafka-python and aiokafka retry EndTxn.) The way out is a
    // new producer with the same transactionalId: its InitProducerId aborts the open
    // transaction, and the application sends the records again in a new one.
    const topic = 'kjs-f-endtxn'
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
    const sent = Array.from({ length: 5 }, (_, i) => ({ partition: 0, key: `k${i}`, value: `endtxn-${i}-${crypto.randomBytes(6).toString('hex')}` }))
    const opts = { transactionalId: 'kjs-f-endtxn', idempotent: true, maxInFlightRequests: 1 }
    const p1 = await producer(kafka, opts)
    const txn = await p1.transaction()
    await txn.send({ topic, messages: sent })
    const rule = await faults.add({ api: 'EndTxn', action: 'error', error: 'CONCURRENT_TRANSACTIONS', count: 1 })
    await assert.rejects(txn.commit(), (e) => e.name === 'KafkaJSProtocolError' && e.type === 'CONCURRENT_TRANSACTIONS')
    assert.equal(await faults.get(rule.id), undefined, 'one EndTxn was refused')
    await assert.rejects(txn.commit(), (e) => e.name === 'KafkaJSNonRetriableError')
    await p1.disconnect()

    const p2 = await producer(kafka, opts)
    const txn2 = await p2.transaction()
    const res = await txn2.send({ topic, messages: sent })
    await txn2.commit()
    // The first transaction's records (0-4) and its abort marker (5), then the resent ones.
    assert.deepEqual(offsetsOf(res, topic, sent), sent.map((_, i) => [0, 6 + i]))
    const want = sent.map((m, i) => [6 + i, m.key, m.value])
    assert.deepEqual(await kcatIsolated(topic, 'read_committed', 5), want)
    assert.deepEqual(await kcatIsolated(topic, 'read_uncommitted', 10),
      [...sent.map((m, i) => [i, m.key, m.value]), ...want])
  })
})
