// Child processes that run the orders system (system-child.ts), for the crash
// and multi-process tests: start them, follow what they report, stop or kill them.

import { type ChildProcess, fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const SCRIPT = fileURLToPath(new URL('./system-child.ts', import.meta.url))
const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** The positions a child's followers reached in its run: follower name, then upstream name, to notification id. */
export type Positions = Readonly<Record<string, Readonly<Record<string, number>>>>

/** What a child sends to its parent. */
export type ChildMessage =
  | { readonly type: 'started'; readonly pid: number }
  | {
      readonly type: 'progress'
      readonly positions: Positions
      /** The number of notifications handed to each follower and not yet done, by follower name. */
      readonly inHand: Readonly<Record<string, number>>
    }

/** How a child process ended. */
export interface ChildExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

const running = new Set<SystemChild>()

/** A child process running the orders system, as the environment it was given says. */
export class SystemChild {
  readonly #process: ChildProcess
  readonly #listeners = new Set<() => void>()
  /** Resolves when the child has exited, however it did. */
  readonly exited: Promise<ChildExit>
  /** Whether the child's followers are following. */
  started = false
  /** How long the child took to start, once it has. */
  startMs: number | undefined
  /** What the child wrote to stderr. */
  stderr = ''
  /** The positions it reported last, by follower and upstream (none for a follower that processed nothing yet). */
  positions: Positions = {}
  /** The number of notifications each follower had in hand at the last report, by follower name. */
  inHand: Readonly<Record<string, number>> = {}
  /** The number of progress reports it sent. */
  reports = 0
  /** How it ended, once it has. */
  exit: ChildExit | undefined

  /** Starts the child with these variables added to this process's environment. */
  constructor(env: Readonly<Record<string, string>>) {
    const forked = Date.now()
    this.#process = fork(SCRIPT, [], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    })
    running.add(this)
    this.#process.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk
    })
    this.exited = new Promise((resolve) => {
      // 'close' comes after 'exit' once stderr is read to its end.
      this.#process.on('close', (code, signal) => {
        this.exit = { code, signal }
        running.delete(this)
        this.#changed()
        resolve(this.exit)
      })
    })
    this.#process.on('message', (message: ChildMessage) => {
      if (message.type === 'started') {
        this.started = true
        this.startMs = Date.now() - forked
      }
      if (message.type === 'progress') {
        this.positions = message.positions
        this.inHand = message.inHand
        this.reports++
      }
      this.#changed()
    })
  }

  /** The child's process id. */
  get pid(): number {
    return this.#process.pid!
  }

  /**
   * Resolves once `isDone()` is true, checked whenever the child reports or exits.
   *
   * @throws when the child exits first, or `timeoutMs` passes, with what it wrote to stderr.
   */
  async until(isDone: () => boolean, timeoutMs: number, what: string): Promise<void> {
    if (isDone()) return
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs)
      const check = () => {
        if (isDone()) done()
        else if (this.exit) done(new Error(`The child exited (${JSON.stringify(this.exit)}) before ${what}`))
      }
      const done = (error?: Error) => {
        clearTimeout(timer)
        this.#listeners.delete(check)
        if (error) reject(new Error(`${error.message}\n${this.stderr}`))
        else resolve()
      }
      this.#listeners.add(check)
      check()
    })
  }

  /** Kills the child with SIGKILL and resolves once it has exited. */
  async kill(): Promise<ChildExit> {
    if (!this.exit) this.#process.kill('SIGKILL')
    return this.exited
  }

  /**
   * Asks the child to stop with SIGTERM and resolves once it has exited.
   *
   * @throws if it has not exited within `timeoutMs` (it is killed then).
   */
  async stop(timeoutMs = 15_000): Promise<ChildExit> {
    if (!this.exit) this.#process.kill('SIGTERM')
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        void this.kill()
        reject(new Error(`The child did not stop within ${timeoutMs} ms\n${this.stderr}`))
      }, timeoutMs)
    })
    try {
      return await Promise.race([this.exited, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  #changed(): void {
    for (const listener of [...this.#listeners]) listener()
  }
}

/** Kills every child still running, for the end of a test that failed half way. */
export async function killChildren(): Promise<void> {
  await Promise.all([...running].map((child) => child.kill()))
}
