import { ProgrammingError } from './errors.js'

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/

/**
 * Returns `name` if it is safe to use as an SQL table or schema name: letters,
 * digits and underscores, not starting with a digit, at most 63 characters.
 *
 * @throws ProgrammingError naming the bad identifier otherwise.
 */
export function validIdentifier(name: string, what = 'table name'): string {
  if (typeof name !== 'string' || !IDENTIFIER.test(name)) {
    throw new ProgrammingError(
      `Invalid ${what} ${JSON.stringify(name)}: use 1 to 63 letters, digits and underscores, not starting with a digit`,
    )
  }
  return name
}

/** The table names of one application's recorders. */
export interface ApplicationTables {
  /** The table of the application's events, which is also its notification log. */
  readonly events: string
  /** The table of the application's snapshots. */
  readonly snapshots: string
  /** The table of how far the application has processed upstream logs. */
  readonly tracking: string
}

/** Returns the validated table names for an application, e.g. `dogschool_events` for `DogSchool`. */
export function applicationTables(applicationName: string): ApplicationTables {
  const prefix = applicationName.toLowerCase()
  return {
    events: validIdentifier(`${prefix}_events`),
    snapshots: validIdentifier(`${prefix}_snapshots`),
    tracking: validIdentifier(`${prefix}_tracking`),
  }
}
