// Stytch's own frontend SDK (@stytch/vanilla-js, its IIFE bundles, unmodified) in a real browser against
// this service: Chromium (Debian's package, /usr/bin/chromium, driven by playwright-core) opens the
// prebuilt-UI example (examples/prebuilt-ui) served from 127.0.0.1, while the service, started as
// `npm run dev` starts it, answers on localhost (cookies ignore ports: the page's stytch_* cookies
// must not reach the service). The browser resolves no other host name, and every request the pages
// make is recorded and must go to those two origins: nothing to Stytch's hosts, the phone numbers
// parsed by the service's own frame. Covers the prebuilt login UI (number typed, code read from the
// dev outbox, signed in with both cookies, the JWT cookie verified by the backend `stytch` SDK) and the
// headless client (login_or_create → authenticate → user.get → session.authenticate → session.revoke).
// Screenshots go to test-results/prebuilt-ui/ (PREBUILT_UI_SCREENSHOTS=dir to write them elsewhere,
// e.g. examples/prebuilt-ui/screenshots to refresh the README's). Part of `npm test`.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { chromium } from 'playwright-core'
import { Client, StytchError } from 'stytch'
import { servePages } from '../../examples/prebuilt-ui/serve.mjs'
import { assertChromium, CHROMIUM, CHROMIUM_ARGS } from './chromium.mjs'
import { readOutbox, serverFor, waitForCode } from './server.mjs'

const SHOTS = process.env.PREBUILT_UI_SCREENSHOTS ?? 'test-results/prebuilt-ui'
const SERVICE_PORTS = [8700, 8749]
const STEP_TIMEOUT_MS = 30_000

const PROJECT = {
  id: `project-test-${randomUUID()}`,
  secret: `secret-test-sdk-browser-${randomUUID()}`,
  publicToken: `public-token-test-${randomUUID()}`,
  env: 'test',
}

let service
let pages
let browser
let apiOrigin
/** Every URL the browser requested, from every page and frame of every context. */
const requested = []

before(
  async () => {
    assertChromium()
    service = await serverFor({ projects: [PROJECT], ports: SERVICE_PORTS })
    apiOrigin = `http://localhost:${service.port}`
    pages = await servePages({ port: 0, api: apiOrigin, publicToken: PROJECT.publicToken })
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      chromiumSandbox: false,
      args: [
        ...CHROMIUM_ARGS,
        // Every host but localhost and 127.0.0.1 fails to resolve: the pages can reach only this machine.
        '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1',
      ],
      timeout: 60_000,
    })
    mkdirSync(SHOTS, { recursive: true })
  },
  { timeout: 300_000 },
)

after(async () => {
  await browser?.close()
  await pages?.stop()
  await service?.stop()
})

/** A fresh browser profile (no cookies, no storage) whose requests are recorded. */
async function newContext() {
  const context = await browser.newContext({ viewport: { width: 420, height: 720 }, locale: 'en-US' })
  context.setDefaultTimeout(STEP_TIMEOUT_MS)
  context.on('request', (request) => requested.push(request.url()))
  return context
}

const backend = () => new Client({ project_id: PROJECT.id, secret: PROJECT.secret, env: service.baseUrl })

describe("Stytch's frontend SDK in Chromium", () => {
  it('prebuilt UI: types a number, enters the code from the outbox, ends signed in with both cookies, signs out', {
    timeout: 180_000,
  }, async () => {
    const phone = '+12025550181'
    const context = await newContext()
    const page = await context.newPage()
    const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`) })
    await page.goto(`${pages.url}/`)
    const phoneField = page.locator('#phone-input')
    await phoneField.waitFor()

    // Typed as a person types it; the frame (loaded from the service on the first keystroke) formats
    // it in national form as it goes.
    await phoneField.pressSequentially('2025550181', { delay: 40 })
    assert.equal(await page.locator(`iframe[src="${apiOrigin}/clientside-services/index.html"]`).count(), 1)
    await page.waitForFunction(() => document.querySelector('#phone-input')?.value === '(202) 555-0181')
    await shot('1-phone-form')
    await page.getByRole('button', { name: 'Continue with WhatsApp' }).click()
    await page.getByText('Enter passcode').waitFor()
    await page.getByText('(202) 555-0181').waitFor()
    await shot('2-code-form')

    const code = await waitForCode(service.baseUrl, PROJECT, phone, 0)
    await page.getByRole('textbox', { name: 'One-time passcode' }).pressSequentially(code, { delay: 40 })
    await page.getByText('Your passcode has been successfully verified.').waitFor()
    await page.locator('#account').waitFor({ state: 'visible' })
    assert.match(await page.locator('[data-field=user-id]').innerText(), /^user-test-[0-9a-f-]{36}$/)
    assert.equal(await page.locator('[data-field=phone]').innerText(), phone)
    await shot('3-signed-in')

    const cookies = Object.fromEntries((await context.cookies(pages.url)).map((c) => [c.name, c]))
    assert.ok(cookies.stytch_session, 'the SDK wrote stytch_session')
    assert.ok(cookies.stytch_session_jwt, 'the SDK wrote stytch_session_jwt')
    assert.match(cookies.stytch_session.value, /^[A-Za-z0-9_-]{44}$/)
    // The service's host never gets the page's cookies.
    assert.deepEqual(await context.cookies(apiOrigin), [])

    // The app's backend verifies the JWT cookie with the official backend SDK (locally, by our JWKS).
    const { session } = await backend().sessions.authenticateJwt({ session_jwt: cookies.stytch_session_jwt.value })
    assert.equal(session.user_id, await page.locator('[data-field=user-id]').innerText())
    assert.deepEqual(
      session.authentication_factors.map((f) => [f.delivery_method, f.phone_number_factor?.phone_number]),
      [['whatsapp', phone]],
    )

    // Sign-out (session.revoke in the page) ends the session for the backend too and drops the cookies.
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.waitForLoadState('load')
    await page.locator('#phone-input').waitFor()
    assert.equal(await page.locator('#account').isVisible(), false)
    const left = (await context.cookies(pages.url)).map((c) => c.name).filter((n) => n.startsWith('stytch_session'))
    assert.deepEqual(left, [])
    await assert.rejects(backend().sessions.authenticate({ session_token: cookies.stytch_session.value }), (err) => {
      assert.ok(err instanceof StytchError)
      assert.equal(err.error_type, 'session_not_found')
      return true
    })
    await context.close()
  })

  it('headless client: loginOrCreate → authenticate → user.get → session.authenticate → session.revoke', {
    timeout: 120_000,
  }, async () => {
    const phone = '+12025550182'
    const context = await newContext()
    const page = await context.newPage()
    await page.goto(`${pages.url}/headless.html`)
    await page.waitForFunction(() => window.client !== undefined)

    const sent = await page.evaluate((number) => window.client.otps.whatsapp.loginOrCreate(number), phone)
    assert.deepEqual(Object.keys(sent).sort(), ['method_id', 'request_id', 'status_code'])
    assert.match(sent.method_id, /^phone-number-test-/)
    const code = await waitForCode(service.baseUrl, PROJECT, phone, 0)

    const auth = await page.evaluate(
      ([token, methodId]) => window.client.otps.authenticate(token, methodId, { session_duration_minutes: 60 }),
      [code, sent.method_id],
    )
    assert.equal(auth.method_id, sent.method_id)
    assert.match(auth.session_token, /^[A-Za-z0-9_-]{44}$/)
    const userId = auth.user_id
    const user = await page.evaluate(() => window.client.user.get())
    assert.equal(user.user_id, userId)
    assert.deepEqual(
      user.phone_numbers.map((p) => [p.phone_number, p.verified]),
      [[phone, true]],
    )
    const refreshed = await page.evaluate(() => window.client.session.authenticate({ session_duration_minutes: 30 }))
    assert.equal(refreshed.session.user_id, userId)
    assert.equal(refreshed.session_token, auth.session_token)
    assert.equal(await page.evaluate(() => window.client.session.getSync()?.user_id), userId)

    await page.evaluate(() => window.client.session.revoke())
    assert.equal(await page.evaluate(() => window.client.session.getSync()), null)
    // The backend SDK now finds no such session.
    await assert.rejects(backend().sessions.authenticate({ session_token: auth.session_token }), (err) => {
      assert.ok(err instanceof StytchError)
      assert.equal(err.status_code, 404)
      assert.equal(err.error_type, 'session_not_found')
      return true
    })
    // An error reaches the page as Stytch's error (the CORS headers are on errors too).
    const refused = await page.evaluate(async () => {
      try {
        await window.client.user.get()
        return null
      } catch (err) {
        return { name: err.name, message: String(err.message) }
      }
    })
    assert.equal(refused?.name, 'StytchAPIError')
    assert.match(refused.message, /unauthorized_credentials/)
    await context.close()
  })

  it('sent every request to this machine: the pages and the service, nothing to Stytch', () => {
    const origins = new Set(requested.map((url) => new URL(url).origin))
    assert.ok(origins.has(pages.url) && origins.has(apiOrigin), [...origins].join(', '))
    assert.deepEqual(
      [...origins].filter((o) => o !== pages.url && o !== apiOrigin),
      [],
    )
    // The phone field's numbers went to the service's frame, not to Stytch's.
    assert.ok(requested.some((url) => url === `${apiOrigin}/clientside-services/index.html`))
    assert.ok(requested.some((url) => url === `${apiOrigin}/clientside-services/phone_numbers/parse`))
    assert.ok(requested.some((url) => url === `${apiOrigin}/sdk/v1/events`))
  })

  it('left each number exactly one message', async () => {
    for (const phone of ['+12025550181', '+12025550182']) {
      assert.equal((await readOutbox(service.baseUrl, PROJECT, phone)).length, 1, phone)
    }
  })
})
