import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { Worker } from 'node:worker_threads'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Notification } from '../../src/persistence/stored-event.js'
import { sqlite } from '../../src/sqlite/index.js'

// Worker threads do not run TypeScript, so the backend is compiled for them:
// the modules that src/sqlite/index.ts imports are transpiled (types stripped,
// as vitest does) into node_modules/.cache, from where the workers' import of
// better-sqlite3 resolves like the package's own.

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const WORKERS = 4
const EVENTS_PER_WORKER = 300
const CLAIMS = 40

let compiled: string
let directory: string

async function compile(entry: string, outDir: string): Promise<void> {
  const pending = [entry]
  const done = new Set<string>()
  while (pending.length > 0) {
    const file = pending.pop()!
    if (done.has(file)) continue
    done.add(file)
    const source = await readFile(file, 'utf8')
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
      fileName: file,
    })
    const out = join(outDir, relative(join(root, 'src'), file)).replace(/\.ts$/, '.js')
    await mkdir(dirname(out), { recursive: true })
    await writeFile(out, outputText)
    for (const [, specifier] of source.matchAll(/from '(\.{1,2}\/[^']+)\.js'/g)) {
      pending.push(resolve(dirname(file), `${specifier}.ts`))
    }
  }
}

beforeAll(async () => {
  compiled = join(root, 'node_modules', '.cache', `eventsourcing-sqlite-test-${process.pid}`)
  await compile(join(root, 'src', 'sqlite', 'index.ts'), compiled)
  directory = await mkdtemp(join(tmpdir(), 'eventsourcing-sqlite-workers-'))
})

afterAll(async () => {
  await rm(compiled, { recursive: true, force: true })
  await rm(directory, { recursive: true, force: true })
})

interface WorkerResult {
  readonly ids: number[]
  readonly wins: { claim: number; id: number }[]
}

function startWorker(
  path: string,
  worker: number,
): { ready: Promise<void>; go(): void; result: Promise<WorkerResult> } {
  const thread = new Worker(new URL('./sqlite-worker.mjs', import.meta.url), {
    workerData: {
      moduleUrl: pathToFileURL(join(compiled, 'sqlite', 'index.js')).href,
      path,
      worker,
      count: EVENTS_PER_WORKER,
      claims: CLAIMS,
    },
  })
  let ready!: () => void
  const result = new Promise<WorkerResult>((resolve, reject) => {
    thread.on('message', (message: { ready?: boolean } & WorkerResult) => {
      if (message.ready) ready()
      else resolve(message)
    })
    thread.on('error', reject)
    thread.on('exit', (code) => reject(new Error(`worker ${worker} exited with ${code}`)))
  })
  return { ready: new Promise((resolve) => (ready = resolve)), go: () => thread.postMessage('go'), result }
}

describe('sqlite: worker threads writing to one file', () => {
  it('give every event a unique id, increasing per writer, and record each tracked id once', async () => {
    const path = join(directory, 'workers.db')
    const workers = Array.from({ length: WORKERS }, (_, i) => startWorker(path, i))
    await Promise.all(workers.map((w) => w.ready))
    // Released together, the workers also race to create the file and its tables.
    for (const w of workers) w.go()
    const results = await Promise.all(workers.map((w) => w.result))

    const recorders = await sqlite({ path, createTables: false }).open('app')
    try {
      const { events } = recorders
      const log: Notification[] = []
      for (;;) {
        const page = await events.selectNotifications({
          start: log.at(-1)?.id ?? 0,
          inclusiveOfStart: false,
          limit: 1000,
        })
        if (page.length === 0) break
        log.push(...page)
      }
      const wins = results.flatMap((r) => r.wins)
      expect(log.length).toBe(WORKERS * EVENTS_PER_WORKER + wins.length)
      expect(new Set(log.map((n) => n.id)).size).toBe(log.length)
      const byId = new Map(log.map((n) => [n.id, n]))

      for (const [worker, { ids }] of results.entries()) {
        expect(ids).toHaveLength(EVENTS_PER_WORKER)
        for (let i = 1; i < ids.length; i++) expect(ids[i]!).toBeGreaterThan(ids[i - 1]!)
        expect(ids.map((id) => byId.get(id)?.originatorVersion)).toEqual(ids.map((_, i) => i + 1))
        expect(new Set(ids.map((id) => byId.get(id)?.originatorId))).toEqual(new Set([`worker-${worker}`]))
        const versions = (await events.selectEvents(`worker-${worker}`)).map((e) => e.originatorVersion)
        expect(versions).toEqual(ids.map((_, i) => i + 1))
        expect(await events.maxTrackingId(`upstream-${worker}`)).toBe(EVENTS_PER_WORKER)
      }

      // Each shared upstream notification was processed by at most one worker,
      // and in commit (id) order the processed ids only increase.
      const claimed = log.filter((n) => n.topic === 'claimed').map((n) => Number(new TextDecoder().decode(n.state)))
      expect(claimed.length).toBeGreaterThan(0)
      for (let i = 1; i < claimed.length; i++) expect(claimed[i]!).toBeGreaterThan(claimed[i - 1]!)
      expect(claimed).toEqual([...wins].sort((a, b) => a.id - b.id).map((w) => w.claim))
      expect(await events.maxTrackingId('shared')).toBe(claimed.at(-1))
    } finally {
      await recorders.close()
    }
  })
})
