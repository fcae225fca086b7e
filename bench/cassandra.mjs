// Cassandra benchmarks: the process recorder of `eventsourcing/cassandra`
// beside the raw `cassandra-driver` issuing the same sequence of statements
// (the log's claim batch: the head's compare-and-set with the saves' rows;
// each aggregate's conditional batch of intents; the commit riding the
// writer's next batch; the marks), with the same group commit of concurrent
// saves, so that the ratio is the library's overhead; and PostgreSQL (the
// `eventsourcing/postgres` recorder, fsync on) for orientation. Medians of
// several rounds whose order rotates.
//
//   npm run build
//   node bench/cassandra.mjs [--rounds 5] [--read-rounds 15] [--saves 2000] [--dist dist] [--count] [a b c d]
//
// One Cassandra node started by test/cassandra/server.ts (through tsx), or
// CASSANDRA_CONTACT_POINTS; PostgreSQL embedded, or POSTGRES_URL. The node and
// the server are stopped at the end. --dist takes another build of the
// package than dist/ (one no other build replaces mid-run). --count prints the
// requests each side sent to Cassandra per save or read, and the CPU time this
// process spent on them (the library's overhead, where the requests are the same).
import { randomBytes } from 'node:crypto'
import { join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import cassandraDriver from 'cassandra-driver'
import { tsImport } from 'tsx/esm/api'
import { postgresServer } from './postgres-server.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '5' },
    'read-rounds': { type: 'string', default: '15' },
    saves: { type: 'string', default: '2000' },
    dist: { type: 'string', default: join(root, 'dist') },
    count: { type: 'boolean', default: false },
  },
})
const ROUNDS = Number(values.rounds)
// Reads take a fraction of a second a round: more rounds, for medians that other load on the machine moves less.
const READ_ROUNDS = Number(values['read-rounds'])
const CLIENTS = 16
const SAVES = Number(values.saves)
const BIG_SAVE = 1_000
const BIG_SAVES = 10
const AGGREGATE = 10_000
const READS = 2
const PAGE = 1_000
const TOPIC = 'bench:Created'
const state = new Uint8Array(100).fill(42)

const dist = resolve(values.dist)
const fromDist = (path) => import(pathToFileURL(join(dist, path)).href)
const { cassandra } = await fromDist('cassandra/index.js')
const { postgres } = await fromDist('postgres/index.js')
// The statements the recorder issues, from the same build, so that the raw side sends the same text.
const { logCql, bucketOf, bucketEnd } = await fromDist('cassandra/cassandra-log.js')
const { BUCKET, cassandraTables } = await fromDist('cassandra/cassandra-schema.js')
const { startCassandra } = await tsImport('../test/cassandra/server.ts', import.meta.url)

const { Long, Uuid, consistencies } = cassandraDriver.types
const long = (value) => Long.fromNumber(value)
// As the recorder's session runs them: LOCAL_QUORUM, SERIAL, prepared, never retried by the driver.
const writeOptions = {
  prepare: true,
  isIdempotent: false,
  consistency: consistencies.localQuorum,
  serialConsistency: consistencies.serial,
}
const readOptions = (consistency) => ({ prepare: true, isIdempotent: true, consistency })

// Not shared.mjs's: it needs the packages of bench/ installed, and this benchmark needs none of them.
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const format = (perSecond) => Math.round(perSecond).toLocaleString('en-US').padStart(10)
const ratioText = (ratio) => `${ratio.toFixed(2)}×`.padStart(7)
const medianRatio = (a, b) => median(a.map((rate, i) => rate / b[i]))
const line = (label, text) => console.log(`  ${label.padEnd(62)}${text}`)
let appCount = 0
const freshName = () => `bench${++appCount}`

/** Counts the requests a driver client sends (executes and batches, by statements in them). */
function countRequests(client) {
  const counts = { requests: 0, batches: 0, statements: 0 }
  const { execute, batch } = client
  client.execute = function (...args) {
    counts.requests++
    counts.statements++
    return execute.apply(this, args)
  }
  client.batch = function (queries, ...rest) {
    counts.requests++
    counts.batches++
    counts.statements += queries.length
    return batch.apply(this, [queries, ...rest])
  }
  return counts
}

/** Times `body` once, between `setup` and `teardown`; returns `count` divided by the seconds it took. */
async function time(count, { body, setup = async () => undefined, teardown = async () => {} }) {
  const context = await setup()
  const start = process.hrtime.bigint()
  await body(context)
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  await teardown(context)
  return count / seconds
}

/**
 * Measures every side once a round, in an order rotated from round to round,
 * after a round that is not counted (statements prepared, code warm); returns
 * each side's rates.
 */
async function rounds(count, sides, times = ROUNDS) {
  const names = Object.keys(sides)
  const rates = Object.fromEntries(names.map((name) => [name, []]))
  for (let round = -1; round < times; round++) {
    const order = names.map((_, i) => names[(i + Math.max(round, 0)) % names.length])
    for (const name of order) {
      const rate = await time(count, sides[name])
      if (round >= 0) rates[name].push(rate)
    }
  }
  return rates
}

/** Runs `clients` loops of awaits that share `count` operations; `save(client, i)` does operation i. */
async function concurrently(clients, count, save) {
  let next = 0
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let i = next++; i < count; i = next++) await save(client, i)
    }),
  )
}

const newAggregates = (count) =>
  Array.from({ length: count }, () => [
    { originatorId: crypto.randomUUID(), originatorVersion: 1, topic: TOPIC, state },
  ])
const bigSaves = (originatorId, saves) =>
  Array.from({ length: saves }, (_, s) =>
    Array.from({ length: BIG_SAVE }, (_, v) => ({
      originatorId,
      originatorVersion: s * BIG_SAVE + v + 1,
      topic: TOPIC,
      state,
    })),
  )

/**
 * The recorder's write protocol for saves of new events of one aggregate with
 * no tracking, on the raw driver, as the recorder issues it when nothing
 * clashes: one writer batch at a time on the log's bucket, taking every save
 * waiting for its ids (up to 1,000 rows) and every commit waiting (group
 * commit; cassandra-log.ts LogWriter); then, per save, the aggregate's
 * conditional batch of intents, the commit (riding the writer's next batch),
 * and the marks (cassandra-save.ts writeIntents, mark). The only writer of its
 * tables, so no compare-and-set fails; a save must fit the first bucket.
 */
class RawWriter {
  #claims = []
  #decisions = []
  #running = false
  #head = null

  constructor(client, cql) {
    this.client = client
    this.cql = cql
  }

  async save(events) {
    const saveId = Uuid.random()
    const position = await new Promise((resolve, reject) => {
      this.#claims.push({ events, saveId, resolve, reject })
      void this.#run()
    })
    const originatorId = events[0].originatorId
    const intents = events.map((event, i) => ({
      query: this.cql.insertIntent,
      params: [
        originatorId,
        long(event.originatorVersion),
        event.topic,
        Buffer.from(event.state.buffer, event.state.byteOffset, event.state.byteLength),
        saveId,
        long(position + i),
        long(position),
      ],
    }))
    await this.#conditional(intents)
    await new Promise((resolve, reject) => {
      this.#decisions.push({ position, resolve, reject })
      void this.#run()
    })
    const marks = events.map((event) => ({
      query: this.cql.mark,
      params: [originatorId, long(event.originatorVersion), long(position)],
    }))
    await this.#conditional(marks)
    return events.map((_, i) => position + i)
  }

  async #run() {
    if (this.#running) return
    this.#running = true
    try {
      while (this.#claims.length > 0 || this.#decisions.length > 0) await this.#turn()
    } finally {
      this.#running = false
    }
  }

  async #turn() {
    const decisions = this.#decisions.splice(0)
    const claims = []
    let next = this.#head ?? 0
    let rows = 0
    for (const claim of this.#claims) {
      if (claims.length > 0 && rows + claim.events.length > 1000) break
      claims.push(claim)
      next += claim.events.length
      rows += claim.events.length
    }
    this.#claims.splice(0, claims.length)
    if (next > bucketEnd(0)) throw new Error('The raw writer writes the first bucket of the log only')
    const statements = []
    if (claims.length > 0) {
      statements.push({
        query: this.cql.claimHead,
        params: [long(next), long(0), this.#head === null ? null : long(this.#head)],
      })
    }
    let position = this.#head ?? 0
    const positions = claims.map((claim) => {
      const first = position + 1
      const claimedAt = new Date()
      claim.events.forEach((event, i) => {
        const row = [
          long(0),
          long(first + i),
          event.originatorId,
          long(event.originatorVersion),
          event.topic,
          Buffer.from(event.state.buffer, event.state.byteOffset, event.state.byteLength),
          long(first),
        ]
        statements.push(
          i === 0
            ? { query: this.cql.insertFirst, params: [...row, 'pending', claimedAt, claim.saveId] }
            : { query: this.cql.insertRow, params: row },
        )
      })
      position += claim.events.length
      return first
    })
    for (const { position } of decisions) {
      statements.push({ query: this.cql.setStatus, params: ['committed', long(bucketOf(position)), long(position)] })
    }
    try {
      await this.#conditional(statements)
    } catch (error) {
      for (const item of [...claims, ...decisions]) item.reject(error)
      return
    }
    if (claims.length > 0) this.#head = next
    for (const [i, claim] of claims.entries()) claim.resolve(positions[i])
    for (const decision of decisions) decision.resolve()
  }

  async #conditional(statements) {
    const result =
      statements.length === 1
        ? await this.client.execute(statements[0].query, statements[0].params, writeOptions)
        : await this.client.batch(statements, { ...writeOptions, logged: true })
    if (result.rows[0]?.get('[applied]') !== true) throw new Error('The raw sequence lost a compare-and-set')
  }
}

/**
 * selectEvents of the recorder on the raw driver: the aggregate's partition at
 * LOCAL_QUORUM, every page (its rows are all marked committed).
 */
async function rawSelectEvents(client, cql, originatorId) {
  const params = [originatorId, long(Number.MIN_SAFE_INTEGER), long(Number.MAX_SAFE_INTEGER), 2_147_483_647]
  const result = await client.execute(cql.select, params, readOptions(consistencies.localQuorum))
  const rows = []
  for await (const row of result) rows.push(row)
  return rows
}

/**
 * selectNotifications of the recorder on the raw driver, for a page of
 * `limit` after `after`: the bucket's range at SERIAL, and the next bucket
 * once this one is read to its end and closed (each save's status is in its
 * first row, and every save is committed).
 */
async function rawSelectNotifications(client, cql, after, limit) {
  const serial = readOptions(consistencies.serial)
  const selected = []
  let from = after + 1
  while (selected.length < limit) {
    const bucket = bucketOf(from)
    const page = limit - selected.length
    const params = [long(bucket), long(from), long(bucketEnd(bucket)), page]
    const { rows } = await client.execute(cql.range, params, serial)
    for (const row of rows) if (row.get('originator_id') !== null) selected.push(row)
    if (rows.length === page) {
      from = Number(rows.at(-1).get('id')) + 1
      continue
    }
    // The head is static: in every row, or read alone when the range had none.
    const [first] = rows.length > 0 ? rows : (await client.execute(cql.head, [long(bucket)], serial)).rows
    const head = first?.get('head')
    if (head === undefined || head === null || Number(head) !== bucketEnd(bucket)) break
    from = bucketEnd(bucket) + 1
  }
  return selected
}

/** Reads the whole log a page of {@link PAGE} at a time with `select(after)`; returns how many it read. */
async function catchUp(select) {
  let read = 0
  for (let after = 0; ; ) {
    const page = await select(after)
    if (page.length === 0) return read
    read += page.length
    const last = page.at(-1)
    // A notification of ours, or a row of the raw driver.
    after = typeof last.get === 'function' ? Number(last.get('id')) : last.id
  }
}

// --- the run ---

const started = Date.now()
const node = await startCassandra()
const pg = await postgresServer(['fsync=on', 'synchronous_commit=on', 'max_connections=200']).catch(async (error) => {
  await node.stop()
  throw error
})
const keyspace = `bench_${randomBytes(4).toString('hex')}`
const options = { contactPoints: node.contactPoints, localDataCenter: node.localDataCenter, keyspace }
const cassandraPersistence = cassandra(options)
const postgresPersistence = postgres({ url: pg.url })
const raw = new cassandraDriver.Client({
  contactPoints: [...node.contactPoints],
  localDataCenter: node.localDataCenter,
  socketOptions: { readTimeout: 12_000 },
})
const rawCounts = countRequests(raw)
// Applications kept open for the whole run (so the shared session lives), and those to close at the end.
const opened = []
let oursCounts

/** Opens an application on Cassandra (tables made by the recorder) and returns its recorder and the raw statements. */
async function openCassandra(name = freshName()) {
  const recorders = await cassandraPersistence.open(name)
  opened.push(recorders)
  oursCounts ??= countRequests(recorders.events.session.client)
  return { recorders, cql: logCql(keyspace, cassandraTables(name)), name }
}

async function openPostgres(name = freshName()) {
  const recorders = await postgresPersistence.open(name)
  opened.push(recorders)
  return { recorders, name }
}

/** Each side of a write workload on a fresh application per round; `write(save)` runs the workload. */
function writeSides(write) {
  const close = async ({ recorders }) => recorders?.close()
  return {
    ours: { setup: openCassandra, body: ({ recorders }) => write((events) => recorders.events.insertEvents(events)) },
    raw: {
      setup: async () => {
        const { cql } = await openCassandra()
        return { writer: new RawWriter(raw, cql) }
      },
      body: ({ writer }) => write((events) => writer.save(events)),
    },
    postgres: {
      setup: openPostgres,
      body: ({ recorders }) => write((events) => recorders.events.insertEvents(events)),
      teardown: close,
    },
  }
}

/** Prints ours against raw, and PostgreSQL, for a workload. */
function report(rates, unit) {
  const ratio = medianRatio(rates.ours, rates.raw)
  const flag = ratio >= 0.7 ? '' : '  BELOW TARGET'
  line(
    'ours (eventsourcing/cassandra)',
    `${format(median(rates.ours))}/s ${unit}  ${ratioText(ratio)} raw (≥ 0.7×)${flag}`,
  )
  line('raw cassandra-driver, the same statements', `${format(median(rates.raw))}/s ${unit}`)
  const each = rates.ours.map((rate, i) => (rate / rates.raw[i]).toFixed(2)).join(' ')
  line('  ours ÷ raw in each round', each)
  line('PostgreSQL (eventsourcing/postgres), for orientation', `${format(median(rates.postgres))}/s ${unit}`)
}

/** Prints the requests per operation each side sent, counted over one run of `ours` and `raw`. */
async function countOnce(label, per, ours, rawSide) {
  if (!values.count) return
  for (const [name, side, counts] of [
    ['ours', ours, oursCounts],
    ['raw', rawSide, rawCounts],
  ]) {
    const context = await side.setup?.()
    const before = { ...counts }
    const cpu = process.cpuUsage()
    await side.body(context)
    const { user, system } = process.cpuUsage(cpu)
    const delta = (key) => ((counts[key] - before[key]) / per).toFixed(2)
    line(
      `  ${name}: ${label}`,
      `${delta('requests')} requests (${delta('batches')} batches, ${delta('statements')} statements), ` +
        `${((user + system) / 1000 / per).toFixed(2)} ms of this process's CPU`,
    )
  }
}

/** (a) 16 concurrent clients, each saving a new one-event aggregate at a time. */
async function concurrentSaves() {
  console.log(`(a) ${CLIENTS} concurrent clients, ${SAVES.toLocaleString('en-US')} saves of a new one-event aggregate`)
  const sides = writeSides(async (save) => {
    const saves = newAggregates(SAVES)
    await concurrently(CLIENTS, SAVES, (_, i) => save(saves[i]))
  })
  report(await rounds(SAVES, sides), 'saves')
  await countOnce('per save', SAVES, sides.ours, sides.raw)
}

/** (b) Saves of 1,000 events of one aggregate, one at a time. */
async function bigSave() {
  console.log(`(b) one save of ${BIG_SAVE.toLocaleString('en-US')} events of one aggregate, ${BIG_SAVES} a round`)
  const sides = writeSides(async (save) => {
    for (const events of bigSaves(crypto.randomUUID(), BIG_SAVES)) await save(events)
  })
  report(await rounds(BIG_SAVE * BIG_SAVES, sides), 'events')
  await countOnce('per save', BIG_SAVES, sides.ours, sides.raw)
}

/**
 * Writes the log that (c) and (d) read, with the recorder: an aggregate of
 * 10,000 events (10 saves of 1,000), then 10 saves of 1,000 events of other
 * aggregates, then `SAVES` single-event saves by 16 clients.
 */
async function writeLog(recorder) {
  for (const events of bigSaves('big', AGGREGATE / BIG_SAVE)) await recorder.insertEvents(events)
  for (const [i, events] of bigSaves('other', BIG_SAVES).entries()) {
    await recorder.insertEvents(events.map((event) => ({ ...event, originatorId: `other${i}` })))
  }
  const saves = newAggregates(SAVES)
  await concurrently(CLIENTS, SAVES, (_, i) => recorder.insertEvents(saves[i]))
  return AGGREGATE + BIG_SAVE * BIG_SAVES + SAVES
}

/** (c) Reading a 10,000-event aggregate, and (d) reading the whole log a page of 1,000 at a time. */
async function reads(sections) {
  const ours = await openCassandra()
  const orientation = await openPostgres()
  const total = await writeLog(ours.recorders.events)
  await writeLog(orientation.recorders.events)
  if (sections.includes('c')) {
    console.log(`(c) reading a ${AGGREGATE.toLocaleString('en-US')}-event aggregate, ${READS} times a round`)
    const read = (select) => async () => {
      for (let i = 0; i < READS; i++) {
        const events = await select()
        if (events.length !== AGGREGATE) throw new Error(`read ${events.length} events of ${AGGREGATE}`)
      }
    }
    const sides = {
      ours: { body: read(() => ours.recorders.events.selectEvents('big')) },
      raw: { body: read(() => rawSelectEvents(raw, ours.cql, 'big')) },
      postgres: { body: read(() => orientation.recorders.events.selectEvents('big')) },
    }
    report(await rounds(AGGREGATE * READS, sides, READ_ROUNDS), 'events')
    await countOnce('per read of the aggregate', READS, sides.ours, sides.raw)
  }
  if (sections.includes('d')) {
    console.log(
      `(d) catching up: the whole log of ${total.toLocaleString('en-US')} events, a page of ${PAGE} at a time`,
    )
    const whole = (select) => async (context) => {
      const read = await catchUp((after) => select(context, after))
      if (read !== total) throw new Error(`caught up ${read} events of ${total}`)
    }
    const page = { start: 0, inclusiveOfStart: false, limit: PAGE }
    // A new recorder a round for ours (its cache of statuses empty, as in a new process), opened before timing.
    const sides = {
      ours: {
        setup: async () => (await openCassandra(ours.name)).recorders,
        body: whole((recorders, after) => recorders.events.selectNotifications({ ...page, start: after })),
      },
      raw: { body: whole((_, after) => rawSelectNotifications(raw, ours.cql, after, PAGE)) },
      postgres: {
        body: whole((_, after) => orientation.recorders.events.selectNotifications({ ...page, start: after })),
      },
    }
    report(await rounds(total, sides, READ_ROUNDS), 'events')
    await countOnce(`per page of ${PAGE}`, total / PAGE, sides.ours, sides.raw)
  }
}

try {
  await raw.connect()
  const [release] = (await raw.execute('SELECT release_version FROM system.local')).rows
  console.log(
    `Node ${process.version}; Cassandra ${release.get('release_version')}, one node ` +
      `(${process.env.CASSANDRA_CONTACT_POINTS ? 'CASSANDRA_CONTACT_POINTS' : 'started by this script'}; ` +
      'commitlog_sync periodic, as by default); LOCAL_QUORUM, SERIAL; ' +
      `PostgreSQL ${pg.embedded ? 'embedded' : 'POSTGRES_URL'} with fsync on`,
  )
  console.log(
    `median of ${ROUNDS} rounds (writes) or ${READ_ROUNDS} (reads) after one not counted, order rotated each round; events of ${state.length} bytes; log buckets of ${BUCKET}`,
  )
  const sections = positionals.length > 0 ? positionals : ['a', 'b', 'c', 'd']
  if (sections.includes('a')) await concurrentSaves()
  if (sections.includes('b')) await bigSave()
  if (sections.includes('c') || sections.includes('d')) await reads(sections)
  console.log(`(${((Date.now() - started) / 1000).toFixed(0)} s)`)
} finally {
  for (const recorders of opened) await recorders.close().catch(() => {})
  await raw.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => {})
  await raw.shutdown()
  await pg.stop()
  await node.stop()
}
