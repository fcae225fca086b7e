import { describe, expect, it } from 'vitest'
import { ZlibCompressor } from '../../src/persistence/compressor.js'
import { DataError, ProgrammingError } from '../../src/persistence/errors.js'

const text = (value: string): Uint8Array => new TextEncoder().encode(value)

describe('ZlibCompressor', () => {
  const compressor = new ZlibCompressor()

  it('round-trips bytes, empty ones included', () => {
    for (const data of [
      text('{"name":"Fido","tricks":["roll over"]}'),
      new Uint8Array(),
      new Uint8Array([0, 255, 1]),
    ]) {
      expect(compressor.decompress(compressor.compress(data))).toEqual(data)
    }
  })

  it('shrinks repetitive state', () => {
    const data = text(JSON.stringify(Array.from({ length: 100 }, (_, i) => ({ trick: 'roll over', count: i }))))
    const compressed = compressor.compress(data)
    expect(compressed.byteLength).toBeLessThan(data.byteLength / 5)
    expect(new ZlibCompressor({ level: 0 }).compress(data).byteLength).toBeGreaterThan(data.byteLength)
  })

  it('returns arrays that own exactly their bytes', () => {
    const compressed = compressor.compress(text('hello'))
    expect(compressed.buffer.byteLength).toBe(compressed.byteLength)
    expect(compressor.decompress(compressed).buffer.byteLength).toBe(5)
  })

  it('fails with a DataError on bytes that are not compressed, or are truncated', () => {
    expect(() => compressor.decompress(text('{"not":"compressed"}'))).toThrow(DataError)
    const compressed = compressor.compress(text('some state to compress'))
    expect(() => compressor.decompress(compressed.subarray(0, compressed.byteLength - 4))).toThrow(/decompress/)
  })

  it('rejects a level zlib does not have', () => {
    expect(() => new ZlibCompressor({ level: 10 })).toThrow(ProgrammingError)
    expect(() => new ZlibCompressor({ level: 1.5 })).toThrow(ProgrammingError)
  })
})
