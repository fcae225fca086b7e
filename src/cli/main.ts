#!/usr/bin/env node
// The `eventsourcing` command. It only wires commands to their modules, which
// are imported when run, so `--help` works without any database driver (the
// type imports below are erased).
import { readFileSync } from 'node:fs'
import { Command, InvalidArgumentError, Option } from 'commander'
import { errorMessage } from '../persistence/errors.js'
import type { AppsOptions } from './commands/apps.js'
import type { EventsOptions } from './commands/events.js'
import type { ExportOptions } from './commands/export.js'
import type { ImportOptions } from './commands/import.js'
import type { LogOptions } from './commands/log.js'
import type { MigrateOptions } from './commands/migrate.js'
import type { StateOptions } from './commands/state.js'
import type { StudioCommandOptions } from './commands/studio.js'
import type { TrackersOptions } from './commands/trackers.js'
import type { CommandIo } from './output.js'

// The same relative path from src/cli (tests) and dist/cli (the installed bin).
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string
}

const program = new Command()
  .name('eventsourcing')
  .description('Event sourcing for TypeScript: tools and demos')
  .version(version)
  .option('--debug', 'print the stack of an error, not only its message')
  // Its own options before the command: `state --version <n>` is the command's, not the program's version.
  .enablePositionalOptions()

program
  .command('demo')
  .description(
    'run the dog school example and print its notification log: on SQLite, or on the backend PERSISTENCE names (configured by its variables)',
  )
  .option('--db <path>', 'the SQLite file to use (SQLITE_PATH; default eventsourcing-demo.db)')
  .action(async (options: { db?: string }) => {
    const { demo } = await import('./commands/demo.js')
    await demo({ db: options.db, env: process.env }, (text) => process.stdout.write(text))
  })

/**
 * The process's streams and variables. For a command that runs until stopped,
 * Ctrl-C ends it cleanly (its storage closed, exit code 0); any other command
 * is interrupted by Ctrl-C as usual.
 */
function processIo({ stoppable = false } = {}): CommandIo {
  const io = { env: process.env, stdin: process.stdin, stdout: process.stdout, stderr: process.stderr }
  if (!stoppable) return io
  const stopping = new AbortController()
  process.once('SIGINT', () => stopping.abort())
  return { ...io, signal: stopping.signal }
}

/** Adds the flags that choose an application's storage; each sets the variable named, which they override. */
function withStorage(command: Command): Command {
  return withDatabase(command.requiredOption('--app <name>', "the application's name (its tables are named after it)"))
}

/** Adds the flags that choose the database and how its events are encoded, for one application or several. */
function withDatabase(command: Command): Command {
  return command
    .addOption(new Option('--persistence <name>', 'the backend (PERSISTENCE)').choices(['sqlite', 'postgres']))
    .option('--sqlite-path <file>', 'the SQLite file (SQLITE_PATH; implies --persistence sqlite)')
    .option('--postgres-url <url>', 'the PostgreSQL server (POSTGRES_URL; implies --persistence postgres)')
    .option('--postgres-schema <schema>', 'the PostgreSQL schema (POSTGRES_SCHEMA)')
    .option('--cipher-key <key>', 'the base64 key the events are encrypted with (CIPHER_KEY)')
    .option('--compress', 'the events are compressed with zlib (COMPRESSOR=zlib)')
}

function positiveInteger(value: string): number {
  const number = Number(value)
  if (!Number.isSafeInteger(number) || number < 1) throw new InvalidArgumentError('Not a positive integer.')
  return number
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value]
}

withStorage(program.command('log'))
  .description("print an application's notification log, a page at a time, or follow it live")
  .option('--from <id>', 'the first notification id shown', positiveInteger)
  .option('--limit <n>', 'how many notifications a page shows (default 20)', positiveInteger)
  .option('--topic <topic>', 'only notifications of this topic (repeatable)', collect)
  .option('--originator <id>', "only one aggregate's notifications")
  .option('--follow', 'keep printing new notifications as they are recorded, until Ctrl-C')
  .option('--json', 'one JSON object a line instead of a table')
  .action(async (options: LogOptions & { topic?: string[] }) => {
    const { log } = await import('./commands/log.js')
    await log({ ...options, topics: options.topic }, processIo({ stoppable: options.follow }))
  })

withDatabase(program.command('apps'))
  .description('list the applications stored in the database, with their event counts and last notification ids')
  .option('--json', 'one JSON object a line instead of a table')
  .action(async (options: AppsOptions) => {
    const { apps } = await import('./commands/apps.js')
    await apps(options, processIo())
  })

withDatabase(program.command('trackers'))
  .description("show each follower's position in each upstream log of the database, and how far behind it is")
  .option(
    '--module <file>',
    "the module (.js or .ts) that exports the followers' ProcessApplication classes (or their System): counts each in the topics it follows",
  )
  .option('--topic <topic>', 'count only notifications of this topic, instead of those followed (repeatable)', collect)
  .option('--projection <name>', 'also show this projection store or relay (repeatable)', collect)
  .option('--json', 'one JSON object a line instead of a table')
  .action(async (options: TrackersOptions & { topic?: string[]; projection?: string[] }) => {
    const { trackers } = await import('./commands/trackers.js')
    await trackers({ ...options, topics: options.topic, projections: options.projection }, processIo())
  })

withStorage(program.command('events'))
  .description("print one aggregate's events, with their state decoded")
  .argument('<originator-id>', "the aggregate's id")
  .option('--json', 'one JSON object a line instead of a table')
  .action(async (originatorId: string, options: EventsOptions) => {
    const { events } = await import('./commands/events.js')
    await events(originatorId, options, processIo())
  })

withStorage(program.command('state'))
  .description("print one aggregate's state, rebuilt from its events with your own classes")
  .argument('<originator-id>', "the aggregate's id")
  .requiredOption(
    '--module <file>',
    'the module (.js or .ts) that declares the aggregate and its events, or imports them',
  )
  .option('--version <n>', 'rebuild it at this version (default: its latest)', positiveInteger)
  .option('--json', 'one JSON object instead of a table')
  .action(async (originatorId: string, options: StateOptions) => {
    const { state } = await import('./commands/state.js')
    await state(originatorId, options, processIo())
  })

withStorage(program.command('export'))
  .description("write an application's stored events as NDJSON (snapshots and tracking records are not exported)")
  .option('--output <file>', 'the file to write (stdout when not given)')
  .action(async (options: ExportOptions) => {
    const { exportEvents } = await import('./commands/export.js')
    await exportEvents(options, processIo())
  })

withStorage(program.command('import'))
  .description('record the events of an NDJSON export in an application, with the same versions and order')
  .option('--input <file>', 'the file to read (stdin when not given)')
  .option('--append', 'record them after the events the application has (refused otherwise)')
  .action(async (options: ImportOptions) => {
    const { importEvents } = await import('./commands/import.js')
    await importEvents(options, processIo())
  })

withDatabase(program.command('studio'))
  .description(
    "serve a read-only web page over the database's applications: logs (live), aggregates, followers, DCB stores",
  )
  .option('--app <name>', 'show this application (repeatable; default: every one found)', collect)
  .option(
    '--module <file>',
    "the module (.js or .ts) that declares the aggregates' classes: shows their states (and counts the followers it declares in their topics)",
  )
  .option('--projection <name>', 'also show the positions of this projection store or relay (repeatable)', collect)
  .option('--host <address>', 'the address to listen on (default 127.0.0.1; another one needs --expose)')
  .option('--port <n>', 'the port to listen on (default 4141)', positiveInteger)
  .option(
    '--expose',
    'allow an address other machines reach; they then need the access token (EVENTSOURCING_STUDIO_TOKEN, else a random one)',
  )
  .action(async (options: StudioCommandOptions & { app?: string[]; projection?: string[] }) => {
    const { studio } = await import('./commands/studio.js')
    const { app, projection, ...rest } = options
    await studio({ ...rest, apps: app, projections: projection }, processIo({ stoppable: true }))
  })

withStorage(program.command('migrate'))
  .description(
    "copy an application's events into a new one (same or other database), rewritten by your classes' upcasters or a transform; resumable",
  )
  .addOption(
    new Option(
      '--module <file>',
      'the module (.js or .ts) whose classes upcast the events (written as their classes are today)',
    ).conflicts('transform'),
  )
  .option('--transform <file>', 'a module (.js or .ts) whose default export rewrites each event: (event) => event')
  .option('--target-app <name>', "the target application's name (default: the source's)")
  .addOption(new Option('--target-persistence <name>', "the target's backend").choices(['sqlite', 'postgres']))
  .option('--target-sqlite-path <file>', "the target's SQLite file (default: the source's database)")
  .option('--target-postgres-url <url>', "the target's PostgreSQL server (default: the source's database)")
  .option('--target-postgres-schema <schema>', "the target's PostgreSQL schema")
  .option('--target-cipher-key <key>', "the base64 key to encrypt the target's events with (default: the source's)")
  .option('--target-compress', "compress the target's events with zlib (they are when the source's are)")
  .option('--batch-size <n>', 'events copied per transaction (default 500)', positiveInteger)
  .action(async (options: MigrateOptions) => {
    const { migrate } = await import('./commands/migrate.js')
    await migrate(options, processIo())
  })

try {
  await program.parseAsync()
} catch (error) {
  process.stderr.write(`eventsourcing: ${errorMessage(error)}\n`)
  if (program.opts<{ debug?: boolean }>().debug && error instanceof Error) process.stderr.write(`${error.stack}\n`)
  process.exitCode = 1
}
