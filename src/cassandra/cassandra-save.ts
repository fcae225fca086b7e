// The writes of a save outside the log (see CassandraProcessRecorder for the
// protocol): its intents (step 2: the events in their aggregates'
// partitions, the tracking claims in the tracking partition) and its marks
// (step 4).

import type cassandraDriver from 'cassandra-driver'
import {
  type IntegrityError,
  OperationalError,
  TrackingConflictError,
  VersionConflictError,
} from '../persistence/errors.js'
import type { StoredEvent, Tracking } from '../persistence/stored-event.js'
import { type LogContext, long } from './cassandra-log.js'
import { type CqlStatement, numberOf } from './cassandra-session.js'

type Row = cassandraDriver.types.Row
type Uuid = cassandraDriver.types.Uuid

// How often a write may time out with its outcome settled as "not written" before it fails.
const ATTEMPTS = 3

/** An event of a save, with its notification id. */
export interface Placed {
  readonly event: StoredEvent
  readonly id: number
}

/** A claimed save: its id (to know its own rows), and its position (its first notification id, where its status is). */
export interface SaveRef {
  readonly saveId: Uuid
  readonly position: number
}

/**
 * Writes the events of one aggregate of a save into its partition, by one
 * conditional batch: each row inserted if absent, or replacing a row of a save
 * that is aborted (conditioned on that row's `save_position`).
 *
 * A row of another save that is pending is resolved by age ("wound-wait"): an
 * older save (claimed before this one) is waited for (see
 * SaveStatuses.resolve); a younger one is aborted at once, and its row taken.
 * Waits go from younger to older saves only, so they never form a cycle (two
 * saves each holding a row the other needs, a transfer from x to y and one
 * from y to x, would otherwise wait for each other until `abandonAfterMs`),
 * and of saves that clash, the oldest wins, as if they were written one at a
 * time in the order of their ids.
 *
 * @throws VersionConflictError if a version is recorded by a committed save.
 */
export async function writeIntents(context: LogContext, placed: readonly Placed[], save: SaveRef): Promise<void> {
  const { session, cql, statuses, tables } = context
  const originatorId = placed[0]!.event.originatorId
  const versions = placed.map(({ event }) => long(session, event.originatorVersion))
  // The rows of aborted saves to replace: version → their save's position.
  const replacing = new Map<number, number>()
  for (let unknown = 0; ; ) {
    const statements = placed.map(({ event, id }): CqlStatement => {
      const state = Buffer.from(event.state.buffer, event.state.byteOffset, event.state.byteLength)
      const version = long(session, event.originatorVersion)
      const old = replacing.get(event.originatorVersion)
      const mine = [save.saveId, long(session, id), long(session, save.position)]
      return old === undefined
        ? { query: cql.insertIntent, params: [originatorId, version, event.topic, state, ...mine] }
        : {
            query: cql.replaceIntent,
            params: [event.topic, state, ...mine, originatorId, version, long(session, old)],
          }
    })
    try {
      if ((await session.conditional(statements)).applied) return
    } catch (error) {
      if (!session.outcomeUnknown(error)) throw session.error(error, 'write to')
      if (++unknown === ATTEMPTS) throw session.error(error, 'write to')
    }
    // Not applied, or not known: the rows as they are now say why, or that they are ours.
    const rows = await session.readSerial(cql.intents, [originatorId, versions])
    const foreign = rows.filter((row) => String(row.get('save_id')) !== save.saveId.toString())
    if (rows.length === placed.length && foreign.length === 0) return
    for (const row of foreign) {
      const version = numberOf(row, 'originator_version')!
      const position = numberOf(row, 'save_position')!
      if (position > save.position) await statuses.abort(position)
      if ((await statuses.resolve(position)) === 'committed') {
        throw new VersionConflictError({ originatorId, originatorVersion: version, table: tables.events })
      }
      replacing.set(version, position)
    }
  }
}

/** A tracking row as read, with the id its claim (if any) makes effective. */
interface TrackingRow {
  readonly committedId: number | undefined
  readonly claimPosition: number | undefined
  /** The id tracked; NaN when the claim is the caller's own (see `readTracking`). */
  readonly effective: number
  /** Whether the claim is the caller's own. */
  readonly own: boolean
}

/**
 * Reads tracking rows at serial consistency, resolving their claims: the id
 * tracked for each upstream. With `own`, the position of the caller's save, a
 * claim of that save is not resolved (the caller is its writer: `own` is then
 * true), and a pending claim of a younger save is aborted (wound-wait, see
 * writeIntents).
 */
export async function readTracking(
  context: LogContext,
  upstreams?: readonly string[],
  own?: number,
): Promise<Map<string, TrackingRow>> {
  const { session, cql } = context
  const rows =
    upstreams === undefined
      ? await session.readSerial(cql.allTracking, [])
      : await session.readSerial(cql.tracking, [[...new Set(upstreams)]])
  const tracked = new Map<string, TrackingRow>()
  for (const row of rows) tracked.set(row.get('upstream') as string, await effective(context, row, own))
  return tracked
}

async function effective(context: LogContext, row: Row, own: number | undefined): Promise<TrackingRow> {
  const { statuses } = context
  const committedId = numberOf(row, 'committed_id')
  const claimId = numberOf(row, 'claim_id')
  const claimPosition = numberOf(row, 'claim_position')
  const read = { committedId, claimPosition, own: false }
  if (claimPosition === undefined || claimId === undefined) return { ...read, effective: committedId ?? 0 }
  if (claimPosition === own) return { ...read, effective: Number.NaN, own: true }
  if (own !== undefined && claimPosition > own) await statuses.abort(claimPosition)
  const claimed = (await statuses.resolve(claimPosition)) === 'committed'
  return { ...read, effective: claimed ? claimId : (committedId ?? 0) }
}

/**
 * Records tracking records in the tracking partition by one conditional batch,
 * each checked against the id tracked (a claim of another save counting once
 * that save is committed) and against those before it in the list. With
 * `save`, they are claims that count once the save is committed; without,
 * they are committed at once (a save of tracking alone).
 *
 * @throws TrackingConflictError if an id is not greater than the last one tracked for its upstream.
 */
export async function writeTracking(context: LogContext, tracking: readonly Tracking[], save?: SaveRef): Promise<void> {
  const { session, cql, tables } = context
  for (let unknown = 0; ; ) {
    const upstreams = tracking.map((record) => record.applicationName)
    const tracked = await readTracking(context, upstreams, save?.position)
    // A batch whose answer was lost and that was applied: our claims are there (the batch is atomic).
    if ([...tracked.values()].some((row) => row.own)) return
    const last = new Map<string, number>()
    for (const { applicationName, notificationId } of tracking) {
      const before = last.get(applicationName) ?? tracked.get(applicationName)?.effective ?? 0
      if (!(notificationId > before)) {
        // Tracking alone after a lost answer: the ids tracked are ours, as far as anyone can tell.
        if (unknown > 0 && save === undefined && tracked.get(applicationName)?.effective === notificationId) continue
        throw new TrackingConflictError({ applicationName, notificationId, table: tables.tracking })
      }
      last.set(applicationName, notificationId)
    }
    if (last.size === 0) return
    const statements = [...last].map(([upstream, id]): CqlStatement => {
      const row = tracked.get(upstream)
      const maybe = (value: number | undefined) => (value === undefined ? null : long(session, value))
      return {
        query: cql.claimTracking,
        params: [
          long(session, save === undefined ? id : (row?.effective ?? 0)),
          save === undefined ? null : long(session, id),
          save === undefined ? null : long(session, save.position),
          upstream,
          maybe(row?.committedId),
          maybe(row?.claimPosition),
        ],
      }
    })
    try {
      if ((await session.conditional(statements)).applied) return
    } catch (error) {
      if (!session.outcomeUnknown(error)) throw session.error(error, 'write to')
      if (++unknown === ATTEMPTS) {
        throw new OperationalError(`${session.error(error, 'write to').message} (tracking, ${ATTEMPTS} times)`, {
          cause: error,
        })
      }
    }
  }
}

/**
 * Returns why a save whose intents were all written was aborted by another
 * before its commit: an older save that took one of its rows or its tracking
 * (wound-wait, see writeIntents) and committed, or a reader after
 * `abandonAfterMs`. Waits for that older save's outcome.
 */
export async function whyAborted(
  context: LogContext,
  byAggregate: readonly (readonly Placed[])[],
  tracking: readonly Tracking[],
  save: SaveRef,
): Promise<IntegrityError | OperationalError> {
  const { session, cql, statuses, tables } = context
  for (const placed of byAggregate) {
    const originatorId = placed[0]!.event.originatorId
    const versions = placed.map(({ event }) => long(session, event.originatorVersion))
    for (const row of await session.readSerial(cql.intents, [originatorId, versions])) {
      if (String(row.get('save_id')) === save.saveId.toString()) continue
      if ((await statuses.resolve(numberOf(row, 'save_position')!)) !== 'committed') continue
      const originatorVersion = numberOf(row, 'originator_version')!
      return new VersionConflictError({ originatorId, originatorVersion, table: tables.events })
    }
  }
  if (tracking.length > 0) {
    const tracked = await readTracking(
      context,
      tracking.map((record) => record.applicationName),
    )
    for (const { applicationName, notificationId } of tracking) {
      if (notificationId <= (tracked.get(applicationName)?.effective ?? 0)) {
        return new TrackingConflictError({ applicationName, notificationId, table: tables.tracking })
      }
    }
  }
  return new OperationalError(
    `A save to ${session.where} was aborted before it committed, each time it was tried, by readers after ` +
      `abandonAfterMs (${session.settings.abandonAfterMs} ms) or by older saves that needed its rows: nothing ` +
      'was recorded; save again (or raise abandonAfterMs if the cluster is this slow)',
  )
}

/**
 * Marks the rows of a committed save as committed, so that readers need not
 * ask its status: its events in their partitions, and its tracking claims
 * made the ids tracked. Each is conditioned on the row being still this save's.
 */
export async function mark(
  context: LogContext,
  byAggregate: readonly (readonly Placed[])[],
  tracking: readonly Tracking[],
  save: SaveRef,
): Promise<void> {
  const { session, cql } = context
  const position = long(session, save.position)
  const batches = byAggregate.map((placed) =>
    placed.map(({ event }) => ({
      query: cql.mark,
      params: [event.originatorId, long(session, event.originatorVersion), position],
    })),
  )
  const last = new Map(tracking.map((record) => [record.applicationName, record.notificationId]))
  if (last.size > 0) {
    batches.push(
      [...last].map(([upstream, id]) => ({
        query: cql.markTracking,
        params: [long(session, id), upstream, position],
      })),
    )
  }
  await Promise.all(batches.map((statements) => session.conditional(statements)))
}

/**
 * The saves of this process between their claim and their decision, with the
 * keys they write (aggregates, upstreams), so that a save commits only after
 * every older save here that shares a key with it is decided. Of saves that
 * clash, the older then always meets the younger's rows pending, and takes
 * them (wound-wait): concurrent saves of one process end as if written one at
 * a time in the order of the calls (their claims' order). A younger save
 * waits for older ones only, so no wait closes a cycle.
 */
export class CommitOrder {
  readonly #saves = new Map<
    number,
    { readonly keys: readonly string[]; readonly done: () => void; readonly decided: Promise<void> }
  >()

  /** Notes a claimed save, at its position, and the keys it writes. */
  enter(position: number, keys: readonly string[]): void {
    let done = () => {}
    const decided = new Promise<void>((resolve) => {
      done = resolve
    })
    this.#saves.set(position, { keys, done, decided })
  }

  /** Resolves once every older save noted here that shares a key with this one is decided. */
  async turn(position: number, keys: readonly string[]): Promise<void> {
    const mine = new Set(keys)
    const older = [...this.#saves]
      .filter(([other, save]) => other < position && save.keys.some((key) => mine.has(key)))
      .map(([, save]) => save.decided)
    await Promise.all(older)
  }

  /** Notes that a save was decided (or failed). */
  leave(position: number): void {
    this.#saves.get(position)?.done()
    this.#saves.delete(position)
  }
}
