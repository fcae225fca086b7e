import type { Persistence, ProcessRecorder, StoredApplication } from '../../persistence/recorder.js'
import type { Tracking } from '../../persistence/stored-event.js'
import { type Database, type DatabaseOptions, openDatabase } from '../database.js'
import { type FollowedTopics, loadFollowedTopics } from '../followed-topics.js'
import { type CommandIo, writeTo } from '../output.js'
import { table } from '../table.js'

/** The options of the `trackers` command. */
export interface TrackersOptions extends DatabaseOptions {
  /**
   * The user's module whose process applications (exported, or in an
   * exported System) say which topics each follower follows: each is then
   * counted behind in notifications of its own topics. Followers that it
   * does not declare, and projections, are counted in all topics.
   */
  readonly module?: string
  /** Count how far behind in notifications of these topics only (all when empty); overrides the module's. */
  readonly topics?: readonly string[]
  /** Projection stores (and relays' positions) on the same database, by name, whose positions are shown too. */
  readonly projections?: readonly string[]
  /** One JSON object a line instead of a table. */
  readonly json?: boolean
}

/** The options of {@link trackerRows}: those of the command, with the topics of a module's followers loaded. */
export interface TrackerRowsOptions extends Omit<TrackersOptions, 'module' | 'json'> {
  /** The topics each follower follows, by name (see `loadFollowedTopics`); `topics` overrides them. */
  readonly followed?: FollowedTopics
}

/** One follower's position in one upstream log, as the `trackers` command shows it. */
export interface TrackerRow {
  /** The application (as its tables spell it) or the projection that follows. */
  readonly follower: string
  readonly kind: 'application' | 'projection'
  /** The upstream application, as the tracking records name it. */
  readonly upstream: string
  /**
   * For a follower that tracks each upstream aggregate apart (a relay's
   * consumer): how many aggregates it tracks; `position` is then the highest.
   */
  readonly aggregates?: number
  /** The id of the last upstream notification processed. */
  readonly position: number
  /** The upstream's last notification id; null when the upstream is not in this database. */
  readonly head: number | null
  /**
   * How many upstream notifications (of the topics followed) follow the
   * position; null when the upstream is not in this database.
   */
  readonly behind: number | null
  /** True when counting stopped at {@link BEHIND_COUNT_LIMIT}: at least that many. */
  readonly behindAtLeast?: boolean
}

/** Counting how far behind a follower is stops here, to keep the command quick on a long log. */
export const BEHIND_COUNT_LIMIT = 100_000
const COUNT_PAGE = 1000

/**
 * The `trackers` command: for each application of the database that follows
 * others, and each projection named, writes its position in each upstream
 * log and how far behind it is. Tracking per aggregate (`<application>/<id>`,
 * as a relay's consumer keeps it) is summarised in one row per upstream, at
 * its highest position. With a module, each follower it declares is
 * counted behind in the topics it follows; those it does not are named on
 * stderr. It creates nothing.
 *
 * @throws DatabaseNotFoundError for an SQLite file that does not exist.
 * @throws ProjectionNotFoundError for a projection whose tracking table is missing.
 * @throws UserModuleError when the module cannot be loaded.
 * @throws FollowersNotFoundError when the module declares no process application.
 */
export async function trackers(options: TrackersOptions, io: CommandIo): Promise<void> {
  const overridden = (options.topics?.length ?? 0) > 0
  const followed = options.module === undefined || overridden ? undefined : await loadFollowedTopics(options.module)
  const rows = await trackerRows({ ...options, followed }, io)
  await noteUndeclared(rows, followed, options.module, io)
  if (options.json) {
    for (const row of rows) await writeTo(io.stdout, `${JSON.stringify(row)}\n`)
    return
  }
  if (rows.length === 0) {
    await writeTo(io.stdout, 'No followers: no application of this database has tracking records.\n')
    return
  }
  const shown = rows.map((row) => [
    row.follower,
    row.aggregates === undefined ? row.upstream : `${row.upstream} (per aggregate: ${row.aggregates})`,
    row.position,
    row.head ?? '-',
    row.behind === null ? '-' : `${row.behind}${row.behindAtLeast ? '+' : ''}`,
  ])
  await writeTo(io.stdout, table(['follower', 'upstream', 'position', 'upstream head', 'behind'], shown))
}

/** Returns the rows of the `trackers` command: the applications' by name, then the projections' in the order named. */
export async function trackerRows(options: TrackerRowsOptions, io: Pick<CommandIo, 'env'>): Promise<TrackerRow[]> {
  const database = await openDatabase(options, io.env)
  const applications = await database.persistence.listApplications()
  const upstreams = new Upstreams(database.persistence, applications)
  try {
    const rows: TrackerRow[] = []
    for (const { follower, kind, tracking } of await followers(database, applications, options.projections ?? [])) {
      const topics = topicsCounted(options, kind === 'application' ? follower : undefined)
      for (const { upstream, aggregates, position } of summarised(tracking)) {
        const lag = await upstreams.lag(upstream, position, topics)
        rows.push({ follower, kind, upstream, ...(aggregates === undefined ? {} : { aggregates }), position, ...lag })
      }
    }
    return rows
  } finally {
    await upstreams.close()
  }
}

/** The topics a follower is counted behind in: those given, else those it follows, else all (empty). */
function topicsCounted(options: TrackerRowsOptions, application: string | undefined): readonly string[] {
  if ((options.topics?.length ?? 0) > 0 || application === undefined) return options.topics ?? []
  return options.followed?.get(application) ?? []
}

/** Names on stderr the following applications that the module does not declare: they are counted in all topics. */
async function noteUndeclared(
  rows: readonly TrackerRow[],
  followed: FollowedTopics | undefined,
  module: string | undefined,
  io: CommandIo,
): Promise<void> {
  if (followed === undefined) return
  const undeclared = new Set(
    rows.filter((row) => row.kind === 'application' && !followed.has(row.follower)).map((row) => row.follower),
  )
  if (undeclared.size === 0) return
  await writeTo(
    io.stderr,
    `Module ${module} declares no process application ${[...undeclared].join(', ')}: counted behind in all topics.\n`,
  )
}

/** Returns the tracking records of each application and of each projection named. */
async function followers(
  database: Database,
  applications: readonly StoredApplication[],
  projections: readonly string[],
): Promise<{ follower: string; kind: TrackerRow['kind']; tracking: Tracking[] }[]> {
  const found: { follower: string; kind: TrackerRow['kind']; tracking: Tracking[] }[] = []
  for (const { name } of applications) {
    await using recorders = await database.persistence.open(name)
    found.push({ follower: name, kind: 'application', tracking: await recorders.events.selectTracking() })
  }
  for (const name of projections) {
    await using store = await database.projectionStore(name)
    found.push({ follower: name, kind: 'projection', tracking: await store.selectTracking() })
  }
  return found
}

/** Tracking records with those kept per aggregate (`<application>/<id>`) summarised: one per upstream, at the highest position. */
function summarised(tracking: readonly Tracking[]): { upstream: string; aggregates?: number; position: number }[] {
  const whole = tracking
    .filter(({ applicationName }) => !applicationName.includes('/'))
    .map(({ applicationName, notificationId }) => ({ upstream: applicationName, position: notificationId }))
  const perAggregate = new Map<string, { upstream: string; aggregates: number; position: number }>()
  for (const { applicationName, notificationId } of tracking) {
    const slash = applicationName.indexOf('/')
    if (slash < 0) continue
    const upstream = applicationName.slice(0, slash)
    const found = perAggregate.get(upstream) ?? { upstream, aggregates: 0, position: 0 }
    perAggregate.set(upstream, {
      upstream,
      aggregates: found.aggregates + 1,
      position: Math.max(found.position, notificationId),
    })
  }
  return [...whole, ...perAggregate.values()]
}

/** The upstream applications of the database, opened once each to count how far their followers are behind. */
class Upstreams {
  readonly #byName: ReadonlyMap<string, StoredApplication>
  readonly #opened = new Map<string, Promise<{ events: ProcessRecorder; close(): Promise<void> }>>()

  constructor(
    private readonly persistence: Persistence,
    applications: readonly StoredApplication[],
  ) {
    this.#byName = new Map(applications.map((application) => [application.name, application]))
  }

  /**
   * Returns the upstream's head and how many of its notifications of `topics`
   * (all when empty) follow `position`; nulls when it is not here.
   */
  async lag(
    upstream: string,
    position: number,
    topics: readonly string[],
  ): Promise<Pick<TrackerRow, 'head' | 'behind' | 'behindAtLeast'>> {
    // The tables spell the name in lower case, as the tracking records may not.
    const name = upstream.toLowerCase()
    const stored = this.#byName.get(name)
    if (stored === undefined) return { head: null, behind: null }
    const head = stored.maxNotificationId
    if (position >= head) return { head, behind: 0 }
    let opened = this.#opened.get(name)
    if (opened === undefined) {
      opened = this.persistence.open(name)
      this.#opened.set(name, opened)
    }
    const { events } = await opened
    let behind = 0
    for (let start = position; behind < BEHIND_COUNT_LIMIT; ) {
      const limit = Math.min(COUNT_PAGE, BEHIND_COUNT_LIMIT - behind)
      const page = await events.selectNotifications({
        start,
        inclusiveOfStart: false,
        stop: head,
        limit,
        topics,
      })
      behind += page.length
      if (page.length < limit) return { head, behind }
      start = page.at(-1)!.id
    }
    return { head, behind, behindAtLeast: true }
  }

  async close(): Promise<void> {
    for (const opened of this.#opened.values()) await (await opened).close()
  }
}
