// What the commands share: where they write, and how they show stored events.
import type { Readable, Writable } from 'node:stream'
import Table from 'cli-table3'
import type { Environment } from '../application/config.js'
import { recordIdentity } from '../persistence/mapper.js'
import type { Notification, StoredEvent } from '../persistence/stored-event.js'
import type { Storage } from './storage.js'

/** Where a command reads its settings and writes its output; the CLI gives it the process's, tests their own. */
export interface CommandIo {
  /** The environment variables the storage is configured from. */
  readonly env: Environment
  /** What `import` reads when no file is given. */
  readonly stdin: Readable
  /** The command's output: tables, JSON lines, or exported events. */
  readonly stdout: Writable
  /** Progress and counts; a progress bar is drawn only when it is a terminal. */
  readonly stderr: Writable & { readonly isTTY?: boolean }
  /** Ends a command that runs until stopped (`log --follow`), as Ctrl-C does. */
  readonly signal?: AbortSignal
}

/** An event's state as shown: its fields decoded, or its bytes when they cannot be decoded. */
export type ShownState = { readonly fields: unknown } | { readonly base64: string; readonly bytes: number }

// Enough bytes to recognise a state by; the whole state is in `export`.
const SHOWN_BYTES = 48
const TABLE_STATE_CHARS = 60

/**
 * Returns the state of a stored event as shown to people and programs: its
 * fields when they decode (decrypted and decompressed when the storage is set
 * to), else its first bytes in base64, since encrypted or foreign bytes are not text.
 *
 * @throws DataError when a cipher key or compression is configured and the
 * state does not decode with it (a wrong key is an error, not bytes to show).
 */
export function showState(storage: Storage, event: StoredEvent): ShownState {
  return showDecoded(storage, event.state, () => decodeFields(storage, event))
}

/**
 * Returns bytes as shown: what `decode` makes of them, or their first bytes
 * in base64 when they do not decode and `decodes` is false (no cipher key
 * or compression was given, so they may be another program's).
 *
 * @throws what `decode` throws, when `decodes` is true.
 */
export function showDecoded(
  { decodes }: Pick<Storage, 'decodes'>,
  bytes: Uint8Array,
  decode: () => unknown,
): ShownState {
  try {
    return { fields: decode() }
  } catch (error) {
    if (decodes) throw error
    const shown = Buffer.from(bytes.subarray(0, SHOWN_BYTES)).toString('base64')
    return { base64: bytes.byteLength > SHOWN_BYTES ? `${shown}…` : shown, bytes: bytes.byteLength }
  }
}

/**
 * Returns the fields of a stored event's state, decrypted and decompressed as
 * the storage is set to (not upcast).
 *
 * @throws DataError when the state does not decode with the storage's settings.
 */
export function decodeFields(storage: Storage, event: StoredEvent): Record<string, unknown> {
  const { originatorId, originatorVersion, topic } = event
  const identity = recordIdentity(topic, originatorId, originatorVersion)
  return storage.mapper.decodeState(
    event.state,
    identity,
    `event ${originatorVersion} of '${originatorId}' (topic '${topic}')`,
  )
}

/** Returns a stored event (or notification) as one line of JSON, its state shown by {@link showState}. */
export function eventJson(storage: Storage, event: StoredEvent | Notification): string {
  const id = 'id' in event ? { id: event.id } : {}
  const { originatorId, originatorVersion, topic } = event
  return `${JSON.stringify({ ...id, originatorId, originatorVersion, topic, state: showState(storage, event) }, jsonValue)}\n`
}

/** Returns a table of stored events (with their notification ids when they have them). */
export function eventsTable(storage: Storage, events: readonly (StoredEvent | Notification)[]): string {
  const withIds = events.some((event) => 'id' in event)
  const table = new Table({
    head: [...(withIds ? ['id'] : []), 'originator', 'version', 'topic', 'state'],
    // No colours: the output is often piped or read by tests.
    style: { head: [], border: [] },
  })
  for (const event of events) table.push(eventRow(storage, event, withIds))
  return `${table.toString()}\n`
}

/** Returns one event as a line of aligned columns, for output that cannot wait for a whole table (`--follow`). */
export function eventLine(storage: Storage, event: Notification): string {
  const [id, originator, version, topic, state] = eventRow(storage, event, true)
  return `${String(id).padStart(8)}  ${originator}  ${String(version).padStart(4)}  ${topic}  ${state}\n`
}

function eventRow(storage: Storage, event: StoredEvent | Notification, withId: boolean): (string | number)[] {
  const row = [event.originatorId, event.originatorVersion, event.topic, stateText(showState(storage, event))]
  return withId ? ['id' in event ? event.id : '', ...row] : row
}

function stateText(state: ShownState): string {
  const text = 'fields' in state ? JSON.stringify(state.fields, jsonValue) : `${state.bytes} bytes: ${state.base64}`
  return text.length > TABLE_STATE_CHARS ? `${text.slice(0, TABLE_STATE_CHARS - 1)}…` : text
}

/** A JSON replacer for the types the transcoder restores that JSON cannot write (Date has its own toJSON). */
export function jsonValue(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString()
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64')
  if (value instanceof Map) return Object.fromEntries(value)
  if (value instanceof Set) return [...value]
  return value
}

/** Writes `text` to `stream`, waiting when its buffer is full so that output of any size runs in constant memory. */
export async function writeTo(stream: Writable, text: string): Promise<void> {
  if (stream.write(text)) return
  await new Promise<void>((resolve, reject) => {
    const done = (error?: Error) => {
      stream.off('drain', done)
      stream.off('error', done)
      error === undefined ? resolve() : reject(error)
    }
    stream.once('drain', done)
    stream.once('error', done)
  })
}
