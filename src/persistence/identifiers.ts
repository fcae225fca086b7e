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

// The longest table suffix, `_snapshots`, must fit in the 63 characters of an identifier.
const APPLICATION_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,52}$/

/**
 * Returns `name` if it can name an application on every built-in backend: 1 to
 * 53 letters, digits and underscores, not starting with a digit. The name is
 * the prefix of the application's tables (`dogschool_events`, the longest
 * being `dogschool_snapshots`: 63 characters at most) and, in upper case, of
 * its environment variables (`DOGSCHOOL_PERSISTENCE`), so it must be valid as both.
 *
 * @throws ProgrammingError naming the application and the rule otherwise.
 */
export function validApplicationName(name: string): string {
  if (typeof name !== 'string' || !APPLICATION_NAME.test(name)) {
    throw new ProgrammingError(
      `Invalid application name ${JSON.stringify(name)}: use 1 to 53 letters, digits and underscores, not starting with a digit ` +
        '(it prefixes the tables and the environment variables): pass { name } or set the static applicationName',
    )
  }
  return name
}

/** Returns true if `name` is an application name that {@link validApplicationName} takes. */
export function isApplicationName(name: string): boolean {
  return APPLICATION_NAME.test(name)
}

/**
 * Returns the validated table names for an application, e.g. `dogschool_events` for `DogSchool`.
 *
 * @throws ProgrammingError for an invalid application name (see {@link validApplicationName}).
 */
export function applicationTables(applicationName: string): ApplicationTables {
  const prefix = validApplicationName(applicationName).toLowerCase()
  return {
    events: validIdentifier(`${prefix}_events`),
    snapshots: validIdentifier(`${prefix}_snapshots`),
    tracking: validIdentifier(`${prefix}_tracking`),
  }
}
