import { describe, expect, it } from 'vitest'
import { Aggregate } from '../../src/domain/aggregate.js'
import { TopicError } from '../../src/domain/errors.js'
import { Snapshot } from '../../src/domain/snapshot.js'
import { classOf, defineTopic, getTopic, registerTopic, resolveTopic, topicOf } from '../../src/domain/topics.js'
import { caught } from '../fixtures/errors.js'

class Dog extends Aggregate {
  static readonly topic = 'topics-test:Dog'
  name = ''
  static Registered = Dog.created('topics-test:Dog.Registered', (dog, e: { name: string }) => {
    dog.name = e.name
  })
  static TrickAdded = Dog.event('topics-test:Dog.TrickAdded', (_dog, _e: { trick: string }) => {})
}

describe('getTopic and resolveTopic', () => {
  it('map an event type to its topic and back', () => {
    expect(getTopic(Dog.TrickAdded)).toBe('topics-test:Dog.TrickAdded')
    expect(resolveTopic('topics-test:Dog.TrickAdded')).toBe(Dog.TrickAdded)
    expect(resolveTopic(getTopic(Dog.Registered))).toBe(Dog.Registered)
    expect(Dog.TrickAdded.topic).toBe('topics-test:Dog.TrickAdded')
  })

  it('name event classes after their topic, for stack traces and logs', () => {
    expect(Dog.TrickAdded.name).toBe('topics-test:Dog.TrickAdded')
  })

  it('know the library topics', () => {
    expect(resolveTopic(getTopic(Aggregate.Discarded))).toBe(Aggregate.Discarded)
    expect(resolveTopic('eventsourcing:Snapshot')).toBe(Snapshot)
  })

  it("use an aggregate class's static topic", () => {
    expect(getTopic(Dog)).toBe('topics-test:Dog')
    expect(resolveTopic('topics-test:Dog')).toBe(Dog)
  })
})

describe('defining topics', () => {
  it('rejects a topic that already names another class', () => {
    expect(() => Dog.event('topics-test:Dog.TrickAdded')).toThrow(TopicError)
    class Other {}
    const error = caught(() => defineTopic('topics-test:Dog.Registered', Other))
    expect(error).toBeInstanceOf(TopicError)
    expect(error).toMatchObject({ name: 'TopicError' })
    expect(String(error)).toMatch(
      /'topics-test:Dog\.Registered' already names another class.*give Other a topic of its own/,
    )
    expect(resolveTopic('topics-test:Dog.Registered')).toBe(Dog.Registered)
  })

  it('rejects an aggregate class whose static topic names another class', () => {
    class Impostor extends Aggregate {
      static readonly topic = 'topics-test:Dog'
    }
    getTopic(Dog)
    expect(() => getTopic(Impostor)).toThrow(TopicError)
  })

  it('is idempotent for the same class', () => {
    class Bone {}
    defineTopic('topics-test:Bone', Bone)
    defineTopic('topics-test:Bone', Bone)
    expect(getTopic(Bone)).toBe('topics-test:Bone')
  })

  it('rejects an empty topic', () => {
    class Empty {}
    expect(() => defineTopic('', Empty)).toThrow(TopicError)
    expect(() => Dog.event('')).toThrow(TopicError)
  })
})

describe('registerTopic', () => {
  it('makes an old topic resolve to a renamed class', () => {
    registerTopic('topics-test:Dog.TrickLearned', Dog.TrickAdded)
    expect(resolveTopic('topics-test:Dog.TrickLearned')).toBe(Dog.TrickAdded)
    expect(getTopic(Dog.TrickAdded)).toBe('topics-test:Dog.TrickAdded')
  })

  it('works for aggregate classes too', () => {
    registerTopic('topics-test:Hound', Dog)
    expect(resolveTopic('topics-test:Hound')).toBe(Dog)
    expect(getTopic(Dog)).toBe('topics-test:Dog')
  })

  it('rejects an old topic that already names another class', () => {
    expect(() => registerTopic('topics-test:Dog.Registered', Dog.TrickAdded)).toThrow(TopicError)
    expect(resolveTopic('topics-test:Dog.Registered')).toBe(Dog.Registered)
  })
})

describe('errors', () => {
  it('say how to fix an unknown topic', () => {
    const error = caught(() => resolveTopic('topics-test:Dog.Vanished'))
    expect(error).toBeInstanceOf(TopicError)
    const { message } = error as TopicError
    expect(message).toContain("Unknown topic 'topics-test:Dog.Vanished'")
    expect(message).toContain('import the module that declares it')
    expect(message).toContain("registerTopic('topics-test:Dog.Vanished', NewClass)")
    expect(classOf('topics-test:Dog.Vanished')).toBeUndefined()
  })

  it('say how to give a class without a topic one', () => {
    class Plain {}
    const error = caught(() => getTopic(Plain))
    expect(error).toBeInstanceOf(TopicError)
    expect((error as TopicError).message).toBe(`Plain has no topic: declare it with "static readonly topic = '...'"`)
    expect(topicOf(Plain)).toBeUndefined()
  })

  it('do not let a subclass inherit its parent aggregate topic', () => {
    class Puppy extends Dog {}
    expect(() => getTopic(Puppy)).toThrow(TopicError)
  })
})
