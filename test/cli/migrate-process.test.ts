// migrate as a user runs it: in a process of its own, killed midway (SIGKILL,
// at whatever point it has reached) and run again, rewriting the events of
// version 1 of a domain model so that version 2 loads them as they are.
import { setTimeout as sleep } from 'node:timers/promises'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { Mapper, type Notification } from '../../src/index.js'
import { recordIdentity } from '../../src/persistence/mapper.js'
import { runCli, storeFlags } from './child.js'
import { STORES, type Store } from './fixtures.js'
import { Dog, Kennel } from './modules/kennel-v1.js'

const DOGS = 200
const TRICKS = 14
const EVENTS = DOGS * (1 + TRICKS)

describe.each(STORES)('migrate in a process of its own, on %s', (_name, newStore) => {
  let store: Store

  beforeEach(async () => {
    store = newStore()
  })

  afterEach(async () => {
    await store.drop()
  })

  it('resumes after being killed midway, with no event twice or left out, and the result loads with the new classes', async () => {
    await seedKennel(store)
    await using source = await store.persistence().open('Kennel')
    await using target = await store.persistence().open('Kennel2')
    const before = await source.events.selectNotifications({ limit: EVENTS + 1 })
    const args = ['migrate', '--app', 'Kennel', ...storeFlags(store), '--target-app', 'Kennel2']
    const upcasting = [...args, '--module', 'test/cli/modules/kennel-v2.ts', '--batch-size', '5']

    const killed = runCli(upcasting)
    while ((await target.events.maxTrackingId('kennel')) === 0) await sleep(5)
    killed.child.kill('SIGKILL')
    expect(await killed.exit).toEqual({ code: null, signal: 'SIGKILL' })
    const copied = await target.events.maxTrackingId('kennel')
    expect(copied).toBeGreaterThan(0)
    expect(copied).toBeLessThan(EVENTS)
    // Each batch was written with its tracking record, or not at all.
    expect(await target.events.selectNotifications({ limit: EVENTS + 1 })).toHaveLength(copied)

    const resumed = runCli(upcasting)
    expect(await resumed.exit).toEqual({ code: 0, signal: null })
    expect(resumed.stderr()).toBe(
      `Migrated ${EVENTS - copied} events of 'Kennel' into 'Kennel2' (going on after notification ${copied})\n`,
    )
    const after = await target.events.selectNotifications({ limit: EVENTS + 1 })
    expect(after.map(position)).toEqual(before.map(position))
    expect(await source.events.selectNotifications({ limit: EVENTS + 1 })).toEqual(before)
    expect(new Set(after.map((event) => event.topic))).toEqual(
      new Set(['kennel:Dog.Registered', 'kennel:Dog.TrickLearnt']),
    )
    const registered = after.find((event) => event.topic === 'kennel:Dog.Registered') as Notification
    expect(decoded(registered)).toMatchObject({ name: 'Dog 0', breed: 'unknown', classVersion: 2 })

    const loaded = runCli([
      'state',
      registered.originatorId,
      '--app',
      'Kennel2',
      ...storeFlags(store),
      '--module',
      'test/cli/modules/kennel-v2.ts',
      '--json',
    ])
    expect(await loaded.exit).toEqual({ code: 0, signal: null })
    const state = (JSON.parse(loaded.stdout()) as { state: Record<string, unknown> }).state
    expect(state).toMatchObject({ name: 'Dog 0', breed: 'unknown', version: 1 + TRICKS })
    expect(state.tricks).toEqual(Array.from({ length: TRICKS }, (_, i) => `trick ${i}`))

    const again = runCli(upcasting)
    expect(await again.exit).toEqual({ code: 0, signal: null })
    expect(again.stderr()).toBe(
      `Migrated 0 events of 'Kennel' into 'Kennel2' (going on after notification ${EVENTS})\n`,
    )
  })

  it('names a module that declares no class of the events, and one that does not exist', async () => {
    await seedKennel(store, 1)
    const args = ['migrate', '--app', 'Kennel', ...storeFlags(store), '--target-app', 'Kennel2']
    const unknown = runCli([...args, '--module', 'test/cli/modules/nothing.ts'])
    expect(await unknown.exit).toEqual({ code: 1, signal: null })
    expect(unknown.stderr()).toMatch(
      /^eventsourcing: No class declares topic 'kennel:Dog.Registered' \(event 1 of '.*'\): give with --module the module that declares the aggregate and its events, or one that imports it\n$/,
    )
    const missing = runCli([...args, '--module', 'test/cli/modules/kennel-v3.ts'])
    expect(await missing.exit).toEqual({ code: 1, signal: null })
    expect(missing.stderr()).toMatch(/^eventsourcing: Module test\/cli\/modules\/kennel-v3.ts not found/)
  })
})

/** Records `dogs` dogs of version 1 of the model, each with its tricks, in one save. */
async function seedKennel(store: Store, dogs = DOGS): Promise<void> {
  await using kennel = new Kennel({ persistence: store.persistence(), env: {} })
  const all = Array.from({ length: dogs }, (_, i) => {
    const dog = Dog.register(`Dog ${i}`)
    for (let trick = 0; trick < TRICKS; trick++) dog.addTrick(`trick ${trick}`)
    return dog
  })
  await kennel.save(...all)
}

function position({ originatorId, originatorVersion }: Notification): string {
  return `${originatorId}@${originatorVersion}`
}

function decoded({ state, topic, originatorId, originatorVersion }: Notification): Record<string, unknown> {
  return new Mapper().decodeState(state, recordIdentity(topic, originatorId, originatorVersion), 'event')
}
