// How the commands load the user's own modules (`--module`, `--transform`):
// JavaScript as Node imports it, and TypeScript as the worker threads run it,
// by Node itself where it strips types, and through tsx elsewhere.
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { errorCode, errorMessage, ProgrammingError } from '../persistence/errors.js'

/** A user module could not be loaded: it does not exist, its TypeScript has no loader, or evaluating it failed. */
export class UserModuleError extends ProgrammingError {}

/** A module's exports, by name. */
export type UserModule = Readonly<Record<string, unknown>>

const TYPESCRIPT = /\.[mc]?tsx?$/

/** The tsx loader, registered once per process when a TypeScript module needs it. */
let tsxRegistered: Promise<void> | undefined

/**
 * Imports the module at `file` (a path, relative to `cwd`), and returns its
 * exports. A TypeScript module is imported as Node imports it where Node runs
 * TypeScript itself (22.18 and later), or where a loader is registered already
 * (`node --import tsx`); otherwise through tsx's `register()` from
 * `tsx/esm/api`, the loader the worker threads' setup registers, made the
 * process's loader from then on. tsx is an optional peer dependency: only
 * TypeScript modules on such a Node need it. A `.ts` module is ECMAScript
 * where its package.json says `"type": "module"`; elsewhere name it `.mts`.
 *
 * Not tsx's `tsImport`: it loads a module, and everything it imports, in a
 * namespace of its own, so the `eventsourcing` it imports would be a second
 * copy of the library, with topics and classes that this one cannot see.
 *
 * @throws UserModuleError when the file does not exist, when it is
 * TypeScript that Node cannot run and tsx is not installed, or when
 * evaluating it throws (the error is its `cause`).
 */
export async function loadUserModule(file: string, cwd = process.cwd()): Promise<UserModule> {
  const path = resolve(cwd, file)
  if (!existsSync(path)) throw new UserModuleError(`Module ${file} not found (looked for ${path}): check the path`)
  const url = pathToFileURL(path).href
  try {
    return await importModule(url, file)
  } catch (error) {
    if (error instanceof UserModuleError) throw error
    const message = errorMessage(error).split('\n')[0]
    // tsx compiles a .ts file to CommonJS outside a package of "type": "module",
    // and Node then fails to require() it (with one error or another, by version).
    const reason =
      /\.tsx?$/.test(file) && message?.includes('require()')
        ? `it was loaded as CommonJS, outside a package of "type": "module": name it .mts, or set "type": "module" in its package.json (${message})`
        : message
    throw new UserModuleError(`Module ${file} failed to load: ${reason}`, { cause: error })
  }
}

async function importModule(url: string, file: string): Promise<UserModule> {
  try {
    return (await import(url)) as UserModule
  } catch (error) {
    // Node refuses a TypeScript file before evaluating anything of it.
    if (!isTypeScriptRefused(error)) throw error
  }
  await registerTsx(file)
  // Node keeps the refusal for that URL: the same file under another URL is loaded anew, by the loader.
  return (await import(`${url}?loader=tsx`)) as UserModule
}

/** True for Node's refusal to import a file it takes for TypeScript it cannot run. */
function isTypeScriptRefused(error: unknown): boolean {
  if (errorCode(error) !== 'ERR_UNKNOWN_FILE_EXTENSION') return false
  const extension = /Unknown file extension "([^"]+)"/.exec(errorMessage(error))?.[1]
  return extension !== undefined && TYPESCRIPT.test(extension)
}

function registerTsx(file: string): Promise<void> {
  tsxRegistered ??= (async () => {
    let api: { register: () => unknown }
    try {
      api = (await import('tsx/esm/api')) as typeof api
    } catch (error) {
      if (errorCode(error) !== 'ERR_MODULE_NOT_FOUND') throw error
      tsxRegistered = undefined
      throw new UserModuleError(
        `Module ${file} is TypeScript, which Node ${process.version} cannot import by itself, and tsx is not installed: ` +
          'install it (npm install --save-dev tsx), or give the module compiled to JavaScript, or use Node 22.18 or later',
        { cause: error },
      )
    }
    api.register()
  })()
  return tsxRegistered
}
