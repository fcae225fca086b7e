// The commands run as `npx eventsourcing` runs them: in a process of their
// own (the TypeScript entry, through tsx, so that no build is needed), with
// its exit code, its stderr, and Ctrl-C.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Writable } from 'node:stream'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { DogSchool } from '../../src/cli/dog-school.js'
import { tempDir } from '../fixtures/temp.js'
import { storeFlags as flags, runCli as run } from './child.js'
import { STORES, type Store, seed } from './fixtures.js'

describe.each(STORES)('the commands in a process of their own, on %s', (_name, newStore) => {
  let store: Store

  beforeEach(async () => {
    store = newStore()
    await seed(store)
  })

  afterEach(async () => {
    await store.drop()
  })

  it('log --follow prints a notification recorded after it started, and ends on Ctrl-C with exit code 0', async () => {
    const following = run(['log', '--app', 'DogSchool', ...flags(store), '--follow', '--from', '9'])
    await using school = new DogSchool({ persistence: store.persistence(), env: {} })
    await school.register('Rex')
    await expect
      .poll(following.stdout, { timeout: 20_000 })
      .toMatch(/^\s+9 {2}\S+ {5}1 {2}dogschool:Dog\.Registered {2}\{"name":"Rex"/)
    following.child.kill('SIGINT')
    expect(await following.exit).toEqual({ code: 0, signal: null })
    expect(following.stderr()).toBe('')
  })

  it('reads its settings from the variables an application reads, and --json writes JSON lines', async () => {
    const variables: Record<string, string> =
      store.flags.sqlitePath !== undefined
        ? { PERSISTENCE: 'sqlite', SQLITE_PATH: store.flags.sqlitePath }
        : {
            DOGSCHOOL_PERSISTENCE: 'postgres',
            POSTGRES_URL: store.flags.postgresUrl as string,
            POSTGRES_SCHEMA: store.flags.postgresSchema as string,
          }
    const listing = run(['log', '--app', 'DogSchool', '--limit', '2', '--json'], variables)
    expect(await listing.exit).toEqual({ code: 0, signal: null })
    const lines = listing.stdout().trimEnd().split('\n')
    expect(lines.map((line) => (JSON.parse(line) as { id: number }).id)).toEqual([1, 2])
  })

  it('export | import copies an application through a pipe into another database', async () => {
    const target = join(tempDir(), 'copy.db')
    const exporting = run(['export', '--app', 'DogSchool', ...flags(store)])
    const importing = run(['import', '--app', 'DogSchool', '--sqlite-path', target])
    exporting.child.stdout?.pipe(importing.child.stdin as Writable)
    expect(await exporting.exit).toEqual({ code: 0, signal: null })
    expect(await importing.exit).toEqual({ code: 0, signal: null })
    expect(exporting.stderr()).toBe("Exported 8 events of 'DogSchool'\n")
    expect(importing.stderr()).toBe("Imported 8 events into 'DogSchool'\n")
    const listing = run(['events', await firstDog(store), '--app', 'DogSchool', '--sqlite-path', target])
    expect(await listing.exit).toEqual({ code: 0, signal: null })
    expect(listing.stdout()).toMatch(/│ 3\s+│ dogschool:Dog.TrickAdded │ \{"trick":"play dead"/)
  })

  it('Ctrl-C interrupts a command that does not run until stopped (import waiting on stdin)', async () => {
    const target = join(tempDir(), 'waiting.db')
    const importing = run(['import', '--app', 'DogSchool', '--sqlite-path', target])
    // The file exists once the command has opened its storage, and waits for lines.
    await expect.poll(() => existsSync(target), { timeout: 20_000 }).toBe(true)
    importing.child.kill('SIGINT')
    expect(await importing.exit).toEqual({ code: null, signal: 'SIGINT' })
  })

  it('fails on a mistyped application with one line on stderr and exit code 1, and a stack with --debug', async () => {
    const failing = run(['log', '--app', 'DogScool', ...flags(store)])
    expect(await failing.exit).toEqual({ code: 1, signal: null })
    expect(failing.stderr()).toMatch(
      /^eventsourcing: No application 'DogScool' in this database \(.*dogscool_events.*\n$/,
    )
    expect(failing.stdout()).toBe('')
    const debugging = run(['--debug', 'log', '--app', 'DogScool', ...flags(store)])
    expect(await debugging.exit).toEqual({ code: 1, signal: null })
    expect(debugging.stderr()).toMatch(
      /^eventsourcing: No application 'DogScool'.*\nApplicationNotFoundError: .*\n\s+at /,
    )
  })
})

/** Returns the id of the first dog the seed registered. */
async function firstDog(store: Store): Promise<string> {
  await using recorders = await store.persistence().open('DogSchool')
  const [first] = await recorders.events.selectNotifications({ limit: 1 })
  return first?.originatorId as string
}
