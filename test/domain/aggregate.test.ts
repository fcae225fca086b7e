import { describe, expect, it } from 'vitest'
import { Aggregate, replayEvents } from '../../src/domain/aggregate.js'
import { DomainEvent } from '../../src/domain/domain-event.js'
import { AggregateNotFoundError, OriginatorVersionError } from '../../src/domain/errors.js'
import { Snapshot } from '../../src/domain/snapshot.js'

const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

class Dog extends Aggregate {
  static readonly topic = 'aggregate-test:Dog'
  name = ''
  tricks: string[] = []

  static Registered = Dog.created('aggregate-test:Dog.Registered', (dog, e: { name: string }) => {
    dog.name = e.name
  })
  static TrickAdded = Dog.event('aggregate-test:Dog.TrickAdded', (dog, e: { trick: string }) => {
    dog.tricks.push(e.trick)
  })
  static Refused = Dog.event('aggregate-test:Dog.Refused', () => {
    throw new Error('refused')
  })

  static register(name: string, id?: string) {
    return Dog.create(Dog.Registered, { name }, id === undefined ? {} : { id })
  }

  addTrick(trick: string) {
    this.trigger(Dog.TrickAdded, { trick })
  }

  refuse() {
    this.trigger(Dog.Refused, {})
  }
}

class ShowDog extends Dog {
  rosettes = 0
  static Entered = ShowDog.created('aggregate-test:ShowDog.Entered', (dog, e: { name: string }) => {
    dog.name = e.name
  })
}

class Cat extends Aggregate {
  static Born = Cat.created('aggregate-test:Cat.Born')
}

function fido(): { dog: Dog; events: DomainEvent[] } {
  const dog = Dog.register('Fido')
  dog.addTrick('roll over')
  dog.addTrick('play dead')
  return { dog, events: dog.collectEvents() }
}

describe('Aggregate.create', () => {
  it('applies a created event and leaves it pending', () => {
    const dog = Dog.register('Fido')
    expect(dog).toBeInstanceOf(Dog)
    expect(dog.id).toMatch(UUID4)
    expect(dog.version).toBe(1)
    expect(dog.name).toBe('Fido')
    expect(dog.discarded).toBe(false)

    const events = dog.collectEvents()
    expect(events).toHaveLength(1)
    const [event] = events
    expect(event).toBeInstanceOf(Dog.Registered)
    expect(event).toBeInstanceOf(DomainEvent)
    expect(event).toMatchObject({ originatorId: dog.id, originatorVersion: 1, name: 'Fido' })
    expect(event?.timestamp).toBeInstanceOf(Date)
    expect(dog.createdOn).toEqual(event?.timestamp)
    expect(dog.modifiedOn).toEqual(event?.timestamp)
    // Copies: changing the aggregate's dates cannot change the event's.
    expect(dog.createdOn).not.toBe(event?.timestamp)
    dog.modifiedOn.setTime(0)
    expect(event?.timestamp.getTime()).not.toBe(0)
  })

  it('uses the given id', () => {
    const dog = Dog.register('Fido', 'dog-42')
    expect(dog.id).toBe('dog-42')
    expect(dog.collectEvents()[0]?.originatorId).toBe('dog-42')
  })

  it('gives each aggregate its own random id', () => {
    expect(Dog.register('Fido').id).not.toBe(Dog.register('Fido').id)
  })
})

describe('Aggregate.trigger', () => {
  it('applies the event, increments the version and updates modifiedOn', () => {
    const dog = Dog.register('Fido')
    const createdOn = dog.createdOn
    dog.addTrick('roll over')
    dog.addTrick('play dead')

    expect(dog.version).toBe(3)
    expect(dog.tricks).toEqual(['roll over', 'play dead'])
    expect(dog.createdOn).toBe(createdOn)
    const events = dog.collectEvents()
    expect(events.map((e) => e.originatorVersion)).toEqual([1, 2, 3])
    expect(events.every((e) => e.originatorId === dog.id)).toBe(true)
    expect(events[2]).toBeInstanceOf(Dog.TrickAdded)
    expect(events[2]).toMatchObject({ trick: 'play dead' })
    expect(dog.modifiedOn).toEqual(events[2]?.timestamp)
    expect(dog.modifiedOn.getTime()).toBeGreaterThanOrEqual(dog.createdOn.getTime())
  })

  it('leaves the version and pending events unchanged when applying fails', () => {
    const dog = Dog.register('Fido')
    expect(() => dog.refuse()).toThrow('refused')
    expect(dog.version).toBe(1)
    expect(dog.collectEvents()).toHaveLength(1)
  })
})

describe('Aggregate.collectEvents', () => {
  it('returns the pending events in order, and clears them', () => {
    const dog = Dog.register('Fido')
    dog.addTrick('sit')
    expect(dog.collectEvents().map((e) => e.constructor)).toEqual([Dog.Registered, Dog.TrickAdded])
    expect(dog.collectEvents()).toEqual([])

    dog.addTrick('stay')
    const later = dog.collectEvents()
    expect(later).toHaveLength(1)
    expect(later[0]?.originatorVersion).toBe(3)
  })

  it('does not keep pending events as aggregate state', () => {
    const dog = Dog.register('Fido')
    expect(Object.keys(dog).sort()).toEqual(
      ['createdOn', 'discarded', 'id', 'modifiedOn', 'name', 'tricks', 'version'].sort(),
    )
  })
})

describe('domain events', () => {
  it('are frozen', () => {
    const [event] = fido().events
    expect(Object.isFrozen(event)).toBe(true)
    expect(() => {
      Object.assign(event as object, { originatorVersion: 9 })
    }).toThrow(TypeError)
    expect(event?.originatorVersion).toBe(1)
  })

  it('are frozen deeply, so an aggregate cannot rewrite history through a payload it kept', () => {
    class Basket extends Aggregate {
      items: string[] = []
      static Filled = Basket.created('aggregate-test:Basket.Filled', (basket, e: { items: string[] }) => {
        basket.items = e.items
      })
    }
    const basket = Basket.create(Basket.Filled, { items: ['apple'] })
    expect(() => basket.items.push('pear')).toThrow(TypeError)
    const [event] = basket.collectEvents()
    expect((event as DomainEvent & { items: string[] }).items).toEqual(['apple'])
  })

  it('copy the arrays and objects of a payload, leaving those of the caller unfrozen', () => {
    class Basket extends Aggregate {
      static Filled = Basket.created('aggregate-test:Basket2.Filled', (_basket, _e: { items: string[] }) => {})
    }
    const items = ['apple']
    const basket = Basket.create(Basket.Filled, { items })
    items.push('pear')
    const [event] = basket.collectEvents()
    expect((event as DomainEvent & { items: string[] }).items).toEqual(['apple'])
    expect(Object.isFrozen(items)).toBe(false)
  })

  it('reject payloads that use a reserved field name', () => {
    class Clock extends Aggregate {
      static Set = Clock.created('aggregate-test:Clock.Set', (_clock, _e: { timestamp: string }) => {})
    }
    expect(() => Clock.create(Clock.Set, { timestamp: 'noon' })).toThrow(/reserved field name 'timestamp'/)
  })
})

describe('Aggregate.discard', () => {
  it('triggers the inherited Discarded event', () => {
    const dog = Dog.register('Fido')
    dog.discard()
    expect(dog.discarded).toBe(true)
    expect(dog.version).toBe(2)
    const events = dog.collectEvents()
    expect(events[1]).toBeInstanceOf(Aggregate.Discarded)
    expect(Dog.Discarded).toBe(Aggregate.Discarded)
  })

  it('makes further triggers throw AggregateNotFoundError', () => {
    const dog = Dog.register('Fido', 'dog-7')
    dog.discard()
    const error = (() => {
      try {
        dog.addTrick('sit')
      } catch (e) {
        return e
      }
    })()
    expect(error).toBeInstanceOf(AggregateNotFoundError)
    expect(error).toMatchObject({ name: 'AggregateNotFoundError', aggregateId: 'dog-7' })
    expect(() => dog.discard()).toThrow(AggregateNotFoundError)
    expect(dog.version).toBe(2)
    expect(dog.collectEvents()).toHaveLength(2)
  })
})

describe('replayEvents', () => {
  it('rebuilds an equal aggregate, with no pending events', () => {
    const { dog, events } = fido()
    const copy = replayEvents(Dog, events)
    expect(copy).toBeInstanceOf(Dog)
    expect(copy).not.toBe(dog)
    expect(copy).toEqual(dog)
    expect(copy?.createdOn).toEqual(events[0]?.timestamp)
    expect(copy?.modifiedOn).toEqual(events[2]?.timestamp)
    expect(copy?.collectEvents()).toEqual([])
  })

  it('replays a discarded aggregate as discarded', () => {
    const dog = Dog.register('Fido')
    dog.discard()
    expect(replayEvents(Dog, dog.collectEvents())?.discarded).toBe(true)
  })

  it('continues from an initial state restored from a snapshot', () => {
    const dog = Dog.register('Fido')
    dog.addTrick('sit')
    const snapshot = Snapshot.take(dog)
    dog.addTrick('stay')
    dog.addTrick('heel')
    const later = dog.collectEvents().slice(2)

    const copy = replayEvents(Dog, later, snapshot.restore(Dog))
    expect(copy).toEqual(dog)
    expect(copy?.version).toBe(4)
  })

  it('returns the initial state when there are no further events', () => {
    const dog = Dog.register('Fido')
    expect(replayEvents(Dog, [], dog)).toBe(dog)
  })

  it('returns undefined when there are no events', () => {
    expect(replayEvents(Dog, [])).toBeUndefined()
  })

  it('accepts any iterable of events', () => {
    const { dog, events } = fido()
    function* stream() {
      yield* events
    }
    expect(replayEvents(Dog, stream())).toEqual(dog)
  })

  it('rejects an event that skips a version', () => {
    const { events } = fido()
    expect(() => replayEvents(Dog, [events[0]!, events[2]!])).toThrow(OriginatorVersionError)
  })

  it('rejects an event applied twice', () => {
    const { events } = fido()
    expect(() => replayEvents(Dog, [events[0]!, events[1]!, events[1]!])).toThrow(OriginatorVersionError)
  })

  it('rejects a stream that does not start at version 1', () => {
    const { events } = fido()
    expect(() => replayEvents(Dog, events.slice(1))).toThrow(AggregateNotFoundError)
  })

  it('rejects an event of another aggregate', () => {
    const a = fido()
    const b = fido()
    expect(() => replayEvents(Dog, [a.events[0]!, b.events[1]!])).toThrow(OriginatorVersionError)
  })

  it('rejects events created for another aggregate class', () => {
    const cat = Cat.create(Cat.Born, {})
    const events = cat.collectEvents()
    expect(() => replayEvents(Dog, events)).toThrow(AggregateNotFoundError)
    expect(() => replayEvents(Dog, events)).toThrow(/is not a Dog.*aggregate-test:Cat\.Born/)
  })

  it('accepts events created for a subclass', () => {
    const show = ShowDog.create(ShowDog.Entered, { name: 'Rex' })
    show.addTrick('bow')
    const copy = replayEvents(Dog, show.collectEvents())
    expect(copy).toBeInstanceOf(ShowDog)
    expect(copy).toEqual(show)
  })
})
