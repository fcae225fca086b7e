import { ProgrammingError } from './errors.js'

/**
 * Parses a boolean setting (true/false, yes/no, 1/0, on/off, any case).
 *
 * @throws ProgrammingError naming the setting when the value is none of those.
 */
export function parseBoolean(name: string, value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined
  const normalized = value.trim().toLowerCase()
  if (['true', 'yes', '1', 'on'].includes(normalized)) return true
  if (['false', 'no', '0', 'off'].includes(normalized)) return false
  throw new ProgrammingError(`${name} must be true or false, got ${JSON.stringify(value)}`)
}
