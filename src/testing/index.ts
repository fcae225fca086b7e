// The `eventsourcing/testing` entry point: the recorder conformance suite, for
// the built-in backends' tests and for users who write their own backend.

export {
  type DcbHarness,
  type DcbStore,
  type DcbWorkerBackend,
  testDcbRecorders,
} from './dcb-suite.js'
export {
  type Capability,
  type RecorderHarness,
  type RecorderStore,
  type TestApi,
  testRecorders,
} from './recorder-suite.js'
