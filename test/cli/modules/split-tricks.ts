// A transform that splits events, which migrate refuses.
import type { DecodedEvent } from '../../../src/cli/commands/migrate.js'

export default (event: DecodedEvent): DecodedEvent | DecodedEvent[] =>
  event.topic === 'dogschool:Dog.TrickAdded' ? [event, event] : event
