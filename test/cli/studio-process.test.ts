// `eventsourcing studio` as a user runs it: in a process of its own, serving
// until Ctrl-C, which ends it with exit code 0.
import { createServer } from 'node:net'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { runCli, storeFlags } from './child.js'
import { STORES, type Store, seed } from './fixtures.js'

/** Returns a port that nothing listens on now. */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

describe('eventsourcing studio in a process of its own', () => {
  const [, newStore] = STORES[0] as (typeof STORES)[number]
  let store: Store

  beforeEach(async () => {
    store = newStore()
    await seed(store)
  })

  afterEach(async () => {
    await store.drop()
  })

  it('prints its address, serves the applications found, and ends on Ctrl-C with exit code 0', async () => {
    const port = await freePort()
    const serving = runCli(['studio', ...storeFlags(store), '--port', String(port)])
    await expect.poll(serving.stdout, { timeout: 20_000 }).toContain('eventsourcing studio: ')
    expect(serving.stdout()).toBe(`eventsourcing studio: http://127.0.0.1:${port}/ (read-only; Ctrl-C to stop)\n`)
    const reply = await fetch(`http://127.0.0.1:${port}/api/apps`)
    expect(await reply.json()).toMatchObject({ apps: [{ name: 'dogschool', events: 8 }], states: false })
    serving.child.kill('SIGINT')
    expect(await serving.exit).toEqual({ code: 0, signal: null })
    expect(serving.stderr()).toBe('')
  })

  it('refuses another address without --expose, and prints the access token with it', async () => {
    const refused = runCli(['studio', ...storeFlags(store), '--host', '0.0.0.0'])
    expect(await refused.exit).toEqual({ code: 1, signal: null })
    expect(refused.stderr()).toMatch(
      /^eventsourcing: The studio would be reachable from other machines on 0\.0\.0\.0: pass --expose/,
    )
    const port = await freePort()
    const token = 'a-token-the-user-chose'
    const exposed = runCli(['studio', ...storeFlags(store), '--host', '0.0.0.0', '--expose', '--port', String(port)], {
      EVENTSOURCING_STUDIO_TOKEN: token,
    })
    await expect.poll(exposed.stdout, { timeout: 20_000 }).toContain(`http://0.0.0.0:${port}/?token=${token} `)
    expect((await fetch(`http://127.0.0.1:${port}/api/apps`)).status).toBe(401)
    const authorized = await fetch(`http://127.0.0.1:${port}/api/apps`, {
      headers: { authorization: `Bearer ${token}` },
    })
    expect(authorized.status).toBe(200)
    exposed.child.kill('SIGINT')
    expect(await exposed.exit).toEqual({ code: 0, signal: null })
  })
})
