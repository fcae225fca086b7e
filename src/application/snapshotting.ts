import type { Aggregate, AggregateClass } from '../domain/aggregate.js'
import { Snapshot } from '../domain/snapshot.js'
import type { Mapper } from '../persistence/mapper.js'
import type { AggregateRecorder } from '../persistence/recorder.js'
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
  /** Makes the policy: snapshotting asked for explicitly, an interval for every class, and intervals per class. */
  constructor(
    readonly enabledExplicitly: boolean,
    readonly defaultInterval: number | undefined,
    readonly intervals: ReadonlyMap<AggregateClass, number>,
  ) {}

  /** True when snapshots are read and written at all: asked for, or implied by an interval. */
  get enabled(): boolean {
    return this.enabledExplicitly || this.defaultInterval !== undefined || this.intervals.size > 0
  }

  /** True when saving `aggregate`, which was at `previousVersion`, calls for a snapshot. */
  isDue(aggregate: Aggregate, previousVersion: number): boolean {
    const interval = this.intervals.get(aggregate.constructor as AggregateClass) ?? this.defaultInterval
    if (!interval) return false
    return Math.floor(aggregate.version / interval) > Math.floor(previousVersion / interval)
  }
}
