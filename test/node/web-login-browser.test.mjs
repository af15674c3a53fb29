// The web-login example in a real browser: Chromium (Debian's package, /usr/bin/chromium, driven by
// playwright-core) against the example Worker and the service, each started as a developer starts them
// (`wrangler dev`, local D1, KV and Queues, console WhatsApp provider), joined by the service's own dev
// registry (the shared test server's under `npm run test:node`). Covers the full login with the code read from the dev outbox, a wrong code, the resend
// countdown, sign-out, and the signed-in page refused after sign-out (also for a replayed cookie).
// Screenshots of each screen go to test-results/web-login/ (WEB_LOGIN_SCREENSHOTS=dir to write them
// elsewhere, e.g. examples/web-login/screenshots to refresh the README's). Part of `npm test`.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { chromium } from 'playwright-core'
import { assertChromium, CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs'
import { serverFor, startServer } from './server.mjs'

const SHOTS = process.env.WEB_LOGIN_SCREENSHOTS ?? 'test-results/web-login'
// The service (when the file runs alone) takes 8900-8949 and the example 8975-8999 (stats.test.mjs
// takes 8950-8974; the SDK tests 8800-8899).
const SERVICE_PORTS = [8900, 8949]
const EXAMPLE_PORTS = [8975, 8999]
// Short, so the countdown runs out within the test; the example is told the same value.
const COOLDOWN_SECONDS = 6
const PHONE = '+12025550143'
const STEP_TIMEOUT_MS = 30_000

const PROJECT = {
  id: `project-test-${randomUUID()}`,
  secret: `secret-test-web-login-${randomUUID()}`,
  env: 'test',
  settings: { phone_send_cooldown_seconds: COOLDOWN_SECONDS },
}

let profile
let service
let example
let context
let page

before(
  async () => {
    assertChromium()
    service = await serverFor({ projects: [PROJECT], ports: SERVICE_PORTS })
    // The example joins the service's dev registry: its Service Binding meets that service only.
    example = await startServer({
      script: 'examples/web-login/dev.mjs',
      ports: EXAMPLE_PORTS,
      registry: service.registry,
      vars: [
        `STYTCH_PROJECT_ID:${PROJECT.id}`,
        `STYTCH_SECRET:${PROJECT.secret}`,
        `RESEND_COOLDOWN_SECONDS:${COOLDOWN_SECONDS}`,
        `DEV_OUTBOX_URL:http://localhost:${service.port}/dev/whatsapp/outbox`,
      ],
    })
    profile = mkdtempSync(join(tmpdir(), 'web-login-chromium-'))
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      chromiumSandbox: false,
      args: CHROMIUM_ARGS,
      viewport: { width: 390, height: 760 },
      locale: 'en-US',
      timeout: 60_000,
    })
    context.setDefaultTimeout(STEP_TIMEOUT_MS)
    page = context.pages()[0] ?? (await context.newPage())
    mkdirSync(SHOTS, { recursive: true })
  },
  { timeout: 300_000 },
)

after(async () => {
  await context?.close()
  await example?.stop()
  await service?.stop()
  if (profile) rmSync(profile, { recursive: true, force: true })
})

const exampleUrl = (path) => `http://localhost:${example.port}${path}`

/** The dev outbox's messages to PHONE, newest first (Basic credentials of the test project, loopback host). */
async function outbox() {
  const res = await fetch(new URL(`/dev/whatsapp/outbox?phone_number=${encodeURIComponent(PHONE)}`, service.baseUrl), {
    headers: { authorization: `Basic ${btoa(`${PROJECT.id}:${PROJECT.secret}`)}` },
  })
  assert.equal(res.status, 200)
  return (await res.json()).messages
}

/** Waits until the outbox holds `count` messages to PHONE (the queue consumer runs within about a second). */
async function waitForMessages(count) {
  const deadline = Date.now() + STEP_TIMEOUT_MS
  for (;;) {
    const messages = await outbox()
    if (messages.length >= count) return messages
    assert.ok(Date.now() < deadline, `the outbox has ${messages.length} of ${count} messages`)
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`) })
const countdownValue = () =>
  page.locator('.resend').evaluate((el) => Number(getComputedStyle(el).getPropertyValue('--left')))

describe('web-login example in Chromium', () => {
  let sessionCookies

  it('sends a code, refuses a wrong one with the attempts left, counts down the resend, signs in', {
    timeout: 120_000,
  }, async () => {
    await page.goto(exampleUrl('/'))
    await page.getByRole('heading', { name: 'Sign in with WhatsApp' }).waitFor()
    const phoneField = page.getByLabel('WhatsApp number')
    assert.equal(await phoneField.getAttribute('type'), 'tel')
    assert.equal(await phoneField.evaluate((el) => el === document.activeElement), true)
    await shot('1-phone-form')

    await phoneField.fill(PHONE)
    await page.getByRole('button', { name: 'Send code' }).click()
    const codeField = page.getByLabel('Code', { exact: true })
    await codeField.waitFor()
    assert.equal(await codeField.getAttribute('inputmode'), 'numeric')
    assert.equal(await codeField.getAttribute('autocomplete'), 'one-time-code')
    assert.match(await page.locator('#code-sent').innerText(), /\+1 202 555 0143 \(United States\)/)
    // Where to read the code locally, with the number filled in.
    const devLink = page.locator('.dev a')
    assert.equal(
      await devLink.getAttribute('href'),
      `http://localhost:${service.port}/dev/whatsapp/outbox?phone_number=%2B12025550143`,
    )
    const curl = await page.locator('.dev code').innerText()
    assert.ok(curl.startsWith(`curl -u "${PROJECT.id}:$STYTCH_SECRET" `), curl)
    assert.ok(!(await page.content()).includes(PROJECT.secret), 'the page never shows the secret')
    // The resend button is withheld while the countdown runs.
    assert.equal(await page.getByRole('button', { name: 'Send a new code' }).isVisible(), false)
    const startedAt = await countdownValue()
    assert.ok(startedAt >= 1 && startedAt <= COOLDOWN_SECONDS, `countdown starts at ${startedAt}`)
    await shot('2-code-form')

    const [first] = await waitForMessages(1)
    const wrong = first.code.replace(/\d$/, (d) => String((Number(d) + 1) % 10))
    await codeField.fill(wrong)
    await page.getByRole('button', { name: 'Sign in' }).click()
    const alert = page.getByRole('alert')
    await alert.waitFor()
    assert.equal(await alert.innerText(), 'That code is not right. 4 attempts left.')
    assert.equal(await page.getByLabel('Code', { exact: true }).getAttribute('aria-invalid'), 'true')
    await shot('3-wrong-code')

    // The countdown goes down, then the button appears (no script on the page: CSS alone).
    await page.waitForFunction(() => {
      const el = document.querySelector('.resend')
      return el && Number(getComputedStyle(el).getPropertyValue('--left')) === 0
    })
    const resend = page.getByRole('button', { name: 'Send a new code' })
    await resend.waitFor({ state: 'visible' })
    await resend.click()
    await page.getByRole('status').getByText('A new code is on its way').waitFor()
    const messages = await waitForMessages(2)
    assert.notEqual(messages[0].id, first.id)
    assert.ok((await countdownValue()) >= 1, 'a new countdown after the resend')

    await page.getByLabel('Code', { exact: true }).fill(messages[0].code)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('heading', { name: 'You are signed in' }).waitFor()
    assert.equal(new URL(page.url()).pathname, '/account')
    assert.match(await page.locator('[data-field=user-id]').innerText(), /^user-test-[0-9a-f-]{36}$/)
    assert.equal(await page.locator('[data-field=phone]').innerText(), '+1 202 555 0143 (Verified: Yes)')
    sessionCookies = (await context.cookies()).filter((c) => c.name === '__Host-wl_session')
    assert.equal(sessionCookies.length, 1)
    const [cookie] = sessionCookies
    assert.deepEqual([cookie.httpOnly, cookie.secure, cookie.sameSite], [true, true, 'Lax'])
    await shot('4-signed-in')
  })

  it('signs out, and the signed-in page is refused afterwards, also for the old cookie', {
    timeout: 60_000,
  }, async () => {
    assert.ok(sessionCookies, 'the login test ran first')
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.getByRole('status').getByText('You are signed out.').waitFor()
    await shot('5-signed-out')

    await page.goto(exampleUrl('/account'))
    assert.equal(new URL(page.url()).pathname, '/')
    await page.getByLabel('WhatsApp number').waitFor()
    assert.equal(await page.locator('[data-field=user-id]').count(), 0)

    // Someone who kept the cookie: its JWT still verifies locally, but the session is revoked.
    await context.addCookies(sessionCookies)
    await page.goto(exampleUrl('/account'))
    assert.equal(await page.getByRole('alert').innerText(), 'Your session has ended. Please sign in again.')
    assert.equal(await page.locator('[data-field=user-id]').count(), 0)
    assert.equal((await context.cookies()).filter((c) => c.name === '__Host-wl_session').length, 0)
  })

  it('speaks the visitor’s language', { timeout: 30_000 }, async () => {
    // The browser's own Accept-Language comes from its locale (en-US here): rewrite it on the way out.
    const portuguese = (route) =>
      route.continue({ headers: { ...route.request().headers(), 'accept-language': 'pt-BR,pt;q=0.9,en;q=0.5' } })
    await page.route('**/*', portuguese)
    try {
      await page.goto(exampleUrl('/'))
      await page.getByRole('heading', { name: 'Entrar com WhatsApp' }).waitFor()
      assert.equal(await page.locator('html').getAttribute('lang'), 'pt-BR')
      await page.getByLabel('Número do WhatsApp').fill('+33 6 12 34 56 78')
      await page.getByRole('button', { name: 'Enviar código' }).click()
      assert.equal(await page.getByRole('alert').innerText(), 'Ainda não enviamos códigos para números de França.')
    } finally {
      await page.unroute('**/*', portuguese)
    }
  })
})
