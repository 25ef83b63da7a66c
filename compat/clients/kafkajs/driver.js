// kbroker compat: drives kafkajs for compat/clients/kafkajs_client.py.
// One JSON request per stdin line {"id","op","args"}; one JSON answer per stdout line
// {"id","ok","result"} or {"id","ok":false,"kind","error"}; a {"hello":...} line at start-up.
'use strict'

const readline = require('readline')
const { Kafka, CompressionTypes, CompressionCodecs, ConfigResourceTypes, logLevel } = require('kafkajs')
const SnappyCodec = require('kafkajs-snappy')
const kafkajsVersion = require('kafkajs/package.json').version

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec

const out = process.stdout
// kafkajs logs through console by default; stdout carries the protocol, so log to stderr only
const logCreator = () => ({ namespace, level, log }) => {
  process.stderr.write(`${namespace} ${level} ${log.message}\n`)
}
const kafka = new Kafka({
  clientId: 'kbroker-compat',
  brokers: [process.argv[2]],
  logLevel: logLevel.ERROR,
  logCreator,
  retry: { retries: 5 }
})
const admin = kafka.admin()
const members = new Map() // handle -> { consumer, buffer, assignment, positions, waiters }
const txns = new Map() // handle -> { producer, transaction }

const CODECS = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP, snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4, zstd: CompressionTypes.ZSTD }
const ACKS = { 0: 0, 1: 1, all: -1 }
const SEND_CHUNK = 2000 // messages per send() call keep each batch well under message.max.bytes

const b64 = (buf) => (buf === null || buf === undefined ? null : Buffer.from(buf).toString('base64'))
const unb64 = (s) => (s === null || s === undefined ? null : Buffer.from(s, 'base64'))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

function toMessage (r) {
  const headers = {}
  for (const [k, v] of r.headers || []) {
    const value = unb64(v)
    if (k in headers) headers[k] = [].concat(headers[k], [value])
    else headers[k] = value
  }
  const m = { key: unb64(r.key), value: unb64(r.value), headers }
  if (r.partition !== null && r.partition !== undefined) m.partition = r.partition
  if (r.timestamp !== null && r.timestamp !== undefined) m.timestamp = String(r.timestamp)
  return m
}

function fromMessage (partition, m) {
  const headers = []
  for (const [k, v] of Object.entries(m.headers || {})) {
    if (Array.isArray(v)) for (const x of v) headers.push([k, b64(x)])
    else headers.push([k, b64(v)])
  }
  return { partition, offset: Number(m.offset), key: b64(m.key), value: b64(m.value), headers,
    timestamp: Number(m.timestamp) }
}

async function send (sender, topic, records, options) {
  const result = []
  for (let i = 0; i < records.length; i += SEND_CHUNK) {
    const chunk = records.slice(i, i + SEND_CHUNK)
    const meta = await sender.send({ topic, messages: chunk.map(toMessage), ...options })
    // one batch per partition, in message order: the n-th message of a partition is base + n
    const base = new Map((meta || []).map((m) => [m.partition, Number(m.baseOffset)]))
    const seen = new Map()
    for (const r of chunk) {
      const n = seen.get(r.partition) || 0
      seen.set(r.partition, n + 1)
      const b = base.get(r.partition)
      result.push([r.partition, b === undefined || b < 0 ? -1 : b + n])
    }
  }
  return result
}

// kafkajs has no group-less consumer: manual reads use a throwaway group and seek
async function consume (a) {
  const consumer = kafka.consumer({ groupId: `compat-kafkajs-read-${process.pid}-${Date.now()}-${Math.random()}`,
    readUncommitted: a.isolation !== 'read_committed', sessionTimeout: 10000, heartbeatInterval: 1000,
    maxWaitTimeInMs: 500 })
  const records = []
  const wanted = new Set(a.partitions)
  let offsets = null // partition -> offset to read from, when the start is not earliest/latest
  if (a.start !== 'earliest' && a.start !== 'latest') {
    if ('timestamp' in a.start) {
      offsets = {}
      for (const o of await admin.fetchTopicOffsetsByTimestamp(a.topic, a.start.timestamp)) offsets[o.partition] = o.offset
    } else offsets = a.start.offsets
  }
  try {
    await consumer.connect()
    await consumer.subscribe({ topics: [a.topic], fromBeginning: a.start !== 'latest' })
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        if (!wanted.has(batch.partition)) return
        // batches fetched from the beginning before seek() took effect are not what was asked for
        const from = offsets === null ? -1 : Number(offsets[batch.partition])
        for (const m of batch.messages) {
          if (Number(m.offset) >= from) records.push(fromMessage(batch.partition, m))
        }
      }
    })
    if (offsets !== null) {
      for (const p of a.partitions) consumer.seek({ topic: a.topic, partition: p, offset: String(offsets[p]) })
    }
    const deadline = Date.now() + a.timeout_ms
    while (records.length < a.count && Date.now() < deadline) await sleep(50)
    return records
  } finally {
    await consumer.disconnect()
  }
}

async function groupOpen (a) {
  if (a.instance_id) throw Object.assign(new Error('kafkajs has no static membership'), { kind: 'unsupported' })
  if (a.protocol === 'consumer') throw Object.assign(new Error('kafkajs has no KIP-848 consumer'), { kind: 'unsupported' })
  const consumer = kafka.consumer({ groupId: a.group, sessionTimeout: 10000, heartbeatInterval: 1000,
    rebalanceTimeout: 20000, maxWaitTimeInMs: 500 })
  const member = { consumer, group: a.group, buffer: [], assignment: [], positions: new Map() }
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    const assigned = []
    for (const [topic, partitions] of Object.entries(e.payload.memberAssignment)) {
      for (const p of partitions) assigned.push([topic, p])
    }
    member.assignment = assigned
  })
  await consumer.connect()
  await consumer.subscribe({ topics: a.topics, fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        member.buffer.push(fromMessage(batch.partition, m))
        member.positions.set(`${batch.topic}\u0000${batch.partition}`, Number(m.offset) + 1)
      }
    }
  })
  members.set(a.handle, member)
}

async function groupPoll (a) {
  const member = members.get(a.handle)
  const deadline = Date.now() + a.timeout_ms
  while (member.buffer.length === 0 && Date.now() < deadline) await sleep(20)
  return member.buffer.splice(0, member.buffer.length)
}

async function groupCommit (a) {
  const member = members.get(a.handle)
  const offsets = []
  for (const [key, offset] of member.positions) {
    const [topic, partition] = key.split('\u0000')
    offsets.push({ topic, partition: Number(partition), offset: String(offset) })
  }
  if (offsets.length) await member.consumer.commitOffsets(offsets)
}

async function txnOpen (a) {
  const producer = kafka.producer({ transactionalId: a.transactional_id, idempotent: true, maxInFlightRequests: 1 })
  const entry = { producer, transaction: null }
  txns.set(a.handle, entry) // registered first: cleanup() disconnects it even if init fails
  await producer.connect()
  // transaction() runs InitProducerId (fencing older producers) and begins locally
  entry.transaction = await producer.transaction()
}

function txnOf (a) {
  const t = txns.get(a.handle)
  if (!t.transaction) throw new Error('no transaction begun')
  return t.transaction
}

async function cleanup () {
  for (const m of members.values()) await m.consumer.disconnect().catch(() => {})
  members.clear()
  for (const t of txns.values()) await t.producer.disconnect().catch(() => {})
  txns.clear()
}

const ops = {
  cleanup,
  metadata: async () => {
    const d = await admin.describeCluster()
    return { cluster_id: d.clusterId, controller_id: d.controller,
      brokers: d.brokers.map((b) => ({ id: b.nodeId, host: b.host, port: b.port })) }
  },
  create_topic: async (a) => {
    const ok = await admin.createTopics({ waitForLeaders: true, topics: [{ topic: a.topic, numPartitions: a.partitions,
      replicationFactor: 1, configEntries: Object.entries(a.configs || {}).map(([name, value]) => ({ name, value })) }] })
    if (!ok) throw new Error(`topic ${a.topic} already exists`)
  },
  delete_topic: async (a) => { await admin.deleteTopics({ topics: [a.topic] }) },
  list_topics: async () => {
    const md = await admin.fetchTopicMetadata()
    return Object.fromEntries(md.topics.map((t) => [t.name, t.partitions.length]))
  },
  create_partitions: async (a) => { await admin.createPartitions({ topicPartitions: [{ topic: a.topic, count: a.total }] }) },
  describe_topic_config: async (a) => {
    const d = await admin.describeConfigs({ includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: a.topic }] })
    return Object.fromEntries(d.resources[0].configEntries.map((e) => [e.configName, e.configValue]))
  },
  delete_records: async (a) => {
    // deleteTopicRecords looks the leader up in cached metadata only; fetchTopicOffsets loads it
    await admin.fetchTopicOffsets(a.topic)
    await admin.deleteTopicRecords({ topic: a.topic, partitions: [{ partition: a.partition, offset: String(a.before) }] })
    const offsets = await admin.fetchTopicOffsets(a.topic)
    return Number(offsets.find((o) => o.partition === a.partition).low)
  },
  list_offsets: async (a) => {
    if (a.spec === 'earliest' || a.spec === 'latest') {
      const o = (await admin.fetchTopicOffsets(a.topic)).find((x) => x.partition === a.partition)
      return Number(a.spec === 'earliest' ? o.low : o.high)
    }
    const o = (await admin.fetchTopicOffsetsByTimestamp(a.topic, a.spec)).find((x) => x.partition === a.partition)
    // kafkajs swaps the broker's -1 ("no record at or after it") for the high watermark, an
    // offset no record has; undo it so the broker's answer is what gets checked
    const high = (await admin.fetchTopicOffsets(a.topic)).find((x) => x.partition === a.partition).high
    return Number(o.offset) === Number(high) ? -1 : Number(o.offset)
  },
  list_groups: async () => (await admin.listGroups()).groups.map((g) => g.groupId),
  describe_group: async (a) => {
    const g = (await admin.describeGroups([a.group])).groups[0]
    return { state: g.state, members: g.members.length }
  },
  delete_group: async (a) => { await admin.deleteGroups([a.group]) },
  committed: async (a) => {
    const result = {}
    for (let p = 0; p < a.partitions; p++) result[p] = -1
    for (const t of await admin.fetchOffsets({ groupId: a.group, topics: [a.topic] })) {
      for (const p of t.partitions) result[p.partition] = Number(p.offset)
    }
    return result
  },
  produce: async (a) => {
    const producer = kafka.producer({ idempotent: a.idempotent, maxInFlightRequests: a.idempotent ? 1 : undefined,
      allowAutoTopicCreation: false })
    await producer.connect()
    try {
      return await send(producer, a.topic, a.records, { acks: ACKS[a.acks], compression: CODECS[a.compression] })
    } finally {
      await producer.disconnect()
    }
  },
  consume,
  group_open: groupOpen,
  group_poll: groupPoll,
  group_assignment: async (a) => members.get(a.handle).assignment,
  group_commit: groupCommit,
  group_close: async (a) => {
    const m = members.get(a.handle)
    members.delete(a.handle)
    await m.consumer.disconnect()
  },
  txn_open: txnOpen,
  txn_begin: async (a) => {
    const t = txns.get(a.handle)
    if (!t.transaction) t.transaction = await t.producer.transaction()
  },
  txn_produce: async (a) => { await send(txnOf(a), a.topic, a.records, {}) },
  txn_send_offsets: async (a) => {
    const group = members.get(a.group_handle).group
    const byTopic = new Map()
    for (const [topic, partition, offset] of a.offsets) {
      if (!byTopic.has(topic)) byTopic.set(topic, [])
      byTopic.get(topic).push({ partition, offset: String(offset) })
    }
    await txnOf(a).sendOffsets({ consumerGroupId: group,
      topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })) })
  },
  txn_commit: async (a) => { const t = txnOf(a); txns.get(a.handle).transaction = null; await t.commit() },
  txn_abort: async (a) => { const t = txnOf(a); txns.get(a.handle).transaction = null; await t.abort() }
}

function errorKind (err) {
  if (err.kind) return err.kind
  const type = err.type || (err.cause && err.cause.type) || ''
  if (type === 'PRODUCER_FENCED' || type === 'INVALID_PRODUCER_EPOCH' || /fenced/i.test(err.message)) return 'fenced'
  return 'error'
}

async function main () {
  await admin.connect()
  out.write(JSON.stringify({ hello: true, version: kafkajsVersion }) + '\n')
  const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })
  for await (const line of rl) {
    if (!line.trim()) continue
    const req = JSON.parse(line)
    let resp
    try {
      const op = ops[req.op]
      if (!op) throw Object.assign(new Error(`unknown op ${req.op}`), { kind: 'unsupported' })
      const result = await op(req.args || {})
      resp = { id: req.id, ok: true, result: result === undefined ? null : result }
    } catch (err) {
      resp = { id: req.id, ok: false, kind: errorKind(err), error: `${err.name}: ${err.message}` }
    }
    out.write(JSON.stringify(resp) + '\n')
  }
  await cleanup()
  await admin.disconnect()
}

main().catch((err) => {
  process.stderr.write(`fatal: ${err.stack}\n`)
  process.exit(1)
})
