// apps and trackers as `npx eventsourcing` runs them: in a process of their own, flags parsed, exit codes.
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { tempDir } from '../fixtures/temp.js'
import { STORES, type Store, seed } from './fixtures.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const main = join(root, 'src', 'cli', 'main.ts')

async function run(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', '--no-warnings', main, ...args],
      { cwd: root, env: { PATH: process.env.PATH } },
    )
    return { code: 0, stdout, stderr }
  } catch (error) {
    const { code, stdout, stderr } = error as { code: number; stdout: string; stderr: string }
    return { code, stdout, stderr }
  }
}

function flags(store: Store): string[] {
  const { sqlitePath, postgresUrl, postgresSchema } = store.flags
  return sqlitePath !== undefined
    ? ['--sqlite-path', sqlitePath]
    : ['--postgres-url', postgresUrl!, '--postgres-schema', postgresSchema!]
}

describe.each(STORES)('apps and trackers in a process on %s', (_name, newStore) => {
  let store: Store
  let ids: string[]

  beforeEach(async () => {
    store = newStore()
    ids = await seed(store)
  })

  afterEach(async () => {
    await store.drop()
  })

  it('apps lists the applications; trackers counts the notifications of the topics given; log --originator filters', {
    timeout: 30_000,
  }, async () => {
    await using follower = await store.persistence().open('Counter')
    await follower.events.insertTracking({ applicationName: 'DogSchool', notificationId: 2 })
    const apps = await run(['apps', ...flags(store), '--json'])
    expect(apps).toMatchObject({ code: 0, stderr: '' })
    expect(apps.stdout).toContain('{"name":"dogschool","events":8,"maxNotificationId":8}')
    const trackers = await run(['trackers', ...flags(store), '--topic', 'dogschool:Dog.TrickAdded', '--json'])
    expect(trackers).toMatchObject({ code: 0, stderr: '' })
    // After id 2, the tricks added are ids 3, 5, 6 and 8.
    expect(trackers.stdout).toContain('"upstream":"DogSchool","position":2,"head":8,"behind":4')
    const log = await run(['log', '--app', 'DogSchool', ...flags(store), '--originator', ids[2]!, '--json'])
    expect(
      log.stdout
        .trimEnd()
        .split('\n')
        .map((line) => JSON.parse(line).id),
    ).toEqual([7, 8])
  })

  it('trackers --module counts each follower in the topics its class follows; a module without any fails with 1', {
    timeout: 30_000,
  }, async () => {
    for (const [name, notificationId] of [
      ['Registrar', 7],
      ['Auditor', 2],
    ] as const) {
      await using follower = await store.persistence().open(name)
      await follower.events.insertTracking({ applicationName: 'DogSchool', notificationId })
    }
    const trackers = await run(['trackers', ...flags(store), '--module', 'test/cli/modules/dog-followers.ts'])
    expect(trackers).toMatchObject({ code: 0, stderr: '' })
    // Registrar follows registrations only: none after id 7. Auditor follows all: 6 after id 2.
    expect(trackers.stdout).toMatch(/│ auditor\s+│ DogSchool\s+│ 2\s+│ 8\s+│ 6\s+│/)
    expect(trackers.stdout).toMatch(/│ registrar\s+│ DogSchool\s+│ 7\s+│ 8\s+│ 0\s+│/)
    const nothing = await run(['trackers', ...flags(store), '--module', 'test/cli/modules/nothing.ts'])
    expect(nothing).toMatchObject({ code: 1, stdout: '' })
    expect(nothing.stderr).toMatch(
      /^eventsourcing: Module test\/cli\/modules\/nothing\.ts exports no ProcessApplication subclass, nor a System with one: /,
    )
  })
})

it('apps exits with 1 and one line naming a missing SQLite file', { timeout: 30_000 }, async () => {
  const path = join(tempDir('es-cli-'), 'missing.db')
  const result = await run(['apps', '--sqlite-path', path])
  expect(result.code).toBe(1)
  expect(result.stderr).toBe(
    `eventsourcing: The SQLite file ${path} does not exist: check --sqlite-path or SQLITE_PATH\n`,
  )
})
