import { describe, expect, it } from 'vitest'
import { USERNAME_NAMESPACE, UsernameIndex, UsernameTakenError, Users } from '../../examples/usernames.js'
import { IntegrityError, uuid5 } from '../../src/index.js'
import { backends } from '../fixtures/backends.js'

async function logLength(users: Users): Promise<number> {
  return (await users.notificationLog.select({ limit: 1000 })).length
}

describe.each(backends())('usernames on %s', (_, newStore) => {
  it('registers a user and finds them by username', async () => {
    await using users = new Users({ persistence: newStore()() })
    const id = await users.register('alice', 'Alice Liddell')
    expect(await users.getUserId('alice')).toBe(id)
    expect(await users.getUserId('bob')).toBeUndefined()
    expect(await users.getUser(id)).toMatchObject({ username: 'alice', fullName: 'Alice Liddell' })
  })

  it('derives the index id from the username alone', () => {
    const id = UsernameIndex.idFor('alice')
    expect(id).toBe(uuid5(USERNAME_NAMESPACE, 'alice'))
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(UsernameIndex.idFor('alice')).toBe(id)
    expect(UsernameIndex.idFor('Alice')).not.toBe(id)
  })

  it('refuses a taken username: the index created event conflicts, and no user is recorded', async () => {
    await using users = new Users({ persistence: newStore()() })
    const alice = await users.register('alice', 'Alice')
    const before = await logLength(users)
    const error = await users.register('alice', 'Another Alice').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(UsernameTakenError)
    expect((error as UsernameTakenError).cause).toBeInstanceOf(IntegrityError)
    expect(await logLength(users)).toBe(before)
    expect(await users.getUserId('alice')).toBe(alice)
  })

  it('lets exactly one of 10 concurrent registrations of a name win', async () => {
    await using users = new Users({ persistence: newStore()() })
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => users.register('carol', `Carol ${i}`)),
    )

    const winners = results.filter((result) => result.status === 'fulfilled')
    expect(winners).toHaveLength(1)
    for (const result of results) {
      if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(UsernameTakenError)
    }
    const winner = (winners[0] as PromiseFulfilledResult<string>).value
    expect(await users.getUserId('carol')).toBe(winner)
    // The winner's user and index entry, and nothing of the nine others.
    expect(await logLength(users)).toBe(2)
  })

  it('lets exactly one of 10 registrations on two application instances win', async () => {
    const store = newStore()
    await using first = new Users({ persistence: store() })
    await using second = new Users({ persistence: store() })
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? first : second).register('dave', `Dave ${i}`)),
    )
    expect(results.filter((result) => result.status === 'fulfilled')).toHaveLength(1)
    expect(await logLength(first)).toBe(2)
  })

  it('moves the index entries when a username changes', async () => {
    await using users = new Users({ persistence: newStore()() })
    const id = await users.register('erin', 'Erin')
    await users.changeUsername(id, 'erin2')
    expect(await users.getUserId('erin')).toBeUndefined()
    expect(await users.getUserId('erin2')).toBe(id)
    expect((await users.getUser(id)).username).toBe('erin2')

    // The released name can be taken again, by someone else or by Erin.
    const other = await users.register('erin', 'Another Erin')
    expect(await users.getUserId('erin')).toBe(other)
    await users.changeUsername(id, 'erin3')
    await users.changeUsername(id, 'erin2')
    expect(await users.getUserId('erin2')).toBe(id)
    expect(await users.getUserId('erin3')).toBeUndefined()

    const topics = (await users.notificationLog.select({ limit: 100 })).map((notification) => notification.topic)
    expect(topics.filter((topic) => topic.startsWith('users:UsernameIndex'))).toEqual([
      'users:UsernameIndex.Created', // erin
      'users:UsernameIndex.Released', // erin
      'users:UsernameIndex.Created', // erin2
      'users:UsernameIndex.Claimed', // erin, by the other user
      'users:UsernameIndex.Released', // erin2
      'users:UsernameIndex.Created', // erin3
      'users:UsernameIndex.Released', // erin3
      'users:UsernameIndex.Claimed', // erin2, again
    ])
  })

  it('refuses to change to a taken username, changing nothing', async () => {
    await using users = new Users({ persistence: newStore()() })
    const frank = await users.register('frank', 'Frank')
    const grace = await users.register('grace', 'Grace')
    const before = await logLength(users)
    await expect(users.changeUsername(frank, 'grace')).rejects.toBeInstanceOf(UsernameTakenError)
    expect(await logLength(users)).toBe(before)
    expect(await users.getUserId('frank')).toBe(frank)
    expect(await users.getUserId('grace')).toBe(grace)
    expect((await users.getUser(frank)).username).toBe('frank')
    await users.changeUsername(frank, 'frank')
    expect(await logLength(users)).toBe(before)
  })

  it('lets exactly one of concurrent claims of a released name win', async () => {
    await using users = new Users({ persistence: newStore()() })
    const id = await users.register('heidi', 'Heidi')
    await users.changeUsername(id, 'heidi2')
    const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => users.register('heidi', `H${i}`)))
    const winners = results.filter((result) => result.status === 'fulfilled')
    expect(winners).toHaveLength(1)
    for (const result of results) {
      if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(UsernameTakenError)
    }
    expect(await users.getUserId('heidi')).toBe((winners[0] as PromiseFulfilledResult<string>).value)
  })
})
