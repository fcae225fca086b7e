// Helpers of the command tests: the backends a command runs on, stores seeded
// by the dog school, and a command's streams captured.
import { join } from 'node:path'
import { Readable, Writable } from 'node:stream'
import { DogSchool } from '../../src/cli/dog-school.js'
import type { CommandIo } from '../../src/cli/output.js'
import type { StorageOptions } from '../../src/cli/storage.js'
import type { Persistence } from '../../src/index.js'
import { postgres } from '../../src/postgres/index.js'
import { sqlite } from '../../src/sqlite/index.js'
import { tempDir } from '../fixtures/temp.js'
import { freshSchema, postgresUrl } from '../postgres/fixtures.js'

/** A store a command can be pointed at: its flags, the same store for the tests' own applications, and its clean-up. */
export interface Store {
  readonly flags: Omit<StorageOptions, 'app'>
  readonly persistence: () => Persistence
  readonly drop: () => Promise<void>
}

/** The backends the commands are tested on, each making a new, empty store per call. */
export const STORES: readonly [name: string, newStore: () => Store][] = [
  [
    'sqlite',
    () => {
      const sqlitePath = join(tempDir('es-cli-'), 'cli.db')
      return { flags: { sqlitePath }, persistence: () => sqlite({ path: sqlitePath }), drop: async () => {} }
    },
  ],
  [
    'postgres',
    () => {
      const { schema, drop } = freshSchema()
      const postgresUrl_ = postgresUrl()
      return {
        flags: { postgresUrl: postgresUrl_, postgresSchema: schema },
        persistence: () => postgres({ url: postgresUrl_, schema }),
        drop,
      }
    },
  ],
]

/** The dogs {@link seed} registers, with their tricks: 8 events in all. */
export const DOGS = [
  { name: 'Fido', tricks: ['roll over', 'play dead'] },
  { name: 'Buster', tricks: ['fetch', 'sit'] },
  { name: 'Milou', tricks: ['jump'] },
] as const

/** Runs the dog school on `store` (named `DogSchool`, or `name`) and returns the dogs' ids in registration order. */
export async function seed(
  store: Store,
  options: { name?: string; cipherKey?: string; compress?: boolean } = {},
): Promise<string[]> {
  await using school = new DogSchool({ persistence: store.persistence(), env: {}, ...options })
  const ids: string[] = []
  for (const { name, tricks } of DOGS) {
    const id = await school.register(name)
    for (const trick of tricks) await school.addTrick(id, trick)
    ids.push(id)
  }
  return ids
}

/** A command's streams, captured: what it wrote to stdout and stderr so far. */
export interface Captured {
  readonly io: CommandIo
  stdout(): string
  stderr(): string
}

/** Returns streams for a command that keep what it writes; `stdin` is what it reads, `tty` makes stderr pass for a terminal. */
export function capture(options: { stdin?: string; signal?: AbortSignal; tty?: boolean } = {}): Captured {
  const out: string[] = []
  const err: string[] = []
  const sink = (into: string[]) =>
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        into.push(chunk.toString())
        done()
      },
    })
  return {
    io: {
      env: {},
      stdin: Readable.from(options.stdin === undefined ? [] : [options.stdin]),
      stdout: sink(out),
      stderr: Object.assign(sink(err), { isTTY: options.tty ?? false }),
      signal: options.signal,
    },
    stdout: () => out.join(''),
    stderr: () => err.join(''),
  }
}
