import type { Buffer } from 'node:buffer'
import { setTimeout as delay } from 'node:timers/promises'
import type { ChannelModel, ConfirmChannel, Options } from 'amqplib'
import { importDriver, loadOnce } from '../persistence/driver.js'
import { errorMessage, OperationalError, ProgrammingError } from '../persistence/errors.js'
import type { ConnectionSettings } from './rabbitmq-settings.js'

/** The `amqplib` module. */
type AmqpDriver = typeof import('amqplib')

const loadDriver = loadOnce(() =>
  importDriver<AmqpDriver>(
    () => import('amqplib'),
    () => 'The RabbitMQ relays need the amqplib package: npm install amqplib',
  ),
)

// Pauses between attempts to connect: 100 ms, doubling up to 5 s.
const FIRST_PAUSE_MS = 100
const MAX_PAUSE_MS = 5_000

/** An open connection with its confirm channel. */
export interface Session {
  readonly model: ChannelModel
  readonly channel: ConfirmChannel
  /** Message ids of the messages the broker returned as unroutable (mandatory publications). */
  readonly returned: Set<string>
  /** Resolves, with the error when there is one, once the channel or the connection has closed. */
  readonly closed: Promise<Error | undefined>
  /** True once the channel or the connection has closed. */
  isClosed(): boolean
  /** Closes the connection, ignoring failures. */
  close(): Promise<void>
}

/**
 * Connects and opens a confirm channel, then runs `setup` on it, trying again
 * with backoff (100 ms, doubling up to 5 s) while the broker cannot be reached.
 *
 * @param deadline The time (ms since the epoch) after which it stops trying.
 * @param name The connection's name, as the broker's management tools show it.
 * @throws OperationalError naming the broker once the deadline passes, or the
 * signal aborts; ProgrammingError at once for bad credentials, an unknown
 * virtual host, or declarations that conflict with the broker's.
 */
export async function openSession(
  settings: ConnectionSettings,
  name: string,
  setup: (channel: ConfirmChannel) => Promise<void>,
  deadline: number,
  signal?: AbortSignal,
): Promise<Session> {
  const driver = await loadDriver()
  for (let failures = 0; ; failures++) {
    try {
      return await connect(driver, settings, name, setup, deadline)
    } catch (error) {
      const typed = rabbitMqError(error, settings.server)
      if (!(typed instanceof OperationalError)) throw typed
      const pause = Math.min(MAX_PAUSE_MS, FIRST_PAUSE_MS * 2 ** failures)
      if (signal?.aborted || Date.now() + pause > deadline) {
        throw new OperationalError(
          `RabbitMQ at ${settings.server} cannot be reached${signal?.aborted ? '' : ` (tried for ${settings.timeoutMs} ms)`}: ${errorMessage(error)}`,
          { cause: error },
        )
      }
      await delay(pause, undefined, { signal }).catch(() => {})
    }
  }
}

async function connect(
  driver: AmqpDriver,
  settings: ConnectionSettings,
  name: string,
  setup: (channel: ConfirmChannel) => Promise<void>,
  deadline: number,
): Promise<Session> {
  const socketOptions = {
    // Bounds the TCP and AMQP handshake, which would otherwise wait on a host that does not answer.
    timeout: Math.max(1000, Math.min(10_000, deadline - Date.now())),
    clientProperties: { connection_name: name },
  }
  const model = await driver.connect(settings.url, socketOptions)
  let isClosed = false
  let onClose: (error: Error | undefined) => void = () => {}
  const closed = new Promise<Error | undefined>((resolve) => {
    onClose = resolve
  })
  const close = (error?: unknown) => {
    if (isClosed) return
    isClosed = true
    onClose(error instanceof Error ? error : undefined)
  }
  // Errors are reported by the operations that fail, and by `closed`; an
  // unheard 'error' event would end the process.
  model.on('error', (error: Error) => close(error))
  model.on('close', (error?: Error) => close(error))
  try {
    const channel = await model.createConfirmChannel()
    channel.on('error', (error: Error) => close(error))
    channel.on('close', () => close())
    const returned = new Set<string>()
    channel.on('return', (message: { properties: { messageId?: string } }) => {
      if (message.properties.messageId !== undefined) returned.add(message.properties.messageId)
    })
    await setup(channel)
    return {
      model,
      channel,
      returned,
      closed,
      isClosed: () => isClosed,
      close: async () => {
        close()
        await model.close().catch(() => {})
      },
    }
  } catch (error) {
    await model.close().catch(() => {})
    throw error
  }
}

/**
 * Publishes one message on a confirm channel and resolves once the broker
 * confirmed it.
 *
 * @throws OperationalError when the broker refuses it (a nack), returns it as
 * unroutable (with `mandatory`), or the channel closes first.
 */
export function publishConfirmed(
  session: Session,
  server: string,
  exchange: string,
  routingKey: string,
  content: Buffer,
  options: Options.Publish & { messageId: string },
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (error: unknown) => {
      if (error) {
        const nacked = errorMessage(error) === 'message nacked'
        reject(
          new OperationalError(
            nacked
              ? `RabbitMQ at ${server} refused message ${options.messageId} (a negative acknowledgement): a queue may be full, or the broker failing`
              : `The connection to RabbitMQ at ${server} was lost before it confirmed message ${options.messageId}, which may or may not be held: ${errorMessage(error)}`,
            { cause: error },
          ),
        )
      } else if (session.returned.delete(options.messageId)) {
        reject(
          new OperationalError(
            `RabbitMQ at ${server} has no queue for message ${options.messageId} (routing key '${routingKey}' on exchange '${exchange || '(default)'}'): bind a queue to the exchange for it`,
          ),
        )
      } else {
        resolve()
      }
    }
    try {
      session.channel.publish(exchange, routingKey, content, options, done)
    } catch (error) {
      // amqplib throws at once on a channel that has closed.
      done(error)
    }
  })
}

/**
 * Returns a typed error for an error of amqplib: OperationalError naming the
 * broker for failures worth another try (a refused, reset or closed
 * connection, a broker shutting down, anything unrecognised), and
 * ProgrammingError, with the way out, for those that another try cannot mend
 * (bad credentials, an unknown virtual host, a declaration that conflicts
 * with the broker's, a missing exchange, a bad URL).
 */
export function rabbitMqError(error: unknown, server: string): Error {
  if (error instanceof OperationalError || error instanceof ProgrammingError) return error
  const message = errorMessage(error)
  const code = amqpCode(error)
  if (/ACCESS.REFUSED/.test(message) || code === 403) {
    return new ProgrammingError(
      `RabbitMQ at ${server} refused the credentials or the access: check the user and password in the URL, and the user's permissions on the virtual host: ${message}`,
      { cause: error },
    )
  }
  if (/Expected ConnectionOpenOk/.test(message) || code === 530) {
    return new ProgrammingError(
      `RabbitMQ at ${server} refused to open the virtual host: check that it exists and that the user may use it: ${message}`,
      { cause: error },
    )
  }
  if (code === 406) {
    return new ProgrammingError(
      `RabbitMQ at ${server} has an exchange or queue of that name declared with other settings; delete it, or use another name: ${message}`,
      { cause: error },
    )
  }
  if (code === 404) {
    return new ProgrammingError(`RabbitMQ at ${server} has no such exchange or queue: ${message}`, { cause: error })
  }
  if (/Expected amqp: or amqps:/.test(message) || error instanceof TypeError || error instanceof RangeError) {
    return new ProgrammingError(`Cannot use RabbitMQ at ${server}: ${message}`, { cause: error })
  }
  // The rest (a refused, reset or closed connection, a missed heartbeat, a
  // broker shutting down) may pass: worth another try.
  return new OperationalError(`RabbitMQ at ${server} is unavailable: ${message}`, { cause: error })
}

function amqpCode(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null || !('code' in error)) return undefined
  return typeof error.code === 'number' ? error.code : undefined
}
