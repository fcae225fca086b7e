import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { UnknownTopicError } from '../../src/cli/aggregate-state.js'
import { state } from '../../src/cli/commands/state.js'
import { UserModuleError } from '../../src/cli/user-module.js'
import { AesGcmCipher, DataError, NotFoundError } from '../../src/index.js'
import { capture, STORES, type Store, seed } from './fixtures.js'

const app = 'DogSchool'
// The dog school's own module, as a user would give theirs: TypeScript, declaring the aggregate and its events.
const module = 'src/cli/dog-school.ts'

describe.each(STORES)('state on %s', (_name, newStore) => {
  let store: Store
  let ids: string[]

  beforeEach(async () => {
    store = newStore()
    ids = await seed(store)
  })

  afterEach(async () => {
    await store.drop()
  })

  it("prints an aggregate's latest state, rebuilt with the module's classes, as a table", async () => {
    const out = capture()
    await state(ids[0] as string, { app, ...store.flags, module }, out.io)
    expect(out.stdout()).toMatch(new RegExp(`^Dog '${ids[0]}' at version 3 of 3\n`))
    expect(out.stdout()).toMatch(/│ name\s+│ "Fido"\s+│/)
    expect(out.stdout()).toMatch(/│ tricks\s+│ \["roll over","play dead"\]\s+│/)
    expect(out.stdout()).toMatch(/│ version\s+│ 3\s+│/)
  })

  it('rebuilds it at any version, and writes JSON with --json', async () => {
    for (const [version, tricks] of [
      [1, []],
      [2, ['fetch']],
      [3, ['fetch', 'sit']],
    ] as const) {
      const out = capture()
      await state(ids[1] as string, { app, ...store.flags, module, version, json: true }, out.io)
      const json = JSON.parse(out.stdout()) as Record<string, unknown>
      expect(json).toMatchObject({ class: 'Dog', topic: 'dogschool:Dog', latestVersion: 3 })
      expect(json.state).toMatchObject({ id: ids[1], version, name: 'Buster', tricks, discarded: false })
    }
  })

  it('names what is missing: the aggregate, the version, the module', async () => {
    const options = { app, ...store.flags, module }
    await expect(state('no-such-dog', options, capture().io)).rejects.toThrow(NotFoundError)
    await expect(state('no-such-dog', options, capture().io)).rejects.toThrow(
      "Application 'DogSchool' has no events of 'no-such-dog': check the id (see the log)",
    )
    await expect(state(ids[2] as string, { ...options, version: 3 }, capture().io)).rejects.toThrow(
      `Aggregate '${ids[2]}' has versions 1 to 2, not 3: ask for one of them`,
    )
    const missing = state(ids[0] as string, { ...options, module: 'src/cli/no-such-module.ts' }, capture().io)
    await expect(missing).rejects.toThrow(UserModuleError)
    await expect(missing).rejects.toThrow(
      /^Module src\/cli\/no-such-module\.ts not found \(looked for \/.*\): check the path$/,
    )
    const failing = state(ids[0] as string, { ...options, module: 'test/cli/modules/throws.ts' }, capture().io)
    await expect(failing).rejects.toThrow(UserModuleError)
    await expect(failing).rejects.toThrow('Module test/cli/modules/throws.ts failed to load: the module threw')
  })

  it('decodes with the cipher key, and a wrong key is an error naming the event', async () => {
    const key = AesGcmCipher.createKey()
    const [id] = await seed(store, { name: 'Vault', cipherKey: key })
    const options = { app: 'Vault', ...store.flags, module }
    const out = capture()
    await state(id as string, { ...options, cipherKey: key, json: true }, out.io)
    expect((JSON.parse(out.stdout()) as { state: unknown }).state).toMatchObject({ name: 'Fido', version: 3 })
    const wrong = state(id as string, { ...options, cipherKey: AesGcmCipher.createKey() }, capture().io)
    await expect(wrong).rejects.toThrow(DataError)
    await expect(wrong).rejects.toThrow(`Cannot read event 1 of '${id}' (topic 'dogschool:Dog.Registered')`)
    const none = state(id as string, options, capture().io)
    await expect(none).rejects.toThrow(/no cipher key is configured: set CIPHER_KEY/)
  })

  it("decodes the user's own types with the transcodings the module exports", async () => {
    const { Bank, Money, Wallet, transcodings } = await import('./modules/wallet.js')
    await using bank = new Bank({ persistence: store.persistence(), env: {}, transcodings })
    const wallet = Wallet.create(Wallet.Opened, {})
    wallet.deposit(new Money(250, 'EUR'))
    await bank.save(wallet)
    const out = capture()
    await state(wallet.id, { app: 'Bank', ...store.flags, module: 'test/cli/modules/wallet.ts', json: true }, out.io)
    expect((JSON.parse(out.stdout()) as { state: unknown }).state).toMatchObject({
      balance: { cents: 250, currency: 'EUR' },
    })
  })

  it('needs the classes of every event it replays', async () => {
    // The dog school's classes are declared in this process (by the seed), so an unknown topic is made up.
    await using recorders = await store.persistence().open(app)
    await recorders.events.insertEvents([
      { originatorId: 'cat', originatorVersion: 1, topic: 'cattery:Cat.Registered', state: Buffer.from('{}') },
    ])
    const unknown = state('cat', { app, ...store.flags, module }, capture().io)
    await expect(unknown).rejects.toThrow(UnknownTopicError)
    await expect(unknown).rejects.toThrow(
      "No class declares topic 'cattery:Cat.Registered' (event 1 of 'cat'): give with --module the module that declares the aggregate and its events, or one that imports it",
    )
  })
})
