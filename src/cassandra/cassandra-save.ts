// The writes of a save outside the log (see CassandraProcessRecorder for the
// protocol): its intents (step 2: the events in their aggregates'
// partitions, the tracking claims in the tracking partition) and its marks
// (step 4).

import type cassandraDriver from 'cassandra-driver'
import { OperationalError, TrackingConflictError, VersionConflictError } from '../persistence/errors.js'
import type { StoredEvent, Tracking } from '../persistence/stored-event.js'
import { type LogContext, long, numberOf } from './cassandra-log.js'
import type { CqlStatement } from './cassandra-session.js'

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
 * A row of a save that is pending is waited for (see SaveStatuses.resolve)
 * only if that save is younger (claimed after this one); a younger save
 * meeting a pending row of an older one gives up at once ("wait-die"), so that
 * two saves that each hold a row the other needs (a transfer from x to y and
 * one from y to x) never wait for each other until `abandonAfterMs`: waits go
 * from older to younger saves only, and cannot form a cycle.
 *
 * @throws VersionConflictError if a version is recorded by a committed save,
 * or by a pending save claimed before this one.
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
      const now = await statuses.look(position)
      const older = position < save.position
      if (now === 'committed' || (now === 'pending' && older) || (await statuses.resolve(position)) === 'committed') {
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
  /** The id tracked; NaN when the claim is the caller's own, or an older save's that is pending (see `readTracking`). */
  readonly effective: number
  /** Whether the claim is the caller's own. */
  readonly own: boolean
}

/**
 * Reads tracking rows at serial consistency, resolving their claims: the id
 * tracked for each upstream. With `own`, the position of the caller's save,
 * a claim of that save is not resolved (the caller is its writer), nor is a
 * pending claim of an older save (claimed before it), which the caller must
 * not wait for (wait-die, see writeIntents): `effective` is NaN for both.
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
  const unresolved = { committedId, claimPosition, effective: Number.NaN }
  if (claimPosition === undefined || claimId === undefined)
    return { ...unresolved, effective: committedId ?? 0, own: false }
  if (claimPosition === own) return { ...unresolved, own: true }
  if (own !== undefined && claimPosition < own && (await statuses.look(claimPosition)) === 'pending') {
    return { ...unresolved, own: false }
  }
  const claimed = (await statuses.resolve(claimPosition)) === 'committed'
  return { ...unresolved, effective: claimed ? claimId : (committedId ?? 0), own: false }
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
      // NaN: an older save claims this upstream and is pending. Waiting for it could close a cycle of waits, so this
      // save gives up: a follower then asks hasTrackingId (which waits) and processes the notification again if need be.
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
