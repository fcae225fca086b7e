// DCB benchmark (issue 12): the course-subscription workload on the DCB
// recorders, beside `@dcb-es/event-store` 7 (its PostgreSQL adapter) on the
// same PostgreSQL server, in one run.
//
// COURSES courses (default 20) hold at most CAPACITY students each (100);
// STUDENTS students (1,000) take at most MAX_COURSES courses each (5). Each
// decision picks a course and a student (the same seeded sequence for every
// side), reads one query of two items (the course's definition and
// subscriptions; the student's subscriptions), folds both limits, and, when
// both allow it, appends the subscription with the condition that nothing it
// read has changed since (after the read's head; for @dcb-es, after the last
// position read, as its decision models do). A conflict reads and decides
// again (up to 20 times). DECISIONS decisions (default 2,000) are shared by 1
// client, then by 16 concurrent clients (async loops on one pool of 17
// connections; on SQLite, in one event loop).
//
// Printed per side: appends/s (committed subscriptions per second of the
// decisions phase), the conflict rate (conditional appends that failed on
// their condition / all conditional appends), and wrong commits (courses over
// CAPACITY plus students over MAX_COURSES, counted from the store afterwards).
//
// PostgreSQL: POSTGRES_URL when set, else an embedded server with fsync and
// synchronous_commit on; both libraries use READ COMMITTED transactions on it.
// Run with `npm run build && npm install --prefix bench && node bench/dcb.mjs`.
// ROUNDS=n (default 3, medians shown), SIDES=a,b (names as printed) narrow a run;
// PYTHON=path/to/python adds Python eventsourcing 10's DCB (see below).

import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { AppendConditionError, Query, Tags } from '@dcb-es/event-store'
import { PostgresEventStore } from '@dcb-es/event-store-postgres'
import { postgres } from 'eventsourcing/postgres'
import { sqlite } from 'eventsourcing/sqlite'
import pg from 'pg'
import { freshPath, median, postgresServer, removeFreshPaths } from './shared.mjs'

const ROUNDS = Number(process.env.ROUNDS ?? 3)
const COURSES = Number(process.env.COURSES ?? 20)
const CAPACITY = Number(process.env.CAPACITY ?? 100)
const STUDENTS = Number(process.env.STUDENTS ?? 1000)
const MAX_COURSES = Number(process.env.MAX_COURSES ?? 5)
const DECISIONS = Number(process.env.DECISIONS ?? 2000)
const RETRIES = 20
const execFileAsync = promisify(execFile)
const wanted = process.env.SIDES?.split(',')

const encode = (value) => Buffer.from(JSON.stringify(value))
const decode = (bytes) => JSON.parse(Buffer.from(bytes).toString())

/** The i-th decision's course and student: the same for every side. */
function pick(i) {
  let x = (i + 1) * 2654435761
  x = (x ^ (x >>> 15)) >>> 0
  return { course: `c${x % COURSES}`, student: `s${Math.floor(x / COURSES) % STUDENTS}` }
}

/** Folds the events of one decision's query into what its rule needs. */
function fold(events, course, student) {
  let capacity = 0
  let taken = 0
  let courses = 0
  let already = false
  for (const { type, tags, data } of events) {
    if (type === 'CourseDefined') capacity = data.capacity
    else if (type === 'StudentSubscribed') {
      const inCourse = tags.includes(`course:${course}`)
      const ofStudent = tags.includes(`student:${student}`)
      if (inCourse) taken++
      if (ofStudent) courses++
      if (inCourse && ofStudent) already = true
    }
  }
  return !already && taken < capacity && courses < MAX_COURSES
}

// ---------------------------------------------------------------- the stores, behind one small interface

/** This library's DCB recorder: read returns a settled head, the condition's after. */
function ours(recorder) {
  return {
    async decide(course, student) {
      const query = [
        { types: ['CourseDefined', 'StudentSubscribed'], tags: [`course:${course}`] },
        { types: ['StudentSubscribed'], tags: [`student:${student}`] },
      ]
      const { events, head } = await recorder.read(query)
      const decoded = events.map((e) => ({ type: e.type, tags: e.tags, data: decode(e.data) }))
      if (!fold(decoded, course, student)) return false
      const event = {
        type: 'StudentSubscribed',
        data: encode({ course, student }),
        tags: [`course:${course}`, `student:${student}`],
      }
      await recorder.append([event], { failIfEventsMatch: query, after: head })
      return true
    },
    isConflict: (error) => error?.name === 'DcbConflictError',
    async defineCourses() {
      const events = Array.from({ length: COURSES }, (_, c) => ({
        type: 'CourseDefined',
        data: encode({ capacity: CAPACITY }),
        tags: [`course:c${c}`],
      }))
      await recorder.append(events)
    },
    async all() {
      return (await recorder.read()).events.map((e) => ({ type: e.type, tags: e.tags }))
    },
  }
}

/** `@dcb-es/event-store`'s PostgreSQL adapter: after is the last position read. */
function dcbEs(store) {
  return {
    async decide(course, student) {
      const query = Query.fromItems([
        { types: ['CourseDefined', 'StudentSubscribed'], tags: Tags.from([`course:${course}`]) },
        { types: ['StudentSubscribed'], tags: Tags.from([`student:${student}`]) },
      ])
      const events = []
      let after
      for await (const { event, position } of store.read(query)) {
        events.push({ type: event.type, tags: event.tags.values, data: event.data })
        after = position
      }
      if (!fold(events, course, student)) return false
      const event = {
        type: 'StudentSubscribed',
        data: { course, student },
        tags: Tags.from([`course:${course}`, `student:${student}`]),
        metadata: {},
      }
      await store.append({ events: event, condition: { failIfEventsMatch: query, after } })
      return true
    },
    isConflict: (error) => error instanceof AppendConditionError,
    async defineCourses() {
      const events = Array.from({ length: COURSES }, (_, c) => ({
        type: 'CourseDefined',
        data: { capacity: CAPACITY },
        tags: Tags.from([`course:c${c}`]),
        metadata: {},
      }))
      await store.append({ events })
    },
    async all() {
      const all = []
      for await (const { event } of store.read(Query.all())) all.push({ type: event.type, tags: event.tags.values })
      return all
    },
  }
}

// ---------------------------------------------------------------- the run

/** Runs DECISIONS decisions on `clients` concurrent loops; returns appends/s, the conflict rate and wrong commits. */
async function run(store, clients) {
  await store.defineCourses()
  let next = 0
  let appended = 0
  let attempts = 0
  let conflicts = 0
  const client = async () => {
    for (let i = next++; i < DECISIONS; i = next++) {
      const { course, student } = pick(i)
      for (let attempt = 0; attempt <= RETRIES; attempt++) {
        try {
          attempts++
          if (await store.decide(course, student)) appended++
          else attempts--
          break
        } catch (error) {
          if (!store.isConflict(error)) throw error
          conflicts++
        }
      }
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: clients }, client))
  const seconds = (performance.now() - started) / 1000
  return {
    rate: appended / seconds,
    conflictRate: conflicts / Math.max(1, attempts),
    wrong: wrongCommits(await store.all()),
  }
}

/** Courses over capacity plus students over their limit. */
function wrongCommits(events) {
  const perCourse = new Map()
  const perStudent = new Map()
  for (const { type, tags } of events) {
    if (type !== 'StudentSubscribed') continue
    const course = tags.find((t) => t.startsWith('course:'))
    const student = tags.find((t) => t.startsWith('student:'))
    perCourse.set(course, (perCourse.get(course) ?? 0) + 1)
    perStudent.set(student, (perStudent.get(student) ?? 0) + 1)
  }
  const over = (counts, limit) => [...counts.values()].filter((n) => n > limit).length
  return over(perCourse, CAPACITY) + over(perStudent, MAX_COURSES)
}

const server = await postgresServer()
const admin = new pg.Pool({ connectionString: server.url, max: 2 })
let fresh = 0
const sides = {
  'sqlite (ours)': async (clients) => {
    const persistence = sqlite({ path: freshPath() })
    const recorders = await persistence.openDcb('courses')
    try {
      return await run(ours(recorders.events), clients)
    } finally {
      await recorders.close()
    }
  },
  'postgres (ours)': async (clients) => {
    const schema = `bench_dcb_${process.pid}_${fresh++}`
    const recorders = await postgres({ url: server.url, schema, poolSize: 17 }).openDcb('courses')
    try {
      return await run(ours(recorders.events), clients)
    } finally {
      await recorders.close()
      await admin.query(`DROP SCHEMA "${schema}" CASCADE`)
    }
  },
  'postgres (@dcb-es)': async (clients) => {
    const pool = new pg.Pool({ connectionString: server.url, max: 17 })
    const tablePrefix = `bench_dcbes_${process.pid}_${fresh++}`
    const store = new PostgresEventStore({ pool, tablePrefix })
    try {
      await store.ensureInstalled()
      return await run(dcbEs(store), clients)
    } finally {
      const table = `${tablePrefix}_events`
      await pool.query(
        `DROP TABLE ${table}; DROP FUNCTION ${table}_append; DROP FUNCTION ${table}_check_conditions; DROP FUNCTION ${table}_barrier_hwm`,
      )
      await pool.end()
    }
  },
}

// Python eventsourcing 10's DCB recorder, when PYTHON names an interpreter that has it
// (pip install "eventsourcing[postgres]==10.0.0a7"): bench/dcb_python.py, in a process of its own.
if (process.env.PYTHON) {
  sides['postgres (Python es 10)'] = async (clients) => {
    const prefix = `bench_py_${process.pid}_${fresh++}`
    const script = fileURLToPath(new URL('./dcb_python.py', import.meta.url))
    const parameters = [COURSES, CAPACITY, STUDENTS, MAX_COURSES, DECISIONS].map(String)
    try {
      const { stdout } = await execFileAsync(process.env.PYTHON, [
        script,
        server.url,
        String(clients),
        prefix,
        ...parameters,
      ])
      return JSON.parse(stdout.trim().split('\n').at(-1))
    } finally {
      await admin.query(`DROP TABLE IF EXISTS ${prefix}_tt_main, ${prefix}_tt_tag CASCADE`)
    }
  }
}

try {
  console.log(
    `DCB course subscriptions: ${COURSES} courses of ${CAPACITY}, ${STUDENTS} students of at most ${MAX_COURSES} courses, ${DECISIONS} decisions, ${ROUNDS} rounds (medians)`,
  )
  const names = Object.keys(sides).filter((name) => wanted === undefined || wanted.includes(name))
  for (const clients of [1, 16]) {
    console.log(`\n  ${clients} client${clients === 1 ? '' : 's'}:`)
    const results = Object.fromEntries(names.map((name) => [name, []]))
    for (let round = 0; round < ROUNDS; round++) {
      for (const name of names.map((_, i) => names[(i + round) % names.length])) {
        const result = await sides[name](clients)
        results[name].push(result)
        console.log(
          `    round ${round + 1}: ${name.padEnd(20)} ${Math.round(result.rate).toLocaleString('en-US').padStart(7)} appends/s, conflicts ${(100 * result.conflictRate).toFixed(1).padStart(5)}%, wrong commits ${result.wrong}`,
        )
      }
    }
    const medians = Object.fromEntries(names.map((name) => [name, median(results[name].map((r) => r.rate))]))
    for (const name of names) {
      const conflicts = median(results[name].map((r) => r.conflictRate))
      const wrong = results[name].reduce((sum, r) => sum + r.wrong, 0)
      console.log(
        `  median ${name.padEnd(20)} ${Math.round(medians[name]).toLocaleString('en-US').padStart(7)} appends/s, conflicts ${(100 * conflicts).toFixed(1)}%, wrong commits in all rounds ${wrong}`,
      )
    }
    if (medians['postgres (ours)'] && medians['postgres (@dcb-es)']) {
      console.log(
        `  ours / @dcb-es on PostgreSQL: ${(medians['postgres (ours)'] / medians['postgres (@dcb-es)']).toFixed(2)}x`,
      )
    }
  }
} finally {
  await admin.end()
  await server.stop()
  removeFreshPaths()
}
