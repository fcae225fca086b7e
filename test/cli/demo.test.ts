import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { beforeAll, describe, expect, it } from 'vitest'
import { demo } from '../../src/cli/commands/demo.js'
import { tempDir } from '../fixtures/temp.js'

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

describe('eventsourcing demo, in process', () => {
  it('runs the dog school on an SQLite file and prints the notification log as a table', async () => {
    const path = join(tempDir(), 'demo.db')
    let output = ''
    await demo(path, (text) => {
      output += text
    })
    expectDemoOutput(output)
    expect(output).toContain('Fido     roll over, play dead')
    expect(output).toContain('the 8 events of this run (8 in the file)')
    expect(existsSync(path)).toBe(true)
  })

  it('keeps earlier runs in the file and shows only the new events', async () => {
    const path = join(tempDir(), 'demo.db')
    await demo(path, () => {})
    let output = ''
    await demo(path, (text) => {
      output += text
    })
    expect(output).toContain('the 8 events of this run (16 in the file)')
    expect(output).toMatch(/│ 9\s+│ [0-9a-f]{8}…\s+│ 1\s+│ dogschool:Dog\.Registered │ name="Fido"/)
    expect(output).not.toMatch(/│ 8\s+│/)
  })
})

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
