// A racing appender for the DCB concurrency tests: a worker thread that opens
// its own handle on the store under test and runs the reads and appends it is
// sent, one at a time, answering each.

import { extname } from 'node:path'
import { type MessagePort, Worker } from 'node:worker_threads'
import type { DcbAppendCondition, DcbEvent, DcbQuery, DcbRecorder, DcbRecorders } from '../persistence/dcb.js'
import { errorMessage } from '../persistence/errors.js'
import type { Persistence } from '../persistence/recorder.js'
import type { DcbWorkerBackend } from './dcb-suite.js'

/** What a racer is asked to do. */
export type RacerRequest =
  | { readonly op: 'read'; readonly query: DcbQuery }
  | { readonly op: 'append'; readonly events: readonly DcbEvent[]; readonly condition?: DcbAppendCondition }

/** A racer's answer: the head a read returned, or the position an append returned, or the error's class and message. */
export type RacerResponse =
  | { readonly ok: true; readonly position: number }
  | { readonly ok: false; readonly name: string; readonly message: string }

/** One racing appender, in a worker thread or (for a store only this thread can reach) in this event loop. */
export interface Racer {
  /** Runs one request on the racer's own handle. */
  run(request: RacerRequest): Promise<RacerResponse>
  /** Closes its handle and ends its thread. */
  close(): Promise<void>
}

interface RacerData {
  readonly setup?: string
  readonly entry: string
  readonly module: string
  readonly exportName: string
  readonly options: unknown
  readonly applicationName: string
}

// A CommonJS script, as `eval` workers run: imports the setup module, then this module, and serves requests.
const RACER_SCRIPT = `
const { parentPort, workerData } = require('node:worker_threads')
;(async () => {
  if (workerData.setup !== undefined) await import(workerData.setup)
  const { serveRacer } = await import(workerData.entry)
  await serveRacer(workerData, parentPort)
})()
`

/** Starts a racer in a worker thread that opens the store with `backend`. */
export async function startRacer(backend: DcbWorkerBackend, applicationName: string): Promise<Racer> {
  const data: RacerData = {
    setup: backend.setup === undefined ? undefined : moduleHref(backend.setup),
    entry: new URL(`./dcb-racer${extname(new URL(import.meta.url).pathname)}`, import.meta.url).href,
    module: moduleHref(backend.module),
    exportName: backend.exportName,
    options: backend.options,
    applicationName,
  }
  const worker = new Worker(RACER_SCRIPT, { eval: true, workerData: data })
  const failed = new Promise<never>((_, reject) => {
    worker.once('error', reject)
    worker.once('exit', (code) => reject(new Error(`A DCB racer's thread exited with code ${code}`)))
  })
  failed.catch(() => {})
  const next = () => Promise.race([new Promise<unknown>((resolve) => worker.once('message', resolve)), failed])
  const ready = await next()
  if (ready !== 'ready') throw new Error(`A DCB racer failed to open the store: ${JSON.stringify(ready)}`)
  return {
    async run(request) {
      const answer = next()
      worker.postMessage(request)
      return (await answer) as RacerResponse
    },
    async close() {
      const exited = new Promise((resolve) => worker.once('exit', resolve))
      worker.postMessage('close')
      await exited
    },
  }
}

/** Returns a racer that runs requests on a handle in this event loop. */
export function localRacer(recorder: DcbRecorder): Racer {
  return { run: (request) => serve(recorder, request), close: async () => {} }
}

/** The worker's side: opens the store, says `ready`, and serves requests until told to close. */
export async function serveRacer(data: RacerData, port: MessagePort): Promise<void> {
  let recorders: DcbRecorders
  try {
    const make = ((await import(data.module)) as Record<string, unknown>)[data.exportName]
    if (typeof make !== 'function') throw new Error(`${data.module} exports no function ${data.exportName}`)
    recorders = await ((await make(data.options)) as Persistence).openDcb(data.applicationName)
  } catch (error) {
    port.postMessage(errorMessage(error))
    port.close()
    return
  }
  port.postMessage('ready')
  port.on('message', (request: RacerRequest | 'close') => {
    if (request === 'close') {
      void recorders.close().finally(() => port.close())
      return
    }
    void serve(recorders.events, request).then((response) => port.postMessage(response))
  })
}

async function serve(recorder: DcbRecorder, request: RacerRequest): Promise<RacerResponse> {
  try {
    const position =
      request.op === 'read'
        ? (await recorder.read(request.query)).head
        : await recorder.append(request.events, request.condition)
    return { ok: true, position }
  } catch (error) {
    return { ok: false, name: error instanceof Error ? error.name : typeof error, message: errorMessage(error) }
  }
}

function moduleHref(module: string | URL): string {
  if (module instanceof URL) return module.href
  return module.startsWith('/') ? new URL(`file://${module}`).href : module
}
