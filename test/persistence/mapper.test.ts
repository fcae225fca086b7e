import { Buffer } from 'node:buffer'
import { createCipheriv, randomBytes } from 'node:crypto'
import { deflateSync } from 'node:zlib'
import { describe, expect, it } from 'vitest'
import { Aggregate } from '../../src/domain/aggregate.js'
import type { DomainEvent } from '../../src/domain/domain-event.js'
import { TopicError, UpcastError } from '../../src/domain/errors.js'
import { Snapshot } from '../../src/domain/snapshot.js'
import { registerTopic } from '../../src/domain/topics.js'
import type { UpcastState } from '../../src/domain/upcasting.js'
import { AesGcmCipher } from '../../src/persistence/cipher.js'
import { ZlibCompressor } from '../../src/persistence/compressor.js'
import { DataError } from '../../src/persistence/errors.js'
import { Mapper } from '../../src/persistence/mapper.js'
import type { StoredEvent } from '../../src/persistence/stored-event.js'
import { JsonTranscoder } from '../../src/persistence/transcoder.js'
import { caught } from '../fixtures/errors.js'

class Dog extends Aggregate {
  static readonly topic = 'mapper-test:Dog'
  name = ''
  born = new Date(0)
  scores = new Map<string, number>()
  owners = new Set<string>()

  static Registered = Dog.created('mapper-test:Dog.Registered', (dog, e: { name: string; born: Date }) => {
    dog.name = e.name
    dog.born = e.born
  })
  static TrickAdded = Dog.event('mapper-test:Dog.TrickAdded', (dog, e: { trick: string; score: number }) => {
    dog.scores.set(e.trick, e.score)
  })
  static Adopted = Dog.event('mapper-test:Dog.Adopted', (dog, e: { owner: string }) => {
    dog.owners.add(e.owner)
  })

  static register(name: string, born: Date) {
    return Dog.create(Dog.Registered, { name, born })
  }
  addTrick(trick: string, score: number) {
    this.trigger(Dog.TrickAdded, { trick, score })
  }
  adopt(owner: string) {
    this.trigger(Dog.Adopted, { owner })
  }
}

/**
 * Version 3 of a type whose payload was `{ fullName }` at version 1, `{ first, last }`
 * at version 2, and gained `nickname` at version 3.
 */
class Person extends Aggregate {
  first = ''
  static Named = Person.event(
    'mapper-test:Person.Named',
    (person, e: { first: string; last: string; nickname: string }) => {
      person.first = e.first
    },
    {
      upcast: [
        ({ fullName, ...rest }: UpcastState) => {
          const [first = '', last = ''] = String(fullName).split(' ')
          return { ...rest, first, last }
        },
        (state: UpcastState) => ({ ...state, nickname: state.first }),
      ],
    },
  )
}

const transcoder = new JsonTranscoder()
const stateOf = (stored: StoredEvent): unknown => transcoder.decode(stored.state)
const born = new Date('2020-02-29T10:00:00.000Z')

function dogEvents(): DomainEvent[] {
  const dog = Dog.register('Fido', born)
  dog.addTrick('roll over', 9)
  return dog.collectEvents()
}

function storedByHand(topic: string, state: Record<string, unknown>, version = 1): StoredEvent {
  return { originatorId: 'person-1', originatorVersion: version, topic, state: transcoder.encode(state) }
}

describe('Mapper', () => {
  it('stores the topic, ids and fields of an event, and reads it back as it was', () => {
    const mapper = new Mapper()
    const [registered, trickAdded] = dogEvents()
    const stored = mapper.toStoredEvent(registered!)
    expect(stored).toMatchObject({ originatorId: registered!.originatorId, originatorVersion: 1 })
    expect(stored.topic).toBe('mapper-test:Dog.Registered')
    expect(stateOf(stored)).toEqual({ timestamp: registered!.timestamp, name: 'Fido', born })
    for (const event of [registered!, trickAdded!]) {
      const read = mapper.toDomainEvent(mapper.toStoredEvent(event))
      expect(read).toBeInstanceOf(event.constructor)
      expect(read).toEqual(event)
      expect(Object.isFrozen(read)).toBe(true)
    }
  })

  it('round-trips through compression and encryption', () => {
    const mapper = new Mapper({ compressor: new ZlibCompressor(), cipher: new AesGcmCipher(AesGcmCipher.createKey()) })
    for (const event of dogEvents()) {
      const stored = mapper.toStoredEvent(event)
      expect(Buffer.from(stored.state).includes(Buffer.from('Fido'))).toBe(false)
      expect(mapper.toDomainEvent(stored)).toEqual(event)
    }
  })

  it('reads an encrypted event made by hand with node:crypto as the cipher’s documentation says', () => {
    const key = randomBytes(32)
    const originatorId = 'dog-made-by-hand'
    const topic = 'mapper-test:Dog.Registered'
    const fields =
      '{"timestamp":{"_type_":"date","_data_":"2026-01-02T03:04:05.678Z"},"name":"Rex",' +
      '"born":{"_type_":"date","_data_":"2020-02-29T10:00:00.000Z"}}'
    for (const compressed of [false, true]) {
      const plaintext = compressed ? deflateSync(fields) : Buffer.from(fields)
      const nonce = randomBytes(12)
      const cipher = createCipheriv('aes-256-gcm', key, nonce)
      cipher.setAAD(Buffer.from(`["${topic}","${originatorId}",1]`, 'utf8'))
      const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()])
      const state = Buffer.concat([nonce, cipher.getAuthTag(), ciphertext])
      const mapper = new Mapper({
        cipher: new AesGcmCipher(key.toString('base64')),
        compressor: compressed ? new ZlibCompressor() : undefined,
      })
      const event = mapper.toDomainEvent({ originatorId, originatorVersion: 1, topic, state })
      expect(event).toBeInstanceOf(Dog.Registered)
      expect(event).toMatchObject({
        originatorId,
        originatorVersion: 1,
        timestamp: new Date('2026-01-02T03:04:05.678Z'),
        name: 'Rex',
        born,
      })
    }
  })

  it('round-trips a snapshot of an aggregate holding a Date, a Map and a Set', () => {
    const mapper = new Mapper({ compressor: new ZlibCompressor() })
    const dog = Dog.register('Fido', born)
    dog.addTrick('roll over', 9)
    dog.addTrick('play dead', 7)
    dog.adopt('Alice')
    const snapshot = Snapshot.take(dog)
    const stored = mapper.toStoredEvent(snapshot)
    expect(stored).toMatchObject({ topic: 'eventsourcing:Snapshot', originatorId: dog.id, originatorVersion: 4 })
    const read = mapper.toDomainEvent(stored)
    expect(read).toBeInstanceOf(Snapshot)
    expect(read).toEqual(snapshot)
    const restored = (read as Snapshot).restore(Dog)
    expect(restored).toBeInstanceOf(Dog)
    expect(restored).toEqual(dog)
    expect(restored.scores).toEqual(
      new Map([
        ['roll over', 9],
        ['play dead', 7],
      ]),
    )
    expect(restored.owners).toEqual(new Set(['Alice']))
    expect(restored.born).toEqual(born)
  })

  it('reads events stored under an old topic as the class it was renamed to', () => {
    registerTopic('mapper-test:OldDog.Adopted', Dog.Adopted)
    const stored = { ...new Mapper().toStoredEvent(dogEvents()[1]!), topic: 'mapper-test:OldDog.Adopted' }
    expect(new Mapper().toDomainEvent(stored)).toBeInstanceOf(Dog.Adopted)
  })

  describe('upcasting', () => {
    const mapper = new Mapper()
    const today = { timestamp: new Date(0), first: 'Ada', last: 'Lovelace', nickname: 'Ada' }

    it('writes the class version into the state of types above version 1', () => {
      const event = new Person.Named({ originatorId: 'p', originatorVersion: 1, ...today })
      expect(stateOf(mapper.toStoredEvent(event))).toEqual({ ...today, classVersion: 3 })
      expect(stateOf(new Mapper().toStoredEvent(dogEvents()[0]!))).not.toHaveProperty('classVersion')
    })

    it('reads a state stored at version 1 (no classVersion) into today’s shape', () => {
      const stored = storedByHand('mapper-test:Person.Named', { timestamp: new Date(0), fullName: 'Ada Lovelace' })
      const event = mapper.toDomainEvent(stored)
      expect(event).toBeInstanceOf(Person.Named)
      expect({ ...event }).toEqual({ originatorId: 'person-1', originatorVersion: 1, ...today })
    })

    it('reads a state stored at version 2 into today’s shape', () => {
      const stored = storedByHand('mapper-test:Person.Named', {
        timestamp: new Date(0),
        first: 'Ada',
        last: 'Lovelace',
        classVersion: 2,
      })
      expect({ ...mapper.toDomainEvent(stored) }).toEqual({ originatorId: 'person-1', originatorVersion: 1, ...today })
    })

    it('reads today’s state unchanged', () => {
      const stored = storedByHand('mapper-test:Person.Named', { ...today, classVersion: 3 })
      expect({ ...mapper.toDomainEvent(stored) }).toEqual({ originatorId: 'person-1', originatorVersion: 1, ...today })
    })

    it('fails with an UpcastError on a state stored by a newer version of the class', () => {
      const stored = storedByHand('mapper-test:Person.Named', { ...today, classVersion: 4 })
      expect(() => mapper.toDomainEvent(stored)).toThrow(UpcastError)
      expect(() => mapper.toDomainEvent(stored)).toThrow(/version 4/)
    })
  })

  describe('errors', () => {
    const stored = new Mapper().toStoredEvent(dogEvents()[0]!)

    it('fails with a TopicError on an unknown topic', () => {
      const unknown = { ...stored, topic: 'mapper-test:Nobody.Knows' }
      expect(() => new Mapper().toDomainEvent(unknown)).toThrow(TopicError)
      expect(() => new Mapper().toDomainEvent(unknown)).toThrow(/Unknown topic 'mapper-test:Nobody\.Knows'/)
    })

    it('fails with a TopicError on a topic that names a class that is not an event', () => {
      expect(() => new Mapper().toDomainEvent({ ...stored, topic: 'mapper-test:Dog' })).toThrow(
        /not a domain event class/,
      )
    })

    it('fails with a DataError naming the event when the state bytes are corrupted', () => {
      const corrupted = { ...stored, state: stored.state.subarray(0, stored.state.byteLength - 3) }
      const error = caught(() => new Mapper().toDomainEvent(corrupted))
      expect(error).toBeInstanceOf(DataError)
      const { message, cause } = error as DataError
      expect(message).toContain(`'${stored.originatorId}'`)
      expect(message).toContain('event 1 of')
      expect(message).toContain("topic 'mapper-test:Dog.Registered'")
      expect(message).toContain('could not decode')
      expect(cause).toBeInstanceOf(DataError)
    })

    it('fails with a DataError when the state is not an object of fields', () => {
      const list = { ...stored, state: transcoder.encode([1, 2]) }
      expect(() => new Mapper().toDomainEvent(list)).toThrow(/not an object of fields/)
    })

    it('fails with a DataError when compressed state is corrupted', () => {
      const mapper = new Mapper({ compressor: new ZlibCompressor() })
      const compressed = mapper.toStoredEvent(dogEvents()[0]!)
      const corrupted = { ...compressed, state: compressed.state.subarray(0, 5) }
      expect(() => mapper.toDomainEvent(corrupted)).toThrow(/could not decompress/)
    })

    it('fails with a DataError when the cipher key is wrong', () => {
      const written = new Mapper({ cipher: new AesGcmCipher(AesGcmCipher.createKey()) }).toStoredEvent(dogEvents()[0]!)
      const reader = new Mapper({ cipher: new AesGcmCipher(AesGcmCipher.createKey()) })
      const error = caught(() => reader.toDomainEvent(written))
      expect(error).toBeInstanceOf(DataError)
      expect((error as Error).message).toMatch(/could not decrypt.*wrong cipher key or tampered data/)
      expect((error as Error).message).toContain(written.originatorId)
    })

    it('fails with a DataError when the ciphertext was tampered with', () => {
      const mapper = new Mapper({ cipher: new AesGcmCipher(AesGcmCipher.createKey()) })
      const written = mapper.toStoredEvent(dogEvents()[0]!)
      const state = new Uint8Array(written.state)
      state[state.byteLength - 1]! ^= 0x80
      expect(() => mapper.toDomainEvent({ ...written, state })).toThrow(DataError)
      expect(() => mapper.toDomainEvent({ ...written, state })).toThrow(/wrong cipher key or tampered data/)
    })

    it('fails with a DataError when encrypted state is moved onto another record', () => {
      const mapper = new Mapper({ cipher: new AesGcmCipher(AesGcmCipher.createKey()) })
      const [created, changed] = dogEvents().map((event) => mapper.toStoredEvent(event))
      expect(mapper.toDomainEvent(changed!)).toBeDefined()
      expect(() => mapper.toDomainEvent({ ...changed!, state: created!.state })).toThrow(DataError)
      expect(() => mapper.toDomainEvent({ ...created!, originatorId: 'someone-else' })).toThrow(/could not decrypt/)
    })
  })
})
