#!/usr/bin/env node
// The `eventsourcing` command. It only wires commands to their modules, which
// are imported when run, so `--help` works without any database driver.
import { readFileSync } from 'node:fs'
import { Command } from 'commander'
import { errorMessage } from '../persistence/errors.js'

// The same relative path from src/cli (tests) and dist/cli (the installed bin).
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string
}

const program = new Command()
  .name('eventsourcing')
  .description('Event sourcing for TypeScript: tools and demos')
  .version(version)

program
  .command('demo')
  .description('run the dog school example on SQLite and print its notification log')
  .option('--db <path>', 'the SQLite file to use', 'eventsourcing-demo.db')
  .action(async (options: { db: string }) => {
    const { demo } = await import('./commands/demo.js')
    await demo(options.db, (text) => process.stdout.write(text))
  })

try {
  await program.parseAsync()
} catch (error) {
  process.stderr.write(`eventsourcing: ${errorMessage(error)}\n`)
  process.exitCode = 1
}
