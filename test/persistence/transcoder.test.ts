import { Buffer } from 'node:buffer'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { DataError, ProgrammingError } from '../../src/persistence/errors.js'
import { JsonTranscoder, type Transcoding } from '../../src/persistence/transcoder.js'
import { caught } from '../fixtures/errors.js'

class Money {
  constructor(
    readonly cents: bigint,
    readonly currency: string,
    readonly asOf: Date,
  ) {}
}

const money: Transcoding<Money> = {
  name: 'money',
  type: Money,
  encode: (value) => ({ cents: value.cents, currency: value.currency, asOf: value.asOf }),
  decode: (data) => {
    const { cents, currency, asOf } = data as { cents: bigint; currency: string; asOf: Date }
    return new Money(cents, currency, asOf)
  },
}

const transcoder = new JsonTranscoder()
const roundTrip = (value: unknown): unknown => transcoder.decode(transcoder.encode(value))
const json = (value: unknown): unknown => JSON.parse(Buffer.from(transcoder.encode(value)).toString('utf8'))
const bytesOf = (text: string): Uint8Array => new TextEncoder().encode(text)

describe('JsonTranscoder', () => {
  it('round-trips JSON values unchanged, as plain JSON', () => {
    const value = { s: 'é ✓ "quoted"', n: 1.5, i: -7, t: true, f: false, z: null, a: [1, 'two', [3]], o: { p: {} } }
    expect(roundTrip(value)).toEqual(value)
    expect(json(value)).toEqual(value)
    for (const primitive of ['', 'x', 0, 42, true, null]) expect(roundTrip(primitive)).toBe(primitive)
  })

  it('round-trips dates, including far, early and invalid ones', () => {
    for (const date of [new Date(), new Date(0), new Date(-1), new Date('-000123-06-01T12:00:00.001Z')]) {
      expect(roundTrip(date)).toEqual(date)
    }
    expect(roundTrip(new Date(8.64e15))).toEqual(new Date(8.64e15))
    expect(json(new Date(0))).toEqual({ _type_: 'date', _data_: '1970-01-01T00:00:00.000Z' })
    const invalid = roundTrip(new Date(Number.NaN))
    expect(invalid).toBeInstanceOf(Date)
    expect(Number.isNaN((invalid as Date).getTime())).toBe(true)
  })

  it('writes the same ISO strings as toISOString across days and years', () => {
    const times = [
      0, 1, 999, 86_399_999, 86_400_000, -86_400_001, 1_700_000_000_123, 253_402_300_799_999, -62_198_755_200_000,
    ]
    for (const time of times)
      expect(json(new Date(time))).toEqual({ _type_: 'date', _data_: new Date(time).toISOString() })
  })

  it('round-trips bigints, bytes, maps, sets and non-finite numbers', () => {
    expect(roundTrip(12345678901234567890123n)).toBe(12345678901234567890123n)
    expect(roundTrip(-1n)).toBe(-1n)
    expect(roundTrip(new Uint8Array([0, 1, 255]))).toEqual(new Uint8Array([0, 1, 255]))
    expect(roundTrip(new Uint8Array())).toEqual(new Uint8Array())
    const map = new Map<unknown, unknown>([
      ['a', 1],
      [2, 'b'],
      [new Date(5), { deep: new Set([1n]) }],
    ])
    expect(roundTrip(map)).toEqual(map)
    expect(roundTrip(new Set(['a', 1, null]))).toEqual(new Set(['a', 1, null]))
    expect(roundTrip(Number.NaN)).toBeNaN()
    expect(roundTrip(Number.POSITIVE_INFINITY)).toBe(Number.POSITIVE_INFINITY)
    expect(roundTrip(Number.NEGATIVE_INFINITY)).toBe(Number.NEGATIVE_INFINITY)
    expect(Object.is(roundTrip(-0), -0)).toBe(true)
  })

  it('returns Buffers and views as plain Uint8Arrays holding only their own bytes', () => {
    const decoded = roundTrip(Buffer.from('hello'))
    expect(decoded).toBeInstanceOf(Uint8Array)
    expect(Buffer.isBuffer(decoded)).toBe(false)
    expect(decoded).toEqual(new Uint8Array(Buffer.from('hello')))
    const view = new Uint8Array([9, 8, 7, 6]).subarray(1, 3)
    const copy = roundTrip(view) as Uint8Array
    expect(copy).toEqual(new Uint8Array([8, 7]))
    expect(copy.buffer.byteLength).toBe(2)
  })

  it('round-trips rich types nested in any combination', () => {
    const value = {
      at: new Date(1_000),
      list: [new Map([[1n, [new Set([new Uint8Array([1])])]]]), { when: [new Date(2_000)] }],
      sets: new Set([new Map([['k', new Date(3_000)]]), [1, 2n]]),
      deep: { deeper: { deepest: new Map<string, unknown>([['x', { y: new Set([Number.NaN]) }]]) } },
    }
    expect(roundTrip(value)).toEqual(value)
  })

  it('keeps undefined in arrays, maps and sets, and omits undefined fields as JSON does', () => {
    expect(roundTrip([1, undefined, 3])).toEqual([1, undefined, 3])
    expect(roundTrip(new Map([['a', undefined]]))).toEqual(new Map([['a', undefined]]))
    expect(roundTrip(new Set([undefined]))).toEqual(new Set([undefined]))
    expect(roundTrip(undefined)).toBeUndefined()
    const decoded = roundTrip({ a: 1, b: undefined }) as object
    expect(decoded).toEqual({ a: 1 })
    expect(Object.hasOwn(decoded, 'b')).toBe(false)
  })

  it('escapes plain objects that have a _type_ key, so they round-trip', () => {
    const tricky = [
      { _type_: 'date', _data_: '2020-01-01T00:00:00.000Z' },
      { _type_: 'money' },
      { _type_: { _type_: 'object', _data_: {} }, at: new Date(7) },
      { _data_: 'no type' },
    ]
    expect(roundTrip(tricky)).toEqual(tricky)
    expect(roundTrip({ nested: tricky })).toEqual({ nested: tricky })
  })

  it('keeps an own __proto__ key as a field, without touching prototypes', () => {
    const value = JSON.parse('{"__proto__": {"polluted": true}, "at": 1}') as Record<string, unknown>
    value.at = new Date(1)
    const decoded = roundTrip(value) as Record<string, unknown>
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype)
    expect(Object.getOwnPropertyDescriptor(decoded, '__proto__')?.value).toEqual({ polluted: true })
    expect(decoded.at).toEqual(new Date(1))
  })

  it('round-trips any mix of JSON values, dates, bigints, bytes, maps and sets (property)', () => {
    const key = fc.oneof(fc.string(), fc.constantFrom('_type_', '_data_', '__proto__', 'date'))
    const leaf = fc.oneof(
      fc.string(),
      fc.double(),
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.date({ noInvalidDate: true }),
      fc.bigInt(),
      fc.uint8Array({ maxLength: 8 }),
    )
    const { value } = fc.letrec((tie) => ({
      value: fc.oneof({ depthSize: 'small' }, leaf, tie('array'), tie('object'), tie('map'), tie('set')),
      array: fc.array(tie('value'), { maxLength: 4 }),
      object: fc.dictionary(key, tie('value'), { maxKeys: 4 }),
      map: fc.array(fc.tuple(tie('value'), tie('value')), { maxLength: 3 }).map((entries) => new Map(entries)),
      set: fc.array(tie('value'), { maxLength: 3 }).map((items) => new Set(items)),
    }))
    fc.assert(
      fc.property(value, (original) => {
        expect(roundTrip(original)).toEqual(original)
      }),
      { numRuns: 500 },
    )
  })

  describe('registered user types', () => {
    const withMoney = new JsonTranscoder().register(money)

    it('round-trips a registered class whose data holds rich types', () => {
      const price = new Money(1999n, 'EUR', new Date(86_400_000))
      const value = { price, history: new Map([['old', new Money(-5n, 'USD', new Date(0))]]) }
      const decoded = withMoney.decode(withMoney.encode(value)) as typeof value
      expect(decoded.price).toBeInstanceOf(Money)
      expect(decoded).toEqual(value)
    })

    it('rejects duplicate names, built-in names and classes registered twice', () => {
      class Other {}
      const other = { ...money, type: Other } as unknown as Transcoding<Other>
      expect(() => new JsonTranscoder().register(money).register(other)).toThrow(ProgrammingError)
      expect(() => new JsonTranscoder().register({ ...money, name: 'date' })).toThrow(/built in/)
      expect(() => new JsonTranscoder().register(money).register({ ...money, name: 'cash' })).toThrow(
        /already has a transcoding/,
      )
      expect(() => new JsonTranscoder().register({ ...money, name: '' })).toThrow(ProgrammingError)
      expect(() => new JsonTranscoder().register({ ...money, type: Map } as unknown as Transcoding<Money>)).toThrow(
        /class of your own/,
      )
    })

    it('accepts a list of transcodings of different types', () => {
      class Point {
        constructor(readonly x: number) {}
      }
      const point: Transcoding<Point> = {
        name: 'point',
        type: Point,
        encode: (p) => p.x,
        decode: (x) => new Point(x as number),
      }
      const list: readonly Transcoding<unknown>[] = [money, point]
      const registered = new JsonTranscoder()
      for (const transcoding of list) registered.register(transcoding)
      expect(registered.decode(registered.encode([new Point(3)]))).toEqual([new Point(3)])
    })

    it('fails with a DataError naming a stored type that has no transcoding', () => {
      const bytes = withMoney.encode(new Money(1n, 'EUR', new Date(0)))
      expect(() => new JsonTranscoder().decode(bytes)).toThrow(DataError)
      expect(() => new JsonTranscoder().decode(bytes)).toThrow(/register a transcoding named "money"/)
    })

    it('wraps a failing decode of a transcoding in a DataError with the cause', () => {
      const failing = new JsonTranscoder().register({
        ...money,
        decode: () => {
          throw new Error('bad money')
        },
      })
      const error = caught(() => failing.decode(failing.encode(new Money(1n, 'EUR', new Date(0)))))
      expect(error).toBeInstanceOf(DataError)
      expect((error as DataError).cause).toEqual(new Error('bad money'))
    })
  })

  describe('unstorable values', () => {
    it('rejects an instance of an unregistered class, naming it and the way out', () => {
      const error = caught(() => transcoder.encode({ price: new Money(1n, 'EUR', new Date(0)) }))
      expect(error).toBeInstanceOf(ProgrammingError)
      expect((error as Error).message).toMatch(/instance of Money: register a transcoding/)
    })

    it('rejects subclasses of built-in types, other typed arrays, functions and symbols', () => {
      class When extends Date {}
      class Dictionary extends Map {}
      class List extends Array {}
      for (const value of [new When(), new Dictionary(), List.from([1]), new Float64Array(1), () => 1, Symbol('s')]) {
        expect(() => transcoder.encode([value])).toThrow(ProgrammingError)
      }
    })

    it('rejects a cycle instead of overflowing the stack', () => {
      const cyclic: Record<string, unknown> = {}
      cyclic.self = cyclic
      expect(() => transcoder.encode(cyclic)).toThrow(/cycle/)
    })
  })

  describe('malformed bytes', () => {
    it.each([
      ['invalid UTF-8', new Uint8Array([0x7b, 0xff, 0x7d])],
      ['invalid JSON', bytesOf('{"a":')],
      ['a date that is not a string', bytesOf('{"_type_":"date","_data_":5}')],
      ['an unparseable date', bytesOf('{"_type_":"date","_data_":"yesterday"}')],
      ['a bigint that is not an integer', bytesOf('{"_type_":"bigint","_data_":"1.5"}')],
      ['bytes that are not a string', bytesOf('{"_type_":"bytes","_data_":[1]}')],
      ['a map that is not a list of pairs', bytesOf('{"_type_":"map","_data_":[[1]]}')],
      ['a set that is not a list', bytesOf('{"_type_":"set","_data_":{}}')],
      ['a number that is finite', bytesOf('{"_type_":"number","_data_":"1"}')],
      ['an escaped object that is not an object', bytesOf('{"_type_":"object","_data_":[]}')],
      ['a type that is not a string', bytesOf('{"_type_":7}')],
    ])('fails with a DataError on %s', (_, bytes) => {
      expect(() => transcoder.decode(bytes)).toThrow(DataError)
    })
  })
})
