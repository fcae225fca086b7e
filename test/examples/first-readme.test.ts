import { describe, expect, it } from 'vitest'
import { Example, ExampleApplication, PublishingExampleApplication } from '../../examples/first-readme.js'
import { AggregateNotFoundError } from '../../src/index.js'
import { backends } from '../fixtures/backends.js'

async function topics(app: ExampleApplication | PublishingExampleApplication): Promise<string[]> {
  return (await app.notificationLog.select({ limit: 100 })).map((notification) => notification.topic)
}

describe.each(backends())("the first README's example on %s", (_, newStore) => {
  it('registers an example and gets it back by id', async () => {
    await using app = new ExampleApplication({ persistence: newStore()() })
    const id = await app.registerNewExample(1, 2)
    const example = await app.getExample(id)
    expect(example).toBeInstanceOf(Example)
    expect(example).toMatchObject({ id, a: 1, b: 2, version: 1, discarded: false })
    expect(example.createdOn).toBeInstanceOf(Date)
  })

  it('changes attributes by events, and keeps them across application instances', async () => {
    const store = newStore()
    let id: string
    {
      await using app = new ExampleApplication({ persistence: store() })
      id = await app.registerNewExample(1, 2)
      await app.changeAttribute(id, 'a', 10)
      await app.changeAttribute(id, 'b', 20)
    }
    await using app = new ExampleApplication({ persistence: store() })
    expect(await app.getExample(id)).toMatchObject({ a: 10, b: 20, version: 3 })
    expect((await app.repository.get(Example, id, { version: 2 })).b).toBe(2)
  })

  it('discards an example, which the repository then no longer returns', async () => {
    await using app = new ExampleApplication({ persistence: newStore()() })
    const id = await app.registerNewExample(1, 2)
    await app.changeAttribute(id, 'a', 3)
    await app.discardExample(id)
    await expect(app.getExample(id)).rejects.toBeInstanceOf(AggregateNotFoundError)
    await expect(app.changeAttribute(id, 'a', 4)).rejects.toBeInstanceOf(AggregateNotFoundError)
    expect(await app.repository.contains(id)).toBe(true)
    expect(await topics(app)).toEqual([
      'example:Example.Created',
      'example:Example.AttributeChanged',
      'eventsourcing:Aggregate.Discarded',
    ])
  })

  it("stores events as they are published, in the README's style", async () => {
    const store = newStore()
    let id: string
    {
      await using app = new PublishingExampleApplication({ persistence: store() })
      const example = await app.registerNewExample(1, 2)
      id = example.id
      // Nothing was saved: publishing the created event stored it.
      expect(await app.getExample(id)).toMatchObject({ a: 1, b: 2, version: 1 })
      await app.changeAttribute(example, 'a', 5)
      expect((await app.getExample(id)).a).toBe(5)
      await app.changeAttribute(example, 'b', 6)
    }
    await using app = new PublishingExampleApplication({ persistence: store() })
    const example = await app.getExample(id)
    expect(example).toMatchObject({ a: 5, b: 6, version: 3 })
    await app.discardExample(example)
    await expect(app.getExample(id)).rejects.toBeInstanceOf(AggregateNotFoundError)
    expect(await topics(app)).toEqual([
      'example:Example.Created',
      'example:Example.AttributeChanged',
      'example:Example.AttributeChanged',
      'eventsourcing:Aggregate.Discarded',
    ])
  })

  it('stops storing published events once the application is closed', async () => {
    const store = newStore()
    const app = new PublishingExampleApplication({ persistence: store() })
    const example = await app.registerNewExample(1, 2)
    await app.close()
    // The persistence subscriber is gone, so publishing reaches no store (and no closed one).
    await app.changeAttribute(example, 'a', 7)
    await using reopened = new PublishingExampleApplication({ persistence: store() })
    expect((await reopened.getExample(example.id)).a).toBe(1)
  })
})
