// Headless Chromium for the studio's end-to-end tests and its screenshots
// (docs/studio/screenshots.ts): Debian's chromium, driven by playwright-core
// (which downloads no browser of its own), launched as the issue says.
import { type Browser, chromium } from 'playwright-core'
import { chromiumPath } from '../services.js'

/** The flags Chromium runs with: headless, as root in a container (no sandbox), without a GPU or background traffic. */
export const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking']

/**
 * Launches this machine's Chromium (see `chromiumPath`), with `extraArgs`
 * after the usual flags; `await using` closes it.
 *
 * @throws Error when Chromium is not installed.
 */
export async function launchChromium(extraArgs: readonly string[] = []): Promise<Browser & AsyncDisposable> {
  const executablePath = chromiumPath()
  if (executablePath === undefined) throw new Error('Chromium is not installed: apt-get install -y chromium')
  const browser = await chromium.launch({ executablePath, headless: true, args: [...CHROMIUM_ARGS, ...extraArgs] })
  return Object.assign(browser, { [Symbol.asyncDispose]: () => browser.close() })
}
