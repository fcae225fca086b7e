import { request } from 'node:http'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { studio } from '../../src/cli/commands/studio.js'
import { DogSchool } from '../../src/cli/dog-school.js'
import { ApplicationNotFoundError } from '../../src/cli/storage.js'
import { accessPolicy, TOKEN_COOKIE } from '../../src/cli/studio/guard.js'
import { type Studio, startStudio } from '../../src/cli/studio/server.js'
import { openStudioSource, type StudioSource } from '../../src/cli/studio/source.js'
import { AesGcmCipher, ProgrammingError } from '../../src/index.js'
import { dcbEvent } from './dcb-events.js'
import { capture, STORES, type Store, seed } from './fixtures.js'

const app = 'DogSchool'
// The dog school's own module, as a user would give theirs.
const module = 'src/cli/dog-school.ts'

/** A response as the tests read it. */
interface Reply {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: string
}

/** Sends a request with the headers given, Host included (which fetch would not let a test set). */
function get(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const sent = request({
      host: '127.0.0.1',
      port,
      path,
      method,
      agent: false,
      headers: { host: `127.0.0.1:${port}`, ...headers },
    })
    sent.once('error', reject)
    sent.once('response', (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.once('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      )
    })
    sent.end()
  })
}

async function json(port: number, path: string): Promise<unknown> {
  const reply = await get(port, path)
  expect(reply.status, reply.body).toBe(200)
  return JSON.parse(reply.body)
}

async function open(source: StudioSource, token?: string): Promise<Studio> {
  return await startStudio(source, {
    host: '127.0.0.1',
    port: 0,
    policy: (port) => accessPolicy('127.0.0.1', port, { token }),
  })
}

describe.each(STORES)('the studio on %s', (_name, newStore) => {
  let store: Store
  let ids: string[]
  let source: StudioSource
  let server: Studio

  beforeEach(async () => {
    store = newStore()
    ids = await seed(store)
    source = await openStudioSource({ ...store.flags, module }, {})
    server = await open(source)
  })

  afterEach(async () => {
    await server.close()
    await source[Symbol.asyncDispose]()
    await store.drop()
  })

  it('lists the applications of the database, with their logs and DCB stores', async () => {
    expect(await json(server.port, '/api/apps')).toEqual({
      apps: [{ name: 'dogschool', events: 8, maxNotificationId: 8, dcbHead: null }],
      states: true,
    })
  })

  it('pages through the log by notification id, with each state decoded', async () => {
    const first = (await json(server.port, `/api/apps/${app}/log?limit=3`)) as {
      notifications: { id: number }[]
      next: number
    }
    expect(first.notifications.map((n) => n.id)).toEqual([1, 2, 3])
    expect(first.next).toBe(4)
    expect(first.notifications[0]).toEqual({
      id: 1,
      originatorId: ids[0],
      originatorVersion: 1,
      topic: 'dogschool:Dog.Registered',
      state: { fields: expect.objectContaining({ name: 'Fido' }) },
    })
    const last = (await json(server.port, `/api/apps/${app}/log?from=7&limit=3`)) as Record<string, unknown>
    expect(last).toMatchObject({ maxNotificationId: 8, notifications: [{ id: 7 }, { id: 8 }] })
    expect(last).not.toHaveProperty('next')
  })

  it('filters the log by topic', async () => {
    const page = (await json(server.port, `/api/apps/${app}/log?topic=dogschool:Dog.Registered`)) as {
      notifications: { id: number }[]
    }
    expect(page.notifications.map((n) => n.id)).toEqual([1, 4, 7])
  })

  it('filters the log by originator', async () => {
    const page = (await json(server.port, `/api/apps/${app}/log?originator=${ids[1]}`)) as {
      notifications: { id: number }[]
    }
    expect(page.notifications.map((n) => n.id)).toEqual([4, 5, 6])
  })

  it("rebuilds an aggregate's state at any version with the module's classes", async () => {
    expect(await json(server.port, `/api/apps/${app}/aggregates/${ids[0]}/state?version=2`)).toMatchObject({
      className: 'Dog',
      version: 2,
      latestVersion: 3,
      state: { name: 'Fido', tricks: ['roll over'] },
    })
    expect(await json(server.port, `/api/apps/${app}/aggregates/${ids[0]}/state`)).toMatchObject({
      version: 3,
      state: { tricks: ['roll over', 'play dead'] },
    })
    expect((await get(server.port, `/api/apps/${app}/aggregates/${ids[0]}/state?version=9`)).status).toBe(404)
  })

  it('shows the followers of the database and how far behind they are', async () => {
    await using reports = await store.persistence().open('Reports')
    await reports.events.insertEvents([], { tracking: { applicationName: 'dogschool', notificationId: 5 } })
    expect(await json(server.port, '/api/followers')).toEqual([
      { follower: 'reports', kind: 'application', upstream: 'dogschool', position: 5, head: 8, behind: 3 },
    ])
  })

  it('counts the followers that its module declares in the topics they follow', async () => {
    await using registrar = await store.persistence().open('Registrar')
    await registrar.events.insertTracking({ applicationName: 'DogSchool', notificationId: 7 })
    await using followers = await openStudioSource({ ...store.flags, module: 'test/cli/modules/dog-followers.ts' }, {})
    // Registrar follows registrations only: none follows id 7 (without the module, the trick of id 8 would count).
    expect(await followers.followers()).toEqual([
      { follower: 'registrar', kind: 'application', upstream: 'DogSchool', position: 7, head: 8, behind: 0 },
    ])
    expect((await source.followers()).map((row) => row.behind)).toEqual([1])
  })

  it("shows an aggregate's events in version order, and says which aggregate is missing", async () => {
    const dog = (await json(server.port, `/api/apps/${app}/aggregates/${ids[0]}`)) as {
      events: unknown[]
      states: boolean
    }
    expect(dog.states).toBe(true)
    expect(dog.events).toEqual([
      expect.objectContaining({ originatorVersion: 1, state: { fields: expect.objectContaining({ name: 'Fido' }) } }),
      expect.objectContaining({
        originatorVersion: 2,
        state: { fields: expect.objectContaining({ trick: 'roll over' }) },
      }),
      expect.objectContaining({
        originatorVersion: 3,
        state: { fields: expect.objectContaining({ trick: 'play dead' }) },
      }),
    ])
    const missing = await get(server.port, `/api/apps/${app}/aggregates/nobody`)
    expect(missing.status).toBe(404)
    expect(JSON.parse(missing.body).error).toContain("no events of 'nobody'")
  })

  it('answers a bad parameter, an unknown application and an unknown route with errors naming them', async () => {
    const bad = await get(server.port, `/api/apps/${app}/log?from=zero`)
    expect([bad.status, JSON.parse(bad.body).error]).toEqual([
      400,
      "The parameter 'from' must be a positive integer, not 'zero'",
    ])
    const unknown = await get(server.port, '/api/apps/Kennel/log')
    expect([unknown.status, JSON.parse(unknown.body).error]).toEqual([
      404,
      "The studio shows no application 'Kennel': it shows dogschool",
    ])
    const dcb = await get(server.port, `/api/apps/${app}/dcb`)
    expect([dcb.status, JSON.parse(dcb.body).error]).toEqual([404, "Application 'dogschool' has no DCB store"])
    expect((await get(server.port, `/api/apps/${app}/nothing`)).status).toBe(404)
    expect((await get(server.port, '/nothing')).status).toBe(404)
  })

  it('streams new notifications as server-sent events, from after the position given', async () => {
    const received = await new Promise<string>((resolve, reject) => {
      const sent = request({
        host: '127.0.0.1',
        port: server.port,
        path: `/api/apps/${app}/live?after=7&topic=dogschool:Dog.TrickAdded`,
        headers: { host: `127.0.0.1:${server.port}` },
      })
      sent.once('error', reject)
      sent.once('response', (response) => {
        expect(response.headers['content-type']).toBe('text/event-stream')
        let text = ''
        response.on('data', (chunk: Buffer) => {
          text += chunk.toString()
          if (text.includes('id: 10')) {
            response.destroy()
            resolve(text)
          }
        })
        // Recorded once the stream is open: they arrive live.
        void (async () => {
          await using school = new DogSchool({ persistence: store.persistence(), env: {} })
          await school.register('Rex')
          await school.addTrick(ids[2] as string, 'beg')
        })()
      })
      sent.end()
    })
    const events = received.split('\n\n').filter((block) => block.startsWith('id:'))
    expect(events.map((block) => block.split('\n')[0])).toEqual(['id: 8', 'id: 10'])
    expect(received).toContain('event: notification')
    expect(received).toContain('"trick":"beg"')
    expect(received).not.toContain('"name":"Rex"')
  })

  it('ends its live streams when it closes', async () => {
    const ended = new Promise<void>((resolve, reject) => {
      const sent = request({
        host: '127.0.0.1',
        port: server.port,
        path: `/api/apps/${app}/live`,
        headers: { host: `127.0.0.1:${server.port}` },
      })
      sent.once('error', reject)
      sent.once('response', (response) => {
        response.once('data', () => void server.close())
        response.once('close', () => resolve())
        response.resume()
      })
      sent.end()
    })
    await ended
  })
})

describe.each(STORES)('the studio on a DCB store on %s', (_name, newStore) => {
  let store: Store

  beforeEach(async () => {
    store = newStore()
    await using courses = await store.persistence().openDcb('Courses')
    await courses.events.append([
      dcbEvent('CourseDefined', ['course:c1'], { capacity: 2 }),
      dcbEvent('StudentSubscribed', ['course:c1', 'student:s1'], { at: 'noon' }),
      dcbEvent('StudentSubscribed', ['course:c1', 'student:s2'], { at: 'one' }),
    ])
  })

  afterEach(async () => {
    await store.drop()
  })

  it('shows an application that has only a DCB store, and pages through its events decoded', async () => {
    await using source = await openStudioSource({ apps: ['Courses'], ...store.flags }, {})
    await using server = await open(source)
    expect(await json(server.port, '/api/apps')).toMatchObject({
      apps: [{ name: 'courses', events: null, maxNotificationId: null, dcbHead: 3 }],
    })
    expect(await json(server.port, '/api/apps/courses/dcb?limit=2')).toEqual({
      events: [
        { position: 1, type: 'CourseDefined', tags: ['course:c1'], data: { fields: { capacity: 2 } } },
        {
          position: 2,
          type: 'StudentSubscribed',
          tags: ['course:c1', 'student:s1'],
          data: { fields: { at: 'noon' } },
        },
      ],
      head: 3,
      next: 2,
    })
    expect(await json(server.port, '/api/apps/courses/dcb?after=2')).toMatchObject({
      events: [{ position: 3 }],
      head: 3,
    })
    const log = await get(server.port, '/api/apps/courses/log')
    expect(log.status).toBe(404)
  })

  it('is not found, nor created, for an application named that has neither events tables nor a DCB store', async () => {
    await expect(openStudioSource({ apps: ['Kennel'], ...store.flags }, {})).rejects.toThrow(
      /^No application 'kennel' in this database \(no events tables, no DCB store\): check --app and the database settings$/,
    )
    await using source = await openStudioSource({ ...store.flags }, {})
    expect(await source.apps()).toEqual([])
  })
})

describe('the studio with encrypted events', () => {
  const [, newStore] = STORES[0] as (typeof STORES)[number]
  const cipherKey = AesGcmCipher.createKey()
  let store: Store

  beforeEach(async () => {
    store = newStore()
    await seed(store, { cipherKey })
  })

  it('decodes them with the key, and never sends the key', async () => {
    await using source = await openStudioSource({ apps: [app], ...store.flags, cipherKey }, {})
    await using server = await open(source)
    const replies = await Promise.all(
      ['/', '/app.js', '/api/apps', `/api/apps/${app}/log`].map((path) => get(server.port, path)),
    )
    expect(replies[3]?.body).toContain('"name":"Fido"')
    for (const reply of replies) expect(reply.body).not.toContain(cipherKey)
  })

  it('shows their bytes without the key', async () => {
    await using source = await openStudioSource({ apps: [app], ...store.flags }, {})
    await using server = await open(source)
    const page = (await json(server.port, `/api/apps/${app}/log?limit=1`)) as { notifications: { state: unknown }[] }
    expect(page.notifications[0]?.state).toEqual({ base64: expect.any(String), bytes: expect.any(Number) })
  })
})

describe('the studio guards', () => {
  const [, newStore] = STORES[0] as (typeof STORES)[number]
  let store: Store
  let source: StudioSource

  beforeEach(async () => {
    store = newStore()
    await seed(store)
    source = await openStudioSource({ apps: [app], ...store.flags }, {})
  })

  afterEach(async () => {
    await source[Symbol.asyncDispose]()
  })

  it('serves the page and the modules it imports, with a policy that allows scripts from itself only', async () => {
    await using server = await open(source)
    const page = await get(server.port, '/')
    expect(page.status).toBe(200)
    expect(page.body).toContain('<script type="module" src="/app.js">')
    expect(page.headers['content-security-policy']).toMatch(/script-src 'self' 'sha256-[^']+'/)
    expect(page.headers['x-content-type-options']).toBe('nosniff')
    for (const module of ['/vendor/preact.mjs', '/vendor/hooks.mjs', '/vendor/htm.mjs', '/app.js']) {
      const reply = await get(server.port, module)
      expect([module, reply.status, reply.headers['content-type']]).toEqual([
        module,
        200,
        'text/javascript; charset=utf-8',
      ])
    }
  })

  it('refuses a Host that is not its own: a page whose name resolves to 127.0.0.1 (DNS rebinding)', async () => {
    await using server = await open(source)
    for (const host of [`evil.example:${server.port}`, `127.0.0.1:${server.port + 1}`, 'localhost']) {
      const reply = await get(server.port, `/api/apps/${app}/log`, { host })
      expect([host, reply.status]).toEqual([host, 403])
      expect(reply.body).not.toContain('Fido')
    }
    for (const host of [`localhost:${server.port}`, `[::1]:${server.port}`]) {
      expect((await get(server.port, '/api/apps', { host })).status).toBe(200)
    }
  })

  it('refuses requests from another origin or site, and serves its own', async () => {
    await using server = await open(source)
    const own = `http://127.0.0.1:${server.port}`
    expect((await get(server.port, '/api/apps', { origin: 'http://evil.example' })).status).toBe(403)
    expect((await get(server.port, '/api/apps', { origin: `http://localhost:${server.port}` })).status).toBe(403)
    expect((await get(server.port, '/api/apps', { 'sec-fetch-site': 'cross-site' })).status).toBe(403)
    expect((await get(server.port, '/api/apps', { 'sec-fetch-site': 'same-site' })).status).toBe(403)
    expect((await get(server.port, '/api/apps', { origin: own, 'sec-fetch-site': 'same-origin' })).status).toBe(200)
  })

  it('only reads: any method but GET and HEAD is refused', async () => {
    await using server = await open(source)
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      expect((await get(server.port, `/api/apps/${app}/log`, {}, method)).status).toBe(405)
    }
    expect((await get(server.port, '/', {}, 'HEAD')).status).toBe(200)
  })

  it('with a token, refuses requests without it, and moves it from the address to a cookie', async () => {
    const token = 'a-token-of-enough-length'
    await using server = await open(source, token)
    expect(server.url).toBe(`http://127.0.0.1:${server.port}/?token=${token}`)
    expect((await get(server.port, '/api/apps')).status).toBe(401)
    expect((await get(server.port, '/api/apps', { authorization: 'Bearer wrong-token-of-enough-len' })).status).toBe(
      401,
    )
    expect((await get(server.port, '/api/apps', { authorization: `Bearer ${token}` })).status).toBe(200)
    const opened = await get(server.port, `/?token=${token}`)
    expect(opened.status).toBe(303)
    expect(opened.headers.location).toBe('/')
    const cookie = String(opened.headers['set-cookie'])
    expect(cookie).toContain('HttpOnly')
    expect(cookie).toContain('SameSite=Strict')
    expect((await get(server.port, '/api/apps', { cookie: `${TOKEN_COOKIE}=${token}` })).status).toBe(200)
  })

  it('binds another address only with --expose and a long enough token', () => {
    expect(() => accessPolicy('0.0.0.0', 4141)).toThrow(/pass --expose/)
    expect(() => accessPolicy('192.0.2.1', 4141, { expose: true })).toThrow(/needs an access token/)
    expect(() => accessPolicy('0.0.0.0', 4141, { expose: true, token: 'short' })).toThrow(ProgrammingError)
    const policy = accessPolicy('192.0.2.1', 4141, { expose: true, token: 'a-token-of-enough-length' })
    expect([...policy.hosts]).toContain('192.0.2.1:4141')
    expect(accessPolicy('127.0.0.1', 4141).token).toBeUndefined()
  })

  it('the command serves until stopped, printing its address; a mistyped application fails before it binds', async () => {
    const stopping = new AbortController()
    const out = capture({ signal: stopping.signal })
    const running = studio({ apps: [app], ...store.flags, port: 0 }, out.io)
    await expect.poll(() => out.stdout()).toMatch(/^eventsourcing studio: http:\/\/127\.0\.0\.1:\d+\/ \(read-only/)
    const port = Number(/:(\d+)\//.exec(out.stdout())?.[1])
    expect((await get(port, '/api/apps')).status).toBe(200)
    stopping.abort()
    await running
    await expect(get(port, '/api/apps')).rejects.toThrow(/ECONNREFUSED/)
    await expect(studio({ apps: ['Kennel'], ...store.flags, port: 0 }, capture().io)).rejects.toThrow(
      ApplicationNotFoundError,
    )
    const exposed = capture({ signal: AbortSignal.abort() })
    await studio({ apps: [app], ...store.flags, host: '0.0.0.0', port: 0, expose: true }, exposed.io)
    expect(exposed.stdout()).toMatch(/http:\/\/0\.0\.0\.0:\d+\/\?token=[\w-]{32} /)
  })
})
