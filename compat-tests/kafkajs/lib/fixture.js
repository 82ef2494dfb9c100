'use strict'
// Shared fixture for the kafkajs suite: a Klamm broker process, a kafkajs client factory,
// optional compression codecs, kcat read-back (byte-exact) and an ApiVersions probe.

const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'
const { Kafka, logLevel, CompressionTypes, CompressionCodecs } = require('kafkajs')

const KLAMM_BIN = process.env.KLAMM_BIN || '/root/.cache/klamm/target/release/klamm'
const KCAT = process.env.KCAT || 'kcat'
const READY_TIMEOUT_MS = 20000

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

/** One Klamm process; stop() and start() again keep the port and the data dir. */
class Broker {
  constructor ({ args = [], name = 'broker' } = {}) {
    this.args = args
    this.name = name
    this.proc = null
    this.log = ''
    this.workdir = fs.mkdtempSync(path.join(os.tmpdir(), 'klamm-kafkajs-'))
    this.dataDir = path.join(this.workdir, 'data')
  }

  get bootstrap () { return `127.0.0.1:${this.port}` }

  async start () {
    if (!fs.existsSync(KLAMM_BIN)) throw new Error(`klamm binary not found at ${KLAMM_BIN} (set KLAMM_BIN)`)
    if (!this.port) this.port = await freePort()
    const env = {}
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('KLAMM_')) env[k] = v
    env.NO_COLOR = '1'
    const argv = ['--listen', this.bootstrap, '--data-dir', this.dataDir, ...this.args]
    this.log += `\n===== start: ${KLAMM_BIN} ${argv.join(' ')}\n`
    const proc = spawn(KLAMM_BIN, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] })
    this.proc = proc
    const startAt = this.log.length
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL')
        reject(new Error(`broker not ready within ${READY_TIMEOUT_MS} ms:\n${this.logTail()}`))
      }, READY_TIMEOUT_MS)
      const onData = (chunk) => {
        this.log += chunk.toString()
        if (this.log.slice(startAt).includes('klamm ready on')) {
          clearTimeout(timer)
          resolve()
        }
      }
      proc.stdout.on('data', onData)
      proc.stderr.on('data', onData)
      proc.once('exit', (code, sig) => {
        clearTimeout(timer)
        reject(new Error(`broker exited (code ${code}, signal ${sig}) before ready:\n${this.logTail()}`))
      })
    })
    proc.on('exit', (code, sig) => { this.log += `\n===== exited: code ${code} signal ${sig}\n` })
  }

  alive () { return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null }

  /** Stops the process by PID with `signal`; resolves to { code, signal }. */
  async stop (signal = 'SIGTERM', timeoutMs = 15000) {
    const proc = this.proc
    if (!proc) return null
    this.proc = null
    if (proc.exitCode !== null || proc.signalCode !== null) return { code: proc.exitCode, signal: proc.signalCode }
    return new Promise((resolve) => {
      const timer = setTimeout(() => { proc.kill('SIGKILL') }, timeoutMs)
      proc.once('exit', (code, sig) => { clearTimeout(timer); resolve({ code, signal: sig }) })
      process.kill(proc.pid, signal)
    })
  }

  async destroy () {
    await this.stop('SIGTERM').catch(() => {})
    if (!process.env.KEEP_DATA) fs.rmSync(this.workdir, { recursive: true, force: true })
  }

  logTail (n = 40) { return this.log.split('\n').slice(-n).map(l => '    | ' + l).join('\n') }
}

/**
 * Starts a broker.  `opts.listeners` (e.g. ['PLAINTEXT', 'SASL_PLAINTEXT']) gives it Kafka's
 * `--listeners`, one free port each (which replaces `--listen`); the first is the one the
 * fixture waits for and `bootstrap` (so kcat) uses, and `broker.ports[protocol]` names each.
 */
async function startBroker (opts = {}) {
  const b = new Broker(opts)
  if (opts.listeners) {
    b.ports = {}
    for (const p of opts.listeners) {
      let port
      do port = await freePort(); while (Object.values(b.ports).includes(port))
      b.ports[p] = port
    }
    b.args = ['--listeners', opts.listeners.map(p => `${p}://127.0.0.1:${b.ports[p]}`).join(','), ...b.args]
    b.port = b.ports[opts.listeners[0]]
  }
  try {
    await b.start()
  } catch (e) {
    await b.destroy()
    throw e
  }
  return b
}

function kafkajsLogLevel () {
  const v = (process.env.KAFKAJS_LOG || 'NOTHING').toUpperCase()
  return logLevel[v] !== undefined ? logLevel[v] : logLevel.NOTHING
}

function makeKafka (broker, extra = {}) {
  return new Kafka({
    clientId: 'klamm-compat',
    brokers: [broker.bootstrap],
    logLevel: kafkajsLogLevel(),
    connectionTimeout: 3000,
    requestTimeout: 10000,
    retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
    ...extra
  })
}

// Optional codecs: kafkajs ships none and gzip only.  Each value is true when the codec
// is registered, else the reason it is not available (used as a skip reason).
const codecs = { none: true, gzip: true }
function tryCodec (name, type, load) {
  try {
    CompressionCodecs[type] = load()
    codecs[name] = true
  } catch (e) {
    codecs[name] = `codec package for ${name} not available: ${e.message.split('\n')[0]}`
  }
}
tryCodec('snappy', CompressionTypes.Snappy, () => require('kafkajs-snappy'))
tryCodec('lz4', CompressionTypes.LZ4, () => new (require('kafkajs-lz4'))().codec)
tryCodec('zstd', CompressionTypes.ZSTD, () => require('@kafkajs/zstd')())
const codecTypes = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD
}

// ---------------------------------------------------------------------------------------
// kcat read-back
// ---------------------------------------------------------------------------------------

// Lengths make keys and values byte-exact whatever bytes they hold.
const FMT = 'R|%p|%o|%T|%K|%S|%k%s|%h\\n'

function runKcat (broker, args, { input, timeoutMs = 30000 } = {}) {
  const argv = ['-b', broker.bootstrap, ...args]
  if (process.env.KCAT_DEBUG) argv.push('-d', process.env.KCAT_DEBUG)
  const r = spawnSync(KCAT, argv, { input, timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024 })
  if (r.error) throw new Error(`kcat ${argv.join(' ')}: ${r.error.message}\n${r.stderr || ''}`)
  if (r.status !== 0) {
    throw new Error(`kcat ${argv.join(' ')} exited ${r.status}:\n${r.stderr.toString().slice(-3000)}`)
  }
  return r
}

function parseFmt (buf) {
  const msgs = []
  let i = 0
  const readField = () => {
    const j = buf.indexOf(0x7c, i) // '|'
    if (j < 0) throw new Error(`unparsable kcat output at ${i}: ${buf.slice(i, i + 80)}`)
    const s = buf.slice(i, j).toString()
    i = j + 1
    return s
  }
  while (i < buf.length) {
    if (buf[i] !== 0x52 || buf[i + 1] !== 0x7c) throw new Error(`unparsable kcat output at ${i}: ${buf.slice(i, i + 80)}`)
    i += 2
    const partition = Number(readField())
    const offset = Number(readField())
    const timestamp = readField()
    const klen = Number(readField())
    const vlen = Number(readField())
    let key = null
    let value = null
    if (klen >= 0) { key = buf.slice(i, i + klen); i += klen }
    if (vlen >= 0) { value = buf.slice(i, i + vlen); i += vlen }
    if (buf[i] !== 0x7c) throw new Error(`kcat output: expected '|' after payload at ${i}`)
    i += 1
    const nl = buf.indexOf(0x0a, i)
    const headers = buf.slice(i, nl).toString()
    i = nl + 1
    msgs.push({ partition, offset, timestamp, key, value, headers })
  }
  return msgs
}

/** All messages of one partition (or every partition when partition is null), via kcat. */
function kcatConsume (broker, topic, partition = 0, offset = 'beginning') {
  const args = ['-C', '-t', topic, '-o', String(offset), '-e', '-f', FMT]
  if (partition !== null) args.push('-p', String(partition))
  return parseFmt(runKcat(broker, args).stdout)
}

/** kcat -J envelopes (for headers, which -J prints as [name, value, ...]). */
function kcatJson (broker, topic, partition = 0) {
  const args = ['-C', '-t', topic, '-o', 'beginning', '-e', '-J']
  if (partition !== null) args.push('-p', String(partition))
  return runKcat(broker, args).stdout.toString().split('\n').filter(l => l.trim()).map(l => JSON.parse(l))
}

async function kcatConsumeUntil (broker, topic, partition, count, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const msgs = kcatConsume(broker, topic, partition)
    if (msgs.length >= count || Date.now() > deadline) return msgs
    await new Promise(resolve => setTimeout(resolve, 300))
  }
}

function kcatProduce (broker, topic, partition, data, args = []) {
  return runKcat(broker, ['-P', '-t', topic, '-p', String(partition), '-X', 'message.timeout.ms=20000', ...args],
    { input: data })
}

function kcatMetadata (broker, topic) {
  const args = ['-L', '-J']
  if (topic) args.push('-t', topic)
  return JSON.parse(runKcat(broker, args).stdout.toString())
}

// ---------------------------------------------------------------------------------------
// ApiVersions probe (raw protocol, v0) to learn which APIs the broker advertises.
// ---------------------------------------------------------------------------------------

function apiVersions (broker, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const clientId = Buffer.from('klamm-probe')
    const body = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length)
    body.writeInt16BE(18, 0) // ApiVersions
    body.writeInt16BE(0, 2) // v0
    body.writeInt32BE(4242, 4) // correlation id
    body.writeInt16BE(clientId.length, 8)
    clientId.copy(body, 10)
    const frame = Buffer.alloc(4)
    frame.writeInt32BE(body.length, 0)
    const sock = net.connect(broker.port, '127.0.0.1')
    let data = Buffer.alloc(0)
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('ApiVersions probe timed out')) }, timeoutMs)
    sock.on('connect', () => sock.write(Buffer.concat([frame, body])))
    sock.on('error', (e) => { clearTimeout(timer); reject(e) })
    sock.on('data', (chunk) => {
      data = Buffer.concat([data, chunk])
      if (data.length < 4 || data.length < 4 + data.readInt32BE(0)) return
      clearTimeout(timer)
      sock.destroy()
      const corr = data.readInt32BE(4)
      const err = data.readInt16BE(8)
      const n = data.readInt32BE(10)
      const apis = new Map()
      for (let k = 0; k < n; k++) {
        const o = 14 + k * 6
        apis.set(data.readInt16BE(o), { min: data.readInt16BE(o + 2), max: data.readInt16BE(o + 4) })
      }
      resolve({ correlationId: corr, errorCode: err, apis })
    })
  })
}

// FindCoordinator, JoinGroup, Heartbeat, LeaveGroup, SyncGroup, OffsetCommit, OffsetFetch
const GROUP_APIS = { 10: 'FindCoordinator', 11: 'JoinGroup', 12: 'Heartbeat', 13: 'LeaveGroup', 14: 'SyncGroup', 8: 'OffsetCommit', 9: 'OffsetFetch' }

async function missingGroupApis (broker) {
  const { apis } = await apiVersions(broker)
  return Object.entries(GROUP_APIS).filter(([k]) => !apis.has(Number(k))).map(([, name]) => name)
}

function sleep (ms) { return new Promise(resolve => setTimeout(resolve, ms)) }

module.exports = {
  Broker,
  startBroker,
  makeKafka,
  codecs,
  codecTypes,
  CompressionTypes,
  kcatConsume,
  kcatConsumeUntil,
  kcatJson,
  kcatProduce,
  kcatMetadata,
  runKcat,
  apiVersions,
  missingGroupApis,
  sleep
}
