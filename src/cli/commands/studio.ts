import { once } from 'node:events'
import type { CommandIo } from '../output.js'
import { accessPolicy, randomToken } from '../studio/guard.js'
import { startStudio } from '../studio/server.js'
import { openStudioSource, type StudioSourceOptions } from '../studio/source.js'

/** The options of the `studio` command. */
export interface StudioCommandOptions extends StudioSourceOptions {
  /** The address to bind (default 127.0.0.1). */
  readonly host?: string
  /** The port (default {@link DEFAULT_STUDIO_PORT}; 0 lets the system choose). */
  readonly port?: number
  /** Allows an address other machines reach, which then needs an access token. */
  readonly expose?: boolean
}

/** The port the studio listens on when `--port` is not given. */
export const DEFAULT_STUDIO_PORT = 4141

/** The variable that sets the studio's access token (a flag would show it to every user of the machine, in `ps`). */
export const TOKEN_VARIABLE = 'EVENTSOURCING_STUDIO_TOKEN'

/**
 * The `studio` command: serves the web explorer of the database's
 * applications (those named, or every one found) until `io.signal` aborts,
 * and writes the address to open. It binds 127.0.0.1 unless told otherwise;
 * another address needs `expose` and an access token (from
 * {@link TOKEN_VARIABLE}, else a random one, printed in the address). The
 * applications are looked up before the server starts, so a mistyped name
 * fails at once.
 *
 * @throws ApplicationNotFoundError for an application named that is not in the database.
 * @throws DatabaseNotFoundError for an SQLite file that does not exist.
 * @throws UserModuleError when the module cannot be loaded.
 * @throws ProgrammingError for another address without `expose`.
 */
export async function studio(options: StudioCommandOptions, io: CommandIo): Promise<void> {
  const host = options.host ?? '127.0.0.1'
  const port = options.port ?? DEFAULT_STUDIO_PORT
  const expose = options.expose ?? false
  const token = io.env[TOKEN_VARIABLE] || (expose ? randomToken() : undefined)
  // Checked before anything is opened or bound.
  accessPolicy(host, port, { expose, token })
  await using source = await openStudioSource(options, io.env)
  await using server = await startStudio(source, {
    host,
    port,
    policy: (bound) => accessPolicy(host, bound, { expose, token }),
  })
  io.stdout.write(`eventsourcing studio: ${server.url} (read-only; Ctrl-C to stop)\n`)
  if (io.signal !== undefined && !io.signal.aborted) await once(io.signal, 'abort')
}
