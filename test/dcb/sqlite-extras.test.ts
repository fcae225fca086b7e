import { describe, expect, it } from 'vitest'
import { dcbTables } from '../../src/persistence/dcb.js'
import { ProgrammingError } from '../../src/persistence/errors.js'
import { sqlite } from '../../src/sqlite/index.js'

// What the DCB conformance suite leaves to each backend: SQLite's table names and options.
describe('SQLite DCB recorder', () => {
  it('stores the DCB events of an application with the longest name allowed', async () => {
    const name = `a${'b'.repeat(52)}`
    await using recorders = await sqlite({ path: ':memory:' }).openDcb(name)
    await recorders.events.append([{ type: 'A', data: new Uint8Array([1]), tags: ['t'] }])
    expect((await recorders.events.read([{ tags: ['t'] }])).events).toHaveLength(1)
    expect(dcbTables(name).tags).toHaveLength(62)
  })

  it('shares the tracking table of the application with its aggregate recorders', async () => {
    const persistence = sqlite({ path: ':memory:' })
    await using dcb = await persistence.openDcb('app')
    await using recorders = await persistence.open('app')
    await dcb.events.append([], undefined, { tracking: { applicationName: 'upstream', notificationId: 3 } })
    expect(await recorders.events.maxTrackingId('upstream')).toBe(3)
  })

  it('names the missing table when told not to create tables', async () => {
    await using recorders = await sqlite({ path: ':memory:', createTables: false }).openDcb('app')
    const reading = recorders.events.read([{ tags: ['t'] }])
    await expect(reading).rejects.toThrow(ProgrammingError)
    await expect(recorders.events.head()).rejects.toThrow(/Table app_dcb does not exist.*createTables: true/)
  })
})
