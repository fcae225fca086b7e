import { Buffer } from 'node:buffer'
import { EventSourcingError } from '../domain/errors.js'
import type { Notification } from '../persistence/stored-event.js'

/** The format version that every relayed message names in its `format` field. */
export const MESSAGE_FORMAT = 'eventsourcing.notification/1'

/**
 * A notification of an application's log as a broker message (JSON, version
 * {@link MESSAGE_FORMAT}): what a relay publishes and a republisher reads.
 */
export interface RelayMessage {
  /** Always {@link MESSAGE_FORMAT}; a reader rejects other versions. */
  readonly format: typeof MESSAGE_FORMAT
  /** The name of the application whose log the notification is from. */
  readonly application: string
  /** The notification's id in that log. */
  readonly notificationId: number
  /** The id of the aggregate the event belongs to. */
  readonly originatorId: string
  /** The aggregate's version after the event. */
  readonly originatorVersion: number
  /** The topic of the event's type (also the RabbitMQ routing key). */
  readonly topic: string
  /** The media type of the state: `application/json`, or `application/octet-stream` when compressed or encrypted. */
  readonly contentType: string
  /** The event's stored state, base64. */
  readonly state: string
}

/** A broker message that a republisher cannot read; it goes to the dead-letter destination with this error's message. */
export class MalformedMessageError extends EventSourcingError {}

/** Returns the JSON of the message of a notification of `application`'s log. */
export function encodeMessage(application: string, notification: Notification, contentType: string): string {
  const message: RelayMessage = {
    format: MESSAGE_FORMAT,
    application,
    notificationId: notification.id,
    originatorId: notification.originatorId,
    originatorVersion: notification.originatorVersion,
    topic: notification.topic,
    contentType,
    state: Buffer.from(
      notification.state.buffer,
      notification.state.byteOffset,
      notification.state.byteLength,
    ).toString('base64'),
  }
  return JSON.stringify(message)
}

/**
 * Reads a broker message's body.
 *
 * @returns the upstream application's name and the notification.
 * @throws MalformedMessageError saying what is wrong: not JSON, another format
 * version, or a missing or mistyped field.
 */
export function decodeMessage(body: string | Uint8Array): { application: string; notification: Notification } {
  const text = typeof body === 'string' ? body : Buffer.from(body).toString('utf8')
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    throw new MalformedMessageError(`The message is not JSON: ${preview(text)}`, { cause: error })
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new MalformedMessageError(`The message is not a JSON object: ${preview(text)}`)
  }
  const message = parsed as Record<string, unknown>
  if (message.format !== MESSAGE_FORMAT) {
    throw new MalformedMessageError(
      `The message's format is ${JSON.stringify(message.format)}, not ${MESSAGE_FORMAT}: upgrade this reader, or republish in that format`,
    )
  }
  const field = <T>(name: string, valid: (value: unknown) => value is T, expected: string): T => {
    const value = message[name]
    if (!valid(value)) throw new MalformedMessageError(`The message's ${name} is not ${expected}: ${preview(text)}`)
    return value
  }
  const isText = (value: unknown): value is string => typeof value === 'string' && value.length > 0
  const isPositive = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) > 0
  const isBase64 = (value: unknown): value is string =>
    typeof value === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(value)
  const application = field('application', isText, 'a name')
  field('contentType', isText, 'a media type')
  return {
    application,
    notification: {
      id: field('notificationId', isPositive, 'a positive integer'),
      originatorId: field('originatorId', isText, 'an id'),
      originatorVersion: field('originatorVersion', isPositive, 'a positive integer'),
      topic: field('topic', isText, 'a topic'),
      state: new Uint8Array(Buffer.from(field('state', isBase64, 'base64'), 'base64')),
    },
  }
}

function preview(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text)
}
