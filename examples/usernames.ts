// An event-sourced index: unique usernames without a unique constraint of our own.
//
// Each username has an index aggregate whose id is derived from the name with
// uuid5, so every writer computes the same id for the same name. Registering a
// user saves the user and the index's created event in one atomic write; if
// the name is taken, that created event (version 1 of an id that already has
// one) breaks the store's uniqueness rule, the whole write fails with an
// IntegrityError, and no user is recorded. The store's optimistic concurrency
// check is the uniqueness check, so it holds across processes too.

import { Aggregate, AggregateNotFoundError, Application, IntegrityError, uuid4, uuid5 } from '../src/index.js'

/** The namespace of username index ids; any fixed UUID would do, as long as it never changes. */
export const USERNAME_NAMESPACE = '6b1f0d3e-9c2a-4e57-8d1b-3f6a2c9e7b40'

/** The username is held by another user; nothing was recorded. */
export class UsernameTakenError extends Error {
  constructor(
    readonly username: string,
    options?: ErrorOptions,
  ) {
    super(`The username ${JSON.stringify(username)} is taken`, options)
    this.name = 'UsernameTakenError'
  }
}

/** A user, known by a unique username. */
export class User extends Aggregate {
  static readonly topic = 'users:User'

  username = ''
  fullName = ''

  static readonly Registered = User.created(
    'users:User.Registered',
    (user, e: { username: string; fullName: string }) => {
      user.username = e.username
      user.fullName = e.fullName
    },
  )

  static readonly UsernameChanged = User.event('users:User.UsernameChanged', (user, e: { username: string }) => {
    user.username = e.username
  })

  /** Registers a user; `id` defaults to a random UUID. */
  static register(username: string, fullName: string, id?: string): User {
    return User.create(User.Registered, { username, fullName }, { id })
  }

  changeUsername(username: string): void {
    this.trigger(User.UsernameChanged, { username })
  }
}

/**
 * The index entry of one username: which user holds it, if any. A released
 * name keeps its entry (its id cannot be created twice), with no user.
 */
export class UsernameIndex extends Aggregate {
  static readonly topic = 'users:UsernameIndex'

  username = ''
  userId: string | undefined = undefined

  static readonly Created = UsernameIndex.created(
    'users:UsernameIndex.Created',
    (index, e: { username: string; userId: string }) => {
      index.username = e.username
      index.userId = e.userId
    },
  )

  static readonly Claimed = UsernameIndex.event('users:UsernameIndex.Claimed', (index, e: { userId: string }) => {
    index.userId = e.userId
  })

  static readonly Released = UsernameIndex.event('users:UsernameIndex.Released', (index) => {
    index.userId = undefined
  })

  /** The id of the index entry of a username: the same for every writer. */
  static idFor(username: string): string {
    return uuid5(USERNAME_NAMESPACE, username)
  }

  /** Creates the entry of a username that was never used, held by `userId`. */
  static claim(username: string, userId: string): UsernameIndex {
    return UsernameIndex.create(UsernameIndex.Created, { username, userId }, { id: UsernameIndex.idFor(username) })
  }

  /** Lets a user take a released name. @throws UsernameTakenError if someone holds it. */
  claim(userId: string): void {
    if (this.userId !== undefined) throw new UsernameTakenError(this.username)
    this.trigger(UsernameIndex.Claimed, { userId })
  }

  /** Frees the name for others. */
  release(): void {
    this.trigger(UsernameIndex.Released, {})
  }
}

/** The users application: registration with unique usernames, renaming, and lookup by name. */
export class Users extends Application {
  static override readonly applicationName = 'Users'

  /**
   * Registers a user under a username and returns the user's id.
   *
   * @throws UsernameTakenError if the name is held, even by a registration racing this one.
   */
  async register(username: string, fullName: string): Promise<string> {
    const userId = uuid4()
    await this.#saveClaiming(username, userId, [User.register(username, fullName, userId)])
    return userId
  }

  /**
   * Gives a user another username: releases the old index entry and claims the
   * new one, in one atomic write with the user's change.
   *
   * @throws UsernameTakenError if the new name is held by someone else; nothing changes then.
   * @throws IntegrityError if the user was changed concurrently (call again).
   */
  async changeUsername(userId: string, username: string): Promise<void> {
    const user = await this.getUser(userId)
    if (user.username === username) return
    const oldIndex = await this.repository.get(UsernameIndex, UsernameIndex.idFor(user.username))
    oldIndex.release()
    user.changeUsername(username)
    await this.#saveClaiming(username, userId, [user, oldIndex])
  }

  /** Returns the id of the user who holds a username, or undefined. */
  async getUserId(username: string): Promise<string | undefined> {
    return (await this.#findIndex(username))?.userId
  }

  /** Returns a user. @throws AggregateNotFoundError */
  getUser(userId: string): Promise<User> {
    return this.repository.get(User, userId)
  }

  // Saves `aggregates` together with the claim of `username` for `userId`.
  // The first attempt assumes the name was never used and lets the store's
  // uniqueness rule say otherwise; only then is the existing entry read. A
  // failed save leaves the aggregates' new events pending, so the second
  // attempt saves the same aggregates again, with the existing entry.
  async #saveClaiming(username: string, userId: string, aggregates: readonly Aggregate[]): Promise<void> {
    try {
      await this.save(...aggregates, UsernameIndex.claim(username, userId))
      return
    } catch (error) {
      if (!(error instanceof IntegrityError)) throw error
      const index = await this.#findIndex(username)
      // No entry: the conflict was elsewhere (the user or their old entry changed meanwhile).
      if (index === undefined) throw error
      if (index.userId === userId) return
      if (index.userId !== undefined) throw new UsernameTakenError(username, { cause: error })
      index.claim(userId)
      await this.#saveClaimingReleased(index, userId, aggregates)
    }
  }

  async #saveClaimingReleased(index: UsernameIndex, userId: string, aggregates: readonly Aggregate[]): Promise<void> {
    try {
      await this.save(...aggregates, index)
    } catch (error) {
      if (!(error instanceof IntegrityError)) throw error
      const holder = (await this.#findIndex(index.username))?.userId
      if (holder !== undefined && holder !== userId) throw new UsernameTakenError(index.username, { cause: error })
      throw error
    }
  }

  async #findIndex(username: string): Promise<UsernameIndex | undefined> {
    try {
      return await this.repository.get(UsernameIndex, UsernameIndex.idFor(username))
    } catch (error) {
      if (error instanceof AggregateNotFoundError) return undefined
      throw error
    }
  }
}
