import { v4, v5, v7 } from 'uuid'

/** Returns a random UUID (version 4). */
export function uuid4(): string {
  return v4()
}

/** Returns a time-ordered UUID (version 7), which keeps database indexes compact. */
export function uuid7(): string {
  return v7()
}

/**
 * Returns the same UUID (version 5) for the same namespace and name, every time:
 * the basis of event-sourced indexes such as "username → user id".
 *
 * @param namespace a UUID string that scopes the names, e.g. one per index.
 */
export function uuid5(namespace: string, name: string): string {
  return v5(name, namespace)
}

/** A fixed namespace for {@link uuid5} when an application needs only one. */
export const NAMESPACE_EVENTSOURCING = 'a7d2b2f4-5b6e-4c1e-9a0f-7f1d3c9e2b10'
