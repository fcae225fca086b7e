import { Buffer } from 'node:buffer'
import { ProgrammingError } from '../persistence/errors.js'

/** The options every RabbitMQ relay end takes: where the broker is, and how long to wait for it. */
export interface RabbitMqConnectionOptions {
  /**
   * The broker's URL: `amqp://user:password@host:5672/vhost` (`amqps://` for
   * TLS). A `heartbeat` parameter (seconds) is added when missing, 10, so
   * that a vanished broker is noticed within half a minute.
   */
  readonly url: string
  /**
   * How long to wait for the broker before failing with OperationalError
   * (default 30,000 ms): to connect (trying again with backoff, also after a
   * connection was lost; the republisher's `start` and the publisher's
   * `publish`), and then for the confirms of a publication.
   */
  readonly timeoutMs?: number
}

const DEFAULT_TIMEOUT_MS = 30_000
const DEFAULT_HEARTBEAT_SECONDS = 10
// AMQP short strings (exchange, queue and routing key) hold at most 255 bytes.
const MAX_NAME_BYTES = 255

/** The parsed settings of a connection. */
export interface ConnectionSettings {
  /** The URL given to amqplib (with a heartbeat). */
  readonly url: string
  /** Names the broker in error messages, without credentials: `host:port/vhost`. */
  readonly server: string
  readonly timeoutMs: number
}

/**
 * Reads and checks the connection options.
 *
 * @throws ProgrammingError for a URL that is not `amqp://` or `amqps://`, or a timeout that is not positive.
 */
export function connectionSettings(options: RabbitMqConnectionOptions): ConnectionSettings {
  let parsed: URL
  try {
    parsed = new URL(options.url)
  } catch (error) {
    throw new ProgrammingError(`The RabbitMQ URL is not a URL (expected amqp://user:password@host:5672/vhost)`, {
      cause: error,
    })
  }
  if (parsed.protocol !== 'amqp:' && parsed.protocol !== 'amqps:') {
    throw new ProgrammingError(
      `The RabbitMQ URL must start with amqp:// or amqps://, not ${parsed.protocol}// (expected amqp://user:password@host:5672/vhost)`,
    )
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  positiveInteger('timeoutMs', timeoutMs)
  const port = parsed.port || (parsed.protocol === 'amqp:' ? '5672' : '5671')
  const vhost = parsed.pathname.length > 1 ? decodeURIComponent(parsed.pathname.slice(1)) : '/'
  const server = `${parsed.hostname}:${port}/${vhost === '/' ? '' : vhost}`
  if (!parsed.searchParams.has('heartbeat')) parsed.searchParams.set('heartbeat', String(DEFAULT_HEARTBEAT_SECONDS))
  return { url: parsed.toString(), server, timeoutMs }
}

/** @throws ProgrammingError unless `value` is a positive integer. */
export function positiveInteger(option: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new ProgrammingError(`${option} must be a positive integer, got ${value}`)
  }
}

/**
 * Checks the name of an exchange or a queue.
 *
 * @throws ProgrammingError for an empty name, one longer than 255 bytes, one
 * with characters other than letters, digits and `-_.:/`, or one starting
 * with `amq.` (reserved by the broker).
 */
export function checkName(kind: 'exchange' | 'queue', name: string): void {
  if (
    typeof name !== 'string' ||
    !/^[A-Za-z0-9_.:/-]+$/.test(name) ||
    Buffer.byteLength(name) > MAX_NAME_BYTES ||
    name.startsWith('amq.')
  ) {
    throw new ProgrammingError(
      `Invalid ${kind} name ${JSON.stringify(name)}: use 1 to 255 letters, digits and -_.:/ characters, not starting with amq.`,
    )
  }
}
