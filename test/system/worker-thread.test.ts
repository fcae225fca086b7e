// Errors cross from a worker thread to its runner as data (structured clone):
// each comes back of its own class, with the fields a program reads.

import { describe, expect, it } from 'vitest'
import {
  IntegrityError,
  ProcessingError,
  TopicError,
  TrackingConflictError,
  VersionConflictError,
} from '../../src/index.js'
import { errorData, errorFromData } from '../../src/system/worker-thread.js'

function crossed(error: unknown): Error {
  return errorFromData(structuredClone(errorData(error)))
}

describe('errors from worker threads', () => {
  it('keep a version conflict’s class and fields', () => {
    const conflict = { originatorId: 'order-1', originatorVersion: 3, table: 'orders_events' }
    const error = crossed(new VersionConflictError(conflict, { cause: new Error('duplicate key') }))
    expect(error).toBeInstanceOf(VersionConflictError)
    expect(error).toBeInstanceOf(IntegrityError)
    expect(error).toMatchObject({ ...conflict, name: 'VersionConflictError' })
    expect(error.message).toBe(new VersionConflictError(conflict).message)
    expect((error.cause as Error).message).toBe('duplicate key')
  })

  it('keep a tracking conflict’s class and fields, also as the cause of a processing error', () => {
    const conflict = { applicationName: 'Orders', notificationId: 7, table: 'reservations_tracking' }
    const notification = { id: 7, originatorId: 'o', originatorVersion: 1, topic: 't', state: new Uint8Array([1]) }
    const error = crossed(
      new ProcessingError('Reservations', 'Orders', notification, 1, new TrackingConflictError(conflict)),
    )
    expect(error).toBeInstanceOf(ProcessingError)
    expect(error).toMatchObject({ follower: 'Reservations', upstream: 'Orders', attempts: 1 })
    expect(error.cause).toBeInstanceOf(TrackingConflictError)
    expect(error.cause).toMatchObject(conflict)
  })

  it('keep the class of other errors of the library', () => {
    const error = crossed(new TopicError('Unknown topic'))
    expect(error).toBeInstanceOf(TopicError)
    expect(error.message).toBe('Unknown topic')
  })
})
