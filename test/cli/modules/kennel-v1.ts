// Version 1 of a user's domain model, as the migration tests store it.
import { Aggregate, Application } from '../../../src/index.js'

export class Dog extends Aggregate {
  static readonly topic = 'kennel:Dog'

  name = ''
  tricks: string[] = []

  static readonly Registered = Dog.created('kennel:Dog.Registered', (dog, e: { name: string }) => {
    dog.name = e.name
  })

  static readonly TrickAdded = Dog.event('kennel:Dog.TrickAdded', (dog, e: { trick: string }) => {
    dog.tricks.push(e.trick)
  })

  static register(name: string): Dog {
    return Dog.create(Dog.Registered, { name })
  }

  addTrick(trick: string): void {
    this.trigger(Dog.TrickAdded, { trick })
  }
}

export class Kennel extends Application {
  static override readonly applicationName = 'Kennel'
}
