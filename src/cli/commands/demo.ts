import Table from 'cli-table3'
import type { Recording } from '../../persistence/event-store.js'
import { sqlite } from '../../sqlite/index.js'
import { DogSchool } from '../dog-school.js'

/** Where a command writes its output, e.g. `(text) => process.stdout.write(text)`. */
export type Write = (text: string) => void

const DOGS: readonly { readonly name: string; readonly tricks: readonly string[] }[] = [
  { name: 'Fido', tricks: ['roll over', 'play dead'] },
  { name: 'Buster', tricks: ['fetch', 'sit'] },
  { name: 'Milou', tricks: ['jump'] },
]

// The fields every event has; the table shows them in their own columns.
const COMMON_FIELDS = new Set(['originatorId', 'originatorVersion', 'timestamp'])
const PAGE_SIZE = 100

/**
 * The `demo` command: runs the dog school application on an SQLite file,
 * registers a few dogs and teaches them tricks, reads the dogs back from their
 * events, and writes the events this run recorded as a table from the
 * application's notification log. Earlier runs' events stay in the file.
 *
 * @param path the SQLite file, created if missing.
 * @param write receives the output, a line or a table at a time.
 */
export async function demo(path: string, write: Write): Promise<void> {
  await using school = new DogSchool({ persistence: sqlite({ path }) })
  const lastBefore = await school.notificationLog.maxId()
  write(`Dog school on SQLite file ${path}\n\n`)

  const ids: string[] = []
  for (const { name, tricks } of DOGS) {
    const id = await school.register(name)
    for (const trick of tricks) await school.addTrick(id, trick)
    ids.push(id)
  }

  write('Dogs, rebuilt from their events:\n')
  for (const id of ids) {
    const dog = await school.getDog(id)
    write(`  ${dog.name.padEnd(8)} ${dog.tricks.join(', ')}  (${dog.id})\n`)
  }

  const recordings = await readLog(school, lastBefore + 1)
  const total = recordings.at(-1)?.notification.id ?? lastBefore
  write(`\nNotification log, the ${recordings.length} events of this run (${total} in the file):\n`)
  write(`${logTable(recordings)}\n`)
}

async function readLog(school: DogSchool, start: number): Promise<Recording[]> {
  const recordings: Recording[] = []
  for (let from = start; ; ) {
    const page = await school.notificationLog.selectRecordings({ start: from, limit: PAGE_SIZE })
    recordings.push(...page)
    const last = page.at(-1)
    if (last === undefined || page.length < PAGE_SIZE) return recordings
    from = last.notification.id + 1
  }
}

function logTable(recordings: readonly Recording[]): string {
  const table = new Table({
    head: ['id', 'originator', 'version', 'topic', 'fields'],
    // No colours: the output is often piped or read by tests.
    style: { head: [], border: [] },
  })
  for (const { notification, domainEvent } of recordings) {
    const fields = Object.entries(domainEvent)
      .filter(([name]) => !COMMON_FIELDS.has(name))
      .map(([name, value]) => `${name}=${formatValue(value)}`)
      .join(', ')
    table.push([
      notification.id,
      `${notification.originatorId.slice(0, 8)}…`,
      notification.originatorVersion,
      notification.topic,
      fields,
    ])
  }
  return table.toString()
}

function formatValue(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`
  if (value instanceof Date) return value.toISOString()
  return JSON.stringify(value) ?? String(value)
}
