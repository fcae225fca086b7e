import type { DcbRecorder, DcbRecorders, DcbTables } from '../persistence/dcb.js'
import type { Persistence } from '../persistence/recorder.js'
import { testDcbConcurrency } from './dcb-concurrency-tests.js'
import { testDcbModel } from './dcb-model-tests.js'
import { testDcbRead, testDcbSubscribe, testDcbTracking, testDcbWrite } from './dcb-tests.js'
import type { TestApi } from './recorder-suite.js'

/**
 * How a worker thread opens the same store as the test's `persistence`: it
 * imports `module` (after `setup`, if given) and calls its export
 * `exportName` with `options`, which must survive structured cloning.
 *
 * @example
 * ```ts
 * { module: import.meta.resolve('eventsourcing/sqlite'), exportName: 'sqlite', options: { path } }
 * ```
 */
export interface DcbWorkerBackend {
  /** The module's URL or absolute path. */
  readonly module: string | URL
  /** Its export that makes the backend from `options`, e.g. `sqlite` or `postgres`. */
  readonly exportName: string
  /** What that export is called with. */
  readonly options: unknown
  /** A module each worker imports first, e.g. one that registers a TypeScript loader. */
  readonly setup?: string | URL
}

/** A fresh, empty store made by a {@link DcbHarness} for one test. */
export interface DcbStore {
  /**
   * The backend under test. Opening the same application name twice must give
   * two handles (connections) on the same storage: the concurrency tests use them.
   */
  readonly persistence: Persistence
  /**
   * How worker threads open this store, so that racing appenders run in
   * separate threads, each with its own connection: a synchronous driver
   * (better-sqlite3) would otherwise run one append to its end before the
   * next starts, and the race could not fail. Absent for a store that only
   * this thread can reach (the memory backend): the racers then run in this
   * event loop.
   */
  readonly worker?: DcbWorkerBackend
  /** Removes the store (files, schemas); called after each test, once its recorders are closed. */
  teardown(): Promise<void>
}

/** Describes a backend to {@link testDcbRecorders}. */
export interface DcbHarness {
  /** The name the tests are grouped under, e.g. `sqlite file`. */
  readonly name: string
  /** Makes a fresh, empty store; called once per test (and per run of the property-based test). */
  setup(): Promise<DcbStore>
  /**
   * The names the backend gives an application's DCB tables, which its
   * conflict errors must then give as `table`; without it, any non-empty name passes.
   */
  tables?(applicationName: string): DcbTables
  /** Rounds of each racing test (default 20): each round is a fresh race of 16 appenders. */
  readonly rounds?: number
}

/**
 * Declares the DCB recorder conformance suite for one backend: the semantics
 * of queries, reads (with `after`, `limit` and the head they return), appends
 * and their conditions, validation, tracking, subscriptions; 16 racing
 * appenders on one boundary of which exactly one commits, round after round,
 * and racers on disjoint boundaries of which none fails; and a model-based
 * property test of random reads and conditional appends through two handles,
 * interleaved. A backend is done when it passes unchanged. Assertions use
 * `node:assert/strict`, so the suite runs under any test framework.
 *
 * @example
 * ```ts
 * import { describe, it } from 'vitest'
 * import { testDcbRecorders } from 'eventsourcing/testing'
 *
 * testDcbRecorders({ describe, it }, {
 *   name: 'my backend',
 *   async setup() {
 *     const url = await createTestDatabase()
 *     return {
 *       persistence: myBackend({ url }),
 *       worker: { module: import.meta.resolve('my-backend'), exportName: 'myBackend', options: { url } },
 *       teardown: () => dropTestDatabase(url),
 *     }
 *   },
 * })
 * ```
 */
export function testDcbRecorders(api: TestApi, harness: DcbHarness): void {
  api.describe(`DCB recorder conformance: ${harness.name}`, () => {
    testDcbWrite(api, harness)
    testDcbRead(api, harness)
    testDcbTracking(api, harness)
    testDcbSubscribe(api, harness)
    testDcbConcurrency(api, harness)
    testDcbModel(api, harness)
  })
}

/** Opens a handle (connection) on the test's store: the DCB recorder of an application, `app` by default. */
export type OpenDcb = (applicationName?: string) => Promise<DcbRecorder>

/**
 * Runs `body` on a fresh store of the harness, with a function that opens DCB
 * recorders on it, and closes them and tears the store down afterwards.
 */
export async function withDcbStore(
  harness: DcbHarness,
  body: (open: OpenDcb, store: DcbStore) => Promise<void>,
): Promise<void> {
  const store = await harness.setup()
  const opened: DcbRecorders[] = []
  try {
    await body(async (applicationName = 'app') => {
      const recorders = await store.persistence.openDcb(applicationName)
      opened.push(recorders)
      return recorders.events
    }, store)
  } finally {
    try {
      for (const recorders of opened.reverse()) await recorders.close()
    } finally {
      await store.teardown()
    }
  }
}

/** Declares tests that each run on a fresh store (see {@link withDcbStore}). */
export function dcbTest(
  api: TestApi,
  harness: DcbHarness,
): (name: string, body: (open: OpenDcb, store: DcbStore) => Promise<void>) => unknown {
  return (name, body) => api.it(name, () => withDcbStore(harness, body))
}
