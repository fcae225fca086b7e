import { memory } from '../memory/memory-recorder.js'
import { AesGcmCipher } from '../persistence/cipher.js'
import { ZlibCompressor } from '../persistence/compressor.js'
import { ProgrammingError } from '../persistence/errors.js'
import { Mapper } from '../persistence/mapper.js'
import type { Persistence } from '../persistence/recorder.js'
import { parseBoolean } from '../persistence/settings.js'
import { JsonTranscoder, type Transcoding } from '../persistence/transcoder.js'

/** Environment variables as a plain record, like `process.env`. */
export type Environment = Readonly<Record<string, string | undefined>>

/**
 * An application's settings from environment variables. A variable prefixed
 * with the application's name in upper case (`DOGSCHOOL_PERSISTENCE`) overrides
 * the unprefixed one (`PERSISTENCE`), so applications in one process can be
 * configured apart.
 */
export class Config {
  readonly #prefix: string

  /** Makes the settings of the named application, read from `env`. */
  constructor(
    applicationName: string,
    readonly env: Environment,
  ) {
    this.#prefix = `${applicationName.toUpperCase()}_`
  }

  /** Returns the value of a variable, prefixed form first; undefined when unset or empty. */
  get(name: string): string | undefined {
    return nonEmpty(this.env[this.#prefix + name]) ?? nonEmpty(this.env[name])
  }

  /**
   * Returns a variable as a non-negative integer.
   *
   * @throws ProgrammingError naming the variable when it is not one.
   */
  integer(name: string): number | undefined {
    const value = this.get(name)
    if (value === undefined) return undefined
    if (!/^\d+$/.test(value.trim())) {
      throw new ProgrammingError(`${name} must be a non-negative integer, got ${JSON.stringify(value)}`)
    }
    return Number(value)
  }

  /**
   * Returns a variable as a boolean (true/false, yes/no, 1/0, on/off).
   *
   * @throws ProgrammingError naming the variable when it is none of those.
   */
  boolean(name: string): boolean | undefined {
    return parseBoolean(name, this.get(name))
  }
}

/** The backends that can be named in the `PERSISTENCE` variable. */
export const PERSISTENCE_NAMES = ['memory', 'sqlite', 'postgres'] as const

/**
 * Returns the backend named by the `PERSISTENCE` variable (memory when unset),
 * configured from its own variables. Backends other than memory are loaded on
 * demand, so their drivers are imported only when used.
 *
 * @throws ProgrammingError for an unknown name, or a backend's missing settings.
 */
export async function persistenceFromConfig(config: Config): Promise<Persistence> {
  const name = config.get('PERSISTENCE') ?? 'memory'
  const get = (variable: string) => config.get(variable)
  switch (name) {
    case 'memory':
      return memory()
    case 'sqlite':
      return (await import('../sqlite/index.js')).fromEnvironment(get)
    case 'postgres':
      return (await import('../postgres/index.js')).fromEnvironment(get)
    default:
      throw new ProgrammingError(
        `Unknown PERSISTENCE value ${JSON.stringify(name)}: use one of ${PERSISTENCE_NAMES.join(', ')}`,
      )
  }
}

/** Options that shape how events are stored; each can also come from a variable. */
export interface EncodingOptions {
  /** A base64 AES-256 key (`CIPHER_KEY`): events are encrypted with AES-GCM when set. */
  readonly cipherKey?: string
  /** Compress event state with zlib (`COMPRESSOR=zlib`). */
  readonly compress?: boolean
  /** Transcodings for user types found in events and snapshots. */
  readonly transcodings?: readonly Transcoding<unknown>[]
}

/**
 * Returns the mapper for an application: options given in code win over variables.
 *
 * @throws ProgrammingError for an unknown `COMPRESSOR` or a malformed cipher key.
 */
export function mapperFromConfig(config: Config, options: EncodingOptions): Mapper {
  const transcoder = new JsonTranscoder()
  for (const transcoding of options.transcodings ?? []) transcoder.register(transcoding)
  const cipherKey = options.cipherKey ?? config.get('CIPHER_KEY')
  const compressor = options.compress ?? compressorFromConfig(config)
  return new Mapper({
    transcoder,
    compressor: compressor ? new ZlibCompressor() : undefined,
    cipher: cipherKey === undefined ? undefined : new AesGcmCipher(cipherKey),
  })
}

function compressorFromConfig(config: Config): boolean {
  const name = config.get('COMPRESSOR')
  if (name === undefined) return false
  if (name === 'zlib') return true
  throw new ProgrammingError(`Unknown COMPRESSOR value ${JSON.stringify(name)}: use zlib, or leave it unset`)
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === '' ? undefined : value
}
