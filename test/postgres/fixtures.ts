// Helpers of the PostgreSQL tests: the server's URL, fresh schemas and databases.

import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { inject } from 'vitest'

/** The URL of the test server (the embedded one, or POSTGRES_URL). */
export function postgresUrl(): string {
  return inject('postgresUrl')
}

/** Returns a fresh name for a schema or database, e.g. `es_1f2e3d4c5b6a`. */
export function freshName(prefix = 'es'): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`
}

/** Runs one statement on the server as the test user, on a connection of its own. */
export async function admin<R extends pg.QueryResultRow>(
  text: string,
  values: unknown[] = [],
  url = postgresUrl(),
): Promise<pg.QueryResult<R>> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    return await client.query<R>(text, values)
  } finally {
    await client.end()
  }
}

/** Creates an empty database and returns its URL and a function that drops it. */
export async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = freshName()
  await admin(`CREATE DATABASE "${name}"`)
  const url = new URL(postgresUrl())
  url.pathname = `/${name}`
  return { url: url.toString(), drop: async () => void (await admin(`DROP DATABASE "${name}" WITH (FORCE)`)) }
}

/** Returns a fresh schema name and a function that drops the schema (and its tables) if it was created. */
export function freshSchema(): { schema: string; drop: () => Promise<void> } {
  const schema = freshName()
  return { schema, drop: async () => void (await admin(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)) }
}
