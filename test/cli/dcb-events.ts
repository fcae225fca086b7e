// DCB events for the studio's tests and screenshots (no vitest here: the
// screenshots script runs outside it).
import type { DcbEvent } from '../../src/persistence/dcb.js'
import { associatedData } from '../../src/persistence/dcb-mapper.js'
import { Mapper } from '../../src/persistence/mapper.js'

/** Returns a DCB event whose data is `fields` encoded as a DCB application encodes them (no cipher, no compression). */
export function dcbEvent(type: string, tags: readonly string[], fields: Record<string, unknown>): DcbEvent {
  const sorted = [...new Set(tags)].sort()
  return { type, tags, data: new Mapper().encodeState(fields, associatedData(type, sorted)) }
}
