import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { events } from '../../src/cli/commands/events.js'
import { EXPORT_PAGE_SIZE, exportEvents } from '../../src/cli/commands/export.js'
import {
  IMPORT_BATCH_SIZE,
  InputNotFoundError,
  importEvents,
  TargetNotEmptyError,
} from '../../src/cli/commands/import.js'
import { log } from '../../src/cli/commands/log.js'
import { DogSchool } from '../../src/cli/dog-school.js'
import { ApplicationNotFoundError } from '../../src/cli/storage.js'
import { AesGcmCipher, DataError, NotFoundError } from '../../src/index.js'
import { tempDir } from '../fixtures/temp.js'
import { capture, STORES, type Store, seed } from './fixtures.js'

const app = 'DogSchool'

describe.each(STORES)('the commands on %s', (_name, newStore) => {
  let store: Store
  let ids: string[]

  beforeEach(async () => {
    store = newStore()
    ids = await seed(store)
  })

  afterEach(async () => {
    await store.drop()
  })

  describe('log', () => {
    it('prints the notification log as a table, with each state decoded', async () => {
      const out = capture()
      await log({ app, ...store.flags }, out.io)
      expect(out.stdout()).toMatch(/│ id\s+│ originator\s+│ version │ topic\s+│ state\s+│/)
      expect(out.stdout()).toMatch(
        new RegExp(`│ 1\\s+│ ${ids[0]} │ 1\\s+│ dogschool:Dog.Registered │ \\{"name":"Fido"`),
      )
      expect(out.stdout()).toMatch(/│ 8\s+│ .* │ 2\s+│ dogschool:Dog.TrickAdded │ \{"trick":"jump"/)
      expect(out.stdout()).not.toContain('More:')
    })

    it('pages with --from and --limit, and says where the next page starts', async () => {
      const out = capture()
      await log({ app, ...store.flags, from: 3, limit: 2, json: true }, out.io)
      expect(jsonLines(out.stdout()).map((line) => line.id)).toEqual([3, 4])
      const table = capture()
      await log({ app, ...store.flags, from: 3, limit: 2 }, table.io)
      expect(table.stdout()).toContain('More: --from 5')
      const last = capture()
      await log({ app, ...store.flags, from: 7, limit: 2 }, last.io)
      expect(last.stdout()).not.toContain('More:')
    })

    it('filters by topic, and writes one JSON object a line with --json', async () => {
      const out = capture()
      await log({ app, ...store.flags, topics: ['dogschool:Dog.Registered'], json: true }, out.io)
      const lines = jsonLines(out.stdout())
      expect(lines.map((line) => [line.id, line.originatorId, line.originatorVersion, line.topic])).toEqual([
        [1, ids[0], 1, 'dogschool:Dog.Registered'],
        [4, ids[1], 1, 'dogschool:Dog.Registered'],
        [7, ids[2], 1, 'dogschool:Dog.Registered'],
      ])
      expect(lines[1]?.state).toMatchObject({ fields: { name: 'Buster' } })
    })

    it('follows the log: prints a notification recorded after it started, and ends when stopped', async () => {
      const stopping = new AbortController()
      const out = capture({ signal: stopping.signal })
      // From 9, the first id after the seed: where it starts without --from, after the end it finds, races the register below.
      const following = log({ app, ...store.flags, follow: true, from: 9, json: true }, out.io)
      await using school = new DogSchool({ persistence: store.persistence(), env: {} })
      const id = await school.register('Rex')
      await expect.poll(() => out.stdout(), { timeout: 10_000 }).toContain('Rex')
      stopping.abort()
      await following
      expect(jsonLines(out.stdout()).map((line) => [line.id, line.originatorId])).toEqual([[9, id]])
    })
    it('follows only the topics asked for, and says when a page is empty', async () => {
      const stopping = new AbortController()
      const out = capture({ signal: stopping.signal })
      const topics = ['dogschool:Dog.TrickAdded']
      const following = log({ app, ...store.flags, follow: true, from: 9, topics, json: true }, out.io)
      await using school = new DogSchool({ persistence: store.persistence(), env: {} })
      const id = await school.register('Rex')
      await school.addTrick(id, 'beg')
      await expect.poll(() => out.stdout(), { timeout: 10_000 }).toContain('beg')
      stopping.abort()
      await following
      expect(jsonLines(out.stdout()).map((line) => [line.id, line.topic])).toEqual([[10, topics[0]]])
      const empty = capture()
      await log({ app, ...store.flags, from: 11 }, empty.io)
      expect(empty.stdout()).toBe('No notifications.\n')
    })

    it('follows from the end of the log when no --from is given', async () => {
      const stopping = new AbortController()
      const out = capture({ signal: stopping.signal })
      const following = log({ app, ...store.flags, follow: true, json: true }, out.io)
      await using school = new DogSchool({ persistence: store.persistence(), env: {} })
      // Until the command has found the end, a new dog may count as old: register until one is printed.
      await expect
        .poll(
          async () => {
            await school.register('Rex')
            return out.stdout()
          },
          { timeout: 10_000, interval: 100 },
        )
        .toContain('Rex')
      stopping.abort()
      await following
      expect(out.stdout()).not.toContain('Fido')
    })
  })

  describe('events', () => {
    it("prints one aggregate's events in version order, decoded", async () => {
      const out = capture()
      await events(ids[0] as string, { app, ...store.flags, json: true }, out.io)
      const lines = jsonLines(out.stdout())
      expect(lines.map((line) => [line.originatorVersion, line.topic])).toEqual([
        [1, 'dogschool:Dog.Registered'],
        [2, 'dogschool:Dog.TrickAdded'],
        [3, 'dogschool:Dog.TrickAdded'],
      ])
      expect(lines.map((line) => line.state)).toMatchObject([
        { fields: { name: 'Fido' } },
        { fields: { trick: 'roll over' } },
        { fields: { trick: 'play dead' } },
      ])
      const table = capture()
      await events(ids[0] as string, { app, ...store.flags }, table.io)
      expect(table.stdout()).toMatch(/│ 3\s+│ dogschool:Dog.TrickAdded │ \{"trick":"play dead"/)
    })

    it('decrypts with the cipher key, shows the bytes safely without it, and fails on a wrong key', async () => {
      const key = AesGcmCipher.createKey()
      const [id] = await seed(store, { name: 'Vault', cipherKey: key })
      const options = { app: 'Vault', ...store.flags }
      const decoded = capture()
      await events(id as string, { ...options, cipherKey: key, json: true }, decoded.io)
      expect(jsonLines(decoded.stdout())[0]?.state).toMatchObject({ fields: { name: 'Fido' } })

      const bytes = capture()
      await events(id as string, { ...options, json: true }, bytes.io)
      const state = jsonLines(bytes.stdout())[0]?.state as { base64: string; bytes: number }
      expect(state.bytes).toBeGreaterThan(48)
      expect(state.base64).toMatch(/^[A-Za-z0-9+/]{64}…$/)
      expect(bytes.stdout()).not.toContain('Fido')

      const wrong = events(id as string, { ...options, cipherKey: AesGcmCipher.createKey() }, capture().io)
      await expect(wrong).rejects.toThrow(DataError)
      await expect(wrong).rejects.toThrow(/wrong cipher key/)
    })

    it('decompresses with --compress, and names the setting when it is missing', async () => {
      const [id] = await seed(store, { name: 'Packed', compress: true })
      const decoded = capture()
      await events(id as string, { app: 'Packed', ...store.flags, compress: true, json: true }, decoded.io)
      expect(jsonLines(decoded.stdout())[0]?.state).toMatchObject({ fields: { name: 'Fido' } })
      const bytes = capture()
      await events(id as string, { app: 'Packed', ...store.flags, json: true }, bytes.io)
      expect(jsonLines(bytes.stdout())[0]?.state).toMatchObject({ bytes: expect.any(Number) })
    })

    it('fails with NotFoundError for an originator with no events', async () => {
      await expect(events('no-such-dog', { app, ...store.flags }, capture().io)).rejects.toThrow(NotFoundError)
    })
  })

  describe('opening', () => {
    it('fails on a mistyped application, naming it and the missing table, and creates nothing', async () => {
      const attempt = log({ app: 'DogScool', ...store.flags }, capture().io)
      await expect(attempt).rejects.toThrow(ApplicationNotFoundError)
      await expect(attempt).rejects.toThrow(/No application 'DogScool' in this database \(.*dogscool_events/)
      // Nothing was created: a second look fails the same way.
      await expect(log({ app: 'DogScool', ...store.flags }, capture().io)).rejects.toThrow(ApplicationNotFoundError)
    })

    it('fails without a database, and on a bad URL', async () => {
      await expect(log({ app }, capture().io)).rejects.toThrow(/No database given/)
      await expect(log({ app, postgresUrl: 'not a url' }, capture().io)).rejects.toThrow(/Invalid PostgreSQL url/)
    })
  })

  describe.each(STORES)('export, then import into %s', (_target, newTarget) => {
    let target: Store

    beforeEach(() => {
      target = newTarget()
    })

    afterEach(async () => {
      await target.drop()
    })

    it('records the same events in the same order, with the same versions, topics and bytes', async () => {
      // Encrypted state travels as stored: its bytes are copied, not decoded.
      await seed(store, { name: 'Vault', cipherKey: AesGcmCipher.createKey() })
      const file = join(tempDir(), 'vault.ndjson')
      const exported = capture()
      expect(await exportEvents({ app: 'Vault', ...store.flags, output: file }, exported.io)).toBe(8)
      expect(exported.stderr()).toBe("Exported 8 events of 'Vault'\n")
      const lines = jsonLines(readFileSync(file, 'utf8'))
      expect(lines.map((line) => line.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])

      const imported = capture()
      expect(await importEvents({ app: 'Copy', ...target.flags, input: file }, imported.io)).toBe(8)
      expect(imported.stderr()).toBe("Imported 8 events into 'Copy'\n")

      await using source = await store.persistence().open('Vault')
      await using copy = await target.persistence().open('Copy')
      const before = await source.events.selectNotifications({ limit: 100 })
      const after = await copy.events.selectNotifications({ limit: 100 })
      const stored = (list: typeof before) =>
        list.map(({ originatorId, originatorVersion, topic, state }) => [
          originatorId,
          originatorVersion,
          topic,
          Buffer.from(state).toString('hex'),
        ])
      expect(stored(after)).toEqual(stored(before))
      // The target's own ids: its log was empty.
      expect(after.map((notification) => notification.id)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
    })

    it('pages through a log longer than a page, in batches, leaving the gaps of deleted events behind', async () => {
      const count = EXPORT_PAGE_SIZE * 2 + IMPORT_BATCH_SIZE + 7
      await using source = await store.persistence().open('Big')
      const batch = Array.from({ length: count }, (_, i) => ({
        originatorId: `agg-${i % 13}`,
        originatorVersion: Math.floor(i / 13) + 1,
        topic: `big:Event${i % 3}`,
        state: Uint8Array.of(i % 256, (i >> 8) % 256, 255),
      }))
      await source.events.insertEvents(batch)
      expect(await source.events.deleteEvents('agg-5')).toBeGreaterThan(0)
      const before = await source.events.selectNotifications({ limit: count })

      const file = join(tempDir(), 'big.ndjson')
      expect(await exportEvents({ app: 'Big', ...store.flags, output: file }, capture().io)).toBe(before.length)
      expect(await importEvents({ app: 'Big', ...target.flags, input: file }, capture().io)).toBe(before.length)

      await using copy = await target.persistence().open('Big')
      const after = await copy.events.selectNotifications({ limit: count })
      const stored = (list: typeof before) =>
        list.map(({ originatorId, originatorVersion, topic, state }) => ({
          originatorId,
          originatorVersion,
          topic,
          state: Buffer.from(state).toString('hex'),
        }))
      expect(stored(after)).toEqual(stored(before))
      expect(after.at(-1)?.id).toBe(before.length)
    })

    it('names an input file that does not exist, creating nothing', async () => {
      const missing = importEvents({ app: 'Nowhere', ...target.flags, input: 'missing.ndjson' }, capture().io)
      await expect(missing).rejects.toThrow(InputNotFoundError)
      await expect(missing).rejects.toThrow(/No file missing.ndjson: give --input/)
      expect(await target.persistence().listApplications()).toEqual([])
    })

    it('refuses a target that has events, unless told to append', async () => {
      const exported = capture()
      await exportEvents({ app, ...store.flags }, exported.io)
      await seed(target)
      const refused = importEvents({ app, ...target.flags }, capture({ stdin: exported.stdout() }).io)
      await expect(refused).rejects.toThrow(TargetNotEmptyError)
      await expect(refused).rejects.toThrow(/'DogSchool' already has events \(up to notification 8\).*--append/)
      await seed(target, { name: 'Fresh' })
      // The export's aggregates are new to the target, so appending them succeeds.
      const appended = capture({ stdin: exported.stdout() })
      expect(await importEvents({ app: 'Fresh', ...target.flags, append: true }, appended.io)).toBe(8)
      await using fresh = await target.persistence().open('Fresh')
      expect(await fresh.events.maxNotificationId()).toBe(16)
    })
  })

  it('export writes NDJSON to stdout when no file is given, and import names a line that is not an event', async () => {
    const out = capture()
    await exportEvents({ app, ...store.flags }, out.io)
    const lines = out.stdout().trimEnd().split('\n')
    expect(lines).toHaveLength(8)
    const bad = [...lines.slice(0, 2), '{"originatorId":"x"}'].join('\n')
    const file = join(tempDir(), 'bad.ndjson')
    writeFileSync(file, bad)
    const attempt = importEvents({ app: 'Broken', ...store.flags, input: file }, capture().io)
    await expect(attempt).rejects.toThrow(DataError)
    await expect(attempt).rejects.toThrow(/^Line 3 is not an exported event/)
    const damaged = lines[0]?.replace(/"state":"/, '"state":"*') as string
    const notBase64 = importEvents({ app: 'Damaged', ...store.flags }, capture({ stdin: damaged }).io)
    await expect(notBase64).rejects.toThrow(/^Line 1: its state is not base64/)
  })

  it('export and import draw a progress bar on a terminal, and only there', async () => {
    const file = join(tempDir(), 'dogs.ndjson')
    const exported = capture({ tty: true })
    await exportEvents({ app, ...store.flags, output: file }, exported.io)
    expect(exported.stderr()).toContain('100% | 8/8 notifications')
    expect(exported.stderr()).toMatch(/Exported 8 events of 'DogSchool'\n$/)
    const imported = capture({ tty: true })
    await importEvents({ app: 'Copy', ...store.flags, input: file }, imported.io)
    expect(imported.stderr()).toMatch(/100% \| (\d+)\/\1 bytes/)
    const piped = capture({ tty: true, stdin: readFileSync(file, 'utf8') })
    await importEvents({ app: 'Piped', ...store.flags }, piped.io)
    // From stdin the size is not known, so there is no bar; the count is still there.
    expect(piped.stderr()).toBe("Imported 8 events into 'Piped'\n")
  })

  it('does not create a missing SQLite file', async () => {
    const path = join(tempDir(), 'missing.db')
    await expect(log({ app, sqlitePath: path }, capture().io)).rejects.toThrow(
      `No application 'DogSchool': the SQLite file ${path} does not exist`,
    )
    expect(existsSync(path)).toBe(false)
  })
})

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .trimEnd()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, unknown>)
}
