import { describe, expect, it } from 'vitest'
import {
  AesGcmCipher,
  Aggregate,
  DataError,
  DcbApplication,
  DcbConflictError,
  DcbMapper,
  decisionModel,
  Mapper,
  memory,
  ProgrammingError,
  TaggedEvent,
  TagHasher,
  TopicError,
  tag,
  taggedEvent,
  UpcastError,
  ZlibCompressor,
} from '../../src/index.js'

const Deposited = taggedEvent('dcbapi:Deposited', (e: { account: string; cents: number }) => [
  tag('account', e.account),
])
const Transferred = taggedEvent('dcbapi:Transferred', (e: { from: string; to: string; cents: number }) => [
  tag('account', e.from),
  tag('account', e.to),
])
const Noted = taggedEvent<{ text: string; at: Date }>('dcbapi:Noted')

const balance = (account: string) =>
  decisionModel({ initial: 0, tags: [tag('account', account)] })
    .on(Deposited, (cents, e) => cents + e.data.cents)
    .on(Transferred, (cents, e) => cents + (e.data.to === account ? e.data.cents : -e.data.cents))

class Bank extends DcbApplication {}

describe('tagged event types', () => {
  it('derive tags from the data, freeze the event and narrow by instanceof', () => {
    const event = new Transferred({ from: 'a', to: 'b', cents: 5 })
    expect(event.type).toBe('dcbapi:Transferred')
    expect(event.tags).toEqual(['account:a', 'account:b'])
    expect(event.position).toBeUndefined()
    expect(Object.isFrozen(event) && Object.isFrozen(event.data) && Object.isFrozen(event.tags)).toBe(true)
    expect(event).toBeInstanceOf(TaggedEvent)
    const read: TaggedEvent = event
    if (read instanceof Transferred) expect(read.data.to).toBe('b')
    expect(read instanceof Deposited).toBe(false)
    expect(new Noted({ text: 'hi', at: new Date(0) }).tags).toEqual([])
  })

  it('refuse the reserved field, data that is not an object, and a taken name', () => {
    const Odd = taggedEvent<{ classVersion: number }>('dcbapi:Odd')
    expect(() => new Odd({ classVersion: 1 })).toThrow(/reserved field name 'classVersion'/)
    expect(() => new Deposited(null as never)).toThrow(TypeError)
    class Account extends Aggregate {
      static Opened = Account.created('dcbapi:Account.Opened')
    }
    expect(() => taggedEvent(Account.Opened.topic)).toThrow(TopicError)
  })

  it('make tags name:value, refusing a name with a colon or none', () => {
    expect(tag('course', 'c:1')).toBe('course:c:1')
    expect(tag('n', 7)).toBe('n:7')
    expect(() => tag('a:b', 'x')).toThrow(TypeError)
    expect(() => tag('', 'x')).toThrow(TypeError)
  })
})

describe('decision models', () => {
  it('fold the events of their types and tags, returning new models from on()', () => {
    const events = [
      new Deposited({ account: 'a', cents: 100 }),
      new Deposited({ account: 'b', cents: 7 }),
      new Transferred({ from: 'a', to: 'b', cents: 30 }),
      new Noted({ text: 'not read', at: new Date() }),
    ]
    expect(balance('a').fold(events)).toBe(70)
    expect(balance('b').fold(events)).toBe(37)
    expect(balance('a').query).toEqual({ types: ['dcbapi:Deposited', 'dcbapi:Transferred'], tags: ['account:a'] })
    const base = decisionModel({ initial: 0 })
    expect(base.on(Noted, (n) => n + 1)).not.toBe(base)
    expect(base.types).toEqual([])
  })
})

describe('DcbMapper', () => {
  const key = AesGcmCipher.createKey()
  const mapper = new DcbMapper(new Mapper({ cipher: new AesGcmCipher(key), compressor: new ZlibCompressor() }))

  it('round-trips data through transcoding, compression and encryption, with sorted stored tags', () => {
    const at = new Date('2026-01-02T03:04:05Z')
    const stored = mapper.toDcbEvent(new Transferred({ from: 'z', to: 'a', cents: 1 }))
    expect(stored.tags).toEqual(['account:a', 'account:z'])
    expect(Buffer.from(stored.data).toString()).not.toContain('cents')
    const event = mapper.toTaggedEvent({ ...stored, position: 9 })
    expect(event).toBeInstanceOf(Transferred)
    expect(event).toMatchObject({
      position: 9,
      data: { from: 'z', to: 'a', cents: 1 },
      tags: ['account:z', 'account:a'],
    })
    const note = mapper.toTaggedEvent({ ...mapper.toDcbEvent(new Noted({ text: 'x', at })), position: 1 })
    expect((note.data as { at: Date }).at).toEqual(at)
  })

  it('authenticates the type and the tags: data moved to other tags or another type fails to decrypt', () => {
    const stored = mapper.toDcbEvent(new Deposited({ account: 'a', cents: 1 }))
    expect(() => mapper.toTaggedEvent({ ...stored, tags: ['account:b'], position: 1 })).toThrow(DataError)
    expect(() => mapper.toTaggedEvent({ ...stored, tags: [...stored.tags, 'x:y'], position: 1 })).toThrow(DataError)
    expect(() => mapper.toTaggedEvent({ ...stored, type: 'dcbapi:Transferred', position: 1 })).toThrow(DataError)
    // The store keeps tags without order: another order still decrypts.
    const two = mapper.toDcbEvent(new Transferred({ from: 'a', to: 'b', cents: 1 }))
    expect(mapper.toTaggedEvent({ ...two, tags: [...two.tags].reverse(), position: 2 }).data).toMatchObject({
      cents: 1,
    })
  })

  it('stores metadata as data is, bound to the event: swapped with the data it fails to decrypt', () => {
    const event = new Deposited({ account: 'a', cents: 1 }, { metadata: { correlationId: 'c-1', at: new Date(5) } })
    expect(Object.isFrozen(event.metadata)).toBe(true)
    const stored = mapper.toDcbEvent(event)
    expect(Buffer.from(stored.metadata!).toString('latin1')).not.toContain('c-1')
    const read = mapper.toTaggedEvent({ ...stored, position: 4 })
    expect(read.metadata).toEqual({ correlationId: 'c-1', at: new Date(5) })
    expect(() =>
      mapper.toTaggedEvent({ ...stored, data: stored.metadata!, metadata: stored.data, position: 4 }),
    ).toThrow(DataError)
    expect(
      mapper.toTaggedEvent({ ...mapper.toDcbEvent(new Deposited({ account: 'a', cents: 1 })), position: 5 }).metadata,
    ).toBeUndefined()
  })

  it('upcasts stored data to the class version, and names an unknown type', () => {
    const plain = new DcbMapper()
    const V1 = { type: 'dcbapi:Renamed', data: Buffer.from(JSON.stringify({ name: 'x' })), tags: [], position: 3 }
    const Renamed = taggedEvent('dcbapi:Renamed', (e: { fullName: string }) => [tag('name', e.fullName)], {
      upcast: [({ name, ...rest }) => ({ ...rest, fullName: name })],
    })
    const event = plain.toTaggedEvent(V1)
    expect(event).toBeInstanceOf(Renamed)
    expect(event).toMatchObject({ data: { fullName: 'x' }, tags: ['name:x'] })
    expect(JSON.parse(Buffer.from(plain.toDcbEvent(event).data).toString())).toEqual({ fullName: 'x', classVersion: 2 })
    expect(() => plain.toTaggedEvent({ ...V1, data: Buffer.from('{"classVersion":3}') })).toThrow(UpcastError)
    expect(() => plain.toTaggedEvent({ ...V1, type: 'dcbapi:Unknown' })).toThrow(TopicError)
  })
})

describe('TagHasher', () => {
  const key = TagHasher.createKey()

  it('hashes the values of the named tags with the key, keeping the name', () => {
    const hasher = new TagHasher(key, ['email'])
    const hashed = hasher.hash('email:alice@example.com')
    expect(hashed).toMatch(/^email:[A-Za-z0-9_-]{43}$/)
    expect(hashed).toBe(hasher.hash('email:alice@example.com'))
    expect(hashed).not.toBe(hasher.hash('email:bob@example.com'))
    expect(new TagHasher(TagHasher.createKey(), ['email']).hash('email:alice@example.com')).not.toBe(hashed)
    expect(hasher.hash('course:c1')).toBe('course:c1')
    expect(hasher.hash('email')).toBe('email')
    // The same value under another hashed name gives an unrelated hash.
    const both = new TagHasher(key, ['email', 'login'])
    expect(both.hash('login:alice@example.com').slice(6)).not.toBe(hashed.slice(6))
  })

  it('refuses a key that is not 32 bytes, and a bad name', () => {
    expect(() => new TagHasher('short', ['email'])).toThrow(ProgrammingError)
    expect(() => new TagHasher(new Uint8Array(16), ['email'])).toThrow(ProgrammingError)
    expect(() => new TagHasher(key, ['a:b'])).toThrow(ProgrammingError)
  })
})

describe('DcbApplication', () => {
  it('appends and reads tagged events, by query, with positions and the head', async () => {
    await using bank = new Bank({ persistence: memory() })
    expect(await bank.head()).toBe(0)
    await bank.append([new Deposited({ account: 'a', cents: 5 }), new Noted({ text: 'x', at: new Date() })])
    const position = await bank.append([new Deposited({ account: 'b', cents: 6 })])
    expect(position).toBe(3)
    const { events, head } = await bank.read({ types: [Deposited], tags: [tag('account', 'b')] })
    expect(head).toBe(3)
    expect(events.map((event) => [event.position, event.data])).toEqual([[3, { account: 'b', cents: 6 }]])
    const limited = await bank.read([], { limit: 1 })
    expect(limited.events).toHaveLength(1)
    expect(limited.head).toBe(1)
    await expect(
      bank.append([new Deposited({ account: 'a', cents: 1 })], {
        failIfEventsMatch: { tags: [tag('account', 'a')] },
        after: 0,
      }),
    ).rejects.toBeInstanceOf(DcbConflictError)
  })

  it('decides on the state of composed models, in one read, and appends under its condition', async () => {
    await using bank = new Bank({ persistence: memory() })
    await bank.append([new Deposited({ account: 'a', cents: 100 }), new Deposited({ account: 'c', cents: 1 })])
    const decided = await bank.decide({ from: balance('a'), to: balance('b') }, ({ from, to }) => {
      expect({ from, to }).toEqual({ from: 100, to: 0 })
      return [new Transferred({ from: 'a', to: 'b', cents: 60 })]
    })
    expect(decided).toMatchObject({ state: { from: 100, to: 0 }, position: 3, attempts: 1 })
    expect((await bank.evaluate(balance('b'))).state).toBe(60)
    const none = await bank.decide(balance('a'), () => [])
    expect(none).toMatchObject({ state: 40, events: [], position: undefined })
    expect(await bank.head()).toBe(3)
  })

  it('fails with a conflict when the boundary changed between read and append, and decides again when asked', async () => {
    await using bank = new Bank({ persistence: memory() })
    const race = (attempts: number) => {
      let calls = 0
      return bank.decide(
        balance('a'),
        async (cents) => {
          // Another writer appends in the boundary while the first decision is being made.
          if (++calls === 1) await bank.append([new Deposited({ account: 'a', cents: 10 })])
          return [new Deposited({ account: 'a', cents: cents + 1 })]
        },
        {
          attempts,
          onConflict: (error, attempt) => expect([error, attempt]).toEqual([expect.any(DcbConflictError), 1]),
        },
      )
    }
    await expect(race(1)).rejects.toBeInstanceOf(DcbConflictError)
    expect((await bank.evaluate(balance('a'))).state).toBe(10)
    const retried = await race(2)
    expect(retried).toMatchObject({ state: 20, attempts: 2 })
    expect((await bank.evaluate(balance('a'))).state).toBe(41)
  })

  it('is not failed by appends outside its boundary', async () => {
    await using bank = new Bank({ persistence: memory() })
    const decided = await bank.decide(balance('a'), async () => {
      await bank.append([new Deposited({ account: 'b', cents: 10 }), new Noted({ text: 'x', at: new Date() })])
      return [new Deposited({ account: 'a', cents: 1 })]
    })
    expect(decided.attempts).toBe(1)
  })

  it('reads a boundary larger than a page whole, and conditions on the last page head', async () => {
    await using bank = new Bank({ persistence: memory() })
    const deposits = Array.from({ length: 2500 }, () => new Deposited({ account: 'a', cents: 1 }))
    await bank.append(deposits)
    await bank.append([new Deposited({ account: 'z', cents: 1 })])
    const { state, head } = await bank.evaluate(balance('a'))
    expect(state).toBe(2500)
    expect(head).toBe(2501)
    let first = true
    await expect(
      bank.decide(balance('a'), async () => {
        // Past every page read: the condition must still see it.
        if (first) await bank.append([new Deposited({ account: 'a', cents: 1 })])
        first = false
        return [new Deposited({ account: 'a', cents: 1 })]
      }),
    ).rejects.toBeInstanceOf(DcbConflictError)
  })

  it('checks its options: attempts, and hashed tags without a key', async () => {
    await using bank = new Bank({ persistence: memory() })
    await expect(bank.decide(balance('a'), () => [], { attempts: 0 })).rejects.toBeInstanceOf(ProgrammingError)
    expect(() => new Bank({ hashedTags: ['email'], env: {} })).toThrow(/TAG_HASH_KEY/)
    expect(() => new Bank({ env: { PERSISTENCE: 'nope' } })).toThrow(ProgrammingError)
    const key = TagHasher.createKey()
    const keyed = new Bank({ hashedTags: ['account'], env: { BANK_TAG_HASH_KEY: key } })
    expect(keyed.mapper.storedTag('account:a')).toBe(new TagHasher(key, ['account']).hash('account:a'))
    await keyed.close()
  })

  it('is configured from the environment like an Application, and opens its store lazily', async () => {
    const { tempDir } = await import('../fixtures/temp.js')
    const path = `${tempDir('dcb-env-')}/bank.db`
    const env = { PERSISTENCE: 'sqlite', SQLITE_PATH: path, CIPHER_KEY: AesGcmCipher.createKey() }
    {
      await using bank = new Bank({ env })
      await bank.append([new Deposited({ account: 'a', cents: 3 }, { metadata: { by: 'teller 7' } })])
    }
    await using again = new Bank({ env })
    expect((await again.evaluate(balance('a'))).state).toBe(3)
    expect((await again.read()).events[0]!.metadata).toEqual({ by: 'teller 7' })
    await using wrongKey = new Bank({ env: { ...env, CIPHER_KEY: AesGcmCipher.createKey() } })
    await expect(wrongKey.evaluate(balance('a'))).rejects.toBeInstanceOf(DataError)
  })

  it('yields events of a query as they are appended, through subscribe', async () => {
    await using bank = new Bank({ persistence: memory() })
    await bank.append([new Deposited({ account: 'a', cents: 1 }), new Deposited({ account: 'b', cents: 2 })])
    const stop = new AbortController()
    const seen: number[] = []
    const reading = (async () => {
      for await (const event of bank.subscribe({ tags: [tag('account', 'b')] }, { signal: stop.signal })) {
        seen.push(event.position!)
        if (seen.length === 2) stop.abort()
      }
    })()
    await bank.append([new Deposited({ account: 'b', cents: 3 })])
    await reading
    expect(seen).toEqual([2, 3])
  })
})
