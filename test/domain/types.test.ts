import { describe, expectTypeOf, it } from 'vitest'
import { Aggregate, type CreatedEventType, replayEvents } from '../../src/domain/aggregate.js'
import type { DomainEvent, Event, EventType } from '../../src/domain/domain-event.js'
import { Snapshot } from '../../src/domain/snapshot.js'

// Each `@ts-expect-error` sits on the exact line that must not compile: were the
// line to compile, the directive would be unused and `tsc` would fail.

class Dog extends Aggregate {
  static readonly topic = 'types-test:Dog'
  name = ''
  tricks: string[] = []

  static Registered = Dog.created('types-test:Dog.Registered', (dog, e: { name: string }) => {
    expectTypeOf(dog).toEqualTypeOf<Dog>()
    dog.name = e.name
  })
  static TrickAdded = Dog.event('types-test:Dog.TrickAdded', (dog, e: { trick: string }) => {
    expectTypeOf(dog).toEqualTypeOf<Dog>()
    dog.tricks.push(e.trick)
  })
  static Renamed = Dog.event('types-test:Dog.Renamed', (dog, e: Event<{ name: string }>) => {
    expectTypeOf(e.timestamp).toEqualTypeOf<Date>()
    dog.name = e.name
  })

  static register(name: string) {
    return Dog.create(Dog.Registered, { name })
  }

  addTrick(trick: string) {
    this.trigger(Dog.TrickAdded, { trick })
  }

  misspeltField() {
    // @ts-expect-error 'trik' is not a field of TrickAdded
    this.trigger(Dog.TrickAdded, { trik: 'x' })
  }

  wrongFieldType() {
    // @ts-expect-error trick is a string
    this.trigger(Dog.TrickAdded, { trick: 42 })
  }

  missingField() {
    // @ts-expect-error trick is required
    this.trigger(Dog.TrickAdded, {})
  }

  extraField() {
    // @ts-expect-error TrickAdded has no field 'age'
    this.trigger(Dog.TrickAdded, { trick: 'x', age: 3 })
  }

  otherAggregatesEvent() {
    // @ts-expect-error a Cat event cannot change a Dog
    this.trigger(Cat.Meowed, { loudness: 1 })
  }
}

class Cat extends Aggregate {
  lives = 9
  static Born = Cat.created('types-test:Cat.Born')
  static Meowed = Cat.event('types-test:Cat.Meowed', (cat, e: { loudness: number }) => {
    cat.lives -= e.loudness * 0
  })
}

describe('declared event types', () => {
  it('carry the aggregate class and the payload type', () => {
    expectTypeOf(Dog.Registered).toEqualTypeOf<CreatedEventType<Dog, { name: string }>>()
    expectTypeOf(Dog.TrickAdded).toEqualTypeOf<EventType<Dog, { trick: string }>>()
    expectTypeOf(Dog.Renamed).toEqualTypeOf<EventType<Dog, { name: string }>>()
    expectTypeOf(Cat.Born).toEqualTypeOf<CreatedEventType<Cat, Record<string, never>>>()
  })

  it('type the apply callback aggregate parameter as the subclass', () => {
    expectTypeOf(Dog.TrickAdded.mutate).parameter(0).toEqualTypeOf<Dog>()
    expectTypeOf(Cat.Meowed.mutate).parameter(0).toEqualTypeOf<Cat>()
  })
})

describe('creating', () => {
  it('returns the subclass', () => {
    expectTypeOf(Dog.register('Fido')).toEqualTypeOf<Dog>()
    expectTypeOf(Dog.create(Dog.Registered, { name: 'Fido' }, { id: 'dog-1' })).toEqualTypeOf<Dog>()
    expectTypeOf(Cat.create(Cat.Born, {})).toEqualTypeOf<Cat>()
  })

  it('checks the created event payload', () => {
    // @ts-expect-error 'nam' is not a field of Registered
    Dog.create(Dog.Registered, { nam: 'x' })
    // @ts-expect-error name is a string
    Dog.create(Dog.Registered, { name: 1 })
    // @ts-expect-error a Cat event does not create a Dog
    Dog.create(Cat.Born, {})
    // @ts-expect-error TrickAdded is not a created event
    Dog.create(Dog.TrickAdded, { trick: 'x' })
  })
})

describe('events', () => {
  it('narrow with instanceof to their declared fields', () => {
    const dog = Dog.register('Fido')
    dog.addTrick('roll over')
    const events = dog.collectEvents()
    expectTypeOf(events).toEqualTypeOf<DomainEvent[]>()
    for (const event of events) {
      // @ts-expect-error a DomainEvent has no trick until narrowed
      void event.trick
      if (event instanceof Dog.TrickAdded) {
        expectTypeOf(event.trick).toEqualTypeOf<string>()
        expectTypeOf(event.originatorVersion).toEqualTypeOf<number>()
        // @ts-expect-error TrickAdded has no name
        void event.name
      }
      if (event instanceof Dog.Registered) {
        expectTypeOf(event.name).toEqualTypeOf<string>()
      }
    }
  })

  it('have readonly fields', () => {
    const [event] = Dog.register('Fido').collectEvents()
    if (!(event instanceof Dog.Registered)) return
    const mutate = () => {
      // @ts-expect-error payload fields are readonly
      event.name = 'Rex'
      // @ts-expect-error common fields are readonly
      event.originatorVersion = 2
      // @ts-expect-error common fields are readonly
      event.timestamp = new Date()
    }
    expectTypeOf(mutate).toBeFunction()
  })
})

describe('aggregates', () => {
  it('hide trigger from code outside the class', () => {
    const dog = Dog.register('Fido')
    const triggerFromOutside = () => {
      // @ts-expect-error trigger is protected
      dog.trigger(Dog.TrickAdded, { trick: 'x' })
    }
    expectTypeOf(triggerFromOutside).toBeFunction()
  })

  it('are returned as the subclass by replay and restore', () => {
    const dog = Dog.register('Fido')
    expectTypeOf(replayEvents(Dog, dog.collectEvents())).toEqualTypeOf<Dog | undefined>()
    expectTypeOf(Snapshot.take(dog).restore(Dog)).toEqualTypeOf<Dog>()
  })
})
