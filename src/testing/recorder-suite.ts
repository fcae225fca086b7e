import type { Persistence } from '../persistence/recorder.js'
import { testDeleteEvents, testEvents, testSnapshots } from './aggregate-recorder-tests.js'
import { testApplications, testLacking } from './application-tests.js'
import { testConcurrency } from './concurrency-tests.js'
import { testModel } from './model-based-tests.js'
import { testNotificationLog } from './notification-tests.js'
import { testSubscribe } from './subscription-tests.js'
import { testTracking } from './tracking-tests.js'

/**
 * The `describe` and `it` functions of a test framework, which the suite
 * declares its tests with; those of vitest, node:test, Jest and Mocha fit.
 */
export interface TestApi {
  /** Declares a group of tests. */
  describe(name: string, body: () => void): unknown
  /** Declares a test, which fails when the returned promise rejects. */
  it(name: string, body: () => Promise<void>): unknown
}

/** A fresh, empty store made by a {@link RecorderHarness} for one test. */
export interface RecorderStore {
  /**
   * The backend under test. Opening the same application name twice must give
   * two handles (connections) on the same storage: the concurrency tests use them.
   */
  readonly persistence: Persistence
  /** Removes the store (files, schemas); called after each test, once its recorders are closed. */
  teardown(): Promise<void>
}

/** Describes a backend to {@link testRecorders}. */
export interface RecorderHarness {
  /** The name the tests are grouped under, e.g. `sqlite :memory:`. */
  readonly name: string
  /** Makes a fresh, empty store; called once per test (and per run of the property-based test). */
  setup(): Promise<RecorderStore>
  /**
   * The names the backend gives an application's tables, which its conflict
   * errors must then give as `table`; without it, any non-empty name passes.
   */
  tables?(applicationName: string): { readonly events: string; readonly snapshots: string; readonly tracking: string }
  /**
   * What the backend does not offer, each with the reason: the suite leaves
   * out the tests (or the steps of a test) that need it, and tests instead
   * that using it fails with a `ProgrammingError`. Declare only what the
   * backend cannot give; everything else must pass unchanged.
   */
  readonly lacks?: Readonly<Partial<Record<Capability, string>>>
}

/**
 * A part of the persistence contracts that a backend may lack: `dcb`, the DCB
 * recorders (`Persistence.openDcb`), which need one serialisation point for
 * every stream at once.
 */
export type Capability = 'dcb'

/** Returns true when the harness does not declare the capability lacking. */
export function offers(harness: RecorderHarness, capability: Capability): boolean {
  return harness.lacks?.[capability] === undefined
}

/**
 * Declares the recorder conformance suite for one backend: every rule of the
 * recorder contracts (atomic batches, unique versions, increasing ids that no
 * reader can skip under concurrent writers, monotonic tracking committed with
 * its events, live subscriptions, deletion, snapshots), plus a model-based
 * property test over random sequences of writes. A backend is done when it
 * passes unchanged, less what its harness declares it `lacks`. Assertions use
 * `node:assert/strict`, so the suite runs under any test framework.
 *
 * @example
 * ```ts
 * import { describe, it } from 'vitest'
 * import { testRecorders } from 'eventsourcing/testing'
 *
 * testRecorders({ describe, it }, {
 *   name: 'my backend',
 *   async setup() {
 *     const persistence = myBackend({ url: await createTestDatabase() })
 *     return { persistence, teardown: () => dropTestDatabase() }
 *   },
 * })
 * ```
 */
export function testRecorders(api: TestApi, harness: RecorderHarness): void {
  api.describe(`recorder conformance: ${harness.name}`, () => {
    testEvents(api, harness)
    testNotificationLog(api, harness)
    testConcurrency(api, harness)
    testTracking(api, harness)
    testSubscribe(api, harness)
    testDeleteEvents(api, harness)
    testSnapshots(api, harness)
    testApplications(api, harness)
    testModel(api, harness)
    testLacking(api, harness)
  })
}
