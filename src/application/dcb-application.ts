import { setTimeout as delay } from 'node:timers/promises'
import {
  ComposedModel,
  type DecisionModels,
  matchesItem,
  type StateOf,
  type TaggedQuery,
} from '../domain/decision-model.js'
import type { TaggedEvent } from '../domain/tagged-event.js'
import {
  type DcbAppendCondition,
  DcbConflictError,
  type DcbQuery,
  type DcbRecorder,
  type DcbRecorders,
} from '../persistence/dcb.js'
import { DcbMapper } from '../persistence/dcb-mapper.js'
import { ProgrammingError } from '../persistence/errors.js'
import type { Persistence } from '../persistence/recorder.js'
import { parseInteger } from '../persistence/settings.js'
import type { Tracking } from '../persistence/stored-event.js'
import { TagHasher } from '../persistence/tag-hasher.js'
import {
  Config,
  checkPersistence,
  type EncodingOptions,
  type Environment,
  mapperFromConfig,
  persistenceFromConfig,
} from './config.js'
import { DcbNotificationLog } from './dcb-notification-log.js'

/**
 * How a DCB application is set up; as with an `Application`, each setting can
 * also come from an environment variable (in brackets), optionally prefixed
 * with the application's name, and a bad value is a ProgrammingError when the
 * application is made.
 */
export interface DcbApplicationOptions extends EncodingOptions {
  /** The application's name: its tables' prefix and its variables' prefix (default: the class's `applicationName` or name). */
  readonly name?: string
  /** The variables to read settings from (default `process.env`). */
  readonly env?: Environment
  /** Where events are stored (`PERSISTENCE`: memory, sqlite, postgres; default memory). */
  readonly persistence?: Persistence
  /**
   * The names of the tags whose values are stored as keyed hashes (see
   * {@link TagHasher}); default the class's static `hashedTags`.
   */
  readonly hashedTags?: readonly string[]
  /** The key of the tag hashes, 32 bytes in base64 (`TAG_HASH_KEY`); required when tags are hashed. */
  readonly tagHashKey?: string
}

/** Options of {@link DcbApplication.read}. */
export interface DcbApplicationReadOptions {
  /** Only events with positions greater than this (default 0). */
  readonly after?: number
  /** At most this many events; the head returned is then that of the last one (see `DcbReadResult.head`). */
  readonly limit?: number
}

/** The events a read found, and the position it is complete up to. */
export interface TaggedReadResult {
  /** The events, decoded, in position order. */
  readonly events: TaggedEvent[]
  /** The position the read is complete up to (see `DcbReadResult.head`): a condition's `after`. */
  readonly head: number
}

/** The condition of {@link DcbApplication.append}: fail if an event matching the query was stored after `after`. */
export interface TaggedAppendCondition {
  /** The events that must not have appeared, as a tagged query. */
  readonly failIfEventsMatch: TaggedQuery
  /** The head the decision read up to (any matching event at all fails it when absent). */
  readonly after?: number
}

/** The state of decision models as read, and the position the read is complete up to. */
export interface Evaluation<S> {
  /** The models' state. */
  readonly state: S
  /** The head of the read: the `after` of a condition that the state is still current. */
  readonly head: number
  /** The query of the read, as stored: the condition's `failIfEventsMatch`. */
  readonly query: DcbQuery
}

/** What a decision did. */
export interface Decided<S> {
  /** The state the decision was made on (of its last attempt). */
  readonly state: S
  /** The events appended: those the decision returned; none when it returned none. */
  readonly events: readonly TaggedEvent[]
  /** The position of the last event appended; undefined when there were none. */
  readonly position: number | undefined
  /** How many times the decision was made: 1, plus one per conflict retried. */
  readonly attempts: number
}

/** Options of {@link DcbApplication.decide}. */
export interface DecideOptions {
  /**
   * How many times to decide at most, the first included (default 1: a
   * conflict is thrown at once). Each conflict means another writer appended
   * in the boundary, so deciding again reads their events.
   */
  readonly attempts?: number
  /** The pause before the second attempt, doubled before each next one (default 0). */
  readonly delayMs?: number
  /** Called with each conflict that is retried (not the last one, which is thrown). */
  readonly onConflict?: (error: DcbConflictError, attempt: number) => void
}

/** A decision: the events that the state of its models calls for (none to append nothing), or an error thrown. */
export type Decision<S> = (state: S) => readonly TaggedEvent[] | Promise<readonly TaggedEvent[]>

/** Events read per round trip when a decision's models are read (a decision's boundary is usually far smaller). */
const READ_PAGE_SIZE = 1000

/**
 * A DCB application decides with dynamic consistency boundaries: it appends
 * {@link TaggedEvent}s to one store, and decides by reading exactly the
 * events a rule depends on (decision models over types and tags), folding
 * them, and appending under the condition that none of those events appeared
 * since the read. It is configured as an `Application` is (persistence,
 * cipher, compression, transcodings, by code or by variables) and opens its
 * backend's DCB recorder (`Persistence.openDcb`) on first use.
 *
 * @example
 * ```ts
 * class Courses extends DcbApplication {
 *   async subscribe(studentId: string, courseId: string) {
 *     await this.decide({ course: courseModel(courseId), student: studentModel(studentId) }, ({ course, student }) => {
 *       if (course.subscribed >= course.capacity) throw new CourseFullError(courseId)
 *       if (student.courses >= 5) throw new TooManyCoursesError(studentId)
 *       return [new StudentSubscribed({ studentId, courseId })]
 *     }, { attempts: 5 })
 *   }
 * }
 * ```
 */
export class DcbApplication implements AsyncDisposable {
  /** The application's name when none is given in code; the class name otherwise (which minifiers may change). */
  static readonly applicationName?: string
  /** The names of the tags whose values this application stores as keyed hashes (see {@link TagHasher}). */
  static readonly hashedTags: readonly string[] = []

  /** The application's name. */
  readonly name: string
  /** The settings read from the environment. */
  readonly config: Config
  /** Converts tagged events to stored DCB events and back. */
  readonly mapper: DcbMapper
  /**
   * The events in position order, as a log that followers read: a
   * `ProjectionRunner` given this application as its upstream projects them.
   */
  readonly notificationLog: DcbNotificationLog

  readonly #persistence: Persistence | undefined
  #recorders: Promise<DcbRecorders> | undefined
  #closed = false

  /**
   * Makes the application; its storage is opened on first use (see {@link DcbApplication.connect}).
   *
   * @throws ProgrammingError for a bad setting, given in code or by a
   * variable (as `Application` does), and for hashed tags without a `TAG_HASH_KEY`.
   */
  constructor(options: DcbApplicationOptions = {}) {
    const cls = new.target as typeof DcbApplication
    this.name = options.name ?? cls.applicationName ?? cls.name
    this.config = new Config(this.name, options.env ?? process.env)
    checkPersistence(this.config, options.persistence)
    this.#persistence = options.persistence
    this.mapper = new DcbMapper(mapperFromConfig(this.config, options), this.#tagHasher(options, cls.hashedTags))
    this.notificationLog = new DcbNotificationLog(async () => ({
      recorder: await this.recorder(),
      mapper: this.mapper,
    }))
  }

  /** Connects to the storage now rather than on first use, so that bad settings fail early. */
  async connect(): Promise<void> {
    await this.recorder()
  }

  /**
   * Returns the events matching `query` (all events when not given) after
   * `options.after`, at most `options.limit`, with the head the read is complete up to.
   *
   * @throws what the mapper throws for an event it cannot decode (an unknown type: TopicError).
   */
  async read(query?: TaggedQuery, options: DcbApplicationReadOptions = {}): Promise<TaggedReadResult> {
    const { events, head } = await (await this.recorder()).read(this.mapper.toDcbQuery(query), options)
    return { events: events.map((event) => this.mapper.toTaggedEvent(event)), head }
  }

  /** Returns the position of the last event stored, or 0 when none is. */
  async head(): Promise<number> {
    return (await this.recorder()).head()
  }

  /**
   * Appends events atomically, if the condition holds (always, when none is
   * given), and returns the position of the last one.
   *
   * @throws DcbConflictError if an event matching the condition was stored after its `after`; nothing is written then.
   */
  async append(events: readonly TaggedEvent[], condition?: TaggedAppendCondition): Promise<number> {
    const stored = condition && {
      failIfEventsMatch: this.mapper.toDcbQuery(condition.failIfEventsMatch),
      after: condition.after,
    }
    return this.appendStored(events, stored)
  }

  /**
   * Reads the events of decision models in one read (the OR of their
   * queries) and returns their state, with the head of the read and its
   * query: what a condition needs to hold the state current.
   */
  async evaluate<M extends DecisionModels>(models: M): Promise<Evaluation<StateOf<M>>> {
    const recorder = await this.recorder()
    const composed = new ComposedModel(models)
    const items = composed.parts.map((part) => this.mapper.toDcbQuery(part.query)[0]!)
    let after = 0
    for (;;) {
      const { events, head } = await recorder.read(items, { after, limit: READ_PAGE_SIZE })
      for (const stored of events) {
        let event: TaggedEvent | undefined
        composed.parts.forEach((part, index) => {
          if (!part.handles(stored.type) || !matchesItem(items[index]!, stored.type, stored.tags)) return
          event ??= this.mapper.toTaggedEvent(stored)
          composed.evolve(index, event)
        })
      }
      // A page cut short by the limit has the head of its last event: read on from there until one is not.
      if (events.length < READ_PAGE_SIZE) return { state: composed.state(), head, query: items }
      after = head
    }
  }

  /**
   * Makes a decision on the current state of decision models and appends
   * what it returns, under the condition its read implies: that no event of
   * the models' query was stored after the read's head. So the rule holds
   * however many writers decide at once: of racers in one boundary only one
   * appends; the others get a conflict, and with `attempts` decide again on
   * the new state (where the rule may now refuse, by throwing). A decision
   * that returns no events appends nothing.
   *
   * @returns the state decided on, the events appended and the position of the last one.
   * @throws DcbConflictError after `attempts` conflicts; whatever the decision throws, at once.
   */
  async decide<M extends DecisionModels>(
    models: M,
    decision: Decision<StateOf<M>>,
    options: DecideOptions = {},
  ): Promise<Decided<StateOf<M>>> {
    const attempts = parseInteger('attempts', options.attempts, 1) ?? 1
    const delayMs = parseInteger('delayMs', options.delayMs) ?? 0
    for (let attempt = 1; ; attempt++) {
      const { state, head, query } = await this.evaluate(models)
      const events = await decision(state)
      if (events.length === 0) return { state, events, position: undefined, attempts: attempt }
      try {
        const position = await this.appendStored(events, { failIfEventsMatch: query, after: head })
        return { state, events, position, attempts: attempt }
      } catch (error) {
        if (!(error instanceof DcbConflictError) || attempt >= attempts) throw error
        options.onConflict?.(error, attempt)
      }
      if (delayMs > 0) await delay(delayMs * 2 ** (attempt - 1))
    }
  }

  /**
   * Yields the events matching `query` (all when not given) stored after
   * `options.after`, then new ones as they are stored, in position order,
   * until the signal aborts.
   */
  async *subscribe(
    query?: TaggedQuery,
    options: { readonly after?: number; readonly signal?: AbortSignal } = {},
  ): AsyncGenerator<TaggedEvent> {
    const recorder = await this.recorder()
    for await (const event of recorder.subscribe(this.mapper.toDcbQuery(query), options)) {
      yield this.mapper.toTaggedEvent(event)
    }
  }

  /** Closes the storage. The application cannot be used afterwards. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    // Storage that failed to open has nothing to close; its error reached the caller that opened it.
    const recorders = await this.#recorders?.catch(() => undefined)
    await recorders?.close()
  }

  /** Closes the application (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  /** Opens the DCB recorder on first call; later calls share it. */
  protected recorder(): Promise<DcbRecorder> {
    if (this.#closed) return Promise.reject(new ProgrammingError(`Application ${this.name} is closed`))
    if (this.#recorders === undefined) {
      const opening = this.#open()
      this.#recorders = opening
      // A failed open is not remembered, so a later call can try again (say, once the database is up).
      opening.catch(() => {
        if (this.#recorders === opening) this.#recorders = undefined
      })
    }
    return this.#recorders.then((recorders) => recorders.events)
  }

  async #open(): Promise<DcbRecorders> {
    const persistence = this.#persistence ?? (await persistenceFromConfig(this.config))
    return persistence.openDcb(this.name)
  }

  /**
   * Appends events under a condition whose query is in its stored form (as
   * `evaluate` returns it), with tracking records in the same atomic write
   * when given: how a follower records what it did with an upstream event.
   *
   * @throws DcbConflictError as `append` does; TrackingConflictError if a tracking record is not newer.
   */
  protected async appendStored(
    events: readonly TaggedEvent[],
    condition: DcbAppendCondition | undefined,
    tracking?: Tracking | readonly Tracking[],
  ): Promise<number> {
    const stored = events.map((event) => this.mapper.toDcbEvent(event))
    return (await this.recorder()).append(stored, condition, { tracking })
  }

  #tagHasher(options: DcbApplicationOptions, declared: readonly string[]): TagHasher | undefined {
    const names = options.hashedTags ?? declared
    if (names.length === 0) return undefined
    const key = options.tagHashKey ?? this.config.get('TAG_HASH_KEY')
    if (key === undefined) {
      throw new ProgrammingError(
        `${this.name} stores the values of tags named ${names.join(', ')} hashed, which needs a key: ` +
          'set TAG_HASH_KEY (or the tagHashKey option) to one made by TagHasher.createKey(), and keep it',
      )
    }
    return new TagHasher(key, names)
  }
}
