import { UpcastError } from './errors.js'

/** The stored fields of an event or snapshot state, as decoded before upcasting. */
export type UpcastState = Record<string, unknown>

/** Turns state written at class version N into state of version N + 1. */
export type Upcaster = (state: UpcastState) => UpcastState

/**
 * How a class's stored state evolves: `classVersion` is the current version
 * (1 when never changed) and `upcasters[i]` turns version i + 1 into i + 2.
 */
export interface Versioning {
  readonly classVersion: number
  readonly upcasters: readonly Upcaster[]
}

/**
 * Runs the upcasters that bring `state` from `fromVersion` to the current version.
 *
 * @throws UpcastError if the stored version is newer than the class (an old
 * program reading new data) or an upcaster fails.
 */
export function upcast(name: string, state: UpcastState, fromVersion: number, target: Versioning): UpcastState {
  if (!Number.isInteger(fromVersion) || fromVersion < 1 || fromVersion > target.classVersion) {
    throw new UpcastError(
      `${name} was stored at class version ${fromVersion}, but this program knows versions 1 to ${target.classVersion}: deploy the newer code, or add upcasters`,
    )
  }
  let current = state
  for (let version = fromVersion; version < target.classVersion; version++) {
    try {
      current = target.upcasters[version - 1]!(current)
    } catch (cause) {
      throw new UpcastError(`Upcasting ${name} from version ${version} to ${version + 1} failed`, { cause })
    }
  }
  return current
}
