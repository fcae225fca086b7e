// Helpers shared by the groups of the recorder conformance suite.

import assert from 'node:assert/strict'
import { TrackingConflictError, VersionConflictError } from '../persistence/errors.js'
import type { Persistence, ProcessRecorder, Recorders } from '../persistence/recorder.js'
import type { Notification, StoredEvent } from '../persistence/stored-event.js'
import type { RecorderHarness, TestApi } from './recorder-suite.js'

/** Opens the recorders of an application (by default `app`) on the store of the running test. */
export type Open = (applicationName?: string) => Promise<Recorders>

/** Declares one test, whose body runs on a fresh store. */
export type StoreTest = (name: string, body: (open: Open, persistence: Persistence) => Promise<void>) => unknown

/** Makes the {@link StoreTest} function with which a group declares its tests on the harness's stores. */
export function storeTest(api: TestApi, harness: RecorderHarness): StoreTest {
  return (name, body) => api.it(name, () => withStore(harness, body))
}

/** Runs a test on a fresh store, closing every recorder it opened and removing the store afterwards. */
export async function withStore(
  harness: RecorderHarness,
  body: (open: Open, persistence: Persistence) => Promise<void>,
): Promise<void> {
  const { persistence, teardown } = await harness.setup()
  const opened: Recorders[] = []
  try {
    await body(async (applicationName = 'app') => {
      const recorders = await persistence.open(applicationName)
      opened.push(recorders)
      return recorders
    }, persistence)
  } finally {
    try {
      for (const recorders of opened.reverse()) await recorders.close()
    } finally {
      await teardown()
    }
  }
}

/** Reads the whole notification log, page by page. */
export async function readLog(recorder: ProcessRecorder): Promise<Notification[]> {
  const log: Notification[] = []
  for (;;) {
    const start = log[log.length - 1]?.id ?? 0
    const page = await recorder.selectNotifications({ start, inclusiveOfStart: false, limit: 100 })
    log.push(...page)
    if (page.length < 100) return log
  }
}

/** What a test compares to show that a failed write changed nothing. */
export async function contents(recorder: ProcessRecorder) {
  return {
    log: (await readLog(recorder)).map(plainNotification),
    max: await recorder.maxNotificationId(),
    a: (await recorder.selectEvents('a')).map(plain),
    b: (await recorder.selectEvents('b')).map(plain),
    c: (await recorder.selectEvents('c')).map(plain),
  }
}

const encoder = new TextEncoder()

/** Encodes text as UTF-8 bytes. */
export function bytes(text: string): Uint8Array {
  return encoder.encode(text)
}

/** A stored event; its state, unless given, is the bytes of `originatorId@originatorVersion`. */
export function event(
  originatorId: string,
  originatorVersion: number,
  topic = 'topic',
  state?: Uint8Array,
): StoredEvent {
  return { originatorId, originatorVersion, topic, state: state ?? bytes(`${originatorId}@${originatorVersion}`) }
}

/** Events `from` to `to` of one originator, their topics taken from `topics` in turn. */
export function range(originatorId: string, from: number, to: number, topics = ['topic']): StoredEvent[] {
  const events: StoredEvent[] = []
  for (let v = from; v <= to; v++) events.push(event(originatorId, v, topics[(v - from) % topics.length]))
  return events
}

/** Names an event by its originator and version, e.g. `a@1`. */
export function key(event: StoredEvent): string {
  return `${event.originatorId}@${event.originatorVersion}`
}

/** The versions of the events, in their order. */
export function versions(events: readonly StoredEvent[]): number[] {
  return events.map((e) => e.originatorVersion)
}

/** The fields of an event as plain values (the state as hex), for deep comparison; asserts the state is a Uint8Array. */
export function plain({ originatorId, originatorVersion, topic, state }: StoredEvent) {
  assert.ok(state instanceof Uint8Array, `the state of ${originatorId}@${originatorVersion} is not a Uint8Array`)
  return { originatorId, originatorVersion, topic, state: Buffer.from(state).toString('hex') }
}

/** The fields of a notification as plain values, for deep comparison. */
export function plainNotification(notification: Notification) {
  return { id: notification.id, ...plain(notification) }
}

/** Asserts that each id is greater than the one before it. */
export function assertIncreasing(ids: readonly number[]): void {
  for (let i = 1; i < ids.length; i++) assert.ok(ids[i]! > ids[i - 1]!, `ids do not increase: ${ids}`)
}

/** The table names that the conflict errors of application `app` must give: the harness's, or any (undefined). */
export function expectedTables(harness: RecorderHarness): { events?: string; snapshots?: string; tracking?: string } {
  return harness.tables?.('app') ?? {}
}

/**
 * Returns a check for `assert.rejects`: the error is a VersionConflictError
 * naming this event and the table (any non-empty name when `table` is undefined).
 */
export function versionConflict(
  originatorId: string,
  originatorVersion: number,
  table: string | undefined,
): (error: unknown) => true {
  return (error) => {
    assert.ok(error instanceof VersionConflictError, `expected a VersionConflictError, got ${error}`)
    assert.deepEqual(
      { originatorId: error.originatorId, originatorVersion: error.originatorVersion },
      { originatorId, originatorVersion },
    )
    assertTable(error.table, table)
    assert.ok(error.message.includes(originatorId), `the message does not name the originator: ${error.message}`)
    return true
  }
}

/**
 * Returns a check for `assert.rejects`: the error is a TrackingConflictError
 * naming this tracking record and the table (any non-empty name when `table` is undefined).
 */
export function trackingConflict(
  applicationName: string,
  notificationId: number,
  table: string | undefined,
): (error: unknown) => true {
  return (error) => {
    assert.ok(error instanceof TrackingConflictError, `expected a TrackingConflictError, got ${error}`)
    assert.deepEqual(
      { applicationName: error.applicationName, notificationId: error.notificationId },
      { applicationName, notificationId },
    )
    assertTable(error.table, table)
    return true
  }
}

function assertTable(actual: unknown, expected: string | undefined): void {
  if (expected !== undefined) assert.equal(actual, expected, 'the error names another table')
  else assert.ok(typeof actual === 'string' && actual !== '', 'the error names no table')
}

/** Returns what the promise rejects with; fails when it resolves. */
export async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => assert.fail('expected a rejection'),
    (error: unknown) => error,
  )
}
