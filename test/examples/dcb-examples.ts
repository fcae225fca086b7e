// The DCB examples' tests, run on every backend by dcb-examples.test.ts and the PostgreSQL tests.

import { describe, expect, it } from 'vitest'
import { CourseRuleError, Courses, MAX_COURSES } from '../../examples/course-subscriptions.js'
import { Invoicing } from '../../examples/invoice-numbers.js'
import { Accounts, UsernameTakenError } from '../../examples/unique-usernames.js'
import { AesGcmCipher, type Persistence, TagHasher } from '../../src/index.js'

const TAG_HASH_KEY = TagHasher.createKey()

/** Runs the DCB examples on one backend: `newStore()` gives handles on a fresh store. */
export function describeDcbExamples(name: string, newStore: () => () => Persistence): void {
  describe(`course subscriptions on ${name}`, () => {
    it('keeps both rules: a course holds its capacity, a student takes at most MAX_COURSES', async () => {
      await using courses = new Courses({ persistence: newStore()() })
      await courses.defineCourse('algebra', 2)
      await expect(courses.defineCourse('algebra', 5)).rejects.toThrow(/defined already/)
      await expect(courses.subscribeStudent('ann', 'nowhere')).rejects.toThrow(/does not exist/)
      await courses.subscribeStudent('ann', 'algebra')
      await expect(courses.subscribeStudent('ann', 'algebra')).rejects.toThrow(/already/)
      await courses.subscribeStudent('bob', 'algebra')
      await expect(courses.subscribeStudent('cat', 'algebra')).rejects.toThrow(/full/)
      await expect(courses.changeCapacity('algebra', 1)).rejects.toThrow(/2 students/)
      await courses.changeCapacity('algebra', 3)
      await courses.subscribeStudent('cat', 'algebra')
      for (const course of ['b', 'c', 'd']) await courses.defineCourse(course, 10)
      await courses.subscribeStudent('ann', 'b')
      await courses.subscribeStudent('ann', 'c')
      await expect(courses.subscribeStudent('ann', 'd')).rejects.toThrow(new RegExp(`${MAX_COURSES} courses`))
      expect(await courses.course('algebra')).toEqual({ defined: true, capacity: 3, students: 3 })
      expect(await courses.coursesOf('ann')).toEqual(['algebra', 'b', 'c'])
    })

    it('gives the last places of a course to exactly as many of 16 racing students', async () => {
      const store = newStore()
      await using courses = new Courses({ persistence: store() })
      await using other = new Courses({ persistence: store() })
      await courses.defineCourse('popular', 5)
      const results = await Promise.allSettled(
        Array.from({ length: 16 }, (_, i) => (i % 2 ? courses : other).subscribeStudent(`s${i}`, 'popular')),
      )
      expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(5)
      for (const result of results) {
        if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(CourseRuleError)
      }
      expect(await courses.course('popular')).toEqual({ defined: true, capacity: 5, students: 5 })
    })

    it('lets one student racing for more courses than allowed take only MAX_COURSES', async () => {
      await using courses = new Courses({ persistence: newStore()() })
      const names = ['w', 'x', 'y', 'z', 'v', 'u']
      for (const course of names) await courses.defineCourse(course, 10)
      const results = await Promise.allSettled(names.map((course) => courses.subscribeStudent('eve', course)))
      expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(MAX_COURSES)
      expect(await courses.coursesOf('eve')).toHaveLength(MAX_COURSES)
    })
  })

  describe(`unique usernames on ${name}`, () => {
    const env = { TAG_HASH_KEY, CIPHER_KEY: AesGcmCipher.createKey() }

    it('lets exactly one of 10 racing registrations of a name win, and frees a changed name', async () => {
      await using accounts = new Accounts({ persistence: newStore()(), env })
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => accounts.register(`u${i}`, 'carol', `Carol ${i}`)),
      )
      const winners = results.flatMap((result, i) => (result.status === 'fulfilled' ? [`u${i}`] : []))
      expect(winners).toHaveLength(1)
      for (const result of results) {
        if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(UsernameTakenError)
      }
      expect(await accounts.holderOf('carol')).toBe(winners[0])
      await accounts.register('dan', 'dan', 'Dan')
      await expect(accounts.changeUsername('dan', 'carol')).rejects.toBeInstanceOf(UsernameTakenError)
      await accounts.changeUsername(winners[0]!, 'carol2')
      expect(await accounts.holderOf('carol')).toBeUndefined()
      await accounts.changeUsername('dan', 'carol')
      expect(await accounts.holderOf('carol')).toBe('dan')
      expect(await accounts.holderOf('dan')).toBeUndefined()
      await expect(accounts.changeUsername('nobody', 'x')).rejects.toThrow(/No user/)
    })

    it('stores no username in clear: tags hashed with the key, data encrypted', async () => {
      const store = newStore()
      await using accounts = new Accounts({ persistence: store(), env })
      await accounts.register('u1', 'alice.smith', 'Alice Smith')
      await using recorders = await store().openDcb('Accounts')
      const { events } = await recorders.events.read()
      expect(events).toHaveLength(1)
      const stored = events[0]!
      expect(stored.tags).toContain('user:u1')
      expect(stored.tags.join()).not.toContain('alice')
      expect(stored.tags).toContain(new TagHasher(TAG_HASH_KEY, ['username']).hash('username:alice.smith'))
      expect(Buffer.from(stored.data).toString('latin1')).not.toContain('alice')
      // Read back, the event has its tags as its type derives them.
      const [event] = (await accounts.read()).events
      expect(event!.tags).toEqual(['user:u1', 'username:alice.smith'])
      // Another key matches nothing: the name looks free.
      await using otherKey = new Accounts({
        persistence: store(),
        env: { ...env, TAG_HASH_KEY: TagHasher.createKey() },
      })
      expect(await otherKey.holderOf('alice.smith')).toBeUndefined()
    })
  })

  describe(`gapless invoice numbers on ${name}`, () => {
    it('numbers 20 racing invoices 1 to 20, each once, per series', async () => {
      const store = newStore()
      await using invoicing = new Invoicing({ persistence: store() })
      await using other = new Invoicing({ persistence: store() })
      const numbers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => (i % 2 ? invoicing : other).createInvoice('2026', `c${i}`, 100 * i)),
      )
      expect([...numbers].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
      expect(await invoicing.createInvoice('2027', 'x', 1)).toBe(1)
      const invoices = await invoicing.invoices('2026')
      expect(invoices.map((invoice) => invoice.number)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
      expect(invoices[0]).toMatchObject({ series: '2026', number: 1 })
    })
  })
}
