import { type DatabaseOptions, openDatabase } from '../database.js'
import { type CommandIo, writeTo } from '../output.js'
import { table } from '../table.js'

/** The options of the `apps` command. */
export interface AppsOptions extends DatabaseOptions {
  /** One JSON object a line instead of a table. */
  readonly json?: boolean
}

/**
 * The `apps` command: writes the applications found in the database (by
 * their events tables), with how many events each holds and its last
 * notification id. It creates nothing.
 *
 * @throws DatabaseNotFoundError for an SQLite file that does not exist.
 */
export async function apps(options: AppsOptions, io: CommandIo): Promise<void> {
  const { persistence } = await openDatabase(options, io.env)
  const applications = await persistence.listApplications()
  if (options.json) {
    for (const application of applications) await writeTo(io.stdout, `${JSON.stringify(application)}\n`)
    return
  }
  if (applications.length === 0) {
    await writeTo(io.stdout, 'No applications.\n')
    return
  }
  const rows = applications.map(({ name, events, maxNotificationId }) => [name, events, maxNotificationId])
  await writeTo(io.stdout, table(['application', 'events', 'last id'], rows))
}
