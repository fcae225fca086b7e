import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { beforeAll, describe, expect, it } from 'vitest'
import { type DemoOptions, demo } from '../../src/cli/commands/demo.js'
import { ProgrammingError } from '../../src/persistence/errors.js'
import { sharedCassandra } from '../cassandra/shared-node.js'
import { tempDir } from '../fixtures/temp.js'
import { freshSchema, postgresUrl } from '../postgres/fixtures.js'
import { cassandra, skipNote, skipReason } from '../services.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const bin = join(root, 'dist', 'cli', 'main.js')

function expectDemoOutput(output: string): void {
  for (const text of ['dogschool:Dog.Registered', 'dogschool:Dog.TrickAdded', 'Fido', 'Buster', 'Milou']) {
    expect(output).toContain(text)
  }
  expect(output).toMatch(/│ id\s+│ originator\s+│ version │ topic\s+│ fields\s+│/)
  expect(output).toMatch(/│ 1\s+│ [0-9a-f]{8}…\s+│ 1\s+│ dogschool:Dog\.Registered │ name="Fido"\s+│/)
  expect(output).toContain('trick="roll over"')
}

/** Runs the demo in this process and returns its output. */
async function runDemo(options: DemoOptions): Promise<string> {
  let output = ''
  await demo(options, (text) => {
    output += text
  })
  return output
}

describe('eventsourcing demo, in process', () => {
  it('runs the dog school on an SQLite file and prints the notification log as a table', async () => {
    const path = join(tempDir(), 'demo.db')
    const output = await runDemo({ db: path, env: {} })
    expectDemoOutput(output)
    expect(output).toContain(`Dog school on SQLite file ${path}`)
    expect(output).toContain('Fido     roll over, play dead')
    expect(output).toContain('the 8 events of this run (8 in the log)')
    expect(existsSync(path)).toBe(true)
  })

  it('keeps earlier runs in the file and shows only the new events', async () => {
    const path = join(tempDir(), 'demo.db')
    await runDemo({ db: path, env: {} })
    const output = await runDemo({ db: path, env: {} })
    expect(output).toContain('the 8 events of this run (16 in the log)')
    expect(output).toMatch(/│ 9\s+│ [0-9a-f]{8}…\s+│ 1\s+│ dogschool:Dog\.Registered │ name="Fido"/)
    expect(output).not.toMatch(/│ 8\s+│/)
  })

  it('takes the SQLite file from SQLITE_PATH, the prefixed variable first, and --db over both', async () => {
    const dir = tempDir()
    const [plain, prefixed, flag] = [join(dir, 'plain.db'), join(dir, 'prefixed.db'), join(dir, 'flag.db')]
    expect(await runDemo({ env: { SQLITE_PATH: plain } })).toContain(`on SQLite file ${plain}`)
    const both = { SQLITE_PATH: plain, DOGSCHOOL_SQLITE_PATH: prefixed }
    expect(await runDemo({ env: both })).toContain(`on SQLite file ${prefixed}`)
    expect(await runDemo({ db: flag, env: { ...both, PERSISTENCE: 'sqlite' } })).toContain(
      'the 8 events of this run (8 in the log)',
    )
    expect([plain, prefixed, flag].map((path) => existsSync(path))).toEqual([true, true, true])
  })

  it('runs on the backend PERSISTENCE names, configured by its variables', async () => {
    const { schema, drop } = freshSchema()
    const env = { PERSISTENCE: 'postgres', POSTGRES_URL: postgresUrl(), POSTGRES_SCHEMA: schema }
    try {
      const first = await runDemo({ env })
      expectDemoOutput(first)
      expect(first).toMatch(new RegExp(`Dog school on PostgreSQL at 127\\.0\\.0\\.1:\\d+/\\w+, schema ${schema}\n`))
      expect(first).not.toContain('postgres:postgres@')
      expect(await runDemo({ env: { ...env, PERSISTENCE: undefined, DOGSCHOOL_PERSISTENCE: 'postgres' } })).toContain(
        'the 8 events of this run (16 in the log)',
      )
      expect(await runDemo({ env: { PERSISTENCE: 'memory' } })).toContain('Dog school on memory')
    } finally {
      await drop()
    }
  })

  it('refuses --db with another backend, and names a backend that does not exist', async () => {
    const path = join(tempDir(), 'refused.db')
    const postgres = runDemo({ db: path, env: { PERSISTENCE: 'postgres', POSTGRES_URL: postgresUrl() } })
    await expect(postgres).rejects.toThrow(ProgrammingError)
    await expect(postgres).rejects.toThrow('--db names an SQLite file, but PERSISTENCE is postgres')
    expect(existsSync(path)).toBe(false)
    await expect(runDemo({ env: { PERSISTENCE: 'mongo' } })).rejects.toThrow(/Unknown PERSISTENCE value "mongo"/)
  })
})

const cassandraMissing = await skipReason(cassandra)
if (cassandraMissing !== undefined) console.warn(skipNote(cassandra, cassandraMissing))

describe('eventsourcing demo, the built bin', () => {
  beforeAll(() => {
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'pipe' })
  })

  it('is an executable file, as `npx eventsourcing` runs it', () => {
    const result = spawnSync(bin, ['--help'], { encoding: 'utf8' })
    expect(result.error).toBeUndefined()
    expect(result.status).toBe(0)
  })

  it('runs with --db and exits with 0', () => {
    const path = join(tempDir(), 'bin.db')
    const result = spawnSync(process.execPath, [bin, 'demo', '--db', path], { encoding: 'utf8' })
    expect(result.stderr).toBe('')
    expect(result.status).toBe(0)
    expectDemoOutput(result.stdout)
    expect(existsSync(path)).toBe(true)
  })

  it('runs on the backend PERSISTENCE names', async () => {
    const { schema, drop } = freshSchema()
    try {
      const env = { ...process.env, PERSISTENCE: 'postgres', POSTGRES_URL: postgresUrl(), POSTGRES_SCHEMA: schema }
      const result = spawnSync(process.execPath, [bin, 'demo'], { cwd: tempDir(), env, encoding: 'utf8' })
      expect(result.stderr).toBe('')
      expect(result.status).toBe(0)
      expect(result.stdout).toContain('Dog school on PostgreSQL')
      expectDemoOutput(result.stdout)
    } finally {
      await drop()
    }
  })

  it.skipIf(cassandraMissing !== undefined)(
    'runs on Cassandra with PERSISTENCE=cassandra, in process and through the bin',
    async () => {
      const { contactPoints } = await sharedCassandra()
      const keyspace = `es_demo_${randomBytes(4).toString('hex')}`
      const env = {
        PERSISTENCE: 'cassandra',
        CASSANDRA_CONTACT_POINTS: contactPoints.join(','),
        CASSANDRA_KEYSPACE: keyspace,
      }
      const first = await runDemo({ env })
      expectDemoOutput(first)
      expect(first).toContain(`Dog school on Cassandra at ${contactPoints.join(',')}, keyspace ${keyspace}\n`)
      const result = spawnSync(process.execPath, [bin, 'demo'], {
        cwd: tempDir(),
        env: { ...process.env, ...env },
        encoding: 'utf8',
      })
      expect(result.stderr).toBe('')
      expect(result.status).toBe(0)
      expect(result.stdout).toContain('the 8 events of this run (16 in the log)')
    },
    600_000,
  )

  it('uses eventsourcing-demo.db in the current directory by default', () => {
    const dir = tempDir()
    const result = spawnSync(process.execPath, [bin, 'demo'], { cwd: dir, encoding: 'utf8' })
    expect(result.status).toBe(0)
    expect(result.stdout).toContain('eventsourcing-demo.db')
    expect(existsSync(join(dir, 'eventsourcing-demo.db'))).toBe(true)
  })

  it('reports a failure on stderr with exit code 1', () => {
    const path = join(tempDir(), 'no-such-dir', 'demo.db')
    const result = spawnSync(process.execPath, [bin, 'demo', '--db', path], { encoding: 'utf8' })
    expect(result.status).toBe(1)
    expect(result.stderr).toMatch(/^eventsourcing: .*no-such-dir/)
    expect(result.stdout).toBe('')
  })

  it('prints help listing the demo command', () => {
    const result = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8' })
    expect(result.status).toBe(0)
    expect(result.stdout).toContain('demo [options]')
  })
})
