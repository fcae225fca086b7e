import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Roster } from '../../examples/course-roster.js'
import { CourseDefined, Courses } from '../../examples/course-subscriptions.js'
import { memory, ProgrammingError, ProjectionRunner } from '../../src/index.js'
import { sqlite, sqliteProjectionStore } from '../../src/sqlite/index.js'
import { tempDir } from '../fixtures/temp.js'

describe('a ProjectionRunner over a DCB application', () => {
  it('projects tagged events, resumes from its tracking, and rebuilds', async () => {
    const path = join(tempDir('es-dcb-roster-'), 'courses.db')
    await using courses = new Courses({ persistence: sqlite({ path }) })
    await using store = sqliteProjectionStore({ path, name: 'roster' })
    const students = () => store.read((transaction) => Roster.studentsOf(transaction, 'art'))
    await courses.defineCourse('art', 10)
    await courses.subscribeStudent('bea', 'art')
    {
      await using runner = new ProjectionRunner({ upstream: courses, projection: new Roster(), store })
      await runner.start()
      await runner.waitFor(await courses.head())
      expect(await students()).toEqual(['bea'])
      await courses.subscribeStudent('abe', 'art')
      await runner.waitFor(await courses.head())
      expect(await students()).toEqual(['abe', 'bea'])
    }
    // Stopped: new events wait for the next start, which resumes after the position tracked.
    await courses.subscribeStudent('cid', 'art')
    await using runner = new ProjectionRunner({ upstream: courses, projection: new Roster(), store })
    await runner.start()
    await runner.waitFor(await courses.head())
    expect(await students()).toEqual(['abe', 'bea', 'cid'])
    expect(await store.maxTrackingId('Courses')).toBe(await courses.head())
    await runner.rebuild()
    await runner.waitFor(await courses.head())
    expect(await students()).toEqual(['abe', 'bea', 'cid'])
  })

  it('reads the DCB log as notifications: positions as ids, types as topics', async () => {
    await using courses = new Courses({ persistence: memory() })
    await courses.defineCourse('a', 1)
    await courses.subscribeStudent('s', 'a')
    await courses.defineCourse('b', 1)
    const log = courses.notificationLog
    expect(await log.maxId()).toBe(3)
    const all = await log.select({ limit: 10 })
    expect(all.map((n) => [n.id, n.topic])).toEqual([
      [1, 'courses:CourseDefined'],
      [2, 'courses:StudentSubscribed'],
      [3, 'courses:CourseDefined'],
    ])
    expect(all[1]!.tags).toEqual(['course:a', 'student:s'])
    const defined = await log.select({ start: 2, limit: 10, topics: [CourseDefined.type] })
    expect(defined.map((n) => n.id)).toEqual([3])
    expect((await log.select({ start: 1, inclusiveOfStart: false, stop: 2, limit: 10 })).map((n) => n.id)).toEqual([2])
    const event = await log.decode(all[2]!)
    expect(event).toBeInstanceOf(CourseDefined)
    expect(event.position).toBe(3)
    await expect(log.decode({ ...all[0]!, tags: undefined } as never)).rejects.toBeInstanceOf(ProgrammingError)
  })
})
