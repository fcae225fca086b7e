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

/**
 * Returns an integer setting given in code (a number) or in a variable (its
 * digits), checked alike: a safe integer of at least `min` (0 or 1).
 *
 * @throws ProgrammingError naming the setting and the value otherwise.
 */
export function parseInteger(name: string, value: number | string | undefined, min: 0 | 1 = 0): number | undefined {
  if (value === undefined) return undefined
  // Digits only: Number() would also take '', '0x10', '1e3' and '2.5'.
  const number = typeof value === 'string' ? (/^\s*\d+\s*$/.test(value) ? Number(value) : Number.NaN) : value
  if (!Number.isSafeInteger(number) || number < min) {
    const kind = min === 0 ? 'a non-negative integer' : 'a positive integer'
    const got = typeof value === 'string' ? JSON.stringify(value) : String(value)
    throw new ProgrammingError(`${name} must be ${kind}, got ${got}`)
  }
  return number
}
