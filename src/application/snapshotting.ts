import type { Aggregate, AggregateClass } from '../domain/aggregate.js'
import { TopicError } from '../domain/errors.js'
import { Snapshot } from '../domain/snapshot.js'
import { topicOf } from '../domain/topics.js'
import type { Mapper } from '../persistence/mapper.js'
import type { AggregateRecorder } from '../persistence/recorder.js'
import { parseInteger } from '../persistence/settings.js'
import type { StoredEvent } from '../persistence/stored-event.js'

/** Stores and retrieves the snapshots of an application's aggregates. */
export class SnapshotStore {
  /** Makes a snapshot store that maps with `mapper` and records with `recorder`. */
  constructor(
    readonly mapper: Mapper,
    readonly recorder: AggregateRecorder,
  ) {}

  /**
   * Returns the stored form of a snapshot of an aggregate at its current version.
   *
   * @throws TopicError if the aggregate's class has no topic; ProgrammingError
   * if its state holds a type the transcoder does not know.
   */
  toStoredEvent(aggregate: Aggregate): StoredEvent {
    return this.mapper.toStoredEvent(Snapshot.take(aggregate))
  }

  /**
   * Records snapshots made by {@link SnapshotStore.toStoredEvent}.
   *
   * @throws IntegrityError if a snapshot at one of their versions exists already.
   */
  async insert(snapshots: readonly StoredEvent[]): Promise<void> {
    await this.recorder.insertEvents(snapshots)
  }

  /** Returns the newest snapshot at or below `version` (any version when not given), or undefined. */
  async latest(originatorId: string, version?: number): Promise<Snapshot | undefined> {
    const [stored] = await this.recorder.selectEvents(originatorId, { lte: version, desc: true, limit: 1 })
    if (stored === undefined) return undefined
    const snapshot = this.mapper.toDomainEvent(stored)
    return snapshot instanceof Snapshot ? snapshot : undefined
  }
}

/**
 * Decides when to take snapshots automatically: for an aggregate class with an
 * interval N, whenever a save takes its version past a multiple of N.
 */
export class SnapshottingPolicy {
  readonly #checked = new WeakSet<AggregateClass>()

  /**
   * Makes the policy of the named application: snapshotting asked for
   * explicitly, an interval for every class, and intervals per class.
   *
   * @throws ProgrammingError naming the class of an interval that is not a non-negative integer.
   */
  constructor(
    readonly applicationName: string,
    readonly enabledExplicitly: boolean,
    readonly defaultInterval: number | undefined,
    readonly intervals: ReadonlyMap<AggregateClass, number>,
  ) {
    for (const [cls, interval] of intervals) parseInteger(`The snapshottingIntervals entry of ${cls.name}`, interval)
  }

  /** True when snapshots are read and written at all: asked for, or implied by an interval. */
  get enabled(): boolean {
    return this.enabledExplicitly || this.defaultInterval !== undefined || this.intervals.size > 0
  }

  /**
   * Checks that the class of `aggregate` has a topic if its snapshots are
   * taken automatically, so that a missing topic fails the first save of the
   * class rather than the one that reaches the interval. Each class is checked once.
   *
   * @throws TopicError naming the class and the fix.
   */
  checkTopic(aggregate: Aggregate): void {
    const cls = aggregate.constructor as AggregateClass
    if (this.#checked.has(cls)) return
    const interval = this.#interval(cls)
    if (interval && topicOf(cls) === undefined) {
      throw new TopicError(
        `${cls.name} has no topic, and ${this.applicationName} snapshots it every ${interval === 1 ? 'version' : `${interval} versions`}: ` +
          `declare "static readonly topic = '...'" on ${cls.name}, or set its interval to 0 in snapshottingIntervals`,
      )
    }
    this.#checked.add(cls)
  }

  /** True when saving `aggregate`, which was at `previousVersion`, calls for a snapshot. */
  isDue(aggregate: Aggregate, previousVersion: number): boolean {
    const interval = this.#interval(aggregate.constructor as AggregateClass)
    if (!interval) return false
    return Math.floor(aggregate.version / interval) > Math.floor(previousVersion / interval)
  }

  #interval(cls: AggregateClass): number | undefined {
    return this.intervals.get(cls) ?? this.defaultInterval
  }
}
