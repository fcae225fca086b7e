import { execFile } from 'node:child_process'
import { cpSync, mkdirSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'
import { tempDir } from '../fixtures/temp.js'

const require = createRequire(import.meta.url)
const root = fileURLToPath(new URL('../..', import.meta.url))

/** Copies the installed better-sqlite3 (its code and built library) and what it loads into `<dir>/node_modules`. */
function copyDriver(dir: string): void {
  const driver = dirname(require.resolve('better-sqlite3/package.json'))
  const into = join(dir, 'node_modules', 'better-sqlite3')
  mkdirSync(join(into, 'build', 'Release'), { recursive: true })
  cpSync(join(driver, 'package.json'), join(into, 'package.json'))
  cpSync(join(driver, 'lib'), join(into, 'lib'), { recursive: true })
  cpSync(join(driver, 'build', 'Release', 'better_sqlite3.node'), join(into, 'build', 'Release', 'better_sqlite3.node'))
  const driverRequire = createRequire(join(driver, 'package.json'))
  for (const name of ['bindings', 'file-uri-to-path']) {
    const from = dirname(driverRequire.resolve(`${name}/package.json`))
    cpSync(from, join(dir, 'node_modules', name), { recursive: true })
  }
}

/**
 * Runs a child process that opens two applications on an SQLite file with
 * the library, after loading and using a copy of the driver from `copyFrom`
 * when given (as an application with its own install does), and returns the
 * warnings it emitted.
 */
async function warningsOfChild(dir: string, copyFrom?: string): Promise<{ code: string; message: string }[]> {
  const script = join(dir, 'child.mjs')
  const loadCopy =
    copyFrom === undefined
      ? ''
      : `new (createRequire(${JSON.stringify(join(copyFrom, 'x.js'))})('better-sqlite3'))(':memory:').close()`
  writeFileSync(
    script,
    `import { createRequire } from 'node:module'
${loadCopy}
const { sqlite } = await import(${JSON.stringify(join(root, 'src/sqlite/index.ts'))})
process.on('warning', (warning) => console.log(JSON.stringify({ code: warning.code, message: warning.message })))
for (const name of ['One', 'Two']) {
  const recorders = await sqlite({ path: ${JSON.stringify(join(dir, 'app.db'))} }).open(name)
  await recorders.close()
}
`,
  )
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--no-warnings', script], {
    cwd: root,
  })
  return stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as { code: string; message: string })
}

describe.runIf(process.platform === 'linux')('two copies of better-sqlite3 in one process', () => {
  it('are reported with a warning naming both, once, when a database file is opened', async () => {
    const dir = tempDir('es-driver-copies-')
    copyDriver(dir)
    const warnings = await warningsOfChild(dir, dir)
    expect(warnings).toHaveLength(1)
    expect(warnings[0]!.code).toBe('EVENTSOURCING_SQLITE_COPIES')
    expect(warnings[0]!.message).toContain(join(dir, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node'))
    const ours = join(dirname(require.resolve('better-sqlite3/package.json')), 'build/Release/better_sqlite3.node')
    expect(warnings[0]!.message).toContain(ours)
    expect(warnings[0]!.message).toContain('sqlite({ database })')
  })

  it('are not reported when there is one copy, even loaded twice by its path', async () => {
    const dir = tempDir('es-driver-copies-')
    expect(await warningsOfChild(dir, root)).toEqual([])
  })
})
