import { describe, expect, it } from 'vitest'
import { Dog, DogSchool } from '../../examples/dog-school.js'
import { AggregateNotFoundError, getTopic } from '../../src/index.js'
import { backends } from '../fixtures/backends.js'

describe.each(backends())('the dog school on %s', (_, newStore) => {
  it('registers dogs, teaches them tricks, and returns plain data', async () => {
    await using school = new DogSchool({ persistence: newStore()() })
    const fido = await school.register('Fido')
    const buster = await school.register('Buster')
    await school.addTrick(fido, 'roll over')
    await school.addTrick(fido, 'play dead')
    await school.addTrick(buster, 'fetch')

    const dog = await school.getDog(fido)
    expect(dog).toEqual({ id: fido, name: 'Fido', tricks: ['roll over', 'play dead'] })
    expect(dog).not.toBeInstanceOf(Dog)
    expect(await school.getDog(buster)).toEqual({ id: buster, name: 'Buster', tricks: ['fetch'] })
  })

  it('keeps the dogs across application instances, under the declared topics', async () => {
    const store = newStore()
    let id: string
    {
      await using school = new DogSchool({ persistence: store() })
      id = await school.register('Fido')
      await school.addTrick(id, 'sit')
    }
    await using school = new DogSchool({ persistence: store() })
    expect(school.name).toBe('DogSchool')
    expect((await school.getDog(id)).tricks).toEqual(['sit'])
    const log = await school.notificationLog.select({ limit: 10 })
    expect(log.map((notification) => [notification.originatorId, notification.topic])).toEqual([
      [id, 'dogschool:Dog.Registered'],
      [id, 'dogschool:Dog.TrickAdded'],
    ])
  })

  it('takes snapshots under the static topic, and uses them', async () => {
    expect(getTopic(Dog)).toBe('dogschool:Dog')
    await using school = new DogSchool({ persistence: newStore()(), snapshotting: true })
    const id = await school.register('Fido')
    await school.addTrick(id, 'sit')
    await school.takeSnapshot(id)
    await school.addTrick(id, 'beg')
    expect(await school.getDog(id)).toEqual({ id, name: 'Fido', tricks: ['sit', 'beg'] })
  })

  it('fails with a typed error for an unknown dog', async () => {
    await using school = new DogSchool({ persistence: newStore()() })
    await expect(school.getDog('no-such-dog')).rejects.toBeInstanceOf(AggregateNotFoundError)
    await expect(school.addTrick('no-such-dog', 'sit')).rejects.toBeInstanceOf(AggregateNotFoundError)
  })
})
