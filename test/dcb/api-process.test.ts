import { afterAll, describe, expect, it } from 'vitest'
import { Courses, StudentSubscribed } from '../../examples/course-subscriptions.js'
import { Dog, DogSchool } from '../../examples/dog-school.js'
import {
  DcbConflictError,
  DcbProcessApplication,
  type DcbProcessing,
  DcbProcessRunner,
  type DomainEvent,
  decisionModel,
  type TaggedEvent,
  TrackingConflictError,
  tag,
  taggedEvent,
} from '../../src/index.js'
import { postgres } from '../../src/postgres/index.js'
import { backends } from '../fixtures/backends.js'
import { freshSchema, postgresUrl } from '../postgres/fixtures.js'

const drops: (() => Promise<void>)[] = []

afterAll(async () => {
  for (const drop of drops) await drop()
})

/** A fresh PostgreSQL schema per store. */
function postgresStore() {
  const { schema, drop } = freshSchema()
  drops.push(drop)
  return () => postgres({ url: postgresUrl(), schema })
}

const StudentCharged = taggedEvent(
  'billing:StudentCharged',
  (e: { studentId: string; courseId: string; cents: number }) => [
    tag('student', e.studentId),
    tag('course', e.courseId),
  ],
)

const charged = (studentId: string, courseId: string) =>
  decisionModel({ initial: false, tags: [tag('student', studentId), tag('course', courseId)] }).on(
    StudentCharged,
    () => true,
  )

/** Charges each subscription once; `interfere` runs inside a decision, before its append. */
class Billing extends DcbProcessApplication {
  static override readonly followTopics = [StudentSubscribed]
  interfere: (() => Promise<unknown>) | undefined

  protected async policy(event: DomainEvent | TaggedEvent, processing: DcbProcessing): Promise<void> {
    if (!(event instanceof StudentSubscribed)) return
    const { studentId, courseId } = event.data
    await processing.decide(charged(studentId, courseId), async (done) => {
      await this.interfere?.()
      return done ? [] : [new StudentCharged({ studentId, courseId, cents: 100 })]
    })
  }

  async charges(): Promise<string[]> {
    return (await this.read({ types: [StudentCharged] })).events.map((e) => e.tags.join(' '))
  }
}

describe.each([...backends(), ['postgres', postgresStore] as const])(
  'a DCB process application on %s',
  (_, newStore) => {
    it('appends its decisions with the tracking record of each upstream event, and resumes after a stop', async () => {
      const store = newStore()
      await using courses = new Courses({ persistence: store() })
      await using billing = new Billing({ persistence: store() })
      await courses.defineCourse('art', 5)
      await courses.subscribeStudent('ann', 'art')
      {
        await using runner = new DcbProcessRunner({ upstream: courses, follower: billing })
        await runner.start()
        await runner.waitFor(await courses.head())
      }
      await courses.subscribeStudent('bob', 'art')
      expect(await billing.charges()).toHaveLength(1)
      await using runner = new DcbProcessRunner({ upstream: courses, follower: billing })
      await runner.start()
      await runner.waitFor(await courses.head())
      expect(await billing.charges()).toEqual(['student:ann course:art', 'student:bob course:art'])
      expect(await billing.position('Courses')).toBe(await courses.head())
    })

    it('processes each upstream event once: again, it is a tracking conflict that appends nothing', async () => {
      const store = newStore()
      await using courses = new Courses({ persistence: store() })
      await using billing = new Billing({ persistence: store() })
      await courses.defineCourse('art', 5)
      await courses.subscribeStudent('ann', 'art')
      const [notification] = await courses.notificationLog.select({ start: 2, limit: 1 })
      await billing.process(courses, notification!)
      const head = await billing.head()
      await expect(billing.process(courses, notification!)).rejects.toBeInstanceOf(TrackingConflictError)
      expect(await billing.head()).toBe(head)
      expect(await billing.position('Courses')).toBe(2)
    })

    it('appends nothing, tracking included, when a decision boundary changed meanwhile, and decides again', async () => {
      const store = newStore()
      await using courses = new Courses({ persistence: store() })
      await using billing = new Billing({ persistence: store() })
      await courses.defineCourse('art', 5)
      await courses.subscribeStudent('ann', 'art')
      const [notification] = await courses.notificationLog.select({ start: 2, limit: 1 })
      // Another writer charges the same subscription while the policy decides.
      billing.interfere = () => billing.append([new StudentCharged({ studentId: 'ann', courseId: 'art', cents: 1 })])
      await expect(billing.process(courses, notification!)).rejects.toBeInstanceOf(DcbConflictError)
      expect(await billing.position('Courses')).toBe(0)
      billing.interfere = undefined
      await billing.process(courses, notification!)
      expect(await billing.charges()).toHaveLength(1)
      expect(await billing.position('Courses')).toBe(2)
    })

    it('follows an aggregate application too, one name per registered dog', async () => {
      const DogNamed = taggedEvent('kennel:DogNamed', (e: { name: string; dogId: string }) => [tag('name', e.name)])
      class Kennel extends DcbProcessApplication {
        static override readonly followTopics = [Dog.Registered]
        protected async policy(event: DomainEvent | TaggedEvent, processing: DcbProcessing): Promise<void> {
          if (!(event instanceof Dog.Registered)) return
          const taken = decisionModel({ initial: false, tags: [tag('name', event.name)] }).on(DogNamed, () => true)
          await processing.decide(taken, (isTaken) =>
            isTaken ? [] : [new DogNamed({ name: event.name, dogId: event.originatorId })],
          )
        }
      }
      const store = newStore()
      await using school = new DogSchool({ persistence: store() })
      await using kennel = new Kennel({ persistence: store() })
      const [fido] = [await school.register('Fido'), await school.register('Fido'), await school.register('Rex')]
      await using runner = new DcbProcessRunner({ upstream: school, follower: kennel })
      await runner.start()
      await runner.waitFor(await school.notificationLog.maxId())
      const names = (await kennel.read()).events.map((event) => event.data)
      expect(names).toEqual([
        { name: 'Fido', dogId: fido },
        { name: 'Rex', dogId: expect.any(String) },
      ])
      expect(await kennel.position('DogSchool')).toBe(await school.notificationLog.maxId())
    })
  },
)
