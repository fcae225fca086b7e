// The studio used as a person would: its page in headless Chromium, against
// a real SQLite store and server. Skipped with a note where Chromium is not
// installed; with CI=true that fails instead (see test/services.ts).
import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DogSchool } from '../../src/cli/dog-school.js'
import { accessPolicy } from '../../src/cli/studio/guard.js'
import { type Studio, startStudio } from '../../src/cli/studio/server.js'
import { openStudioSource, type StudioSource } from '../../src/cli/studio/source.js'
import { chromium, skipNote, skipReason } from '../services.js'
import { launchChromium } from './browser.js'
import { STORES, type Store } from './fixtures.js'

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
  const [, newStore] = STORES[0] as (typeof STORES)[number]
  let store: Store
  let source: StudioSource
  let server: Studio
  let browser: Browser & AsyncDisposable
  let rex: string

  beforeAll(async () => {
    store = newStore()
    // 40 dogs of 3 events each: 120 notifications, three pages of 50.
    await using school = new DogSchool({ persistence: store.persistence(), env: {} })
    for (let dog = 0; dog < DOGS; dog += 1) {
      const id = await school.register(dog === 0 ? 'Rex' : `Dog ${dog}`)
      if (dog === 0) rex = id
      await school.addTrick(id, 'sit')
      await school.addTrick(id, 'roll over')
    }
    source = await openStudioSource({ ...store.flags, module: 'src/cli/dog-school.ts' }, {})
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
    await using school = new DogSchool({ persistence: store.persistence(), env: {} })
    await school.addTrick(rex, 'play dead')
    await expect.poll(async () => (await logIds(page)).at(-1)).toBe('121')
    expect(await page.locator('table.log tr.arrived').textContent()).toContain('play dead')
    expect(failures).toEqual([])
  })

  it('filters the log by topic', async () => {
    const page = await browser.newPage()
    await page.goto(`${server.url}#/apps/${app}/log`)
    await page.getByLabel('Topics').fill('dogschool:Dog.Registered')
    await page.getByRole('button', { name: 'Filter' }).click()
    await expect.poll(async () => (await logIds(page)).slice(0, 3)).toEqual(['1', '4', '7'])
    const topics = await page.locator('table.log tbody td.topic').allTextContents()
    expect(new Set(topics)).toEqual(new Set(['dogschool:Dog.Registered']))
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
    await expect
      .poll(async () => JSON.parse((await state.textContent()) ?? '{}').tricks)
      .toEqual(['sit', 'roll over', 'play dead'])
    await slider.fill('0')
    await expect.poll(() => shown.textContent()).toBe('1')
    expect(await page.locator('pre.event').textContent()).toContain('"name": "Rex"')
    await expect.poll(async () => JSON.parse((await state.textContent()) ?? '{}').tricks).toEqual([])
    await slider.focus()
    await page.keyboard.press('ArrowRight')
    await expect.poll(() => shown.textContent()).toBe('2')
    expect(await page.locator('pre.event').textContent()).toContain('"trick": "sit"')
    await expect.poll(async () => JSON.parse((await state.textContent()) ?? '{}').tricks).toEqual(['sit'])
    await page.goBack()
    await expect.poll(() => shown.textContent()).toBe('1')
  })
})
