import { type CommandIo, eventJson, eventLine, eventsTable, writeTo } from '../output.js'
import { openStorage, type StorageOptions } from '../storage.js'

/** The options of the `log` command. */
export interface LogOptions extends StorageOptions {
  /** The first notification id shown (default 1). */
  readonly from?: number
  /** At most this many notifications (default 20); ignored with `follow`. */
  readonly limit?: number
  /** Only notifications of these topics (all when empty). */
  readonly topics?: readonly string[]
  /** Only the notifications of this aggregate. */
  readonly originator?: string
  /** Keep printing new notifications as they are recorded, until `io.signal` aborts. */
  readonly follow?: boolean
  /** One JSON object a line instead of a table. */
  readonly json?: boolean
}

/** How many notifications a page shows when `--limit` is not given. */
export const DEFAULT_LOG_LIMIT = 20

/**
 * The `log` command: writes a page of an application's notification log, or
 * with `follow` the notifications from `from` (from the end of the log when
 * not given) and then each new one as it is recorded, until `io.signal` aborts.
 *
 * @throws ApplicationNotFoundError when the application's tables are missing.
 */
export async function log(options: LogOptions, io: CommandIo): Promise<void> {
  await using storage = await openStorage(options, io.env)
  const events = storage.recorders.events
  const topics = options.topics ?? []
  const originatorId = options.originator
  if (options.follow) {
    const gt = options.from === undefined ? await events.maxNotificationId() : options.from - 1
    for await (const notification of events.subscribe({ gt, topics, originatorId, signal: io.signal })) {
      await writeTo(io.stdout, options.json ? eventJson(storage, notification) : eventLine(storage, notification))
    }
    return
  }
  const limit = options.limit ?? DEFAULT_LOG_LIMIT
  // One more than shown tells whether another page follows (of the same filters).
  const selected = await events.selectNotifications({
    start: options.from ?? 1,
    limit: limit + 1,
    topics,
    originatorId,
  })
  const page = selected.slice(0, limit)
  if (options.json) {
    for (const notification of page) await writeTo(io.stdout, eventJson(storage, notification))
    return
  }
  await writeTo(io.stdout, page.length === 0 ? 'No notifications.\n' : eventsTable(storage, page))
  const next = selected[limit]
  if (next !== undefined) await writeTo(io.stdout, `More: --from ${next.id}\n`)
}
