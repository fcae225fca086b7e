import type { Tracking } from '../persistence/stored-event.js'

/**
 * Returns the tracking records of a map from upstream application names to
 * the highest ids tracked, ordered by name as the databases order them
 * (see {@link byCodePoint}).
 */
export function trackingRecords(tracking: ReadonlyMap<string, number>): Tracking[] {
  return [...tracking.keys()]
    .sort(byCodePoint)
    .map((applicationName) => ({ applicationName, notificationId: tracking.get(applicationName)! }))
}

/**
 * Orders names as the databases order text: by their UTF-8 bytes, which is
 * code point order (JavaScript's `<` compares UTF-16 units, which differs for
 * characters beyond U+FFFF).
 */
export function byCodePoint(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}
