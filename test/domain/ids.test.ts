import { describe, expect, it } from 'vitest'
import { NAMESPACE_EVENTSOURCING, uuid4, uuid5, uuid7 } from '../../src/domain/ids.js'

const uuidOfVersion = (version: number) =>
  new RegExp(`^[0-9a-f]{8}-[0-9a-f]{4}-${version}[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

const NAMESPACE_DNS = '6ba7b810-9dad-11d1-80b4-00c04fd430c8'

describe('uuid4', () => {
  it('returns a random version 4 UUID', () => {
    const ids = Array.from({ length: 100 }, uuid4)
    for (const id of ids) expect(id).toMatch(uuidOfVersion(4))
    expect(new Set(ids).size).toBe(ids.length)
  })
})

describe('uuid7', () => {
  it('returns a version 7 UUID', () => {
    expect(uuid7()).toMatch(uuidOfVersion(7))
  })

  it('starts with the current Unix time in milliseconds', () => {
    const before = Date.now()
    const id = uuid7()
    const after = Date.now()
    const ms = Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16)
    expect(ms).toBeGreaterThanOrEqual(before)
    expect(ms).toBeLessThanOrEqual(after)
  })

  it('sorts in the order the ids were made, even within one millisecond', () => {
    const ids = Array.from({ length: 1_000 }, uuid7)
    expect(new Set(ids).size).toBe(ids.length)
    expect([...ids].sort()).toEqual(ids)
  })
})

describe('uuid5', () => {
  it('returns a version 5 UUID', () => {
    expect(uuid5(NAMESPACE_EVENTSOURCING, 'fido')).toMatch(uuidOfVersion(5))
  })

  it('takes the namespace first, as RFC 9562 computes it', () => {
    expect(uuid5(NAMESPACE_DNS, 'www.example.com')).toBe('2ed6657d-e927-568b-95e1-2665a8aea6a2')
  })

  it('returns the same id for the same namespace and name', () => {
    expect(uuid5(NAMESPACE_EVENTSOURCING, 'fido')).toBe(uuid5(NAMESPACE_EVENTSOURCING, 'fido'))
  })

  it('returns different ids for different names', () => {
    expect(uuid5(NAMESPACE_EVENTSOURCING, 'fido')).not.toBe(uuid5(NAMESPACE_EVENTSOURCING, 'rex'))
  })

  it('depends on the namespace', () => {
    const usernames = uuid5(NAMESPACE_EVENTSOURCING, 'usernames')
    expect(uuid5(usernames, 'fido')).not.toBe(uuid5(NAMESPACE_EVENTSOURCING, 'fido'))
    expect(uuid5(NAMESPACE_DNS, 'fido')).not.toBe(uuid5(NAMESPACE_EVENTSOURCING, 'fido'))
  })

  it('rejects a namespace that is not a UUID', () => {
    expect(() => uuid5('usernames', 'fido')).toThrow()
  })
})

describe('NAMESPACE_EVENTSOURCING', () => {
  it('is a UUID', () => {
    expect(NAMESPACE_EVENTSOURCING).toMatch(uuidOfVersion(4))
  })
})
