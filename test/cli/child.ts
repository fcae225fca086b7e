// The commands run as `npx eventsourcing` runs them: in a process of their
// own, with its exit code, its output and its signals.
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Store } from './fixtures.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const main = join(root, 'src', 'cli', 'main.ts')

/** A started process: its output so far, and its exit. */
export interface Run {
  readonly child: ChildProcess
  stdout(): string
  stderr(): string
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

/** Starts Node with `args` (its flags, a script and its arguments), with PATH and `env` as its only variables. */
export function runNode(args: readonly string[], options: { env?: Record<string, string>; cwd?: string } = {}): Run {
  const child = spawn(process.execPath, args, {
    cwd: options.cwd ?? root,
    env: { PATH: process.env.PATH, ...options.env },
  })
  let out = ''
  let err = ''
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString()
  })
  child.stderr.on('data', (chunk: Buffer) => {
    err += chunk.toString()
  })
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal }))
  })
  return { child, stdout: () => out, stderr: () => err, exit }
}

/** Starts the command from its TypeScript entry, through tsx, so that no build is needed. */
export function runCli(args: readonly string[], env: Record<string, string> = {}): Run {
  return runNode(['--import', 'tsx', '--no-warnings', main, ...args], { env })
}

/** Returns the flags that point a command at `store`. */
export function storeFlags(store: Store): string[] {
  const { sqlitePath, postgresUrl, postgresSchema } = store.flags
  if (sqlitePath !== undefined) return ['--sqlite-path', sqlitePath]
  return ['--postgres-url', postgresUrl as string, '--postgres-schema', postgresSchema as string]
}
