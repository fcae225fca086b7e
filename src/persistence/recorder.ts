import type { DcbRecorders } from './dcb.js'
import type { Notification, StoredEvent, Tracking } from './stored-event.js'

/** Options for selecting the events of one originator. */
export interface SelectEventsOptions {
  /** Only versions greater than this. */
  readonly gt?: number
  /** Only versions less than or equal to this. */
  readonly lte?: number
  /** Newest first. */
  readonly desc?: boolean
  /** At most this many events. */
  readonly limit?: number
}

/** Which events of one originator {@link AggregateRecorder.selectEventsOfMany} selects. */
export interface EventsQuery {
  /** The originator whose events are selected. */
  readonly originatorId: string
  /** Only versions greater than this (all versions when not given). */
  readonly gt?: number
}

/** Options for selecting notifications from an application's log. */
export interface SelectNotificationsOptions {
  /** The id to start from; the start of the log when not given. */
  readonly start?: number
  /** Whether the notification with id `start` is included (default true). */
  readonly inclusiveOfStart?: boolean
  /** At most this many notifications. */
  readonly limit: number
  /** Only ids less than or equal to this. */
  readonly stop?: number
  /** Only notifications with one of these topics (all topics when empty or not given). */
  readonly topics?: readonly string[]
  /**
   * Only the notifications of this originator (one aggregate's events, in log
   * order). The backends find them by the index on originator and version
   * that every events table has, so this costs what reading the aggregate does.
   */
  readonly originatorId?: string
}

/** Options for subscribing to an application's log. */
export interface SubscribeOptions {
  /** Only notifications with ids greater than this (default 0: the whole log). */
  readonly gt?: number
  /** Only notifications with one of these topics. */
  readonly topics?: readonly string[]
  /** Only the notifications of this originator. */
  readonly originatorId?: string
  /** Ends the subscription: the iterator then finishes without error. */
  readonly signal?: AbortSignal
}

/** Options for waiting until a tracking record exists. */
export interface WaitForTrackingOptions {
  /** Give up after this many milliseconds (default 10,000) with a `WaitTimeoutError`. */
  readonly timeoutMs?: number
  /** Stops waiting, rejecting with the signal's reason. */
  readonly signal?: AbortSignal
}

/** Records and selects the events of aggregates (also used for snapshots). */
export interface AggregateRecorder {
  /**
   * Records a batch of events atomically: all of them, or none.
   *
   * @throws IntegrityError if any `(originatorId, originatorVersion)` is already
   * recorded or repeated in the batch; nothing is written then.
   */
  insertEvents(events: readonly StoredEvent[]): Promise<unknown>

  /** Returns the events of one originator in version order (or reversed with `desc`); empty when none. */
  selectEvents(originatorId: string, options?: SelectEventsOptions): Promise<StoredEvent[]>

  /**
   * Returns the events of several originators at once, in one round trip where
   * the backend has round trips: for each query, its originator's events after
   * `gt` in version order (as `selectEvents` would return them), in the order
   * of the queries. Reading a batch of aggregates this way costs about what
   * reading one does.
   */
  selectEventsOfMany(queries: readonly EventsQuery[]): Promise<StoredEvent[][]>

  /**
   * Deletes all events of one originator, for "forget me" requests; readers of a
   * notification log see a gap where they were.
   *
   * @returns the number of events deleted.
   */
  deleteEvents(originatorId: string): Promise<number>
}

/** An aggregate recorder that also keeps the application's ordered notification log. */
export interface ApplicationRecorder extends AggregateRecorder {
  /**
   * Records a batch atomically and returns the notification ids given to the
   * events, in input order. Ids increase within a batch, and a reader that has
   * seen id N never later finds an unseen committed event with an id <= N.
   */
  insertEvents(events: readonly StoredEvent[]): Promise<number[]>

  /** Returns notifications in increasing id order, filtered as the options say; empty when none. */
  selectNotifications(options: SelectNotificationsOptions): Promise<Notification[]>

  /** Returns the highest notification id recorded, or 0 when the log is empty. */
  maxNotificationId(): Promise<number>

  /**
   * Yields the notifications already recorded after `gt`, then new ones as they
   * are recorded, in increasing id order, each once, until the signal aborts.
   */
  subscribe(options?: SubscribeOptions): AsyncIterable<Notification>
}

/** Records how far downstream applications have processed upstream logs. */
export interface TrackingRecorder {
  /**
   * Records that a notification of an upstream application was processed.
   *
   * @throws IntegrityError if the id is not greater than the last one recorded for that application.
   */
  insertTracking(tracking: Tracking): Promise<void>

  /** Returns the highest notification id tracked for an upstream application, or 0 when none. */
  maxTrackingId(applicationName: string): Promise<number>

  /**
   * Returns every tracking record: one per upstream application (the highest
   * id tracked for it), ordered by the upstream's name; empty when none.
   */
  selectTracking(): Promise<Tracking[]>

  /**
   * Returns true if the notification was processed: its id is at most the highest
   * tracked id. Returns true for an undefined id (nothing to wait for).
   */
  hasTrackingId(applicationName: string, notificationId: number | undefined): Promise<boolean>

  /**
   * Resolves once the notification was processed.
   *
   * @throws WaitTimeoutError naming the application and the id when `timeoutMs`
   * (default 10,000; fractions rounded up) passes first; ProgrammingError for a
   * `timeoutMs` that is not a finite number of 0 or more; the signal's reason if it aborts.
   */
  waitForTracking(applicationName: string, notificationId: number, options?: WaitForTrackingOptions): Promise<void>
}

/** An application recorder that records events together with a tracking record, atomically. */
export interface ProcessRecorder extends ApplicationRecorder, TrackingRecorder {
  /**
   * Records a batch of events and, when given, tracking records in one
   * transaction: all of it, or none. The batch may be empty (tracking alone).
   * Several tracking records (one per upstream, as a relay's follower tracks
   * each upstream aggregate) are each checked, in the order given, against
   * what is recorded and against those before them in the list.
   *
   * @throws IntegrityError on a duplicate event version or a tracking id that
   * is not newer; nothing is written then.
   */
  insertEvents(
    events: readonly StoredEvent[],
    options?: { tracking?: Tracking | readonly Tracking[] },
  ): Promise<number[]>
}

/** The recorders of one application, opened on one backend; `await using` closes them. */
export interface Recorders extends AsyncDisposable {
  /** The application's events, notification log and tracking records. */
  readonly events: ProcessRecorder
  /** The application's snapshots. */
  readonly snapshots: AggregateRecorder
  /** Releases connections; the recorders cannot be used afterwards. */
  close(): Promise<void>
}

/** An application that {@link Persistence.listApplications} found stored. */
export interface StoredApplication {
  /** The application's name as its tables spell it: in lower case (`dogschool` for `DogSchool`). */
  readonly name: string
  /** How many events its notification log holds (deleted events are not counted). */
  readonly events: number
  /** The highest notification id of its log, or 0 when the log is empty. */
  readonly maxNotificationId: number
}

/**
 * A storage backend: opens the recorders of applications. Obtain one from
 * `memory()` or `sqlite(...)` (from `eventsourcing/sqlite`).
 */
export interface Persistence {
  /** The backend's name, as used in the `PERSISTENCE` variable. */
  readonly name: string
  /**
   * Checks that the backend can store an application of this name, without
   * connecting to anything, so that an application fails at construction
   * rather than at first use. The built-in backends all take the names that
   * `validApplicationName` takes.
   *
   * @throws ProgrammingError naming the application and the rule it breaks.
   */
  checkName(applicationName: string): void
  /**
   * Opens the recorders of one application. Its tables (named after the
   * application) are created if missing, unless the backend was told not to.
   *
   * @throws ProgrammingError for a name that {@link Persistence.checkName} refuses.
   */
  open(applicationName: string): Promise<Recorders>
  /**
   * Opens the DCB recorder of one application (see `DcbRecorder`): its events
   * live in their own tables (`dcbTables` names them), created if missing
   * unless the backend was told not to. Opening the same name again gives a
   * recorder on the same storage.
   *
   * @throws ProgrammingError for a name that {@link Persistence.checkName} refuses.
   */
  openDcb(applicationName: string): Promise<DcbRecorders>
  /**
   * Returns the applications stored where this backend looks (a database
   * file, a schema), found by their events tables, ordered by name; empty
   * when none. It creates nothing, whatever the backend was told about
   * creating tables, and it counts every event, which reads the whole log.
   * The DCB applications' tables are not listed.
   */
  listApplications(): Promise<StoredApplication[]>
}

/**
 * A projection store is the database of a projection: the tables of its view,
 * which the projection writes with its own SQL through a transaction handle
 * `T`, and a tracking table (`<name>_tracking`) recording how far the view has
 * processed each upstream log. A change of the view commits together with its
 * tracking record, so each upstream event takes effect exactly once however
 * often processing stops and resumes.
 *
 * The store creates its tracking table on first use. Once it is closed, every
 * method rejects with `ProgrammingError`.
 */
export interface ProjectionStore<T> extends AsyncDisposable {
  /** The projection's name: it names the tracking table and the projection in errors. */
  readonly name: string

  /**
   * Runs `work`, which creates the view's tables if they are missing, in one
   * transaction; safe to run from several processes at once.
   */
  setup(work: (transaction: T) => void | Promise<void>): Promise<void>

  /**
   * Runs `work` in one transaction and returns what it returns, for reading
   * the view consistently. The transaction is read-only: writes fail.
   */
  read<R>(work: (transaction: T) => R | Promise<R>): Promise<R>

  /**
   * Records the tracking record and runs `work` in one transaction: all of it,
   * or nothing. The tracking record is written first, so a stale write fails
   * before `work` runs. `work` may run again if a transient failure (a lost
   * connection) makes the store retry the transaction; only one run commits.
   *
   * @throws IntegrityError if the tracking id is not greater than the last one
   * recorded for that application, or not positive; whatever `work` throws
   * (database errors as typed persistence errors). Nothing is written then.
   */
  write(tracking: Tracking, work: (transaction: T) => void | Promise<void>): Promise<void>

  /**
   * Runs `work`, which clears the view, and deletes the tracking record of
   * `applicationName` in one transaction, so that processing starts again from
   * the beginning of its log: for a rebuild.
   */
  reset(applicationName: string, work: (transaction: T) => void | Promise<void>): Promise<void>

  /** Returns the highest notification id tracked for an upstream application, or 0 when none. */
  maxTrackingId(applicationName: string): Promise<number>

  /** Returns every tracking record, one per upstream application, ordered by the upstream's name; empty when none. */
  selectTracking(): Promise<Tracking[]>

  /**
   * Returns true if the notification was processed: its id is at most the highest
   * tracked id. Returns true for an undefined id (nothing to wait for).
   */
  hasTrackingId(applicationName: string, notificationId: number | undefined): Promise<boolean>

  /**
   * Resolves once the notification was processed, at once after a write
   * through this process and within the store's poll interval after a write
   * by another process.
   *
   * @throws WaitTimeoutError naming the application and the id when `timeoutMs`
   * (default 10,000; fractions rounded up) passes first; ProgrammingError for a
   * `timeoutMs` that is not a finite number of 0 or more; the signal's reason if it aborts.
   */
  waitForTracking(applicationName: string, notificationId: number, options?: WaitForTrackingOptions): Promise<void>

  /** Waits for the operations in progress, then releases the connections; closing twice does nothing. */
  close(): Promise<void>
}
