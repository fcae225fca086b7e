import type { Tracking } from '../persistence/stored-event.js'

/**
 * Returns the tracking records of a map from upstream application names to
 * the highest ids tracked, ordered by name as the databases order them (by
 * code point, which is UTF-8 byte order).
 */
export function trackingRecords(tracking: ReadonlyMap<string, number>): Tracking[] {
  return [...tracking.keys()]
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((applicationName) => ({ applicationName, notificationId: tracking.get(applicationName)! }))
}
