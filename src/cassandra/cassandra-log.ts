// The notification log on Cassandra: the claim of ids (step 1 of a save),
// the commit point (step 3), and the resolution of a save's status by
// readers. The protocol and its proof are in the doc of
// CassandraProcessRecorder (cassandra-application-recorder.ts).

import { setTimeout as delay } from 'node:timers/promises'
import type cassandraDriver from 'cassandra-driver'
import { OperationalError } from '../persistence/errors.js'
import type { StoredEvent } from '../persistence/stored-event.js'
import { BUCKET, type CassandraTables } from './cassandra-schema.js'
import { type CassandraSession, type CqlStatement, numberOf } from './cassandra-session.js'

type Uuid = cassandraDriver.types.Uuid

/** The status of a save, in the first row of its ids in the log. */
export type SaveStatus = 'pending' | 'committed' | 'aborted'

// How often a save's settling (a timed-out write read back) may fail before the save fails.
const ATTEMPTS = 3
// The most rows of one claim batch, beyond the first save's (a save alone may have up to BUCKET).
const GROUP_ROWS = 1000
// The most bytes of event state in one claim batch, beyond the first save's.
const GROUP_BYTES = 1 << 20
// How many final statuses a recorder remembers.
const CACHED_STATUSES = 100_000
// How long a reader waits between looks at a pending save.
const PENDING_POLL_MS = 10

/** Returns the bucket (the log's partition) of a notification id. */
export function bucketOf(id: number): number {
  return Math.floor((id - 1) / BUCKET)
}

/** Returns the highest id of a bucket. */
export function bucketEnd(bucket: number): number {
  return (bucket + 1) * BUCKET
}

/** The statements on an application's tables, fully qualified. */
export type LogCql = ReturnType<typeof logCql>

/** Returns the statements on the tables of an application in a keyspace. */
export function logCql(keyspace: string, tables: CassandraTables) {
  const log = `${keyspace}.${tables.log}`
  const events = `${keyspace}.${tables.events}`
  const tracking = `${keyspace}.${tables.tracking}`
  const eventColumns = 'originator_id, originator_version, topic, state'
  const range = 'WHERE originator_id = ? AND originator_version > ? AND originator_version <= ?'
  const trackingColumns = 'upstream, committed_id, claim_id, claim_position'
  return {
    claimHead: `UPDATE ${log} SET head = ? WHERE bucket = ? IF head = ?`,
    insertFirst:
      `INSERT INTO ${log} (bucket, id, ${eventColumns}, save_position, status, claimed_at, save_id) ` +
      'VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS',
    insertRow: `INSERT INTO ${log} (bucket, id, ${eventColumns}, save_position) VALUES (?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`,
    setStatus: `UPDATE ${log} SET status = ? WHERE bucket = ? AND id = ? IF status = 'pending'`,
    head: `SELECT head FROM ${log} WHERE bucket = ? LIMIT 1`,
    status: `SELECT status, claimed_at, save_id FROM ${log} WHERE bucket = ? AND id = ?`,
    statuses: `SELECT id, status, save_id FROM ${log} WHERE bucket = ? AND id IN ?`,
    range:
      `SELECT head, id, ${eventColumns}, save_position, status, claimed_at FROM ${log} ` +
      'WHERE bucket = ? AND id >= ? AND id <= ? LIMIT ?',
    tail:
      `SELECT id, originator_id, save_position, status, claimed_at FROM ${log} ` +
      'WHERE bucket = ? AND id <= ? ORDER BY id DESC LIMIT ?',
    clear:
      `UPDATE ${log} SET originator_id = null, originator_version = null, topic = null, state = null ` +
      'WHERE bucket = ? AND id = ? IF save_position = ?',
    insertIntent:
      `INSERT INTO ${events} (${eventColumns}, save_id, position, save_position) ` +
      'VALUES (?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS',
    replaceIntent:
      `UPDATE ${events} SET topic = ?, state = ?, save_id = ?, position = ?, save_position = ?, committed = null ` +
      'WHERE originator_id = ? AND originator_version = ? IF save_position = ?',
    intents: `SELECT originator_version, save_id, save_position FROM ${events} WHERE originator_id = ? AND originator_version IN ?`,
    mark: `UPDATE ${events} SET committed = true WHERE originator_id = ? AND originator_version = ? IF save_position = ?`,
    select: `SELECT ${eventColumns}, save_position, committed FROM ${events} ${range} ORDER BY originator_version ASC LIMIT ?`,
    selectDesc: `SELECT ${eventColumns}, save_position, committed FROM ${events} ${range} ORDER BY originator_version DESC LIMIT ?`,
    aggregate: `SELECT originator_version, position, save_position, committed FROM ${events} WHERE originator_id = ?`,
    byOriginator: `SELECT ${eventColumns}, position, save_position, committed FROM ${events} WHERE originator_id = ?`,
    deleteIntent: `DELETE FROM ${events} WHERE originator_id = ? AND originator_version = ? IF save_position = ?`,
    tracking: `SELECT ${trackingColumns} FROM ${tracking} WHERE part = 0 AND upstream IN ?`,
    allTracking: `SELECT ${trackingColumns} FROM ${tracking} WHERE part = 0`,
    claimTracking:
      `UPDATE ${tracking} SET committed_id = ?, claim_id = ?, claim_position = ? ` +
      'WHERE part = 0 AND upstream = ? IF committed_id = ? AND claim_position = ?',
    markTracking:
      `UPDATE ${tracking} SET committed_id = ?, claim_id = null, claim_position = null ` +
      'WHERE part = 0 AND upstream = ? IF claim_position = ?',
  }
}

/** What the log's functions share: the session, the statements, and the statuses already resolved. */
export interface LogContext {
  readonly session: CassandraSession
  readonly cql: LogCql
  readonly tables: CassandraTables
  readonly statuses: SaveStatuses
}

/** Returns a bigint parameter. */
export function long(session: CassandraSession, value: number) {
  return session.driver.types.Long.fromNumber(value)
}

/**
 * The statuses of saves, resolved by readers: a save whose status is pending
 * is waited for until `abandonAfterMs` after its claim, then aborted by a
 * conditional write that races the writer's commit (Paxos lets exactly one of
 * them apply). Final statuses never change, so they are remembered.
 */
export class SaveStatuses {
  readonly #final = new Map<number, 'committed' | 'aborted'>()
  // The saves of this process's writer between claim and decision: waited for without polling.
  readonly #inFlight = new Map<number, { readonly decided: Promise<void>; readonly settle: () => void }>()

  constructor(
    private readonly session: CassandraSession,
    private readonly cql: LogCql,
    private readonly abandonAfterMs: number,
  ) {}

  /** Returns the final status of the save whose first id is `position`, if it is known here. */
  known(position: number): 'committed' | 'aborted' | undefined {
    return this.#final.get(position)
  }

  /** Remembers a final status. */
  remember(position: number, status: 'committed' | 'aborted'): void {
    if (this.#final.size >= CACHED_STATUSES) this.#final.delete(this.#final.keys().next().value as number)
    this.#final.set(position, status)
    this.settled(position)
  }

  /** Notes that this process's writer claimed a save, and will decide it. */
  claimed(position: number): void {
    let settle = () => {}
    const decided = new Promise<void>((resolve) => {
      settle = resolve
    })
    this.#inFlight.set(position, { decided, settle })
  }

  /** Wakes the waiters of a save of this process's writer, decided or given up. */
  settled(position: number): void {
    this.#inFlight.get(position)?.settle()
    this.#inFlight.delete(position)
  }

  /**
   * Returns the final status of the save whose first id is `position`,
   * waiting for a pending one, and aborting it once `abandonAfterMs` has
   * passed since its claim. A missing status row (never the case for a
   * position found in a row) counts as aborted.
   *
   * @param seen The status and claim time already read at serial consistency, saving a read.
   */
  async resolve(
    position: number,
    seen?: { status: string | null; claimedAt: Date | null },
  ): Promise<'committed' | 'aborted'> {
    let current = seen
    for (;;) {
      const known = this.#final.get(position)
      if (known !== undefined) return known
      current ??= await this.#read(position)
      const { status, claimedAt } = current
      current = undefined
      if (status === 'committed' || status === 'aborted' || status === null) {
        const final = status ?? 'aborted'
        this.remember(position, final)
        return final
      }
      const left = (claimedAt?.getTime() ?? 0) + this.abandonAfterMs - Date.now()
      const local = this.#inFlight.get(position)
      if (left > 0) await (local === undefined ? delay(Math.min(PENDING_POLL_MS, left)) : within(local.decided, left))
      else if (await this.abort(position)) {
        this.remember(position, 'aborted')
        return 'aborted'
      }
    }
  }

  async #read(position: number): Promise<{ status: string | null; claimedAt: Date | null }> {
    const [row] = await this.session.readSerial(this.cql.status, [
      long(this.session, bucketOf(position)),
      long(this.session, position),
    ])
    return {
      status: (row?.get('status') as string | null) ?? null,
      claimedAt: (row?.get('claimed_at') as Date | null) ?? null,
    }
  }

  /**
   * Sends the writes of {@link abort} through `abort` (the recorder's
   * LogWriter, so that they ride its batches rather than contend with them on
   * the bucket's partition).
   */
  route(abort: (position: number) => Promise<boolean>): void {
    this.#route = abort
  }

  #route: ((position: number) => Promise<boolean>) | undefined

  /**
   * Aborts a save if it is still pending (a reader that gave up waiting, or an
   * older save that needs its row: see writeIntents).
   *
   * @returns true if this abort applied; false if the status was no longer
   * pending, or the write's outcome is unknown (a serial read settles both).
   */
  async abort(position: number): Promise<boolean> {
    if (this.#route !== undefined) return this.#route(position)
    try {
      const statement = statusStatement(this.session, this.cql, position, 'aborted')
      return (await this.session.conditional([statement])).applied
    } catch (error) {
      if (!this.session.outcomeUnknown(error)) throw this.session.error(error, 'write to')
      return false
    }
  }
}

// Resolves when `promise` does, or after `ms`, whichever comes first.
async function within(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))])
  clearTimeout(timer)
}

function statusStatement(session: CassandraSession, cql: LogCql, position: number, status: SaveStatus): CqlStatement {
  return { query: cql.setStatus, params: [status, long(session, bucketOf(position)), long(session, position)] }
}

/**
 * Returns the bucket of the log that takes the next claim, and its head (null
 * when the bucket has none yet). Buckets fill in order and a full one is
 * closed (its head is its last id), so the closed buckets are a prefix: this
 * gallops from `from` over closed buckets, then searches between, reading
 * heads at serial consistency.
 */
export async function openBucket(
  context: Pick<LogContext, 'session' | 'cql'>,
  from = 0,
): Promise<{ bucket: number; head: number | null }> {
  const head = async (bucket: number) => {
    const [row] = await context.session.readSerial(context.cql.head, [long(context.session, bucket)])
    return row === undefined ? null : (numberOf(row, 'head') ?? null)
  }
  const closed = async (bucket: number) => (await head(bucket)) === bucketEnd(bucket)
  if (!(await closed(from))) return { bucket: from, head: await head(from) }
  let low = from
  let step = 1
  while (await closed(low + step)) {
    low += step
    step *= 2
  }
  // low is closed and low + step is not: find the first bucket that is not.
  let high = low + step
  while (high - low > 1) {
    const middle = Math.floor((low + high) / 2)
    if (await closed(middle)) low = middle
    else high = middle
  }
  return { bucket: high, head: await head(high) }
}

/** One save waiting for its ids. */
interface Claim {
  readonly events: readonly StoredEvent[]
  readonly states: readonly Buffer[]
  readonly saveId: Uuid
  readonly bytes: number
  readonly resolve: (first: number) => void
  readonly reject: (error: unknown) => void
  attempts: number
}

/** One save waiting for its status to be set. */
interface Decision {
  readonly position: number
  readonly status: 'committed' | 'aborted'
  readonly resolve: (applied: boolean) => void
  readonly reject: (error: unknown) => void
  attempts: number
}

/**
 * The writes of one recorder to the log's current bucket, one conditional
 * batch at a time (group commit): each batch takes every save waiting for
 * ids that fits in the bucket (claims: the head moved by a compare-and-set
 * and the saves' rows inserted, pending), and every save waiting for its
 * status to be set (decisions: commits and aborts, each conditioned on the
 * status being still pending). One batch at a time on the one hot partition
 * is also what keeps this process's own Paxos rounds from contending there.
 */
export class LogWriter {
  readonly #claims: Claim[] = []
  readonly #decisions: Decision[] = []
  #running = false
  #bucket = 0
  // The head of #bucket: null when it has none, undefined when it must be read.
  #head: number | null | undefined

  constructor(private readonly context: Pick<LogContext, 'session' | 'cql' | 'statuses'>) {
    context.statuses.route((position) => this.decide(position, 'aborted'))
  }

  /**
   * Claims ids for the events of one save, and inserts them into the log with
   * the save's status pending, in the save's order.
   *
   * @returns the first id of the save (its position; the others follow it).
   */
  claim(events: Claim['events'], saveId: Uuid): Promise<number> {
    return new Promise((resolve, reject) => {
      // Converted here, where a state that is not bytes rejects this save alone.
      const states = events.map(({ state }) => Buffer.from(state.buffer, state.byteOffset, state.byteLength))
      const bytes = states.reduce((sum, state) => sum + state.byteLength, 0)
      this.#claims.push({ events, states, saveId, bytes, resolve, reject, attempts: 0 })
      void this.#run()
    })
  }

  /**
   * Sets the status of a claimed save (this writer's, or another's to abort
   * it), if it is still pending.
   *
   * @returns false if it was not pending any more: decided by another (a
   * reader after abandonAfterMs, an older save that needed its rows, or its writer).
   */
  decide(position: number, status: 'committed' | 'aborted'): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.#decisions.push({ position, status, resolve, reject, attempts: 0 })
      void this.#run()
    })
  }

  async #run(): Promise<void> {
    if (this.#running) return
    this.#running = true
    try {
      while (this.#claims.length > 0 || this.#decisions.length > 0) {
        // A turn answers what it took; whatever it throws besides (a bug) fails what waits, rather than leave it waiting.
        await this.#turn().catch((error: unknown) => this.#failAll(error))
      }
    } finally {
      this.#running = false
    }
  }

  // One batch; never throws: the saves in it are resolved or rejected, or put back to be tried again.
  async #turn(): Promise<void> {
    try {
      if (this.#head === undefined)
        ({ bucket: this.#bucket, head: this.#head } = await openBucket(this.context, this.#bucket))
    } catch (error) {
      this.#failAll(error)
      return
    }
    const bucket = this.#bucket
    const head = this.#head as number | null
    const end = bucketEnd(bucket)
    if (head === end) {
      // Closed (by another process, or filled): the next bucket takes the claims.
      this.#bucket++
      this.#head = undefined
    }
    // One decision per save in a batch (a commit and an abort of the same save would both apply): the others wait for
    // the next batch, where they find the save decided.
    const decisions: Decision[] = []
    const deferred: Decision[] = []
    const positions = new Set<number>()
    for (const decision of this.#decisions.splice(0)) {
      if (positions.has(decision.position)) deferred.push(decision)
      else {
        positions.add(decision.position)
        decisions.push(decision)
      }
    }
    this.#decisions.push(...deferred)
    const byBucket = new Map<number, Decision[]>()
    for (const decision of decisions) {
      const of = bucketOf(decision.position)
      byBucket.set(of, [...(byBucket.get(of) ?? []), decision])
    }
    const here = byBucket.get(bucket) ?? []
    byBucket.delete(bucket)
    await Promise.all([...byBucket].map(([other, them]) => this.#batch(other, null, [], them)))
    if (head === end) {
      if (here.length > 0) await this.#batch(bucket, null, [], here)
      return
    }
    const taken = this.#take(head ?? bucket * BUCKET, end)
    await this.#batch(bucket, { old: head, next: taken.next }, taken.claims, here)
  }

  // The waiting saves that fit in the bucket, up to a group's size (at least one); none and the bucket's end when
  // the first does not fit, which then closes the bucket.
  #take(head: number, end: number): { claims: Claim[]; next: number } {
    const claims: Claim[] = []
    let next = head
    let rows = 0
    let bytes = 0
    for (const claim of this.#claims) {
      const fits = next + claim.events.length <= end
      const small =
        claims.length === 0 || (rows + claim.events.length <= GROUP_ROWS && bytes + claim.bytes <= GROUP_BYTES)
      if (!fits || !small) break
      claims.push(claim)
      next += claim.events.length
      rows += claim.events.length
      bytes += claim.bytes
    }
    if (claims.length === 0 && this.#claims.length > 0) return { claims, next: end }
    this.#claims.splice(0, claims.length)
    return { claims, next }
  }

  // Runs one conditional batch on a bucket: the head's compare-and-set with the claims' rows (when `move` is given),
  // and the decisions. Settles it when its outcome is unknown; puts back what must be tried again.
  async #batch(
    bucket: number,
    move: { old: number | null; next: number } | null,
    claims: Claim[],
    decisions: Decision[],
  ): Promise<void> {
    const { session, cql } = this.context
    const statements: CqlStatement[] = []
    if (move !== null && move.next !== (move.old ?? bucket * BUCKET)) {
      statements.push({
        query: cql.claimHead,
        params: [long(session, move.next), long(session, bucket), move.old === null ? null : long(session, move.old)],
      })
    }
    let position = move?.old ?? bucket * BUCKET
    const positions = claims.map((claim) => {
      const first = position + 1
      statements.push(...claimRows(session, cql, bucket, first, claim))
      position += claim.events.length
      return first
    })
    for (const decision of decisions) statements.push(statusStatement(session, cql, decision.position, decision.status))
    if (statements.length === 0) return
    let applied: boolean
    try {
      applied = (await session.conditional(statements)).applied
    } catch (error) {
      if (!session.outcomeUnknown(error)) {
        const typed = session.error(error, 'write to')
        for (const item of [...claims, ...decisions]) this.#reject(item, typed)
        return
      }
      const settled = await this.#settle(bucket, claims, positions, decisions, error)
      if (settled === undefined) return
      applied = settled
    }
    if (applied) {
      if (move !== null) this.#advance(bucket, move.next)
      for (const [i, claim] of claims.entries()) {
        this.context.statuses.claimed(positions[i]!)
        claim.resolve(positions[i]!)
      }
      for (const decision of decisions) {
        this.context.statuses.remember(decision.position, decision.status)
        decision.resolve(true)
      }
      return
    }
    await this.#retry(bucket, claims, decisions)
  }

  #advance(bucket: number, head: number): void {
    if (bucket !== this.#bucket) return
    if (head === bucketEnd(bucket)) {
      this.#bucket = bucket + 1
      this.#head = null
    } else {
      this.#head = head
    }
  }

  // After a batch that was not applied: reads the head and the decisions' statuses, answers the decisions that were
  // taken by a reader, and puts the rest back in front, in their order.
  async #retry(bucket: number, claims: Claim[], decisions: Decision[]): Promise<void> {
    const { session, cql } = this.context
    let statuses: Map<number, string | null>
    try {
      const [row] = await session.readSerial(cql.head, [long(session, bucket)])
      if (bucket === this.#bucket) this.#head = row === undefined ? null : (numberOf(row, 'head') ?? null)
      statuses = await this.#statuses(
        bucket,
        decisions.map((decision) => decision.position),
      )
    } catch (error) {
      if (bucket === this.#bucket) this.#head = undefined
      this.#putBack(claims, decisions, error)
      return
    }
    const pending: Decision[] = []
    for (const decision of decisions) {
      const status = statuses.get(decision.position) ?? null
      if (status === 'pending') pending.push(decision)
      else {
        // A reader aborted the save (or, for an abort, so did we in a batch whose answer was lost).
        this.context.statuses.remember(decision.position, status === 'committed' ? 'committed' : 'aborted')
        decision.resolve(status === decision.status)
      }
    }
    this.#claims.unshift(...claims)
    this.#decisions.unshift(...pending)
  }

  // Settles a batch whose outcome is unknown: applied if its first claim's status row carries its save id, or (with no
  // claims) if its decisions' statuses are set; undefined when the read failed too (what it held is put back).
  async #settle(
    bucket: number,
    claims: Claim[],
    positions: number[],
    decisions: Decision[],
    cause: unknown,
  ): Promise<boolean | undefined> {
    const { session, cql } = this.context
    try {
      if (claims.length > 0) {
        const [row] = await session.readSerial(cql.status, [long(session, bucket), long(session, positions[0]!)])
        return String(row?.get('save_id')) === claims[0]!.saveId.toString()
      }
      const statuses = await this.#statuses(
        bucket,
        decisions.map((decision) => decision.position),
      )
      return decisions.every((decision) => statuses.get(decision.position) === decision.status)
    } catch (error) {
      if (bucket === this.#bucket) this.#head = undefined
      this.#putBack(claims, decisions, new AggregateError([cause, error]))
      return undefined
    }
  }

  async #statuses(bucket: number, positions: number[]): Promise<Map<number, string | null>> {
    if (positions.length === 0) return new Map()
    const { session, cql } = this.context
    const rows = await session.readSerial(cql.statuses, [long(session, bucket), positions.map((p) => long(session, p))])
    return new Map(rows.map((row) => [numberOf(row, 'id')!, (row.get('status') as string | null) ?? null]))
  }

  // Puts back what failed to be tried again, up to ATTEMPTS times each, then fails it.
  #putBack(claims: Claim[], decisions: Decision[], cause: unknown): void {
    const again = <T extends Claim | Decision>(items: T[]) =>
      items.filter((item) => {
        if (++item.attempts < ATTEMPTS) return true
        this.#reject(item, this.#unsettled(cause))
        return false
      })
    this.#claims.unshift(...again(claims))
    this.#decisions.unshift(...again(decisions))
  }

  #unsettled(cause: unknown): OperationalError {
    const { session } = this.context
    return new OperationalError(
      `Writes to the log of ${session.where} failed ${ATTEMPTS} times with an unknown outcome, and could not be ` +
        'settled by a serial read: the cluster is overloaded or unreachable, retry later',
      { cause },
    )
  }

  #failAll(error: unknown): void {
    const typed = this.context.session.error(error, 'read from')
    for (const item of [...this.#claims.splice(0), ...this.#decisions.splice(0)]) this.#reject(item, typed)
  }

  // A decision given up leaves its save pending: its waiters here go back to polling (and abort it in time).
  #reject(item: Claim | Decision, error: unknown): void {
    if ('position' in item) this.context.statuses.settled(item.position)
    item.reject(error)
  }
}

function claimRows(
  session: CassandraSession,
  cql: LogCql,
  bucket: number,
  first: number,
  claim: Claim,
): CqlStatement[] {
  const claimedAt = new Date()
  return claim.events.map((event, i) => {
    const row = [
      long(session, bucket),
      long(session, first + i),
      event.originatorId,
      long(session, event.originatorVersion),
      event.topic,
      claim.states[i],
      long(session, first),
    ]
    return i === 0
      ? { query: cql.insertFirst, params: [...row, 'pending', claimedAt, claim.saveId] }
      : { query: cql.insertRow, params: row }
  })
}
