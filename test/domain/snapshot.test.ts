import { describe, expect, it } from 'vitest'
import { Aggregate } from '../../src/domain/aggregate.js'
import { DomainEvent } from '../../src/domain/domain-event.js'
import { TopicError, UpcastError } from '../../src/domain/errors.js'
import { Snapshot } from '../../src/domain/snapshot.js'
import { registerTopic } from '../../src/domain/topics.js'
import type { UpcastState } from '../../src/domain/upcasting.js'

class Dog extends Aggregate {
  static readonly topic = 'snapshot-test:Dog'
  name = ''
  tricks: string[] = []
  born = new Date(0)
  scores = new Map<string, number>()
  owners = new Set<string>()

  static Registered = Dog.created('snapshot-test:Dog.Registered', (dog, e: { name: string; born: Date }) => {
    dog.name = e.name
    dog.born = e.born
  })
  static TrickAdded = Dog.event('snapshot-test:Dog.TrickAdded', (dog, e: { trick: string; score: number }) => {
    dog.tricks.push(e.trick)
    dog.scores.set(e.trick, e.score)
  })
  static Adopted = Dog.event('snapshot-test:Dog.Adopted', (dog, e: { owner: string }) => {
    dog.owners.add(e.owner)
  })

  addTrick(trick: string, score: number) {
    this.trigger(Dog.TrickAdded, { trick, score })
  }

  adopt(owner: string) {
    this.trigger(Dog.Adopted, { owner })
  }
}

class Cat extends Aggregate {
  static readonly topic = 'snapshot-test:Cat'
  static Born = Cat.created('snapshot-test:Cat.Born')
}

class Untitled extends Aggregate {
  static Made = Untitled.created('snapshot-test:Untitled.Made')
}

/** Version 3 of a class whose state was `{ fullName }` at v1 and `{ first, last }` at v2. */
class Person extends Aggregate {
  static readonly topic = 'snapshot-test:Person'
  static readonly upcast = [
    ({ fullName, ...rest }: UpcastState) => {
      const [first = '', last = ''] = String(fullName).split(' ')
      return { ...rest, first, last }
    },
    (state: UpcastState) => ({ ...state, nickname: state.first }),
  ]
  first = ''
  last = ''
  nickname = ''
}

function snapshotOf(cls: { topic?: string }, version: number, state: Record<string, unknown>): Snapshot {
  return new Snapshot({
    originatorId: 'agg-1',
    originatorVersion: 5,
    timestamp: new Date(1_000),
    aggregateTopic: cls.topic ?? 'snapshot-test:none',
    aggregateClassVersion: version,
    state: { id: 'agg-1', version: 5, createdOn: new Date(0), modifiedOn: new Date(1_000), discarded: false, ...state },
  })
}

function rex(): Dog {
  const dog = Dog.create(Dog.Registered, { name: 'Rex', born: new Date('2020-02-02T00:00:00Z') })
  dog.addTrick('sit', 7)
  dog.adopt('Ann')
  return dog
}

describe('Snapshot.take', () => {
  it('records the aggregate state, version, class topic and class version', () => {
    const dog = rex()
    const snapshot = Snapshot.take(dog)
    expect(snapshot).toBeInstanceOf(DomainEvent)
    expect(Object.isFrozen(snapshot)).toBe(true)
    expect(snapshot).toMatchObject({
      originatorId: dog.id,
      originatorVersion: 3,
      aggregateTopic: 'snapshot-test:Dog',
      aggregateClassVersion: 1,
    })
    expect(snapshot.timestamp).toEqual(dog.modifiedOn)
    expect(snapshot.state).toMatchObject({ id: dog.id, version: 3, name: 'Rex', tricks: ['sit'] })
  })

  it('records the class version from the class upcasters', () => {
    const person = Person.create(Person.created('snapshot-test:Person.Born'), {})
    expect(Snapshot.take(person).aggregateClassVersion).toBe(3)
  })

  it('needs the aggregate class to have a topic', () => {
    const thing = Untitled.create(Untitled.Made, {})
    expect(() => Snapshot.take(thing)).toThrow(TopicError)
  })
})

describe('Snapshot.restore', () => {
  it('rebuilds an equal aggregate', () => {
    const dog = rex()
    dog.collectEvents()
    const copy = Snapshot.take(dog).restore(Dog)
    expect(copy).toBeInstanceOf(Dog)
    expect(copy).not.toBe(dog)
    expect(copy).toEqual(dog)
    expect(copy.collectEvents()).toEqual([])
  })

  it('keeps Date, Map and Set fields as the same kinds', () => {
    const copy = Snapshot.take(rex()).restore(Dog)
    expect(copy.born).toBeInstanceOf(Date)
    expect(copy.born.toISOString()).toBe('2020-02-02T00:00:00.000Z')
    expect(copy.createdOn).toBeInstanceOf(Date)
    expect(copy.scores).toBeInstanceOf(Map)
    expect(copy.scores.get('sit')).toBe(7)
    expect(copy.owners).toBeInstanceOf(Set)
    expect(copy.owners.has('Ann')).toBe(true)
  })

  it('gives an aggregate that goes on from the snapshot version', () => {
    const copy = Snapshot.take(rex()).restore(Dog)
    copy.addTrick('stay', 9)
    const [event] = copy.collectEvents()
    expect(event?.originatorVersion).toBe(4)
    expect(copy.version).toBe(4)
  })

  it('upcasts state from an older class version, one step at a time', () => {
    const fromV1 = snapshotOf(Person, 1, { fullName: 'Ada Lovelace' }).restore(Person)
    expect(fromV1).toBeInstanceOf(Person)
    expect(fromV1).toMatchObject({ id: 'agg-1', version: 5, first: 'Ada', last: 'Lovelace', nickname: 'Ada' })
    expect(fromV1).not.toHaveProperty('fullName')

    const fromV2 = snapshotOf(Person, 2, { first: 'Grace', last: 'Hopper' }).restore(Person)
    expect(fromV2).toMatchObject({ first: 'Grace', last: 'Hopper', nickname: 'Grace' })
  })

  it('leaves the snapshot unchanged by upcasting', () => {
    const snapshot = snapshotOf(Person, 1, { fullName: 'Ada Lovelace' })
    snapshot.restore(Person)
    expect(snapshot.state).toHaveProperty('fullName', 'Ada Lovelace')
    expect(snapshot.state).not.toHaveProperty('first')
  })

  it('throws UpcastError when the stored class version is newer than the class', () => {
    const snapshot = snapshotOf(Person, 4, { first: 'Ada', last: 'Lovelace', nickname: 'Ada', age: 36 })
    expect(() => snapshot.restore(Person)).toThrow(UpcastError)
    expect(() => snapshot.restore(Person)).toThrow(/Person was stored at class version 4.*versions 1 to 3/)
    expect(() => snapshotOf(Dog, 2, {}).restore(Dog)).toThrow(UpcastError)
  })
})

describe('Snapshot.isFor', () => {
  it('is true for the class it was taken of', () => {
    expect(Snapshot.take(rex()).isFor(Dog)).toBe(true)
  })

  it('is true for a class that an old registered topic names', () => {
    registerTopic('snapshot-test:Human', Person)
    expect(snapshotOf({ topic: 'snapshot-test:Human' }, 1, {}).isFor(Person)).toBe(true)
  })

  it('is false for any other class', () => {
    const snapshot = Snapshot.take(rex())
    expect(snapshot.isFor(Cat)).toBe(false)
    expect(snapshot.isFor(Untitled)).toBe(false)
    expect(snapshotOf({ topic: 'snapshot-test:Unknown' }, 1, {}).isFor(Dog)).toBe(false)
  })
})
