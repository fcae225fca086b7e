import { describe, expect, it } from 'vitest'
import { Aggregate, replayEvents } from '../../src/domain/aggregate.js'
import { UpcastError } from '../../src/domain/errors.js'
import { resolveTopic } from '../../src/domain/topics.js'
import { type Upcaster, type UpcastState, upcast, type Versioning } from '../../src/domain/upcasting.js'
import { caught } from '../fixtures/errors.js'

const steps: Upcaster[] = [
  (state) => ({ ...state, steps: [...(state.steps as string[]), '1→2'] }),
  (state) => ({ ...state, steps: [...(state.steps as string[]), '2→3'] }),
  (state) => ({ ...state, steps: [...(state.steps as string[]), '3→4'] }),
]
const v4: Versioning = { classVersion: 4, upcasters: steps }

describe('upcast', () => {
  it('runs every upcaster, in order, from version 1', () => {
    expect(upcast('Thing', { steps: [] }, 1, v4)).toEqual({ steps: ['1→2', '2→3', '3→4'] })
  })

  it('runs only the upcasters after the stored version', () => {
    expect(upcast('Thing', { steps: [] }, 3, v4)).toEqual({ steps: ['3→4'] })
  })

  it('returns state at the current version unchanged', () => {
    const state = { steps: [] }
    expect(upcast('Thing', state, 4, v4)).toBe(state)
    expect(upcast('Thing', state, 1, { classVersion: 1, upcasters: [] })).toBe(state)
  })

  it('rejects a stored version newer than the class, saying what to do', () => {
    const error = caught(() => upcast('Thing', {}, 5, v4))
    expect(error).toBeInstanceOf(UpcastError)
    expect(error).toMatchObject({ name: 'UpcastError' })
    expect((error as UpcastError).message).toBe(
      'Thing was stored at class version 5, but this program knows versions 1 to 4: deploy the newer code, or add upcasters',
    )
  })

  it('rejects a stored version that is not a positive integer', () => {
    for (const version of [0, -1, 1.5, Number.NaN]) {
      expect(() => upcast('Thing', {}, version, v4)).toThrow(UpcastError)
    }
  })

  it('wraps a failing upcaster in an UpcastError naming the step, with the cause', () => {
    const cause = new Error('no name')
    const failing: Versioning = {
      classVersion: 3,
      upcasters: [
        (state) => state,
        () => {
          throw cause
        },
      ],
    }
    const error = caught(() => upcast('Thing', {}, 1, failing))
    expect(error).toBeInstanceOf(UpcastError)
    expect((error as UpcastError).message).toBe('Upcasting Thing from version 2 to 3 failed')
    expect((error as UpcastError).cause).toBe(cause)
  })
})

/** Today's event has `{ trick, level }`; v1 stored `{ name }`, v2 stored `{ trick }`. */
class Dog extends Aggregate {
  tricks: string[] = []
  static Registered = Dog.created('upcasting-test:Dog.Registered')
  static TrickAdded = Dog.event(
    'upcasting-test:Dog.TrickAdded',
    (dog, e: { trick: string; level: number }) => {
      dog.tricks.push(`${e.trick}@${e.level}`)
    },
    {
      upcast: [
        ({ name, ...rest }: UpcastState) => ({ ...rest, trick: name }),
        (state: UpcastState) => ({ ...state, level: 1 }),
      ],
    },
  )
}

describe('event types', () => {
  it('are at class version 1 with no upcasters by default', () => {
    expect(Dog.Registered.classVersion).toBe(1)
    expect(Dog.Registered.upcasters).toEqual([])
    expect(Aggregate.Discarded.classVersion).toBe(1)
  })

  it('take their class version from their upcasters', () => {
    expect(Dog.TrickAdded.classVersion).toBe(3)
    expect(Dog.TrickAdded.upcasters).toHaveLength(2)
  })

  it('load old stored events into the current class', () => {
    const stored = [
      { topic: 'upcasting-test:Dog.Registered', classVersion: 1, state: {} },
      { topic: 'upcasting-test:Dog.TrickAdded', classVersion: 1, state: { name: 'sit' } },
      { topic: 'upcasting-test:Dog.TrickAdded', classVersion: 2, state: { trick: 'stay' } },
      { topic: 'upcasting-test:Dog.TrickAdded', classVersion: 3, state: { trick: 'heel', level: 2 } },
    ]
    const events = stored.map(({ topic, classVersion, state }, i) => {
      const type = resolveTopic(topic) as typeof Dog.TrickAdded
      const fields = upcast(topic, state, classVersion, type) as { trick: string; level: number }
      return new type({ ...fields, originatorId: 'dog-1', originatorVersion: i + 1, timestamp: new Date(i) })
    })
    const dog = replayEvents(Dog, events)
    expect(dog?.tricks).toEqual(['sit@1', 'stay@1', 'heel@2'])
    expect(events[1]).not.toHaveProperty('name')
  })
})
