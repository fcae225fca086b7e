// PostgreSQL benchmarks: the recorders of `eventsourcing/postgres` beside raw
// `pg` doing the same rows on the same server, table and run, as medians of
// several rounds whose order rotates. Uses POSTGRES_URL when set, else starts
// an embedded server with fsync and synchronous_commit on. Run with
// `npm run bench` (builds first) or `node bench/postgres.mjs` after a build.
import { Application } from 'eventsourcing'
import { postgres } from 'eventsourcing/postgres'
import pg from 'pg'
import { bigAggregate, Counter, median, postgresServer } from './shared.mjs'

const ROUNDS = 5
const CLIENTS = 16
const SAVES = 4_000
const BIG_SAVE = 1_000
const BIG_SAVES = 10
const AGGREGATE = 10_000
const READS = 5
const TOPIC = 'bench:Created'
const state = new Uint8Array(100).fill(42)

// Durability as in production: every commit waits for its WAL to reach disk.
const server = await postgresServer(['fsync=on', 'synchronous_commit=on', 'max_connections=200'])
const url = server.url

const format = (perSecond) => Math.round(perSecond).toLocaleString('en-US').padStart(10)
const ratioText = (ratio) => `${ratio.toFixed(2)}×`.padStart(7)
let tableCount = 0
const freshName = () => `bench${++tableCount}`

/** Opens raw `pg` clients, connected before any timing. */
async function rawClients(count) {
  const clients = Array.from({ length: count }, () => new pg.Client({ connectionString: url }))
  await Promise.all(clients.map((client) => client.connect()))
  return clients
}

/** Creates an application's tables through the backend, so that every side writes the same schema. */
async function createTables(name) {
  const backend = postgres({ url })
  await (await backend.open(name)).close()
}

async function dropTables(admin, name) {
  await admin.query(`DROP TABLE IF EXISTS "${name}_events", "${name}_snapshots", "${name}_tracking"`)
}

/** Times `body` once, between `setup` and `teardown`; returns `count` divided by the seconds it took. */
async function time(count, [body, setup = async () => undefined, teardown = async () => {}]) {
  const context = await setup()
  // Every side starts from a clean state: without this, a checkpoint started by
  // the previous side's WAL (full-page writes, flushing) lands in the next one.
  await admin.query('CHECKPOINT')
  const start = process.hrtime.bigint()
  await body(context)
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  await teardown(context)
  return count / seconds
}

/**
 * Measures every side once a round, in an order rotated from round to round so
 * that each side runs in every position; returns each side's rates.
 */
async function rounds(count, sides) {
  const names = Object.keys(sides)
  const rates = Object.fromEntries(names.map((name) => [name, []]))
  for (let round = 0; round < ROUNDS; round++) {
    const order = names.map((_, i) => names[(i + round) % names.length])
    for (const name of order) rates[name].push(await time(count, sides[name]))
  }
  return rates
}

/** The median of the per-round ratios of two sides' rates. */
const medianRatio = (a, b) => median(a.map((rate, i) => rate / b[i]))

/** Runs `clients` loops of awaits that share `count` operations; `save(client, i)` does operation i. */
async function concurrently(clients, count, save) {
  let next = 0
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      for (let i = next++; i < count; i = next++) await save(client, i)
    }),
  )
}

const events = (ids) => ids.map((originatorId) => ({ originatorId, originatorVersion: 1, topic: TOPIC, state }))
const uuids = (count) => Array.from({ length: count }, () => crypto.randomUUID())

/** Opens `backends` backend objects on a fresh table, each with its recorders warmed (a connection made). */
function ours(backends, admin) {
  return [
    async ({ recorders, saves }) => {
      await concurrently(CLIENTS, SAVES, (client, i) => recorders[client % backends].events.insertEvents([saves[i]]))
    },
    async () => {
      const name = freshName()
      const recorders = await Promise.all(Array.from({ length: backends }, () => postgres({ url }).open(name)))
      // Two connections per backend object, made before timing like the raw
      // clients': one for saves, one for the NOTIFYs sent after commits.
      await Promise.all(recorders.flatMap((r) => [r.events.maxNotificationId(), r.events.maxNotificationId()]))
      return { name, recorders, saves: events(uuids(SAVES)) }
    },
    async ({ name, recorders }) => {
      await Promise.all(recorders.map((r) => r.close()))
      await dropTables(admin, name)
    },
  ]
}

/** 16 raw clients inserting the same rows into a fresh table made by the backend, each insert by `insert`. */
function raw(admin, insert) {
  return [
    async ({ clients, name, ids }) => {
      const sql = `INSERT INTO "${name}_events" (originator_id, originator_version, topic, state) VALUES ($1, $2, $3, $4) RETURNING notification_id`
      const lock = `BEGIN; LOCK TABLE "${name}_events" IN EXCLUSIVE MODE`
      await concurrently(CLIENTS, SAVES, (client, i) =>
        insert(clients[client], lock, { name: `insert_${name}`, text: sql, values: [ids[i], 1, TOPIC, state] }),
      )
    },
    async () => {
      const name = freshName()
      await createTables(name)
      return { name, clients: await rawClients(CLIENTS), ids: uuids(SAVES) }
    },
    async ({ name, clients }) => {
      await Promise.all(clients.map((client) => client.end()))
      await dropTables(admin, name)
    },
  ]
}

/** (a) 16 concurrent clients saving new single-event aggregates. */
async function concurrentSaves(admin) {
  const rates = await rounds(SAVES, {
    shared: ours(1, admin),
    perClient: ours(CLIENTS, admin),
    // The Python package's way: the table locked for every insert.
    locked: raw(admin, async (client, lock, insert) => {
      await client.query(lock)
      await client.query(insert)
      await client.query('COMMIT')
    }),
    autocommit: raw(admin, (client, _lock, insert) => client.query(insert)),
  })
  const line = (label, rate, extra = '') => console.log(`${label.padEnd(58)}${format(rate)}/s${extra}`)
  console.log(`(a) ${CLIENTS} concurrent clients, ${SAVES.toLocaleString('en-US')} saves of a new one-event aggregate`)
  for (const [name, label] of [
    ['shared', 'ours, one backend object shared by the 16 clients'],
    ['perClient', 'ours, 16 backend objects (one per client)'],
  ]) {
    const vsLocked = medianRatio(rates[name], rates.locked)
    const vsAuto = medianRatio(rates[name], rates.autocommit)
    line(
      `  ${label}`,
      median(rates[name]),
      `  ${ratioText(vsLocked)} lock-per-insert (≥ 3×)  ${ratioText(vsAuto)} autocommit (≥ 0.7×)`,
    )
  }
  line('  raw pg: BEGIN; LOCK TABLE … EXCLUSIVE; INSERT; COMMIT', median(rates.locked))
  line('  raw pg: single-row autocommit INSERT', median(rates.autocommit))
}

/** (b) One save of 1,000 events of one new aggregate. */
async function bigSave(admin) {
  const batches = () =>
    uuids(BIG_SAVES).map((originatorId) =>
      Array.from({ length: BIG_SAVE }, (_, v) => ({ originatorId, originatorVersion: v + 1, topic: TOPIC, state })),
    )
  const count = BIG_SAVE * BIG_SAVES
  const rates = await rounds(count, {
    ours: [
      async ({ recorders, saves }) => {
        for (const save of saves) await recorders.events.insertEvents(save)
      },
      async () => {
        const name = freshName()
        const recorders = await postgres({ url }).open(name)
        await recorders.events.maxNotificationId()
        return { name, recorders, saves: batches() }
      },
      async ({ name, recorders }) => {
        await recorders.close()
        await dropTables(admin, name)
      },
    ],
    raw: [
      async ({ client, name, saves }) => {
        const text = `INSERT INTO "${name}_events" (originator_id, originator_version, topic, state)
SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::bytea[]) RETURNING notification_id`
        for (const save of saves) {
          await client.query('BEGIN')
          await client.query({
            name: `unnest_${name}`,
            text,
            values: [
              save.map((e) => e.originatorId),
              save.map((e) => e.originatorVersion),
              save.map((e) => e.topic),
              save.map((e) => e.state),
            ],
          })
          await client.query('COMMIT')
        }
      },
      async () => {
        const name = freshName()
        await createTables(name)
        const [client] = await rawClients(1)
        return { name, client, saves: batches() }
      },
      async ({ name, client }) => {
        await client.end()
        await dropTables(admin, name)
      },
    ],
  })
  console.log(`(b) one save of ${BIG_SAVE.toLocaleString('en-US')} events (one new aggregate), ${BIG_SAVES} a round`)
  console.log(
    `${'  ours, insertEvents'.padEnd(58)}${format(median(rates.ours))}/s events  ${ratioText(medianRatio(rates.ours, rates.raw))} raw  (target ≥ 50,000/s)`,
  )
  console.log(`${'  raw pg: one unnest INSERT in BEGIN … COMMIT'.padEnd(58)}${format(median(rates.raw))}/s events`)
}

/** (c) Reading a 10,000-event aggregate back. */
async function reads(admin) {
  const name = freshName()
  const recorders = await postgres({ url }).open(name)
  const big = bigAggregate(AGGREGATE, state)
  await recorders.events.insertEvents(big)
  const [client] = await rawClients(1)
  const select = {
    name: 'select_big',
    text: `SELECT originator_id, originator_version, topic, state FROM "${name}_events" WHERE originator_id = $1 ORDER BY originator_version`,
    values: ['big'],
  }
  // Warm both connections and statements.
  await recorders.events.selectEvents('big')
  await client.query(select)

  const app = new Application({ name: `${name}app`, persistence: postgres({ url }) })
  const counter = Counter.start()
  for (let i = 1; i < AGGREGATE; i++) counter.add(1)
  await app.save(counter)
  await app.repository.get(Counter, counter.id)

  const rates = await rounds(AGGREGATE * READS, {
    ours: [
      async () => {
        for (let i = 0; i < READS; i++) await recorders.events.selectEvents('big')
      },
    ],
    raw: [
      async () => {
        for (let i = 0; i < READS; i++) await client.query(select)
      },
    ],
    get: [
      async () => {
        for (let i = 0; i < READS; i++) await app.repository.get(Counter, counter.id)
      },
    ],
  })
  console.log(`(c) reading a ${AGGREGATE.toLocaleString('en-US')}-event aggregate, ${READS} times a round`)
  console.log(
    `${'  ours, selectEvents'.padEnd(58)}${format(median(rates.ours))}/s events  ${ratioText(medianRatio(rates.ours, rates.raw))} raw  (target ≥ 200,000/s)`,
  )
  console.log(`${'  raw pg: prepared SELECT of the same rows'.padEnd(58)}${format(median(rates.raw))}/s events`)
  console.log(
    `${'  ours, Application repository.get (decode and replay)'.padEnd(58)}${format(median(rates.get))}/s events`,
  )
  await app.close()
  await recorders.close()
  await client.end()
  await dropTables(admin, name)
  await dropTables(admin, `${name}app`)
}

const started = Date.now()
let admin
try {
  ;[admin] = await rawClients(1)
  const setting = async (name) => (await admin.query(`SHOW ${name}`)).rows[0][name]
  const version = (await admin.query('SHOW server_version')).rows[0].server_version
  console.log(
    `Node ${process.version}; PostgreSQL ${version} (${server.embedded ? 'embedded, started by this script' : 'POSTGRES_URL'}); ` +
      `fsync=${await setting('fsync')}, synchronous_commit=${await setting('synchronous_commit')}, ` +
      `wal_sync_method=${await setting('wal_sync_method')}, commit_delay=${await setting('commit_delay')}`,
  )
  console.log(`median of ${ROUNDS} rounds, order rotated each round; events of ${state.length} bytes`)
  // `node bench/postgres.mjs a c` runs only sections (a) and (c).
  const only = process.argv.slice(2)
  for (const [section, run] of Object.entries({ a: concurrentSaves, b: bigSave, c: reads })) {
    if (only.length === 0 || only.includes(section)) await run(admin)
  }
  console.log(`(${((Date.now() - started) / 1000).toFixed(0)} s)`)
} finally {
  await admin?.end()
  await server.stop()
}
