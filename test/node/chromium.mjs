// The browser of the Node-side browser tests: Debian's Chromium (/usr/bin/chromium, or CHROMIUM_PATH),
// driven by playwright-core, which downloads no browser. .ci/run installs the package when missing.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** Headless, as root (no sandbox), and quiet: no updates, sync or other background requests. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** Fails the test file at once, with the fix, when the browser is not installed. */
export function assertChromium() {
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install chromium; .ci/run does it)`)
}
