// What the studio reads: the applications' storage, opened once each on
// first use (without creating tables) and kept open while the studio runs.
import type { Environment } from '../../application/config.js'
import { NotFoundError } from '../../persistence/errors.js'
import { openStorage, type Storage, type StorageOptions } from '../storage.js'

/** An application the studio shows, with where its log ends. */
export interface AppSummary {
  /** The application's name. */
  readonly name: string
  /** The highest notification id of its log, or 0 when it is empty. */
  readonly maxNotificationId: number
}

/** The storage the studio reads, one application at a time; `await using` closes what it opened. */
export interface StudioSource extends AsyncDisposable {
  /** The applications shown, in the order given. */
  apps(): Promise<AppSummary[]>
  /**
   * Returns the storage of one of the applications shown, opened on first use.
   *
   * @throws NotFoundError for an application not shown; ApplicationNotFoundError when its tables are missing.
   */
  storage(app: string): Promise<Storage>
}

/**
 * Returns the source of the applications `apps` names, stored where `options`
 * and the variables say (as the other commands open them). The cipher key
 * decodes events on the server; it is never sent to the page.
 */
export function studioSource(
  apps: readonly string[],
  options: Omit<StorageOptions, 'app'>,
  env: Environment,
): StudioSource {
  const opened = new Map<string, Promise<Storage>>()
  const storage = (app: string): Promise<Storage> => {
    if (!apps.includes(app)) {
      return Promise.reject(new NotFoundError(`The studio shows no application '${app}': it shows ${apps.join(', ')}`))
    }
    let found = opened.get(app)
    if (found === undefined) {
      found = openStorage({ ...options, app }, env)
      // A failed opening is not kept, so that the next request tries again (the tables may be created since).
      found.catch(() => opened.delete(app))
      opened.set(app, found)
    }
    return found
  }
  return {
    storage,
    apps: () =>
      Promise.all(
        apps.map(async (name) => ({
          name,
          maxNotificationId: await (await storage(name)).recorders.events.maxNotificationId(),
        })),
      ),
    [Symbol.asyncDispose]: async () => {
      const all = await Promise.allSettled(opened.values())
      opened.clear()
      for (const result of all) if (result.status === 'fulfilled') await result.value[Symbol.asyncDispose]()
    },
  }
}
