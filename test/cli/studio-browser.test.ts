// The studio used as a person would: its page in headless Chromium, against
// a real SQLite store and server. Skipped with a note where Chromium is not
// installed; with CI=true that fails instead (see test/services.ts).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DogSchool } from '../../src/cli/dog-school.js'
import { accessPolicy } from '../../src/cli/studio/guard.js'
import { type Studio, startStudio } from '../../src/cli/studio/server.js'
import { openStudioSource, type StudioSource } from '../../src/cli/studio/source.js'
import { sqlite } from '../../src/sqlite/index.js'
import { chromium, skipNote, skipReason } from '../services.js'
import { launchChromium } from './browser.js'

const missing = await skipReason(chromium)
if (missing !== undefined) console.warn(skipNote(chromium, missing))

// As its tables spell it, which is how the studio lists it.
const app = 'dogschool'
const DOGS = 40

/** The first column of the log's rows: their notification ids. */
function logIds(page: Page): Promise<string[]> {
  return page.locator('table.log tbody tr td:first-child').allTextContents()
}

describe.skipIf(missing !== undefined)('the studio in Chromium', () => {
  // A directory of its own: tempDir's is removed after each test, and these tests share one store.
  const directory = mkdtempSync(join(tmpdir(), 'es-studio-browser-'))
  const sqlitePath = join(directory, 'studio.db')
  const persistence = () => sqlite({ path: sqlitePath })
  let source: StudioSource
  let server: Studio
  let browser: Browser & AsyncDisposable
  let rex: string

  beforeAll(async () => {
    // 40 dogs of 3 events each: 120 notifications, three pages of 50.
    await using school = new DogSchool({ persistence: persistence(), env: {} })
    for (let dog = 0; dog < DOGS; dog += 1) {
      const id = await school.register(dog === 0 ? 'Rex' : `Dog ${dog}`)
      if (dog === 0) rex = id
      await school.addTrick(id, 'sit')
      await school.addTrick(id, 'roll over')
    }
    source = await openStudioSource({ sqlitePath, module: 'src/cli/dog-school.ts' }, {})
    server = await startStudio(source, {
      host: '127.0.0.1',
      port: 0,
      policy: (port) => accessPolicy('127.0.0.1', port),
    })
    browser = await launchChromium()
  })

  afterAll(async () => {
    await browser?.close()
    await server?.close()
    await source?.[Symbol.asyncDispose]()
    rmSync(directory, { recursive: true, force: true })
  })

  it('opens on the applications, pages through a log, and sees a new event appear live', async () => {
    const page = await browser.newPage()
    const failures: string[] = []
    page.on('pageerror', (error) => failures.push(error.message))
    page.on('console', (message) => message.type() === 'error' && failures.push(message.text()))
    await page.goto(server.url)
    await page.getByRole('link', { name: app }).click()
    await expect.poll(() => logIds(page)).toHaveLength(50)
    expect((await logIds(page))[0]).toBe('1')
    await page.getByRole('button', { name: 'Next' }).click()
    await expect.poll(async () => (await logIds(page))[0]).toBe('51')
    await page.getByRole('button', { name: 'Next' }).click()
    await expect.poll(async () => (await logIds(page)).at(-1)).toBe('120')
    expect(await logIds(page)).toHaveLength(20)
    await page.getByRole('button', { name: 'Previous' }).click()
    await expect.poll(async () => (await logIds(page))[0]).toBe('51')
    await page.getByRole('button', { name: 'Next' }).click()
    await expect.poll(async () => (await logIds(page))[0]).toBe('101')
    // The last page follows the log: an event recorded now appears without a reload.
    await page.locator('.live.on').waitFor()
    await using school = new DogSchool({ persistence: persistence(), env: {} })
    await school.addTrick(rex, 'play dead')
    await expect.poll(async () => (await logIds(page)).at(-1)).toBe('121')
    expect(await page.locator('table.log tr.arrived').textContent()).toContain('play dead')
    expect(failures).toEqual([])
    // Its live stream holds one of the few connections Chromium opens to a host.
    await page.close()
  })

  it('jumps to the last page and to an id, and pages back from there', async () => {
    const page = await browser.newPage()
    await page.goto(`${server.url}#/apps/${app}/log`)
    await expect.poll(() => logIds(page)).toHaveLength(50)
    await page.getByRole('button', { name: 'Last' }).click()
    const { maxNotificationId: end } = (await (await fetch(`${server.url}api/apps/${app}/log?limit=1`)).json()) as {
      maxNotificationId: number
    }
    await expect.poll(async () => (await logIds(page)).at(-1)).toBe(String(end))
    expect((await logIds(page))[0]).toBe(String(end - 49))
    await page.getByRole('button', { name: 'Previous' }).click()
    await expect.poll(async () => (await logIds(page))[0]).toBe(String(end - 99))
    await page.getByLabel('From id').fill('33')
    await page.getByLabel('From id').press('Enter')
    await expect.poll(async () => (await logIds(page))[0]).toBe('33')
    await page.close()
  })

  it('filters the log by topic', async () => {
    const page = await browser.newPage()
    await page.goto(`${server.url}#/apps/${app}/log`)
    await page.getByLabel('Topics').fill('dogschool:Dog.Registered')
    await page.getByRole('button', { name: 'Filter' }).click()
    await expect.poll(async () => (await logIds(page)).slice(0, 3)).toEqual(['1', '4', '7'])
    const topics = await page.locator('table.log tbody td.topic').allTextContents()
    expect(new Set(topics)).toEqual(new Set(['dogschool:Dog.Registered']))
    await page.close()
  })

  it('shows nothing to a page that reached it by another name (DNS rebinding)', async () => {
    // Chromium resolves the attacker's name to the studio's address, as a rebinding DNS server would.
    await using rebound = await launchChromium(['--host-resolver-rules=MAP rebind.test 127.0.0.1'])
    const page = await rebound.newPage()
    const response = await page.goto(`http://rebind.test:${server.port}/`)
    expect(response?.status()).toBe(403)
    const api = await page.evaluate(async () => {
      const reply = await fetch('/api/apps')
      return { status: reply.status, body: await reply.text() }
    })
    expect(api.status).toBe(403)
    expect(api.body).not.toContain(app)
  })

  it('with an access token, opens by the address it printed and keeps the token in a cookie', async () => {
    const token = 'a-token-of-enough-length'
    await using guarded = await startStudio(source, {
      host: '127.0.0.1',
      port: 0,
      policy: (port) => accessPolicy('127.0.0.1', port, { token }),
    })
    const context = await browser.newContext()
    const page = await context.newPage()
    await page.goto(guarded.url)
    expect(page.url()).toBe(`http://127.0.0.1:${guarded.port}/`)
    await page.getByRole('link', { name: app }).click()
    await expect.poll(() => logIds(page)).toHaveLength(50)
    // The live log's stream carries the cookie too.
    await page.goto(`http://127.0.0.1:${guarded.port}/#/apps/${app}/log?from=101`)
    await page.locator('.live.on').waitFor()
    const stranger = await (await browser.newContext()).newPage()
    expect((await stranger.goto(`http://127.0.0.1:${guarded.port}/`))?.status()).toBe(401)
    await context.close()
  })

  it('opens an aggregate from the log and moves through its versions', async () => {
    const page = await browser.newPage()
    await page.goto(`${server.url}#/apps/${app}/log`)
    await page.getByRole('link', { name: rex }).first().click()
    await page.getByRole('heading', { name: `Aggregate ${rex}` }).waitFor()
    const slider = page.locator('#version')
    const shown = page.locator('#version-shown')
    await expect.poll(() => shown.textContent()).toBe(String(await page.locator('table.events tbody tr').count()))
    const state = page.locator('pre.aggregate-state')
    const tricks = async () => JSON.parse((await state.textContent()) ?? '{}').tricks
    // At its latest version: a trick for each event after the first.
    await expect.poll(async () => (await tricks()).length).toBe(Number(await shown.textContent()) - 1)
    await slider.fill('0')
    await expect.poll(() => shown.textContent()).toBe('1')
    expect(await page.locator('pre.event').textContent()).toContain('"name": "Rex"')
    await expect.poll(tricks).toEqual([])
    await slider.focus()
    await page.keyboard.press('ArrowRight')
    await expect.poll(() => shown.textContent()).toBe('2')
    expect(await page.locator('pre.event').textContent()).toContain('"trick": "sit"')
    await expect.poll(tricks).toEqual(['sit'])
    await page.goBack()
    await expect.poll(() => shown.textContent()).toBe('1')
    await page.close()
  })
})
