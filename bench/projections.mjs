// Projection catch-up benchmark: a projection with tracking processes a log of
// 100,000 events from zero to its end, ours (ProjectionRunner with the SQLite
// and PostgreSQL projection stores) beside Emmett's asynchronous projections
// doing the same work in the same run, on the same kind of database. Each side
// has its own store, written once before timing; each round projects it into
// a fresh view table with a fresh checkpoint. Uses POSTGRES_URL when set, else
// starts an embedded server with fsync and synchronous_commit on.
// Run with `node bench/projections.mjs` after `npm run build` and
// `npm install --prefix bench` (which installs Emmett into bench/node_modules).
// ROUNDS=n, BACKENDS=sqlite|postgres and SIDES=ours,emmettTuned,... narrow a run.
import { getPostgreSQLEventStore, postgreSQLRawSQLProjection } from '@event-driven-io/emmett-postgresql'
import { getSQLiteEventStore, sqliteConnection, sqliteProjection } from '@event-driven-io/emmett-sqlite'
import Database from 'better-sqlite3'
import { Application, ProjectionRunner } from 'eventsourcing'
import { postgres, postgresProjectionStore } from 'eventsourcing/postgres'
import { sqlite, sqliteProjectionStore } from 'eventsourcing/sqlite'
import pg from 'pg'
import { Counts, createSql, EVENTS, KEYS, PER_STREAM, STREAMS, trick, upsertSql, writeDogs } from './dog-tricks.mjs'
import { formatRate, freshPath, median, postgresServer, removeFreshPaths, rounds } from './shared.mjs'

const ROUNDS = Number(process.env.ROUNDS ?? 3)
/** Ours' default batch size (ProjectionRunner, 1,000 since issue 11), also given to Emmett when tuned. */
const BATCH = 1_000
const TIMEOUT_MS = 30 * 60_000
const only = process.env.BACKENDS?.split(',') ?? ['sqlite', 'postgres']
/** SIDES=ours,emmettTuned measures only these lines (for profiling). */
const sidesWanted = process.env.SIDES?.split(',')

const ratioText = (ratio) => `${ratio.toFixed(2)}×`.padStart(7)

// ---------------------------------------------------------------- ours

/** Times one catch-up of a new Counts view through `store`; returns the rate and what it left. */
async function oursCatchUp(app, last, store, table, dialect, pipelined) {
  const runner = new ProjectionRunner({ upstream: app, projection: new Counts(table, dialect, pipelined), store })
  const start = process.hrtime.bigint()
  await runner.start()
  await runner.waitFor(last, { timeoutMs: TIMEOUT_MS })
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  await runner.stop()
  const position = await store.maxTrackingId(app.name)
  await store.close()
  return { rate: EVENTS / seconds, position }
}

// ---------------------------------------------------------------- Emmett

const emmettEvents = (stream) =>
  Array.from({ length: PER_STREAM }, (_, v) => ({
    type: 'TrickAdded',
    data: { trick: trick(stream * PER_STREAM + v) },
  }))

/** Writes the 100,000 events through Emmett, one append of 100 events per stream. */
async function writeEmmett(eventStore) {
  for (let stream = 0; stream < STREAMS; stream++)
    await eventStore.appendToStream(`dog-${stream}`, emmettEvents(stream))
}

/** Emmett's SQLite projection: one parameterised upsert per event through its connection. */
const emmettSqliteProjection = (table) =>
  sqliteProjection({
    name: table,
    canHandle: ['TrickAdded'],
    handle: async (events, { connection }) => {
      for (const event of events) await connection.command(upsertSql(table, '?'), [event.data.trick])
    },
  })

/** Emmett's PostgreSQL projection: raw SQL per event, the key as a quoted literal (as dumbo's `sql('%L')` makes it). */
const emmettPostgresProjection = (table) =>
  postgreSQLRawSQLProjection({
    name: table,
    canHandle: ['TrickAdded'],
    init: () => createSql(table),
    evolve: (event) => upsertSql(table, `'${event.data.trick.replaceAll("'", "''")}'`),
  })

/**
 * Times one catch-up of Emmett's consumer with one processor from the start
 * of the log, stopping after the last position; `pulling` is undefined for
 * Emmett's defaults (batches of 100, 50 ms between batches).
 */
async function emmettCatchUp(eventStore, last, pulling, addProcessor) {
  const consumer = eventStore.consumer(pulling === undefined ? {} : { pulling })
  addProcessor(consumer, (message) => message.metadata.globalPosition === last)
  const start = process.hrtime.bigint()
  await consumer.start()
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  await consumer.stop()
  return EVENTS / seconds
}

const tuned = { batchSize: BATCH, pullingFrequencyInMs: 0 }

// ---------------------------------------------------------------- harness

const medianRatio = (a, b) => median(a.map((rate, i) => rate / b[i]))

/** Prints each line's median rate and its ratios to the given ours lines. */
function report(rates, lines) {
  for (const [name, label, ...against] of lines) {
    if (rates[name] === undefined || against.some(([ours]) => rates[ours] === undefined)) continue
    const ratios = against.map(
      ([ours, what]) => `${ratioText(medianRatio(rates[ours], rates[name]))}${what ? ` ${what}` : ''}`,
    )
    console.log(
      `  ${label.padEnd(74)}${formatRate(median(rates[name]))}/s${ratios.length ? `  ours ÷ it: ${ratios.join(', ')}` : ''}`,
    )
  }
}

/** Fails unless `table` holds the 100,000 events counted under the 50 keys. */
function check(side, { count, sum }, position, last) {
  if (Number(count) !== KEYS || Number(sum) !== EVENTS) {
    throw new Error(`${side}: the view has ${count} keys summing to ${sum}, not ${KEYS} keys summing to ${EVENTS}`)
  }
  return `${side}: ${count} keys, sum ${sum}, checkpoint ${position} (last ${last})`
}

// ---------------------------------------------------------------- SQLite

async function sqliteBench() {
  const oursPath = freshPath()
  const emmettPath = freshPath()
  const app = new Application({ name: 'BenchDogs', persistence: sqlite({ path: oursPath }) })
  const oursLast = await writeDogs(app)
  // One connection for the writes: Emmett's default of a new connection per
  // append, whose WAL pragma is not awaited, failed now and then with
  // SQLITE_BUSY (statements in progress at COMMIT).
  const writing = sqliteConnection({ fileName: emmettPath })
  await writing.command('PRAGMA journal_mode = WAL')
  await writeEmmett(
    getSQLiteEventStore({ fileName: emmettPath, connectionOptions: { connection: writing, singleton: true } }),
  )
  writing.close()
  // Emmett's file is opened only through node-sqlite3 and ours only through
  // better-sqlite3: two copies of SQLite in one process must not open the same
  // file, since closing a file in one drops the POSIX locks of the other.
  const emmettDb = async (work) => {
    const connection = sqliteConnection({ fileName: emmettPath })
    try {
      return await work(connection)
    } finally {
      connection.close()
    }
  }
  const emmettLast = await emmettDb(async (db) =>
    BigInt((await db.querySingle('SELECT MAX(global_position) AS last FROM emt_messages')).last),
  )
  const notes = []
  const counts = (table) => `SELECT COUNT(*) AS count, SUM(n) AS sum FROM ${table}`
  // Each side starts with the WAL of its file checkpointed, so that no side pays for another's writes.
  const checkpoint = 'PRAGMA wal_checkpoint(TRUNCATE)'
  const oursDb = (work) => {
    const db = new Database(oursPath)
    try {
      return work(db)
    } finally {
      db.close()
    }
  }
  const ours = (synchronous) => async (round) => {
    const table = `counts_${synchronous}_${round}`
    oursDb((db) => db.exec(checkpoint))
    const store = sqliteProjectionStore({ path: oursPath, name: `counts_${synchronous}_${round}`, synchronous })
    const { rate, position } = await oursCatchUp(app, oursLast, store, table, 'sqlite')
    notes.push(
      check(
        `ours ${synchronous}, round ${round + 1}`,
        oursDb((db) => db.prepare(counts(table)).get()),
        position,
        oursLast,
      ),
    )
    return rate
  }
  /** `mode`: 'default' (Emmett's pool: a new connection per batch and read, synchronous=FULL), or 'full'/'normal' (one connection). */
  const emmett = (mode) => async (round) => {
    const table = `counts_${mode}_${round}`
    const processorId = `counts-${mode}-${round}`
    // Emmett's SQLite processors do not call a projection's init: the table is made here, before timing.
    await emmettDb(async (db) => {
      await db.query(checkpoint)
      await db.command(createSql(table))
    })
    let connection
    let eventStore = getSQLiteEventStore({ fileName: emmettPath })
    if (mode !== 'default') {
      connection = sqliteConnection({ fileName: emmettPath })
      await connection.command(`PRAGMA synchronous = ${mode.toUpperCase()}`)
      eventStore = getSQLiteEventStore({ fileName: emmettPath, connectionOptions: { connection, singleton: true } })
    }
    const rate = await emmettCatchUp(
      eventStore,
      emmettLast,
      mode === 'default' ? undefined : tuned,
      (consumer, stopAfter) =>
        consumer.processor({ processorId, projection: emmettSqliteProjection(table), startFrom: 'CURRENT', stopAfter }),
    )
    connection?.close()
    const [count, position] = await emmettDb(async (db) => [
      await db.querySingle(counts(table)),
      await db.querySingle('SELECT last_processed_checkpoint AS c FROM emt_processors WHERE processor_id = ?', [
        processorId,
      ]),
    ])
    notes.push(check(`Emmett ${mode}, round ${round + 1}`, count, BigInt(position?.c ?? -1), emmettLast))
    return rate
  }
  const rates = await rounds(
    {
      ours: ours('normal'),
      oursFull: ours('full'),
      emmettDefault: emmett('default'),
      emmettFull: emmett('full'),
      emmettNormal: emmett('normal'),
    },
    { count: ROUNDS, wanted: sidesWanted, width: 20 },
  )
  const oursVersion = oursDb((db) => db.prepare('SELECT sqlite_version() AS v').get().v)
  const emmettVersion = await emmettDb(async (db) => (await db.querySingle('SELECT sqlite_version() AS v')).v)
  console.log(
    `SQLite, WAL (ours: better-sqlite3, SQLite ${oursVersion}; Emmett: node-sqlite3, SQLite ${emmettVersion}); ` +
      `catch-up of ${EVENTS.toLocaleString('en-US')} events`,
  )
  report(rates, [
    ['ours', `ours: ProjectionRunner, batches of ${BATCH}, synchronous=NORMAL (default)`],
    ['oursFull', `ours: the same with synchronous=FULL`],
    [
      'emmettDefault',
      'Emmett defaults: batches of 100, 50 ms pause, FULL, connection per batch',
      ['ours', 'ours default'],
      ['oursFull', 'ours FULL'],
    ],
    ['emmettFull', `Emmett tuned: batches of ${BATCH}, no pause, one connection, FULL`, ['oursFull', 'ours FULL']],
    ['emmettNormal', `Emmett tuned: the same with synchronous=NORMAL`, ['ours', 'ours NORMAL']],
  ])
  for (const note of notes) console.log(`    ${note}`)
  await app.close()
}

// ---------------------------------------------------------------- PostgreSQL

async function postgresBench() {
  const server = await postgresServer(['fsync=on', 'synchronous_commit=on'])
  const { url } = server
  const admin = new pg.Client({ connectionString: url })
  let app
  let emmettStore
  try {
    await admin.connect()
    const setting = async (name) => (await admin.query(`SHOW ${name}`)).rows[0][name]
    const version = await setting('server_version')
    app = new Application({ name: 'BenchDogs', persistence: postgres({ url }) })
    const oursLast = await writeDogs(app)
    emmettStore = getPostgreSQLEventStore(url)
    await writeEmmett(emmettStore)
    const emmettLast = BigInt((await admin.query('SELECT MAX(global_position) AS last FROM emt_messages')).rows[0].last)
    await admin.query('VACUUM ANALYZE')
    const notes = []
    const counted = async (table) =>
      (await admin.query(`SELECT COUNT(*) AS count, SUM(n) AS sum FROM ${table}`)).rows[0]
    const ours = (pipelined) => async (round) => {
      const table = `counts_ours${pipelined ? '_pipelined' : ''}_${round}`
      const store = postgresProjectionStore({ url, name: table })
      const { rate, position } = await oursCatchUp(app, oursLast, store, table, 'postgres', pipelined)
      notes.push(
        check(`ours${pipelined ? ' pipelined' : ''}, round ${round + 1}`, await counted(table), position, oursLast),
      )
      return rate
    }
    const emmett = (mode) => async (round) => {
      const table = `counts_${mode}_${round}`
      const processorId = `emt:processor:projector:${table}`
      const rate = await emmettCatchUp(
        emmettStore,
        emmettLast,
        mode === 'default' ? undefined : tuned,
        (consumer, stopAfter) => consumer.projector({ projection: emmettPostgresProjection(table), stopAfter }),
      )
      const { rows } = await admin.query(
        'SELECT last_processed_checkpoint AS c FROM emt_processors WHERE processor_id = $1',
        [processorId],
      )
      notes.push(
        check(`Emmett ${mode}, round ${round + 1}`, await counted(table), BigInt(rows[0]?.c ?? -1), emmettLast),
      )
      return rate
    }
    const rates = await rounds(
      {
        ours: ours(false),
        oursPipelined: ours(true),
        emmettDefault: emmett('default'),
        emmettTuned: emmett('tuned'),
      },
      { count: ROUNDS, wanted: sidesWanted, width: 20 },
    )
    console.log(
      `PostgreSQL ${version} (${server.embedded ? 'embedded' : 'POSTGRES_URL'}); fsync=${await setting('fsync')}, ` +
        `synchronous_commit=${await setting('synchronous_commit')}; catch-up of ${EVENTS.toLocaleString('en-US')} events`,
    )
    report(rates, [
      ['ours', `ours: ProjectionRunner, batches of ${BATCH}, awaiting each statement`],
      ['oursPipelined', 'ours: the same, statements not awaited (pipelined)'],
      [
        'emmettDefault',
        'Emmett defaults: consumer + projector, batches of 100, 50 ms pause',
        ['ours'],
        ['oursPipelined', 'pipelined'],
      ],
      ['emmettTuned', `Emmett tuned: batches of ${BATCH}, no pause`, ['ours'], ['oursPipelined', 'pipelined']],
    ])
    for (const note of notes) console.log(`    ${note}`)
  } finally {
    await app?.close()
    await emmettStore?.close()
    await admin.end()
    await server.stop()
  }
}

const started = Date.now()
console.log(
  `Node ${process.version}; ${ROUNDS} rounds, order rotated each round; medians; ${STREAMS} streams × ${PER_STREAM} events, ${KEYS} keys`,
)
try {
  if (only.includes('sqlite')) await sqliteBench()
  if (only.includes('postgres')) await postgresBench()
} finally {
  removeFreshPaths()
}
console.log(`(${((Date.now() - started) / 1000).toFixed(0)} s)`)
