// The tests of `eventsourcing/rabbitmq`, against a real broker (RABBITMQ_URL,
// or the default guest account on 127.0.0.1). Without one they are skipped
// with a message saying how to start it; with CI=true they fail instead.
//
// They are one test file, so that the test that stops the broker never runs
// beside the others (vitest runs test files in parallel); the suites live in
// the modules imported here.

import { describe } from 'vitest'
import { faultTests } from './fault-tests.js'
import { HOW_TO_START, IN_CI, unreachable } from './fixtures.js'
import { flowTests } from './flow-tests.js'
import { publisherTests } from './publisher-tests.js'
import { republisherTests } from './republisher-tests.js'

const missing = await unreachable()
if (missing !== undefined) {
  if (IN_CI) throw new Error(`${missing}, and CI is set, so the RabbitMQ tests cannot be skipped: ${HOW_TO_START}`)
  console.warn(`Skipping the RabbitMQ tests: ${missing}. To run them: ${HOW_TO_START}`)
}

describe.skipIf(missing !== undefined)('RabbitMQ', () => {
  describe('rabbitMqPublisher', publisherTests)
  describe('rabbitMqRepublisher', republisherTests)
  describe('the relay flow', flowTests)
  describe('faults', faultTests)
})
