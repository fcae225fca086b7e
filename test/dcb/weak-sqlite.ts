// A broken SQLite DCB backend, for showing that the racing tests can fail: its
// appends check their condition with a read before the write transaction, as
// the DCB bugs of 2026 did (marten #4591), so a concurrent append can commit
// between the check and the write.

import type { DcbRecorder, Persistence } from '../../src/index.js'
import { DcbConflictError } from '../../src/index.js'
import { type SqliteOptions, sqlite } from '../../src/sqlite/index.js'

/** Returns the SQLite backend with DCB appends that check their condition outside the write transaction. */
export function weakSqlite(options: SqliteOptions): Persistence {
  const persistence = sqlite(options)
  return {
    ...persistence,
    name: persistence.name,
    checkName: (name) => persistence.checkName(name),
    open: (name) => persistence.open(name),
    listApplications: () => persistence.listApplications(),
    async openDcb(name) {
      const recorders = await persistence.openDcb(name)
      const recorder = recorders.events
      const append: DcbRecorder['append'] = async (events, condition, appendOptions) => {
        if (condition !== undefined) {
          const { failIfEventsMatch: query, after } = condition
          const { events: found } = await recorder.read(query, { after })
          if (found.length > 0) throw new DcbConflictError({ query, after, table: 'weak' })
          // The other racers' reads are let in here, as a slower database would.
          await new Promise((resolve) => setTimeout(resolve, 5))
        }
        return recorder.append(events, undefined, appendOptions)
      }
      return {
        ...recorders,
        close: () => recorders.close(),
        events: withAppend(recorder, append),
      }
    },
  }
}

function withAppend(recorder: DcbRecorder, append: DcbRecorder['append']): DcbRecorder {
  return new Proxy(recorder, {
    get(target, property) {
      if (property === 'append') return append
      const value: unknown = Reflect.get(target, property)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
}
