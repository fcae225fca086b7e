import { ProgrammingError } from './errors.js'

/**
 * Imports a database driver with `importer`, dynamically, so that the core never
 * loads a driver it does not use (drivers are optional peer dependencies).
 *
 * @throws ProgrammingError with the message `failure(error)` gives, saying how
 * to install the driver, when the import fails.
 */
export async function importDriver<T>(
  importer: () => Promise<{ default: T }>,
  failure: (error: unknown) => string,
): Promise<T> {
  try {
    return (await importer()).default
  } catch (error) {
    throw new ProgrammingError(failure(error), { cause: error })
  }
}

/** Returns a function that runs `load` once and shares its result; a failure is forgotten, so a later call tries again. */
export function loadOnce<T>(load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined
  return () => {
    loading ??= load().catch((error: unknown) => {
      loading = undefined
      throw error
    })
    return loading
  }
}
