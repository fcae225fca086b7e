import { execFile } from 'node:child_process'
import { rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { Aggregate } from '../../src/domain/aggregate.js'
import { TopicError } from '../../src/domain/errors.js'
import { Snapshot } from '../../src/domain/snapshot.js'
import {
  classOf,
  defineTopic,
  getTopic,
  registerTopic,
  resolveTopic,
  topicOf,
  withTopics,
} from '../../src/domain/topics.js'
import { Application, memory } from '../../src/index.js'
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
  it('rejects a topic that already names another kind of thing, or another event type of the same class', () => {
    expect(caught(() => Dog.event('topics-test:Dog.TrickAdded'))).toMatchObject({
      name: 'TopicError',
      message: "Dog declares two event types with topic 'topics-test:Dog.TrickAdded': give each a topic of its own",
    })
    class Other {}
    const error = caught(() => defineTopic('topics-test:Dog.Registered', Other))
    expect(error).toBeInstanceOf(TopicError)
    expect(String(error)).toMatch(
      /'topics-test:Dog\.Registered' already names an event type of Dog \(in \S+topics\.test\.ts\), so it cannot also name the class Other \(in \S+topics\.test\.ts\): give it a topic of its own/,
    )
    expect(() => defineTopic('topics-test:Dog', Dog.TrickAdded, Dog)).toThrow(TopicError)
    expect(resolveTopic('topics-test:Dog.Registered')).toBe(Dog.Registered)
  })

  it('rejects a class of another name, aggregate or event type, and says how to test versions side by side', () => {
    class Impostor extends Aggregate {
      static readonly topic = 'topics-test:Dog'
    }
    getTopic(Dog)
    expect(() => getTopic(Impostor)).toThrow(TopicError)
    const error = caught(() => Impostor.event('topics-test:Dog.TrickAdded')) as TopicError
    expect(error).toBeInstanceOf(TopicError)
    expect(error.message).toMatch(
      /already names an event type of Dog \(in \S+\), so it cannot also name an event type of Impostor \(in \S+\)/,
    )
    expect(error.message).toContain('declare the old one inside withTopics()')
    expect(resolveTopic('topics-test:Dog')).toBe(Dog)
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

describe('a module evaluated again', () => {
  const path = './fixtures/reloaded-dog.ts'
  type Module = typeof import('./fixtures/reloaded-dog.js')

  it('declares its topics again, and the latest declaration wins', async () => {
    // A query makes a new instance of the module, as hot module reload does.
    const first: Module = await import(`${path}?first`)
    expect(getTopic(first.Cat)).toBe('reload-test:Cat')
    const second: Module = await import(`${path}?second`)
    expect(second.Dog).not.toBe(first.Dog)
    expect(resolveTopic('reload-test:Dog')).toBe(second.Dog)
    expect(resolveTopic('reload-test:Dog.Registered')).toBe(second.Dog.Registered)
    expect(resolveTopic('reload-test:Dog.Barked')).toBe(second.Dog.Barked)
    expect(resolveTopic('reload-test:Dog.Woofed')).toBe(second.Dog.Barked)
    expect(getTopic(first.Dog.Barked)).toBe('reload-test:Dog.Barked')
    // A static topic below the events is claimed when looked up, from where the class was declared.
    expect(getTopic(second.Cat)).toBe('reload-test:Cat')
    expect(resolveTopic('reload-test:Cat')).toBe(second.Cat)
  })

  it('still may not take a topic from a class declared elsewhere', async () => {
    const reloaded: Module = await import(`${path}?again`)
    class Cat extends Aggregate {}
    expect(() => Cat.event('reload-test:Dog.Barked')).toThrow(TopicError)
    class Dog extends Aggregate {
      static readonly topic = 'reload-test:Dog'
    }
    expect(() => getTopic(Dog)).toThrow(TopicError)
    expect(() => Dog.event('reload-test:Dog.Barked')).toThrow(TopicError)
    expect(resolveTopic('reload-test:Dog.Barked')).toBe(reloaded.Dog.Barked)
    expect(resolveTopic('reload-test:Dog')).toBe(reloaded.Dog)
  })

  it('refuses a class of the same name from another module, as in two bounded contexts', async () => {
    const sales: typeof import('./fixtures/sales-account.js') = await import('./fixtures/sales-account.js')
    const error = await import('./fixtures/billing-account.js').then(
      () => undefined,
      (error: unknown) => error,
    )
    expect(error).toBeInstanceOf(TopicError)
    expect((error as TopicError).message).toMatch(
      /^Topic 'contexts-test:Account\.Opened' already names an event type of Account \(in \S+\/sales-account\.ts\), so it cannot also name an event type of Account \(in \S+\/billing-account\.ts\): /,
    )
    expect(resolveTopic('contexts-test:Account.Opened')).toBe(sales.Account.Opened)
    expect(resolveTopic('contexts-test:Account')).toBe(sales.Account)
  })

  it('lets a module edited and evaluated again take its topics over, though its declarations moved', async () => {
    // Hot module reload evaluates a module again after an edit, which moves what follows it to other lines.
    const file = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', `edited-${process.pid}.ts`)
    const source = (edit: string) =>
      `import { Aggregate } from '../../../src/domain/aggregate.js'\n${edit}\n` +
      "export class Horse extends Aggregate {\n  static readonly Bought = Horse.created('edit-test:Horse.Bought')\n}\n"
    try {
      writeFileSync(file, source(''))
      const first = await import(`${pathToFileURL(file).href}?first`)
      writeFileSync(file, source('// a line added by an edit\n\nconst added = 1\nvoid added'))
      const second = await import(`${pathToFileURL(file).href}?second`)
      expect(second.Horse).not.toBe(first.Horse)
      expect(resolveTopic('edit-test:Horse.Bought')).toBe(second.Horse.Bought)
    } finally {
      rmSync(file, { force: true })
    }
  })

  it('takes a class of the same name made again by a factory in the same file for a declaration again', () => {
    // The known limit of telling declarations apart by file: the latest wins.
    function accountFor() {
      return class Account extends Aggregate {
        static readonly topic = 'factory-test:Account'
        static readonly Opened = Account.created('factory-test:Account.Opened')
      }
    }
    accountFor()
    const second = accountFor()
    expect(resolveTopic('factory-test:Account.Opened')).toBe(second.Opened)
    expect(resolveTopic('factory-test:Account')).toBe(second)
  })

  it('is told apart in the same way when tsx runs the modules', async () => {
    const script = fileURLToPath(new URL('./fixtures/redeclare-in-tsx.ts', import.meta.url))
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--no-warnings', script])
    expect(JSON.parse(stdout)).toEqual({
      latestWins: [true, true, true],
      refused: expect.stringMatching(
        /^Topic 'contexts-test:Account\.Opened' already names an event type of Account \(in \S+\/sales-account\.ts\), so it cannot also name an event type of Account \(in \S+\/billing-account\.ts\): /,
      ),
      firstStays: true,
    })
  })
})

describe('withTopics', () => {
  it('gives topics declared inside it a scope of their own, over the process-wide ones, for the async work it starts', async () => {
    const OuterDog = Dog
    const outer = Dog.Registered
    const inner = await withTopics(async () => {
      class Dog extends Aggregate {
        static readonly Registered = Dog.created('topics-test:Dog.Registered')
      }
      expect(resolveTopic('topics-test:Dog.Registered')).toBe(Dog.Registered)
      await new Promise((resolve) => setTimeout(resolve, 1))
      expect(resolveTopic('topics-test:Dog.Registered')).toBe(Dog.Registered)
      expect(resolveTopic('topics-test:Dog.TrickAdded')).toBe(OuterDog.TrickAdded)
      expect(() => Dog.event('topics-test:Dog.Registered')).toThrow(TopicError)
      return Dog.Registered
    })
    expect(inner).not.toBe(outer)
    expect(resolveTopic('topics-test:Dog.Registered')).toBe(outer)
  })

  it('nests, and returns what the function returns', () => {
    class A {}
    class B {}
    const seen = withTopics(() => {
      defineTopic('topics-test:Nested', A)
      return [
        withTopics(() => {
          defineTopic('topics-test:Nested', B)
          return classOf('topics-test:Nested')
        }),
        classOf('topics-test:Nested'),
      ]
    })
    expect(seen).toEqual([B, A])
    expect(classOf('topics-test:Nested')).toBeUndefined()
  })

  it('leaves a static topic first looked up inside it to the registry its class was declared in', () => {
    // Walker's topic, below its events, is claimed when first looked up; Sitter has no events to say where it was declared.
    class Walker extends Aggregate {
      static readonly Hired = Walker.created('scope-test:Walker.Hired')
      static readonly topic = 'scope-test:Walker'
    }
    class Sitter extends Aggregate {
      static readonly topic = 'scope-test:Sitter'
    }
    withTopics(() => {
      expect(getTopic(Walker)).toBe('scope-test:Walker')
      expect(getTopic(Sitter)).toBe('scope-test:Sitter')
      expect(resolveTopic('scope-test:Sitter')).toBe(Sitter)
    })
    expect(resolveTopic('scope-test:Walker')).toBe(Walker)
    expect(getTopic(Sitter)).toBe('scope-test:Sitter')
    expect(resolveTopic('scope-test:Sitter')).toBe(Sitter)
  })

  it('keeps the static topic of a class declared inside it out of the process-wide registry, even when looked up outside', () => {
    const Walker = withTopics(() => {
      class Walker extends Aggregate {
        static readonly Hired = Walker.created('scope-test:ScopedWalker.Hired')
        static readonly topic = 'scope-test:ScopedWalker'
      }
      return Walker
    })
    expect(getTopic(Walker)).toBe('scope-test:ScopedWalker')
    expect(classOf('scope-test:ScopedWalker')).toBeUndefined()
    expect(classOf('scope-test:ScopedWalker.Hired')).toBeUndefined()
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

describe('testing a migration in one process', () => {
  it('stores events with version 1 of a class inside withTopics, and reads them back with version 2', async () => {
    await using school = new Application({ name: 'MigrationTest', persistence: memory() })
    const id = await withTopics(async () => {
      class DogV1 extends Aggregate {
        static readonly topic = 'migration-test:Dog'
        fullName = ''
        static readonly Registered = DogV1.created('migration-test:Dog.Registered', (dog, e: { fullName: string }) => {
          dog.fullName = e.fullName
        })
      }
      const dog = DogV1.create(DogV1.Registered, { fullName: 'Fido Smith' })
      await school.save(dog)
      return dog.id
    })

    class DogV2 extends Aggregate {
      static readonly topic = 'migration-test:Dog'
      name = ''
      family = ''
      static readonly Registered = DogV2.created(
        'migration-test:Dog.Registered',
        (dog, e: { name: string; family: string }) => {
          dog.name = e.name
          dog.family = e.family
        },
        {
          upcast: [
            ({ fullName, ...rest }) => {
              const [name, family] = String(fullName).split(' ')
              return { ...rest, name, family }
            },
          ],
        },
      )
    }
    const dog = await school.repository.get(DogV2, id)
    expect(dog).toBeInstanceOf(DogV2)
    expect([dog.name, dog.family, dog.version]).toEqual(['Fido', 'Smith', 1])
    const [event] = await school.repository.events(id)
    expect(event).toBeInstanceOf(DogV2.Registered)
  })
})
