// The official `stytch` SDK, unmodified, on the SMS routes of the service started exactly as
// `npm run dev` starts it (test/node/server.mjs): client.otps.sms.loginOrCreate and .send, the code
// from the local outbox (channel "sms"), client.otps.authenticate. And the WhatsApp → SMS fallback end
// to end over HTTP: a project made by `npm run project:create -- --env test --set
// whatsapp_fallback=sms`, a WhatsApp login_or_create for +12025550199 (which .dev.vars.example lists
// in CONSOLE_WHATSAPP_UNREACHABLE), and an SMS in that project's outbox whose code logs in.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { describe, it } from 'node:test'
import { Client, StytchError } from 'stytch'
import { firstJson } from './script-state.mjs'
import { basicAuth, readOutbox, serveDuringTests } from './server.mjs'

const PROJECT = {
  id: `project-test-${randomUUID()}`,
  secret: `secret-test-sdk-sms-${randomUUID()}`,
  env: 'test',
  settings: { phone_send_cooldown_seconds: 0, phone_sends_per_hour: 1_000, phone_sends_per_day: 10_000 },
}
// This test's ports; the other Node tests, the benchmark and the developer's own server use others.
const PORTS = [9000, 9049]
const OUTBOX_TIMEOUT_MS = 30_000
const UNREACHABLE = '+12025550199'

let server
let client
let fallback

/** `npm run project:create -- …` against the test server's local state; its printed project and secret. */
function createProject(...args) {
  const out = execFileSync(
    'npm',
    ['run', '--silent', 'project:create', '--', ...args, '--persist-to', server.persistTo],
    {
      encoding: 'utf8',
      env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' },
    },
  )
  const { project_id: id, secret, settings } = firstJson(out)
  return { id, secret, settings }
}

// A server of its own: `npm run project:create` writes its state directory from another process,
// which must not meet another test's writes to the database file.
serveDuringTests(
  { projects: [PROJECT], ports: PORTS, own: true },
  (s) => {
    server = s
    client = new Client({ project_id: PROJECT.id, secret: PROJECT.secret, env: server.baseUrl })
    fallback = createProject('--env', 'test', '--set', 'whatsapp_fallback=sms')
  },
  { timeout: 240_000 },
)

/** Waits for one more message to `phone` than `seen` in `project`'s outbox; returns it. */
async function nextMessage(project, phone, seen) {
  const deadline = Date.now() + OUTBOX_TIMEOUT_MS
  for (;;) {
    const messages = await readOutbox(server.baseUrl, project, phone)
    if (messages.length > seen) return messages[0]
    if (Date.now() > deadline) throw new Error(`no message for ${phone} within ${OUTBOX_TIMEOUT_MS} ms`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

describe('official stytch SDK: SMS one-time passcodes', () => {
  it('otps.sms.loginOrCreate → the SMS in the outbox → otps.authenticate', async () => {
    const phone = '+12025550161'
    const sent = await client.otps.sms.loginOrCreate({ phone_number: phone, expiration_minutes: 5, locale: 'es' })
    assert.equal(sent.status_code, 200)
    assert.equal(sent.user_created, true)
    assert.match(sent.phone_id, /^phone-number-test-[0-9a-f-]{36}$/)
    const message = await nextMessage(PROJECT, phone, 0)
    assert.equal(message.channel, 'sms')
    assert.equal(message.text, `${message.code} es tu código de verificación. Por tu seguridad, no lo compartas.`)

    const auth = await client.otps.authenticate({
      method_id: sent.phone_id,
      code: message.code,
      session_duration_minutes: 60,
    })
    assert.equal(auth.user_id, sent.user_id)
    assert.deepEqual(
      auth.session.authentication_factors.map((f) => [f.type, f.delivery_method, f.phone_number_factor.phone_id]),
      [['otp', 'sms', sent.phone_id]],
    )
  })

  it('otps.sms.send to the same user’s number, then otps.authenticate; the number keeps its phone_id', async () => {
    const phone = '+12025550162'
    const first = await client.otps.whatsapp.loginOrCreate({ phone_number: phone })
    const seen = (await readOutbox(server.baseUrl, PROJECT, phone)).length
    const sent = await client.otps.sms.send({ phone_number: phone })
    assert.equal(sent.status_code, 200)
    assert.equal(sent.user_id, first.user_id)
    assert.equal(sent.phone_id, first.phone_id)
    // The WhatsApp message may land before or after; the newest SMS carries the live code.
    const deadline = Date.now() + OUTBOX_TIMEOUT_MS
    let sms
    while (!sms) {
      const messages = await readOutbox(server.baseUrl, PROJECT, phone)
      if (messages.length > seen) sms = messages.find((m) => m.channel === 'sms')
      if (!sms && Date.now() > deadline) throw new Error('no SMS')
      if (!sms) await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const auth = await client.otps.authenticate({ method_id: sent.phone_id, code: sms.code })
    assert.equal(auth.status_code, 200)
  })

  it('surfaces refusals as StytchError: a country outside sms_allowed_countries, an unknown number on send', async () => {
    await assert.rejects(client.otps.sms.loginOrCreate({ phone_number: '+447400123456' }), (err) => {
      assert.ok(err instanceof StytchError)
      assert.equal(err.status_code, 400)
      assert.equal(err.error_type, 'invalid_phone_number_country_code')
      return true
    })
    await assert.rejects(client.otps.sms.send({ phone_number: '+12025550163' }), (err) => {
      assert.ok(err instanceof StytchError)
      assert.equal(err.error_type, 'phone_number_not_found')
      return true
    })
  })
})

describe('WhatsApp → SMS fallback over HTTP, as a developer tries it locally', () => {
  it('a project made with --set whatsapp_fallback=sms gets +12025550199’s code by SMS, and it logs in', async () => {
    assert.equal(fallback.settings.whatsapp_fallback, 'sms')
    const fallbackClient = new Client({ project_id: fallback.id, secret: fallback.secret, env: server.baseUrl })
    const sent = await fallbackClient.otps.whatsapp.loginOrCreate({ phone_number: UNREACHABLE })
    assert.equal(sent.status_code, 200)
    const message = await nextMessage(fallback, UNREACHABLE, 0)
    assert.equal(message.channel, 'sms')
    assert.match(message.code, /^[0-9]{6}$/)
    // Only the SMS: the console reported the number as not on WhatsApp, so no WhatsApp message exists.
    assert.deepEqual(
      (await readOutbox(server.baseUrl, fallback, UNREACHABLE)).map((m) => m.channel),
      ['sms'],
    )
    const auth = await fallbackClient.otps.authenticate({ method_id: sent.phone_id, code: message.code })
    assert.equal(auth.status_code, 200)
    assert.equal(auth.user_id, sent.user_id)

    // The outbox at its channel-neutral path shows the same message.
    const res = await fetch(new URL(`/dev/outbox?phone_number=${encodeURIComponent(UNREACHABLE)}`, server.baseUrl), {
      headers: { authorization: basicAuth(fallback) },
    })
    assert.deepEqual((await res.json()).messages, [message])
  })
})
