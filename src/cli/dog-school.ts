import { Application } from '../application/application.js'
import { Aggregate } from '../domain/aggregate.js'

/**
 * A dog that learns tricks: the aggregate of the dog school example, which the
 * `demo` command runs. It lives here rather than in `examples/` because the
 * published package must not depend on files it does not ship.
 */
export class Dog extends Aggregate {
  static readonly topic = 'dogschool:Dog'

  name = ''
  tricks: string[] = []

  /** A dog was registered with the school. */
  static readonly Registered = Dog.created('dogschool:Dog.Registered', (dog, e: { name: string }) => {
    dog.name = e.name
  })

  /** A dog learnt a trick. */
  static readonly TrickAdded = Dog.event('dogschool:Dog.TrickAdded', (dog, e: { trick: string }) => {
    dog.tricks.push(e.trick)
  })

  /** Registers a new dog; the event stays pending until the dog is saved. */
  static register(name: string): Dog {
    return Dog.create(Dog.Registered, { name })
  }

  /** Teaches the dog a trick. */
  addTrick(trick: string): void {
    this.trigger(Dog.TrickAdded, { trick })
  }
}

/** A dog as the school's callers see it: plain data, detached from the aggregate. */
export interface DogData {
  readonly id: string
  readonly name: string
  readonly tricks: readonly string[]
}

/** The dog school application: registers dogs, teaches them tricks, and tells what they know. */
export class DogSchool extends Application {
  // Named explicitly so that table names and variable prefixes survive minification.
  static override readonly applicationName = 'DogSchool'

  /** Registers a dog and returns its id. */
  async register(name: string): Promise<string> {
    const dog = Dog.register(name)
    await this.save(dog)
    return dog.id
  }

  /**
   * Teaches a registered dog a trick.
   *
   * @throws AggregateNotFoundError if no dog has this id.
   */
  async addTrick(dogId: string, trick: string): Promise<void> {
    const dog = await this.repository.get(Dog, dogId)
    dog.addTrick(trick)
    await this.save(dog)
  }

  /**
   * Returns a dog's name and tricks.
   *
   * @throws AggregateNotFoundError if no dog has this id.
   */
  async getDog(dogId: string): Promise<DogData> {
    const dog = await this.repository.get(Dog, dogId)
    return { id: dog.id, name: dog.name, tricks: [...dog.tricks] }
  }
}
