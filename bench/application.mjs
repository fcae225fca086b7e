// Application benchmarks: whole saves and gets (mapper, recorder, repository)
// beside raw better-sqlite3 writing the same rows with the same pragmas, in the
// same run, as medians of several rounds. Run with `npm run bench`.
import { Application, memory } from 'eventsourcing'
import { sqlite } from 'eventsourcing/sqlite'
import { Counter, freshPath, median, rawConnection, removeFreshPaths } from './shared.mjs'

const ROUNDS = 5
const SAVES = 3_000
const AGGREGATE = 10_000

async function timed(count, body) {
  const start = process.hrtime.bigint()
  await body()
  return count / (Number(process.hrtime.bigint() - start) / 1e9)
}

/** One round of single-event saves through an application; returns saves per second. */
async function saves(persistence) {
  const app = new Application({ name: 'bench', persistence })
  await app.connect()
  const rate = await timed(SAVES, async () => {
    for (let i = 0; i < SAVES; i++) await app.save(Counter.start())
  })
  await app.close()
  return rate
}

/** The same rows written by raw better-sqlite3, one transaction each; returns rows per second. */
async function rawSaves(path) {
  await (await sqlite({ path }).open('bench')).close()
  const db = rawConnection(path)
  const statement = db.prepare(
    'INSERT INTO bench_events (originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?)',
  )
  const insert = db.transaction((id, state) => statement.run(id, 1, 'bench:Counter.Started', state))
  const state = Buffer.from(JSON.stringify({ timestamp: new Date().toISOString(), start: 0, label: 'a counter' }))
  const rate = await timed(SAVES, () => {
    for (let i = 0; i < SAVES; i++) insert.immediate(crypto.randomUUID(), state)
  })
  db.close()
  return rate
}

async function get(persistence) {
  const app = new Application({ name: 'bench', persistence })
  const counter = Counter.start()
  for (let i = 1; i < AGGREGATE; i++) counter.add(1)
  await app.save(counter)
  const rates = []
  for (let round = 0; round < ROUNDS; round++) {
    rates.push(await timed(AGGREGATE, () => app.repository.get(Counter, counter.id)))
  }
  await app.close()
  return median(rates)
}

const line = (label, value, extra = '') =>
  console.log(`${label.padEnd(52)}${Math.round(value).toLocaleString('en-US').padStart(12)}/s${extra}`)

console.log(`Node ${process.version}; median of ${ROUNDS} rounds`)
try {
  const ours = []
  const raw = []
  const ratios = []
  for (let round = 0; round < ROUNDS; round++) {
    const o = await saves(sqlite({ path: freshPath() }))
    const r = await rawSaves(freshPath())
    ours.push(o)
    raw.push(r)
    ratios.push(o / r)
  }
  line('sqlite: Application.save, one new aggregate each', median(ours), `  ${median(ratios).toFixed(2)}× raw`)
  line('  raw better-sqlite3 single-row transactions', median(raw))
  const memorySaves = []
  for (let round = 0; round < ROUNDS; round++) memorySaves.push(await saves(memory()))
  line('memory: Application.save, one new aggregate each', median(memorySaves))
  line(
    `sqlite: repository.get of a ${AGGREGATE.toLocaleString('en-US')}-event aggregate`,
    await get(sqlite({ path: freshPath() })),
    ' events',
  )
  line(
    `memory: repository.get of a ${AGGREGATE.toLocaleString('en-US')}-event aggregate`,
    await get(memory()),
    ' events',
  )
} finally {
  removeFreshPaths()
}
