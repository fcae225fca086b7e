// Broken PostgreSQL DCB backends, for showing that the tests can fail. One
// checks an append's condition with a read before an unconditioned append
// (which takes no exclusive lock), as the DCB bugs of 2026 did (marten #4591):
// a concurrent append commits between the check and the write. The other
// returns the store's highest visible position as a read's head, not the
// settled one: an event still committing below it is missed by a decision.

import pg from 'pg'
import type { DcbRecorder, Persistence } from '../../src/index.js'
import { DcbConflictError } from '../../src/index.js'
import { type PostgresOptions, postgres } from '../../src/postgres/index.js'

/** Returns the PostgreSQL backend with DCB appends that check their condition with a read, outside the append. */
export function weakPostgres(options: PostgresOptions): Persistence {
  return withRecorder(options, (recorder) => ({
    async append(events, condition, appendOptions) {
      if (condition !== undefined) {
        const { failIfEventsMatch: query, after } = condition
        const { events: found } = await recorder.read(query, { after })
        if (found.length > 0) throw new DcbConflictError({ query, after, table: 'weak' })
      }
      return recorder.append(events, undefined, appendOptions)
    },
  }))
}

/** Returns the PostgreSQL backend whose DCB reads return the highest visible position as their head. */
export function unsettledPostgres(options: PostgresOptions & { url: string }): Persistence {
  return withRecorder(options, (recorder) => ({
    async read(query, readOptions) {
      const { events } = await recorder.read(query, readOptions)
      const client = new pg.Client({ connectionString: options.url })
      await client.connect()
      try {
        const table = `"${options.schema}".app_dcb`
        const { rows } = await client.query(`SELECT COALESCE(max(position), 0)::int AS head FROM ${table}`)
        return { events, head: rows[0].head as number }
      } finally {
        await client.end()
      }
    },
  }))
}

function withRecorder(
  options: PostgresOptions,
  override: (recorder: DcbRecorder) => Partial<Pick<DcbRecorder, 'append' | 'read'>>,
): Persistence {
  const persistence = postgres(options)
  return {
    name: persistence.name,
    checkName: (name) => persistence.checkName(name),
    open: (name) => persistence.open(name),
    listApplications: () => persistence.listApplications(),
    async openDcb(name) {
      const recorders = await persistence.openDcb(name)
      const recorder = recorders.events
      const overridden = override(recorder)
      const events = new Proxy(recorder, {
        get(target, property) {
          if (property in overridden) return overridden[property as keyof typeof overridden]
          const value: unknown = Reflect.get(target, property)
          return typeof value === 'function' ? value.bind(target) : value
        },
      })
      return { events, close: () => recorders.close(), [Symbol.asyncDispose]: () => recorders.close() }
    },
  }
}
