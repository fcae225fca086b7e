// What the studio reads: the database's applications, found by their tables
// (or named), each opened once on first use, without creating tables, and
// kept open while the studio runs.
import type { Environment } from '../../application/config.js'
import type { DcbRecorder, DcbRecorders } from '../../persistence/dcb.js'
import { NotFoundError } from '../../persistence/errors.js'
import type { Transcoding } from '../../persistence/transcoder.js'
import { type AggregateState, rebuildAggregate, transcodingsOf } from '../aggregate-state.js'
import { type TrackerRow, trackerRows } from '../commands/trackers.js'
import { type Database, openDatabase } from '../database.js'
import { type FollowedTopics, followedTopicsOf } from '../followed-topics.js'
import {
  ApplicationNotFoundError,
  isMissingTable,
  openStorage,
  type Storage,
  type StorageOptions,
  storageMapper,
} from '../storage.js'
import { loadUserModule } from '../user-module.js'

/** An application the studio shows: its notification log and its DCB store, where it has them. */
export interface AppSummary {
  /** The application's name, as its tables spell it. */
  readonly name: string
  /** How many events its log holds; null when it has no events tables. */
  readonly events: number | null
  /** The highest notification id of its log; null when it has no events tables. */
  readonly maxNotificationId: number | null
  /** The position of the last event of its DCB store; null when it has none. */
  readonly dcbHead: number | null
}

/** A DCB store as the studio reads it: the recorder, and the mapper that decodes its events' data. */
export interface DcbStore extends Pick<Storage, 'mapper' | 'decodes' | 'app'> {
  readonly events: DcbRecorder
}

/** The options of a studio's source: the database, and what to show of it. */
export interface StudioSourceOptions extends Omit<StorageOptions, 'app'> {
  /** Only these applications (by name, in any case); every application found when not given. */
  readonly apps?: readonly string[]
  /**
   * The user's module that declares the aggregates' classes: the aggregates'
   * states are shown then; and the followers it declares (as `trackers
   * --module` finds them) are counted behind in the topics they follow.
   */
  readonly module?: string
  /** Projection stores on the same database whose positions the followers view shows. */
  readonly projections?: readonly string[]
}

/** The storage the studio reads; `await using` closes what it opened. */
export interface StudioSource extends AsyncDisposable {
  /** Whether aggregates' states can be rebuilt (a module was given). */
  readonly states: boolean
  /** The applications shown, by name. */
  apps(): Promise<AppSummary[]>
  /**
   * Returns the storage of one of the applications shown, opened on first use.
   *
   * @throws NotFoundError for an application not shown; ApplicationNotFoundError when it has no events tables.
   */
  storage(app: string): Promise<Storage>
  /**
   * Returns the DCB store of one of the applications shown, opened on first use.
   *
   * @throws NotFoundError for an application not shown, or one without a DCB store.
   */
  dcb(app: string): Promise<DcbStore>
  /**
   * Returns an aggregate rebuilt at a version with the user's classes.
   *
   * @throws NotFoundError without a module, and as `rebuildAggregate` does.
   */
  aggregateState(app: string, originatorId: string, version?: number): Promise<AggregateState>
  /** Returns each follower's position in each upstream log, and how far behind it is. */
  followers(): Promise<TrackerRow[]>
}

/**
 * Opens the source of a studio on the database that `options` and the
 * variables name (as the other commands open it). The cipher key decodes
 * events on the server; it is never sent to the page.
 *
 * @throws DatabaseNotFoundError for an SQLite file that does not exist.
 * @throws UserModuleError when the module cannot be loaded.
 * @throws ApplicationNotFoundError for an application named that has neither events tables nor a DCB store.
 */
export async function openStudioSource(options: StudioSourceOptions, env: Environment): Promise<StudioSource> {
  // No module is a module of no exports: no transcodings, no followers (counted in all topics).
  const file = options.module ?? ''
  const module = options.module === undefined ? {} : await loadUserModule(file)
  const database = await openDatabase(options, env)
  const source = new Source(database, options, env, transcodingsOf(file, module), followedTopicsOf(file, module))
  try {
    await source.apps()
  } catch (error) {
    await source[Symbol.asyncDispose]()
    throw error
  }
  return source
}

class Source implements StudioSource {
  readonly states: boolean
  readonly #storages = new Map<string, Promise<Storage>>()
  readonly #dcbs = new Map<string, Promise<DcbRecorders | undefined>>()
  #shown: readonly string[] = []

  constructor(
    private readonly database: Database,
    private readonly options: StudioSourceOptions,
    private readonly env: Environment,
    private readonly transcodings: readonly Transcoding<unknown>[],
    private readonly followed: FollowedTopics,
  ) {
    this.states = options.module !== undefined
  }

  async apps(): Promise<AppSummary[]> {
    const stored = await this.database.persistence.listApplications()
    const named = this.options.apps?.map((app) => app.toLowerCase())
    const names = named ?? stored.map((app) => app.name)
    const summaries = await Promise.all(
      names.map(async (name) => {
        const found = stored.find((app) => app.name === name)
        const dcb = await this.#openDcb(name)
        return {
          name,
          events: found?.events ?? null,
          maxNotificationId: found?.maxNotificationId ?? null,
          dcbHead: dcb === undefined ? null : await dcb.events.head(),
        }
      }),
    )
    const missing = summaries.filter((app) => app.events === null && app.dcbHead === null)
    if (missing.length > 0) {
      throw new ApplicationNotFoundError(
        `No application ${missing.map((app) => `'${app.name}'`).join(', ')} in this database (no events tables, no DCB store): ` +
          `check --app and the database settings${stored.length > 0 ? `; it has ${stored.map((app) => app.name).join(', ')}` : ''}`,
      )
    }
    this.#shown = names
    return summaries
  }

  storage(app: string): Promise<Storage> {
    const name = this.#check(app)
    let found = this.#storages.get(name)
    if (found === undefined) {
      found = openStorage({ ...this.options, app: name }, this.env, { transcodings: this.transcodings })
      // A failed opening is not kept, so that the next request tries again (the tables may be created since).
      found.catch(() => this.#storages.delete(name))
      this.#storages.set(name, found)
    }
    return found
  }

  async dcb(app: string): Promise<DcbStore> {
    const name = this.#check(app)
    const recorders = await this.#openDcb(name)
    if (recorders === undefined) throw new NotFoundError(`Application '${name}' has no DCB store`)
    return { ...storageMapper({ ...this.options, app: name }, this.env), app: name, events: recorders.events }
  }

  async aggregateState(app: string, originatorId: string, version?: number): Promise<AggregateState> {
    if (!this.states) {
      throw new NotFoundError(
        "No aggregate states: start the studio with --module, the module that declares the aggregates' classes",
      )
    }
    return await rebuildAggregate(await this.storage(app), originatorId, version)
  }

  followers(): Promise<TrackerRow[]> {
    return trackerRows({ ...this.options, followed: this.followed }, { env: this.env })
  }

  async [Symbol.asyncDispose](): Promise<void> {
    const opened = await Promise.allSettled([...this.#storages.values(), ...this.#dcbs.values()])
    this.#storages.clear()
    this.#dcbs.clear()
    for (const result of opened) if (result.status === 'fulfilled') await result.value?.[Symbol.asyncDispose]()
  }

  /** Returns the application's name as its tables spell it, when it is shown. */
  #check(app: string): string {
    const name = app.toLowerCase()
    if (!this.#shown.includes(name)) {
      throw new NotFoundError(`The studio shows no application '${app}': it shows ${this.#shown.join(', ') || 'none'}`)
    }
    return name
  }

  /** Opens the DCB store of an application, once; undefined when its tables are missing. */
  #openDcb(name: string): Promise<DcbRecorders | undefined> {
    let found = this.#dcbs.get(name)
    if (found === undefined) {
      found = this.database.persistence.openDcb(name).then(async (recorders) => {
        try {
          await recorders.events.head()
          return recorders
        } catch (error) {
          await recorders.close()
          if (isMissingTable(error)) return undefined
          throw error
        }
      })
      found.catch(() => this.#dcbs.delete(name))
      this.#dcbs.set(name, found)
    }
    return found
  }
}
