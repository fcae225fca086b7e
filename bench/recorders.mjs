// Recorder benchmarks: each figure is printed beside a baseline measured in the
// same run (raw better-sqlite3 with the same pragmas and SQL shape), as the
// median of several rounds. Run with `npm run bench` (builds first); the
// package imports itself by name through its exports.
import { memory } from 'eventsourcing'
import { sqlite } from 'eventsourcing/sqlite'
import { bigAggregate, freshPath, median, rawConnection, removeFreshPaths } from './shared.mjs'

const ROUNDS = 5
const INSERTS = 5_000
const AGGREGATE = 10_000
const PAGE = 1_000
const MEMORY_BATCHES = 2_000
const BATCH = 100
const state = new Uint8Array(100).fill(42)

const format = (perSecond) => Math.round(perSecond).toLocaleString('en-US').padStart(12)

/** Times `body` (which does `count` operations) once; returns the rate per second. */
async function time(count, body, setup = async () => undefined, teardown = async () => {}) {
  const context = await setup()
  const start = process.hrtime.bigint()
  await body(context)
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  await teardown(context)
  return count / seconds
}

/**
 * Measures our side and the baseline in alternate order within each round, so
 * that noise from the machine falls on both; returns the medians of the rates
 * and of the per-round ratios.
 */
async function compare(count, ours, baseline) {
  const rates = { ours: [], baseline: [], ratio: [] }
  for (let round = 0; round < ROUNDS; round++) {
    const pair = round % 2 === 0 ? [ours, baseline] : [baseline, ours]
    const [first, second] = [await time(count, ...pair[0]), await time(count, ...pair[1])]
    const [o, b] = round % 2 === 0 ? [first, second] : [second, first]
    rates.ours.push(o)
    rates.baseline.push(b)
    rates.ratio.push(o / b)
  }
  return { ours: median(rates.ours), baseline: median(rates.baseline), ratio: median(rates.ratio) }
}

/** Runs `body` once per round; returns the median rate per second. */
async function rate(count, body, setup, teardown) {
  const rates = []
  for (let round = 0; round < ROUNDS; round++) rates.push(await time(count, body, setup, teardown))
  return median(rates)
}

function report(label, result, target) {
  const goal = target === undefined ? '' : `  (target ${target})`
  if (typeof result === 'number') {
    console.log(`${label.padEnd(52)}${format(result)}/s${goal}`)
    return
  }
  console.log(`${label.padEnd(52)}${format(result.ours)}/s  ${result.ratio.toFixed(2)}× raw${goal}`)
  console.log(`${'  raw better-sqlite3'.padEnd(52)}${format(result.baseline)}/s`)
}

const singles = Array.from({ length: INSERTS }, (_, i) => ({
  originatorId: `aggregate-${i}`,
  originatorVersion: 1,
  topic: 'bench:Created',
  state,
}))

async function sqliteInserts() {
  const ours = [
    async (recorders) => {
      for (const event of singles) await recorders.events.insertEvents([event])
    },
    () => sqlite({ path: freshPath() }).open('bench'),
    (recorders) => recorders.close(),
  ]
  const raw = [
    ({ insert }) => {
      for (const e of singles) insert.immediate(e)
    },
    async () => {
      // The table is made by the backend, so both sides write the same schema.
      const path = freshPath()
      await (await sqlite({ path }).open('bench')).close()
      const db = rawConnection(path)
      const statement = db.prepare(
        'INSERT INTO bench_events (originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?)',
      )
      const insert = db.transaction((e) => statement.run(e.originatorId, e.originatorVersion, e.topic, e.state))
      return { db, insert }
    },
    ({ db }) => db.close(),
  ]
  report('sqlite: single-event inserts (new originator each)', await compare(INSERTS, ours, raw), '≥ 0.5× raw')
}

async function readLog(selectPage) {
  let start = 0
  for (;;) {
    const page = await selectPage(start)
    if (page.length < PAGE) return
    start = page[page.length - 1].id
  }
}

async function sqliteReads() {
  const path = freshPath()
  const recorders = await sqlite({ path }).open('bench')
  const events = bigAggregate(AGGREGATE, state)
  for (let i = 0; i < AGGREGATE; i += PAGE) await recorders.events.insertEvents(events.slice(i, i + PAGE))
  const db = rawConnection(path)
  const rawEvents = db.prepare(
    'SELECT originator_id, originator_version, topic, state FROM bench_events WHERE originator_id = ? ORDER BY originator_version',
  )
  const rawPage = db.prepare(
    'SELECT notification_id AS id, originator_id, originator_version, topic, state FROM bench_events WHERE notification_id > ? ORDER BY notification_id LIMIT ?',
  )

  const repeat = 5
  const selectEvents = await compare(
    AGGREGATE * repeat,
    [
      async () => {
        for (let i = 0; i < repeat; i++) await recorders.events.selectEvents('big')
      },
    ],
    [
      () => {
        for (let i = 0; i < repeat; i++) rawEvents.all('big')
      },
    ],
  )
  report(`sqlite: selectEvents of a ${AGGREGATE.toLocaleString('en-US')}-event aggregate`, selectEvents)

  const selectNotifications = await compare(
    AGGREGATE * repeat,
    [
      async () => {
        for (let i = 0; i < repeat; i++) {
          await readLog((start) =>
            recorders.events.selectNotifications({ start, inclusiveOfStart: false, limit: PAGE }),
          )
        }
      },
    ],
    [
      async () => {
        for (let i = 0; i < repeat; i++) await readLog((start) => rawPage.all(start, PAGE))
      },
    ],
  )
  report(`sqlite: selectNotifications, pages of ${PAGE.toLocaleString('en-US')}`, selectNotifications)
  db.close()
  await recorders.close()
}

async function memoryRecorder() {
  const batches = Array.from({ length: MEMORY_BATCHES }, (_, b) =>
    Array.from({ length: BATCH }, (_, v) => ({
      originatorId: `aggregate-${b}`,
      originatorVersion: v + 1,
      topic: 'bench:Changed',
      state,
    })),
  )
  const inserts = await rate(
    MEMORY_BATCHES * BATCH,
    async (recorders) => {
      for (const batch of batches) await recorders.events.insertEvents(batch)
    },
    () => memory().open('bench'),
    (recorders) => recorders.close(),
  )
  report(`memory: inserts in batches of ${BATCH}`, inserts, '≥ 1,000,000/s')

  const recorders = await memory().open('bench')
  const big = bigAggregate(AGGREGATE, state)
  await recorders.events.insertEvents(big)
  const repeat = 20
  const reads = await rate(AGGREGATE * repeat, async () => {
    for (let i = 0; i < repeat; i++) await recorders.events.selectEvents('big')
  })
  report(`memory: selectEvents of a ${AGGREGATE.toLocaleString('en-US')}-event aggregate`, reads)
  const log = await rate(AGGREGATE * repeat, async () => {
    for (let i = 0; i < repeat; i++) {
      await readLog((start) => recorders.events.selectNotifications({ start, inclusiveOfStart: false, limit: PAGE }))
    }
  })
  report(`memory: selectNotifications, pages of ${PAGE.toLocaleString('en-US')}`, log)
  await recorders.close()
}

console.log(`Node ${process.version}; median of ${ROUNDS} rounds; events of ${state.length} bytes`)
try {
  await sqliteInserts()
  await sqliteReads()
  await memoryRecorder()
} finally {
  removeFreshPaths()
}
