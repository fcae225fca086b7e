// A migration's transform: a trick added is now a trick learnt; everything else as it was.
import type { DecodedEvent } from '../../../src/cli/commands/migrate.js'

export default function transform(event: DecodedEvent): DecodedEvent {
  return event.topic === 'dogschool:Dog.TrickAdded' ? { ...event, topic: 'dogschool:Dog.TrickLearnt' } : event
}
