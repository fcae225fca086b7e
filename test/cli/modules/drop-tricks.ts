// A transform that drops events, which migrate refuses.
import type { DecodedEvent } from '../../../src/cli/commands/migrate.js'

export function transform(event: DecodedEvent): DecodedEvent | undefined {
  return event.topic === 'dogschool:Dog.TrickAdded' ? undefined : event
}
