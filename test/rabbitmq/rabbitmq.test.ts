// The tests of `eventsourcing/rabbitmq`, against a real broker: RABBITMQ_URL,
// or one on 127.0.0.1, or a node of this machine's rabbitmq-server started
// here (and stopped after; see broker.ts). Where it is not installed they are skipped with a note
// saying how to get it (see test/services.ts); with CI=true they fail instead.
//
// They are one test file, so that the test that stops the broker never runs
// beside the others (vitest runs test files in parallel); the suites live in
// the modules imported here.

import { afterAll, beforeAll, describe } from 'vitest'
import { rabbitMq, skipNote, skipReason } from '../services.js'
import { ensureBroker } from './broker.js'
import { faultTests } from './fault-tests.js'
import { flowTests } from './flow-tests.js'
import { publisherTests } from './publisher-tests.js'
import { republisherTests } from './republisher-tests.js'

const missing = await skipReason(rabbitMq)
if (missing !== undefined) console.warn(skipNote(rabbitMq, missing))

describe.skipIf(missing !== undefined)('RabbitMQ', () => {
  let stopBroker: () => Promise<void> = async () => {}
  beforeAll(async () => {
    stopBroker = await ensureBroker()
  }, 200_000)
  afterAll(() => stopBroker(), 120_000)
  describe('rabbitMqPublisher', publisherTests)
  describe('rabbitMqRepublisher', republisherTests)
  describe('the relay flow', flowTests)
  describe('faults', faultTests)
})
