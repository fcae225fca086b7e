/** A domain event in its stored form. */
export interface StoredEvent {
  /** The id of the aggregate the event belongs to. */
  readonly originatorId: string
  /** The aggregate's version after the event; unique per originator. */
  readonly originatorVersion: number
  /** The topic of the event's type. */
  readonly topic: string
  /**
   * The event's fields: transcoded, then compressed, then encrypted, as
   * configured. Bytes given to a recorder belong to it from then on, and bytes a
   * recorder returns may be its own (as with a Node.js stream's chunks): never
   * change them in place.
   */
  readonly state: Uint8Array
}

/** A stored event as recorded in an application's log, with its position there. */
export interface Notification extends StoredEvent {
  /** The position of the event in the application's log: a positive integer, increasing in recording order. */
  readonly id: number
}

/** A record that a downstream application has processed an upstream notification. */
export interface Tracking {
  /** The name of the upstream application whose log was read. */
  readonly applicationName: string
  /** The id of the notification that was processed. */
  readonly notificationId: number
}
