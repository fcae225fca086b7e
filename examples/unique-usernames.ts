// Unique usernames with dynamic consistency boundaries (DCB), the username hashed.
//
// A username is taken when an event tagged with it says so. Registering reads
// the events of that one tag and appends only if none appeared since: no index
// aggregate, no retry loop of our own. (Compare examples/usernames.ts, which
// does the same with aggregates and an event-sourced index.)
//
// The tag is the username itself, and tags are stored in clear (the store
// compares them) even when event data is encrypted. So the application stores
// the values of `username` tags as keyed hashes (`static hashedTags`, the key
// from TAG_HASH_KEY): equal names still match, but the stored tag does not say
// what the name is. With a cipher key too, nothing of the name is stored in clear.

import { DcbApplication, decisionModel, tag, taggedEvent } from '../src/index.js'

export const UserRegistered = taggedEvent(
  'accounts:UserRegistered',
  (e: { userId: string; username: string; fullName: string }) => [tag('user', e.userId), tag('username', e.username)],
)

/** Tagged with both names, so that it is in both boundaries: the old name's and the new one's. */
export const UsernameChanged = taggedEvent(
  'accounts:UsernameChanged',
  (e: { userId: string; oldUsername: string; username: string }) => [
    tag('user', e.userId),
    tag('username', e.oldUsername),
    tag('username', e.username),
  ],
)

/** Who holds a username: a user id, or undefined when it is free. */
export const usernameModel = (username: string) =>
  decisionModel({ initial: undefined as string | undefined, tags: [tag('username', username)] })
    .on(UserRegistered, (_, e) => e.data.userId)
    // The event is tagged with this name: it is either the new name or the old one, freed.
    .on(UsernameChanged, (_, e) => (e.data.username === username ? e.data.userId : undefined))

/** A user's current username; undefined for a user never registered. */
export const userModel = (userId: string) =>
  decisionModel({ initial: undefined as string | undefined, tags: [tag('user', userId)] })
    .on(UserRegistered, (_, e) => e.data.username)
    .on(UsernameChanged, (_, e) => e.data.username)

/** The username is held by another user; nothing was appended. */
export class UsernameTakenError extends Error {
  override readonly name = 'UsernameTakenError'
  constructor(readonly username: string) {
    super(`The username ${JSON.stringify(username)} is taken`)
  }
}

/** The accounts application: users with unique usernames. */
export class Accounts extends DcbApplication {
  static override readonly applicationName = 'Accounts'
  static override readonly hashedTags = ['username']

  /** Registers a user under a username. @throws UsernameTakenError, even for a registration racing this one. */
  async register(userId: string, username: string, fullName: string): Promise<void> {
    // On a conflict (a racer registered the name first) deciding again finds the name taken.
    await this.decide(
      usernameModel(username),
      (holder) => {
        if (holder !== undefined) throw new UsernameTakenError(username)
        return [new UserRegistered({ userId, username, fullName })]
      },
      { attempts: 3 },
    )
  }

  /**
   * Gives a user another username, freeing the old one.
   *
   * @throws UsernameTakenError if another user holds the new name; Error for an unknown user.
   */
  async changeUsername(userId: string, username: string): Promise<void> {
    await this.decide(
      { current: userModel(userId), holder: usernameModel(username) },
      ({ current, holder }) => {
        if (current === undefined) throw new Error(`No user ${userId}`)
        if (holder === userId) return []
        if (holder !== undefined) throw new UsernameTakenError(username)
        return [new UsernameChanged({ userId, oldUsername: current, username })]
      },
      { attempts: 3 },
    )
  }

  /** Returns the id of the user holding a username, or undefined. */
  async holderOf(username: string): Promise<string | undefined> {
    return (await this.evaluate(usernameModel(username))).state
  }
}
