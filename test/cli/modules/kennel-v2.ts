// Version 2 of the same domain model: a dog has a breed (events of version 1
// are upcast to "unknown"), and a trick is learnt, under a topic of its own
// (the old topic still names it).
import { Aggregate, registerTopic } from '../../../src/index.js'

export class Dog extends Aggregate {
  static readonly topic = 'kennel:Dog'

  name = ''
  breed = ''
  tricks: string[] = []

  static readonly Registered = Dog.created(
    'kennel:Dog.Registered',
    (dog, e: { name: string; breed: string }) => {
      dog.name = e.name
      dog.breed = e.breed
    },
    { upcast: [(state) => ({ ...state, breed: 'unknown' })] },
  )

  static readonly TrickLearnt = Dog.event('kennel:Dog.TrickLearnt', (dog, e: { trick: string }) => {
    dog.tricks.push(e.trick)
  })
}

registerTopic('kennel:Dog.TrickAdded', Dog.TrickLearnt)
