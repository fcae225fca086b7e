import { deflateSync, inflateSync } from 'node:zlib'
import { DataError, ProgrammingError } from './errors.js'

/** A Compressor makes stored state smaller and restores it; the middle stage of a {@link Mapper}. */
export interface Compressor {
  /** Returns the compressed form of `data`. */
  compress(data: Uint8Array): Uint8Array
  /**
   * Returns the data that {@link Compressor.compress} was given.
   *
   * @throws DataError if `data` is not compressed data of this kind, or is corrupted.
   */
  decompress(data: Uint8Array): Uint8Array
}

/** Options for a {@link ZlibCompressor}. */
export interface ZlibCompressorOptions {
  /** The zlib compression level: 0 (none) to 9 (smallest, slowest); -1, the default, is zlib's choice (6). */
  readonly level?: number
}

/**
 * A ZlibCompressor compresses with zlib's deflate format (RFC 1950), from
 * `node:zlib`, which any zlib library can read back.
 */
export class ZlibCompressor implements Compressor {
  readonly #level: number

  /**
   * Makes a compressor that deflates at the given level.
   *
   * @throws ProgrammingError if the level is not an integer from -1 to 9.
   */
  constructor(options: ZlibCompressorOptions = {}) {
    const level = options.level ?? -1
    if (!Number.isInteger(level) || level < -1 || level > 9) {
      throw new ProgrammingError(`A zlib compression level is an integer from -1 to 9, got ${level}`)
    }
    this.#level = level
  }

  /** Returns `data` compressed with deflate. */
  compress(data: Uint8Array): Uint8Array {
    return owned(deflateSync(data, { level: this.#level }))
  }

  /**
   * Returns `data` inflated.
   *
   * @throws DataError if `data` is not deflate data, or is corrupted or truncated.
   */
  decompress(data: Uint8Array): Uint8Array {
    try {
      return owned(inflateSync(data))
    } catch (cause) {
      throw new DataError('Could not decompress: the data is not zlib-compressed, or is corrupted', { cause })
    }
  }
}

/**
 * Returns true if `data` starts with a zlib header (RFC 1950) as
 * {@link ZlibCompressor} writes it: deflate, a window of at most 32 KiB, no
 * preset dictionary, and header bits that pass their check (a multiple of 31).
 */
export function isZlib(data: Uint8Array): boolean {
  if (data.byteLength < 2) return false
  const cmf = data[0]!
  const flg = data[1]!
  return (cmf & 0x0f) === 8 && cmf >> 4 <= 7 && (flg & 0x20) === 0 && ((cmf << 8) | flg) % 31 === 0
}

/** Returns true if `data` is whole, intact zlib data: it inflates, and its Adler-32 checksum matches. */
export function inflates(data: Uint8Array): boolean {
  try {
    inflateSync(data)
    return true
  } catch {
    return false
  }
}

// zlib returns a view into its 16 KiB output chunk: copying keeps a small record from pinning it in memory.
function owned(buffer: Uint8Array): Uint8Array {
  return new Uint8Array(buffer)
}
