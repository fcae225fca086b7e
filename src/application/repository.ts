import { AsyncLocalStorage } from 'node:async_hooks'
import { LRUCache } from 'lru-cache'
import { Aggregate, type AggregateClass, copyAggregate, replayEvents } from '../domain/aggregate.js'
import type { DomainEvent } from '../domain/domain-event.js'
import { AggregateNotFoundError, TopicError, UpcastError } from '../domain/errors.js'
import { classOf } from '../domain/topics.js'
import { DataError } from '../persistence/errors.js'
import type { EventStore } from '../persistence/event-store.js'
import type { SelectEventsOptions } from '../persistence/recorder.js'
import type { SnapshotStore } from './snapshotting.js'

/** What a repository reads from; opened lazily by the application. */
export interface RepositoryStores {
  readonly events: EventStore
  /** Present when snapshotting is enabled. */
  readonly snapshots?: SnapshotStore
}

/** A unit of work's aggregates: those changed and not yet recorded, and those read ahead for it, by id. */
interface UnitOfWork {
  readonly pending: ReadonlyMap<string, Aggregate>
  readonly prefetched: Map<string, Aggregate>
}

/** Options for {@link Repository.get}. */
export interface GetOptions {
  /** Rebuild the aggregate as it was at this version, instead of the latest. */
  readonly version?: number
}

/**
 * The event player: rebuilds aggregates from their events, starting from the
 * latest usable snapshot, and keeps an optional cache of recent aggregates.
 *
 * The cache stays correct when other processes or application instances write
 * the same aggregates: a cached aggregate is brought up to date with any newer
 * stored events on every `get`, and callers always receive their own copy.
 * Copies (like snapshots) carry an aggregate's own fields: keep aggregate state
 * in ordinary fields, not JavaScript `#private` ones, which cannot be copied.
 */
export class Repository {
  readonly #stores: () => Promise<RepositoryStores>
  readonly #cache: LRUCache<string, Aggregate> | undefined
  /** Counts deletions, so a get that read events before a delete does not cache them after it. */
  #deletions = 0
  /** The unit of work whose code is running, if any. */
  readonly #unitOfWork = new AsyncLocalStorage<UnitOfWork>()

  /** Makes a repository reading from `stores`, caching up to `cacheSize` aggregates (none by default). */
  constructor(stores: () => Promise<RepositoryStores>, cacheSize = 0) {
    this.#stores = stores
    this.#cache = cacheSize > 0 ? new LRUCache({ max: cacheSize }) : undefined
  }

  /**
   * Returns the aggregate of class `cls` with the given id, at its latest version
   * or at `options.version`. Within {@link Repository.readingThrough} the
   * latest version of an aggregate pending there is that very object, with
   * its unrecorded changes; a given version is read from the store.
   *
   * @throws AggregateNotFoundError if there is no such aggregate, it was
   * discarded or deleted, or its events create an aggregate of another class.
   */
  async get<A extends Aggregate>(cls: AggregateClass<A>, id: string, options: GetOptions = {}): Promise<A> {
    const aggregate =
      options.version === undefined
        ? (this.#fromUnitOfWork(cls, id) ?? (await this.#latest(cls, id)))
        : await this.#rebuild(cls, id, (await this.#stores()).events, options.version)
    if (aggregate === undefined || aggregate.discarded) throw new AggregateNotFoundError(id)
    return aggregate
  }

  /**
   * Returns the latest versions of several aggregates of class `cls`, in the
   * order of `ids`, reading the events of all of them in one round trip
   * (their snapshots, when enabled, are read one by one, at the same time).
   * An id given twice yields the same object; within
   * {@link Repository.readingThrough}, a pending aggregate is that very object.
   *
   * @throws AggregateNotFoundError for the first id with no such aggregate, as {@link Repository.get}.
   */
  async getMany<A extends Aggregate>(cls: AggregateClass<A>, ids: readonly string[]): Promise<A[]> {
    const pending = this.#unitOfWork.getStore()?.pending
    const latest = await this.#latestOfMany(ids.filter((id) => !pending?.has(id)))
    return ids.map((id) => {
      const aggregate = pending?.get(id) ?? latest.get(id)
      if (aggregate === undefined || aggregate.discarded) throw new AggregateNotFoundError(id)
      if (!(aggregate instanceof cls)) throw new AggregateNotFoundError(id, `Aggregate '${id}' is not a ${cls.name}`)
      return aggregate
    })
  }

  /**
   * Returns true if an aggregate with this id has events (whether or not it
   * was discarded), recorded or, within {@link Repository.readingThrough}, pending there.
   */
  async contains(id: string): Promise<boolean> {
    const unitOfWork = this.#unitOfWork.getStore()
    if (unitOfWork?.pending.has(id) || unitOfWork?.prefetched.has(id)) return true
    const { events } = await this.#stores()
    return (await events.get(id, { limit: 1 })).length > 0
  }

  /** Returns the stored events of one aggregate, filtered by the options (e.g. `{ gt: 5 }`: after version 5). */
  async events(id: string, options?: SelectEventsOptions): Promise<DomainEvent[]> {
    return (await this.#stores()).events.get(id, options)
  }

  /** Returns one event of an aggregate by version, or undefined. */
  async event(id: string, version: number): Promise<DomainEvent | undefined> {
    const [event] = await this.events(id, { gt: version - 1, lte: version })
    return event
  }

  /**
   * Runs `work` with `pending` (aggregates changed and not yet recorded, by
   * id) read through: in `work` and whatever it awaits, {@link Repository.get}
   * returns the pending object itself rather than a copy from the store, so a
   * unit of work that changes an aggregate twice changes one object, as it
   * would if each change were recorded before the next. Code running
   * meanwhile outside `work` reads the store as usual. The map may change
   * while `work` runs; gets see it as it is then.
   *
   * Before `work` runs, the aggregates named by `prefetch` are read at once
   * (as {@link Repository.getMany} reads them), and the first `get` of each
   * in `work` takes it from there instead of reading it on its own (a later
   * `get` of one not pending reads the store again). Unknown ids are passed over.
   */
  async readingThrough<T>(
    pending: ReadonlyMap<string, Aggregate>,
    work: () => Promise<T>,
    prefetch: readonly string[] = [],
  ): Promise<T> {
    const prefetched = await this.#latestOfMany(prefetch.filter((id) => !pending.has(id)))
    return this.#unitOfWork.run({ pending, prefetched }, work)
  }

  /** Caches a copy of an aggregate (the application calls this after a save), unless the cache holds a newer one. */
  remember(aggregate: Aggregate): void {
    const cached = this.#cache?.get(aggregate.id)
    if (cached === undefined || cached.version < aggregate.version)
      this.#cache?.set(aggregate.id, copyAggregate(aggregate))
  }

  /** Drops an aggregate from the cache (the application calls this when it deletes one). */
  forget(id: string): void {
    this.#deletions++
    this.#cache?.delete(id)
  }

  /** Returns the aggregate pending in the running unit of work, or else the one prefetched there (once). */
  #fromUnitOfWork<A extends Aggregate>(cls: AggregateClass<A>, id: string): A | undefined {
    const unitOfWork = this.#unitOfWork.getStore()
    const found = unitOfWork?.pending.get(id) ?? unitOfWork?.prefetched.get(id)
    if (found === undefined) return undefined
    if (!(found instanceof cls)) throw new AggregateNotFoundError(id, `Aggregate '${id}' is not a ${cls.name}`)
    unitOfWork?.prefetched.delete(id)
    return found
  }

  /**
   * Reads the latest versions of aggregates of any class, the events of all
   * of them in one round trip, starting each from its cached copy or latest
   * snapshot; returns those found, by id.
   */
  async #latestOfMany(ids: readonly string[]): Promise<Map<string, Aggregate>> {
    const unique = [...new Set(ids)]
    if (unique.length === 0) return new Map()
    const { events } = await this.#stores()
    const deletions = this.#deletions
    const initial = await Promise.all(unique.map((id) => this.#cachedCopy(id) ?? this.#fromSnapshot(undefined, id)))
    const stored = await events.getMany(unique.map((originatorId, i) => ({ originatorId, gt: initial[i]?.version })))
    const found = new Map<string, Aggregate>()
    unique.forEach((id, i) => {
      const aggregate = replayEvents(Aggregate, stored[i]!, initial[i])
      if (aggregate === undefined) return
      found.set(id, aggregate)
      if (deletions === this.#deletions) this.remember(aggregate)
    })
    return found
  }

  #cachedCopy(id: string): Aggregate | undefined {
    const cached = this.#cache?.get(id)
    return cached === undefined ? undefined : copyAggregate(cached)
  }

  async #latest<A extends Aggregate>(cls: AggregateClass<A>, id: string): Promise<A | undefined> {
    const { events } = await this.#stores()
    const deletions = this.#deletions
    const cached = this.#cache?.get(id)
    if (cached === undefined) {
      const aggregate = await this.#rebuild(cls, id, events)
      if (aggregate !== undefined && deletions === this.#deletions) this.remember(aggregate)
      return aggregate
    }
    if (!(cached instanceof cls)) {
      throw new AggregateNotFoundError(id, `Aggregate '${id}' is not a ${cls.name}`)
    }
    const copy = copyAggregate(cached)
    replayEvents(cls, await events.get(id, { gt: copy.version }), copy)
    if (deletions === this.#deletions) this.remember(copy)
    return copy
  }

  async #rebuild<A extends Aggregate>(
    cls: AggregateClass<A>,
    id: string,
    events: EventStore,
    version?: number,
  ): Promise<A | undefined> {
    const initial = await this.#fromSnapshot(cls, id, version)
    return replayEvents(cls, await events.get(id, { gt: initial?.version, lte: version }), initial)
  }

  /** Restores the latest usable snapshot as an instance of `cls`, or of the class its topic names when not given. */
  async #fromSnapshot<A extends Aggregate>(cls: AggregateClass<A> | undefined, id: string, version?: number) {
    const { snapshots } = await this.#stores()
    if (snapshots === undefined) return undefined
    try {
      const snapshot = await snapshots.latest(id, version)
      if (snapshot === undefined) return undefined
      const target = cls ?? (classOf(snapshot.aggregateTopic) as AggregateClass<A> | undefined)
      return target !== undefined && snapshot.isFor(target) ? snapshot.restore(target) : undefined
    } catch (error) {
      // A snapshot is a cache: one that no longer loads (renamed class, state
      // that cannot be upcast, unreadable bytes) is passed over for the events.
      if (error instanceof TopicError || error instanceof UpcastError || error instanceof DataError) return undefined
      throw error
    }
  }
}
