import { DcbApplication, type Decision } from '../application/dcb-application.js'
import type { DecisionModels, StateOf } from '../domain/decision-model.js'
import type { DomainEvent } from '../domain/domain-event.js'
import { TopicError } from '../domain/errors.js'
import type { TaggedEvent } from '../domain/tagged-event.js'
import type { DcbQuery } from '../persistence/dcb.js'
import type { Notification, Tracking } from '../persistence/stored-event.js'
import type { FollowedTopic } from './process-application.js'
import { topicsOf } from './process-application.js'
import { type PositionRecorder, TrackedFollower, type TrackedFollowerOptions } from './tracked-follower.js'

/** Where a notification processed by a {@link DcbProcessApplication} comes from: an `Application` or a `DcbApplication`. */
export interface DcbSource {
  readonly name: string
  readonly notificationLog: { decode(notification: Notification): Promise<DomainEvent | TaggedEvent> }
}

/**
 * What a {@link DcbProcessApplication}'s policy decides on one upstream
 * event: the events to append, under the conditions of its decisions,
 * together with the tracking record of the event, in one atomic append once
 * the policy returns.
 */
export class DcbProcessing {
  readonly #app: DcbApplication
  readonly #events: TaggedEvent[] = []
  readonly #queries: DcbQuery[] = []
  #after: number | undefined

  /** Starts processing the upstream notification that `tracking` names, for `app`. */
  constructor(
    /** The upstream application and notification id being processed. */
    readonly tracking: Tracking,
    app: DcbApplication,
  ) {
    this.#app = app
  }

  /**
   * Reads decision models, makes the decision on their state, and keeps its
   * events to append with the tracking record, under the condition the read
   * implies (as `DcbApplication.decide` does). Several decisions are appended
   * together under one condition: no event of any of their queries after the
   * earliest of their heads. A later decision does not see the events of an
   * earlier one (they are not appended yet).
   *
   * @returns the state decided on. @throws what the decision throws (nothing of the event is appended then).
   */
  async decide<M extends DecisionModels>(models: M, decision: Decision<StateOf<M>>): Promise<StateOf<M>> {
    const { state, head, query } = await this.#app.evaluate(models)
    this.#events.push(...(await decision(state)))
    this.#queries.push(query)
    this.#after = Math.min(this.#after ?? head, head)
    return state
  }

  /** Keeps events to append with the tracking record, under no condition of their own. */
  append(...events: TaggedEvent[]): void {
    this.#events.push(...events)
  }

  /** The events to append so far. */
  get events(): readonly TaggedEvent[] {
    return this.#events
  }

  /** The condition of the append: undefined when no decision was made. */
  get condition(): { failIfEventsMatch: DcbQuery; after: number } | undefined {
    if (this.#after === undefined) return undefined
    return { failIfEventsMatch: this.#queries.flat(), after: this.#after }
  }
}

/**
 * A DCB application that follows another application's log (an
 * `Application`'s or a `DcbApplication`'s): its policy reacts to each
 * upstream event by deciding on its own tagged events, and what it decides is
 * appended together with the tracking record of the upstream event, in one
 * atomic append of its DCB recorder. So each upstream event takes effect
 * exactly once, and a decision made on stale state (a conflict) appends
 * nothing and is made again. Run it with a {@link DcbProcessRunner}.
 *
 * @example
 * ```ts
 * class Billing extends DcbProcessApplication {
 *   static override readonly followTopics = [StudentSubscribed]
 *   protected async policy(event: DomainEvent | TaggedEvent, processing: DcbProcessing) {
 *     if (!(event instanceof StudentSubscribed)) return
 *     await processing.decide(charges(event.data.studentId, event.data.courseId), (charged) =>
 *       charged ? [] : [new StudentCharged({ ...event.data, cents: 100 })])
 *   }
 * }
 * ```
 */
export abstract class DcbProcessApplication extends DcbApplication {
  /** Only upstream events of these types or topics reach the policy (all when not given). */
  static readonly followTopics?: readonly FollowedTopic[]
  /** Whether an upstream event of a topic no class declares is passed over (tracked, with no effect) rather than failing. */
  static readonly skipUnknownTopics: boolean = false

  /** Where the runner reads how far this application has processed each upstream log: its tracking records. */
  readonly tracking: PositionRecorder = {
    maxTrackingId: async (name) => (await this.recorder()).maxTrackingId(name),
    hasTrackingId: async (name, id) => (await this.recorder()).hasTrackingId(name, id),
    waitForTracking: async (name, id, options) => (await this.recorder()).waitForTracking(name, id, options),
  }

  /**
   * Reacts to an upstream event: decide with `processing.decide` (or append
   * with `processing.append`). Throwing appends nothing.
   */
  protected abstract policy(event: DomainEvent | TaggedEvent, processing: DcbProcessing): void | Promise<void>

  /** The topics followed, from `followTopics`; undefined means all. */
  get followedTopics(): readonly string[] | undefined {
    return topicsOf((this.constructor as typeof DcbProcessApplication).followTopics)
  }

  /**
   * Processes one upstream notification: decodes it, runs the policy, and
   * appends what it decided with the notification's tracking record, in one
   * atomic append (the tracking record alone when it decided nothing).
   *
   * @returns the position of the last event appended (the head when none was).
   * @throws TrackingConflictError if the notification was processed already;
   * DcbConflictError if a decision's boundary changed since it was read
   * (processing again decides again); TopicError for an unknown topic unless
   * `skipUnknownTopics`; whatever the policy throws. Nothing is appended then.
   */
  async process(upstream: DcbSource, notification: Notification): Promise<number> {
    const tracking = { applicationName: upstream.name, notificationId: notification.id }
    const processing = new DcbProcessing(tracking, this)
    const event = await this.#decode(upstream, notification)
    if (event !== undefined) await this.policy(event, processing)
    return this.appendStored(processing.events, processing.condition, tracking)
  }

  /** Returns the id of the last notification of `upstreamName` processed here, 0 when none. */
  position(upstreamName: string): Promise<number> {
    return this.tracking.maxTrackingId(upstreamName)
  }

  async #decode(upstream: DcbSource, notification: Notification): Promise<DomainEvent | TaggedEvent | undefined> {
    try {
      return await upstream.notificationLog.decode(notification)
    } catch (error) {
      const skip = (this.constructor as typeof DcbProcessApplication).skipUnknownTopics && error instanceof TopicError
      if (!skip) throw error
      return undefined
    }
  }
}

/** What a {@link DcbProcessRunner} runs: a DCB process application following one upstream log. */
export interface DcbProcessRunnerOptions extends Omit<TrackedFollowerOptions, 'upstream'> {
  /** The application whose log is followed (only read: it is not closed). */
  readonly upstream: DcbSource &
    Omit<TrackedFollowerOptions['upstream'], 'notificationLog'> & {
      readonly notificationLog: Omit<TrackedFollowerOptions['upstream']['notificationLog'], 'decode'>
    }
  /** The DCB process application that processes it (not closed by the runner). */
  readonly follower: DcbProcessApplication
}

/**
 * Runs a {@link DcbProcessApplication} in this process: from its tracking of
 * the upstream log on, what is recorded already, then new events as they are
 * recorded, each notification appended with its tracking record; it starts,
 * stops, reports and waits as a `ProjectionRunner` does. A notification that
 * keeps failing (a policy that throws, conflicts that go on) stops it with a
 * `ProcessingError`; starting again resumes from it.
 *
 * @example
 * ```ts
 * await using runner = new DcbProcessRunner({ upstream: courses, follower: billing })
 * await runner.start()
 * await runner.waitFor(await courses.head())
 * ```
 */
export class DcbProcessRunner extends TrackedFollower {
  readonly #follower: DcbProcessApplication
  readonly #upstream: DcbSource

  /**
   * Makes a runner; nothing happens until {@link TrackedFollower.start}.
   *
   * @throws ProgrammingError for a batch size or number of attempts that is not a positive integer.
   */
  constructor(options: DcbProcessRunnerOptions) {
    const { follower, upstream } = options
    super(follower.name, follower.tracking, {
      ...options,
      // The follower reads the log and decodes nothing itself: a log of any events will do.
      upstream: upstream as unknown as TrackedFollowerOptions['upstream'],
      batchSize: options.batchSize ?? 100,
      attempts: options.attempts ?? 3,
      topics: follower.followedTopics,
    })
    this.#follower = follower
    this.#upstream = upstream
  }

  /**
   * Processes each notification of the batch in its own append (each with
   * its own decisions' condition), so the last one records the batch's position.
   */
  protected async process(batch: readonly Notification[]): Promise<void> {
    for (const notification of batch) await this.#follower.process(this.#upstream, notification)
  }
}
