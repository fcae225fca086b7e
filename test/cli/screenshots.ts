// Takes the screenshots of the studio that the README shows (docs/studio-*.png),
// with the browser setup of the end-to-end tests, on a dog school, a follower
// and a DCB store made in a temporary SQLite file.
//
//   npx tsx test/cli/screenshots.ts
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DogSchool } from '../../src/cli/dog-school.js'
import { accessPolicy } from '../../src/cli/studio/guard.js'
import { startStudio } from '../../src/cli/studio/server.js'
import { openStudioSource } from '../../src/cli/studio/source.js'
import { sqlite } from '../../src/sqlite/index.js'
import { launchChromium } from './browser.js'
import { dcbEvent } from './dcb-events.js'

const DOCS = new URL('../../docs/', import.meta.url)
const DOGS = ['Fido', 'Buster', 'Milou', 'Rex', 'Laika']
const TRICKS = ['roll over', 'play dead', 'fetch', 'sit']

/** Fills a new SQLite file: the dog school's events, a follower of them, and a DCB store; returns the file and a dog's id. */
async function seed(path: string): Promise<string> {
  const persistence = sqlite({ path })
  const ids: string[] = []
  {
    await using school = new DogSchool({ persistence, env: {} })
    for (const [index, name] of DOGS.entries()) {
      const id = await school.register(name)
      ids.push(id)
      for (const trick of TRICKS.slice(0, 1 + (index % 4))) await school.addTrick(id, trick)
    }
  }
  {
    await using reports = await persistence.open('Reports')
    await reports.events.insertEvents([], { tracking: { applicationName: 'dogschool', notificationId: 9 } })
    await using audit = await persistence.open('Audit')
    await audit.events.insertEvents([], { tracking: { applicationName: 'dogschool', notificationId: 14 } })
  }
  {
    await using courses = await persistence.openDcb('Courses')
    await courses.events.append([
      dcbEvent('CourseDefined', ['course:algebra'], { title: 'Algebra', capacity: 2 }),
      dcbEvent('CourseDefined', ['course:poetry'], { title: 'Poetry', capacity: 10 }),
      dcbEvent('StudentRegistered', ['student:ada'], { name: 'Ada' }),
      dcbEvent('StudentSubscribed', ['course:algebra', 'student:ada'], {}),
      dcbEvent('StudentRegistered', ['student:alan'], { name: 'Alan' }),
      dcbEvent('StudentSubscribed', ['course:algebra', 'student:alan'], {}),
      dcbEvent('CourseCapacityChanged', ['course:poetry'], { capacity: 12 }),
    ])
  }
  return ids[0] as string
}

const directory = mkdtempSync(join(tmpdir(), 'es-screenshots-'))
process.once('exit', () => rmSync(directory, { recursive: true, force: true }))
const path = join(directory, 'studio.db')
const fido = await seed(path)
await using source = await openStudioSource(
  { sqlitePath: path, module: 'src/cli/dog-school.ts', apps: ['dogschool', 'reports', 'audit', 'courses'] },
  {},
)
await using server = await startStudio(source, {
  host: '127.0.0.1',
  port: 0,
  policy: (port) => accessPolicy('127.0.0.1', port),
})
await using browser = await launchChromium()
const page = await browser.newPage({ viewport: { width: 1200, height: 720 }, deviceScaleFactor: 1 })
const shoot = async (name: string) => {
  await page.screenshot({ path: new URL(`studio-${name}.png`, DOCS).pathname })
  console.log(`docs/studio-${name}.png`)
}

await page.goto(`${server.url}#/`)
await page.locator('table.apps').waitFor()
await shoot('apps')

await page.goto(`${server.url}#/apps/dogschool/log`)
await page.locator('.live.on').waitFor()
{
  await using school = new DogSchool({ persistence: sqlite({ path }), env: {} })
  await school.addTrick(fido, 'high five')
}
await page.locator('tr.arrived').waitFor()
await shoot('log')

await page.goto(`${server.url}#/apps/dogschool/aggregates/${fido}?version=2`)
await page.locator('pre.aggregate-state').waitFor()
await shoot('aggregate')

await page.goto(`${server.url}#/followers`)
await page.locator('table.followers').waitFor()
await shoot('followers')

await page.goto(`${server.url}#/apps/courses/dcb`)
await page.locator('table.dcb').waitFor()
await shoot('dcb')
