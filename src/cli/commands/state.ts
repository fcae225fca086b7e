import Table from 'cli-table3'
import { type AggregateState, loadClasses, rebuildAggregate } from '../aggregate-state.js'
import { type CommandIo, jsonValue, writeTo } from '../output.js'
import { openStorage, type StorageOptions } from '../storage.js'

/** The options of the `state` command. */
export interface StateOptions extends StorageOptions {
  /** The user's module that declares the aggregate's classes, or imports them (see `loadClasses`). */
  readonly module: string
  /** The version to rebuild the aggregate at (its latest when not given). */
  readonly version?: number
  /** One JSON object instead of a table. */
  readonly json?: boolean
}

/**
 * The `state` command: writes one aggregate's state, rebuilt from its events
 * with the user's own classes at a version (its latest by default).
 *
 * @throws UserModuleError when the module cannot be loaded.
 * @throws NotFoundError when the application has no events of that id, or not that version.
 * @throws UnknownTopicError when the module does not declare an event's class.
 * @throws DataError when a state does not decode with the cipher key and compression given.
 */
export async function state(originatorId: string, options: StateOptions, io: CommandIo): Promise<void> {
  const transcodings = await loadClasses(options.module)
  await using storage = await openStorage(options, io.env, { transcodings })
  const rebuilt = await rebuildAggregate(storage, originatorId, options.version)
  await writeTo(io.stdout, options.json ? stateJson(rebuilt) : stateTable(rebuilt))
}

function stateJson({ aggregate, className, classTopic, latestVersion }: AggregateState): string {
  const json = { class: className, topic: classTopic, latestVersion, state: { ...aggregate } }
  return `${JSON.stringify(json, jsonValue)}\n`
}

function stateTable({ aggregate, className, latestVersion }: AggregateState): string {
  const table = new Table({ head: ['field', 'value'], style: { head: [], border: [] } })
  for (const [field, value] of Object.entries(aggregate)) table.push([field, JSON.stringify(value, jsonValue) ?? ''])
  const title = `${className} '${aggregate.id}' at version ${aggregate.version} of ${latestVersion}`
  return `${title}\n${table.toString()}\n`
}
