// Projection catch-up against raw loops over the same table (issue 11): a
// projection with tracking processes a log of 100,000 events from zero to its
// end, beside a raw loop (better-sqlite3 or `pg`, no library) reading the
// same events table, in the same run, on the same database.
//
// - count: a projection that only counts (its only writes are the tracking
//   records), against raw paging, `SELECT ... WHERE notification_id > $1
//   ORDER BY notification_id LIMIT 1000`, with the checkpoint upserted after
//   each page in its own transaction.
// - write: a projection that upserts a row per event (50 keys), against a raw
//   loop that reads pages of 1,000 (the runner's batch size), decodes each
//   event's JSON and makes the same upserts and the checkpoint in one
//   transaction per page.
//
// Uses POSTGRES_URL when set, else starts an embedded server with fsync and
// synchronous_commit on. Run with `node bench/projection-catchup.mjs` after
// `npm run build` and `npm install --prefix bench`. ROUNDS=n,
// BACKENDS=sqlite|postgres and SIDES=countOurs,countRaw,... narrow a run.
import { Application, Projection, ProjectionRunner } from 'eventsourcing'
import { postgres, postgresProjectionStore } from 'eventsourcing/postgres'
import { sqlite, sqliteProjectionStore } from 'eventsourcing/sqlite'
import pg from 'pg'
import { Counts, createSql, EVENTS, upsertSql, writeDogs } from './dog-tricks.mjs'
import { formatRate, freshPath, median, postgresServer, rawConnection, removeFreshPaths, rounds } from './shared.mjs'

const ROUNDS = Number(process.env.ROUNDS ?? 3)
const PAGE = 1_000
/** The runner's default batch size (since issue 11), also the raw writing loop's page (WRITE_PAGE=500 for a runner of before). */
const BATCH = Number(process.env.WRITE_PAGE ?? 1_000)
const TIMEOUT_MS = 30 * 60_000
const only = process.env.BACKENDS?.split(',') ?? ['sqlite', 'postgres']
const sidesWanted = process.env.SIDES?.split(',')
const NAME = 'BenchDogs'
const EVENTS_TABLE = 'benchdogs_events'

const checkpointTableSql = (table) =>
  `CREATE TABLE IF NOT EXISTS ${table} (name TEXT PRIMARY KEY, position BIGINT NOT NULL)`
const checkpointSql = (table, a, b) =>
  `INSERT INTO ${table} (name, position) VALUES (${a}, ${b}) ON CONFLICT (name) DO UPDATE SET position = excluded.position`

/** Counts the events it is given, in memory: its only writes are the runner's tracking records. */
class Count extends Projection {
  count = 0
  process() {
    this.count++
  }
  clear() {}
}

/** Times one catch-up of `projection` through `store` (closed after); fails unless it tracked `last`. */
async function runnerCatchUp(app, last, store, projection) {
  const runner = new ProjectionRunner({ upstream: app, projection, store })
  const start = process.hrtime.bigint()
  await runner.start()
  await runner.waitFor(last, { timeoutMs: TIMEOUT_MS })
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  await runner.stop()
  const position = await store.maxTrackingId(app.name)
  await store.close()
  if (position !== last) throw new Error(`the runner tracked ${position}, not ${last}`)
  if (projection instanceof Count && projection.count !== EVENTS) throw new Error(`counted ${projection.count}`)
  return EVENTS / seconds
}

/** Prints the median rates of each pair and the median of the rounds' ratios ours ÷ raw. */
function report(title, rates) {
  console.log(title)
  for (const [ours, raw, label] of [
    ['countOurs', 'countRaw', `count: ProjectionRunner (default batches) vs raw pages of ${PAGE} + checkpoint`],
    ['writeOurs', 'writeRaw', `write: ProjectionRunner (default batches) vs raw pages of ${BATCH}, same writes`],
  ]) {
    if (rates[ours] === undefined || rates[raw] === undefined) continue
    const ratio = median(rates[ours].map((rate, i) => rate / rates[raw][i]))
    console.log(
      `  ${label.padEnd(84)} ours ${formatRate(median(rates[ours]))}/s  raw ${formatRate(median(rates[raw]))}/s  ${ratio.toFixed(2)}×`,
    )
  }
}

async function sqliteBench() {
  const path = freshPath()
  const app = new Application({ name: NAME, persistence: sqlite({ path }) })
  const last = await writeDogs(app)
  const db = rawConnection(path)
  const checkpoint = () => db.exec('PRAGMA wal_checkpoint(TRUNCATE)')
  db.exec(checkpointTableSql('raw_checkpoints'))
  const select = db.prepare(
    `SELECT notification_id AS id, originator_id, originator_version, topic, state FROM ${EVENTS_TABLE}
     WHERE notification_id > ? ORDER BY notification_id LIMIT ?`,
  )
  const saveCheckpoint = db.prepare(checkpointSql('raw_checkpoints', '?', '?'))
  /** Pages through the log, calling `page(rows)` in a transaction with the checkpoint of its last row. */
  const rawLoop = (size, perPage) => {
    let position = 0
    let seen = 0
    const start = process.hrtime.bigint()
    for (;;) {
      const rows = select.all(position, size)
      if (rows.length === 0) break
      seen += rows.length
      position = rows.at(-1).id
      db.transaction(() => {
        perPage(rows)
        saveCheckpoint.run(`raw-${size}`, position)
      }).immediate()
    }
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    if (seen !== EVENTS || position !== last) throw new Error(`raw loop saw ${seen} events up to ${position}`)
    return EVENTS / seconds
  }
  const rates = await rounds(
    {
      countOurs: async (round) => {
        checkpoint()
        return runnerCatchUp(app, last, sqliteProjectionStore({ path, name: `count_${round}` }), new Count())
      },
      countRaw: async () => {
        checkpoint()
        return rawLoop(PAGE, () => {})
      },
      writeOurs: async (round) => {
        checkpoint()
        const table = `counts_ours_${round}`
        return runnerCatchUp(app, last, sqliteProjectionStore({ path, name: table }), new Counts(table, 'sqlite'))
      },
      writeRaw: async (round) => {
        checkpoint()
        const table = `counts_raw_${round}`
        db.exec(createSql(table))
        const upsert = db.prepare(upsertSql(table, '?'))
        const decoder = new TextDecoder()
        return rawLoop(BATCH, (rows) => {
          for (const row of rows) upsert.run(JSON.parse(decoder.decode(row.state)).trick)
        })
      },
    },
    { count: ROUNDS, wanted: sidesWanted, width: 12 },
  )
  report(`SQLite ${db.prepare('SELECT sqlite_version() AS v').get().v}, WAL, synchronous=NORMAL`, rates)
  db.close()
  await app.close()
}

async function postgresBench() {
  const server = await postgresServer(['fsync=on', 'synchronous_commit=on'])
  const { url } = server
  const db = new pg.Client({ connectionString: url })
  let app
  try {
    await db.connect()
    app = new Application({ name: NAME, persistence: postgres({ url }) })
    const last = await writeDogs(app)
    await db.query('VACUUM ANALYZE')
    await db.query(checkpointTableSql('raw_checkpoints'))
    const select = {
      name: 'raw-select',
      text: `SELECT notification_id AS id, originator_id, originator_version, topic, state FROM ${EVENTS_TABLE}
     WHERE notification_id > $1 ORDER BY notification_id LIMIT $2`,
    }
    const saveCheckpoint = { name: 'raw-checkpoint', text: checkpointSql('raw_checkpoints', '$1', '$2') }
    /** Pages through the log, calling `page(rows)` in a transaction with the checkpoint of its last row. */
    const rawLoop = async (size, perPage) => {
      let position = 0
      let seen = 0
      const start = process.hrtime.bigint()
      for (;;) {
        const { rows } = await db.query({ ...select, values: [position, size] })
        if (rows.length === 0) break
        seen += rows.length
        position = Number(rows.at(-1).id)
        await db.query('BEGIN')
        await perPage(rows)
        await db.query({ ...saveCheckpoint, values: [`raw-${size}`, position] })
        await db.query('COMMIT')
      }
      const seconds = Number(process.hrtime.bigint() - start) / 1e9
      if (seen !== EVENTS || position !== last) throw new Error(`raw loop saw ${seen} events up to ${position}`)
      return EVENTS / seconds
    }
    const rates = await rounds(
      {
        countOurs: (round) =>
          runnerCatchUp(app, last, postgresProjectionStore({ url, name: `count_${round}` }), new Count()),
        countRaw: () => rawLoop(PAGE, () => {}),
        writeOurs: (round) => {
          const table = `counts_ours_${round}`
          return runnerCatchUp(app, last, postgresProjectionStore({ url, name: table }), new Counts(table, 'postgres'))
        },
        writeRaw: async (round) => {
          const table = `counts_raw_${round}`
          await db.query(createSql(table))
          const upsert = { name: `raw-upsert-${round}`, text: upsertSql(table, '$1') }
          const decoder = new TextDecoder()
          return rawLoop(BATCH, async (rows) => {
            for (const row of rows) await db.query({ ...upsert, values: [JSON.parse(decoder.decode(row.state)).trick] })
          })
        },
      },
      { count: ROUNDS, wanted: sidesWanted, width: 12 },
    )
    const version = (await db.query('SHOW server_version')).rows[0].server_version
    report(
      `PostgreSQL ${version} (${server.embedded ? 'embedded' : 'POSTGRES_URL'}), fsync and synchronous_commit on`,
      rates,
    )
  } finally {
    await app?.close()
    await db.end()
    await server.stop()
  }
}

const started = Date.now()
console.log(
  `Node ${process.version}; ${ROUNDS} rounds, order rotated each round; medians; ${EVENTS.toLocaleString('en-US')} events`,
)
try {
  if (only.includes('sqlite')) await sqliteBench()
  if (only.includes('postgres')) await postgresBench()
} finally {
  removeFreshPaths()
}
console.log(`(${((Date.now() - started) / 1000).toFixed(0)} s)`)
