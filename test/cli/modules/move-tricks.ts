// A transform that moves events to another version, which migrate refuses.
import type { DecodedEvent } from '../../../src/cli/commands/migrate.js'

export default async (event: DecodedEvent): Promise<DecodedEvent> =>
  event.topic === 'dogschool:Dog.TrickAdded' ? { ...event, originatorVersion: event.originatorVersion + 10 } : event
