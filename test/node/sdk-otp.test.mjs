// The official `stytch` SDK, unmodified, against the service started exactly as `npm run dev` starts
// it (test/node/server.mjs): login_or_create → the code from the local outbox → authenticate →
// users.get, send, the sandbox, and errors surfacing as StytchError with Stytch's error_type and
// status_code. Run by `npm run test:node` (part of `npm test`).
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { request } from 'node:http'
import { describe, it } from 'node:test'
import { Client, StytchError } from 'stytch'
import { basicAuth, LOCAL_PROJECT, readOutbox, serveDuringTests, waitForCode } from './server.mjs'

/** A project of its own with the send limits out of the way (codes go to the same phones repeatedly). */
const PROJECT = {
  id: `project-test-${randomUUID()}`,
  secret: `secret-test-sdk-e2e-${randomUUID()}`,
  env: 'test',
  settings: { phone_send_cooldown_seconds: 0, phone_sends_per_hour: 1_000, phone_sends_per_day: 10_000 },
}
// Ports 8800-8849 are this test's and the benchmark's; 8787 stays free for the developer's own server.
const PORTS = [8800, 8849]
const OUTBOX_TIMEOUT_MS = 30_000

let server
let client

serveDuringTests({ projects: [PROJECT], ports: PORTS }, (s) => {
  server = s
  client = new Client({ project_id: PROJECT.id, secret: PROJECT.secret, env: server.baseUrl })
})

/** Messages the console provider delivered to `phone` for PROJECT, newest first (its credentials). */
const outbox = (phone) => readOutbox(server.baseUrl, PROJECT, phone)

/** GET `path` with an explicit Host header (fetch cannot set one): status and parsed body. */
function getWithHost(path, host, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, server.baseUrl), { headers: { ...headers, host } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => {
        text += chunk
      })
      res.on('end', () => resolve({ status: res.statusCode, text }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** Waits for the queue consumer to deliver one more message to `phone` than `seen`; returns its code. */
const nextCode = (phone, seen) => waitForCode(server.baseUrl, PROJECT, phone, seen, OUTBOX_TIMEOUT_MS)

/** Asserts that `promise` rejects with the SDK's StytchError carrying this status and error type. */
async function rejectsWith(promise, status, errorType) {
  await assert.rejects(promise, (err) => {
    assert.ok(err instanceof StytchError, `expected a StytchError, got ${err}`)
    assert.equal(err.status_code, status)
    assert.equal(err.error_type, errorType)
    assert.match(err.request_id, /^request-id-test-[0-9a-f-]{36}$/)
    assert.ok(err.error_message.length > 0)
    assert.equal(err.error_url, `https://stytch.com/docs/api/errors/${status}#${errorType}`)
    return true
  })
}

const wrong = (code) => String((Number(code) + 1) % 1_000_000).padStart(6, '0')

describe('official stytch SDK against the local service', () => {
  it('loginOrCreate → code from the outbox → authenticate → users.get', async () => {
    const phone = '+12025550141'
    const sent = await client.otps.whatsapp.loginOrCreate({ phone_number: phone, expiration_minutes: 5, locale: 'en' })
    assert.equal(sent.status_code, 200)
    assert.equal(sent.user_created, true)
    assert.match(sent.user_id, /^user-test-[0-9a-f-]{36}$/)
    assert.match(sent.phone_id, /^phone-number-test-[0-9a-f-]{36}$/)
    const code = await nextCode(phone, 0)

    const auth = await client.otps.authenticate({ method_id: sent.phone_id, code })
    assert.equal(auth.status_code, 200)
    assert.equal(auth.user_id, sent.user_id)
    assert.equal(auth.method_id, sent.phone_id)
    assert.equal(auth.reset_sessions, false)
    assert.equal(auth.session_token, '')
    assert.equal(auth.session, null)
    assert.deepEqual(auth.user.phone_numbers, [{ phone_id: sent.phone_id, phone_number: phone, verified: true }])

    const user = await client.users.get({ user_id: sent.user_id })
    assert.equal(user.status_code, 200)
    assert.equal(user.user_id, sent.user_id)
    assert.equal(user.status, 'active')
    assert.deepEqual(user.phone_numbers, auth.user.phone_numbers)

    // Single use: the same code again is refused.
    await rejectsWith(client.otps.authenticate({ method_id: sent.phone_id, code }), 401, 'unable_to_auth_otp_code')
    const again = await client.otps.whatsapp.loginOrCreate({ phone_number: phone })
    assert.deepEqual([again.user_id, again.phone_id, again.user_created], [sent.user_id, sent.phone_id, false])
  })

  it("whatsapp.send: a code to a user's own number, and a new number attached to the user", async () => {
    const phone = '+12025550142'
    const created = await client.otps.whatsapp.loginOrCreate({ phone_number: phone, create_user_as_pending: true })
    const first = await nextCode(phone, 0)
    const sent = await client.otps.whatsapp.send({ phone_number: phone, locale: 'es' })
    assert.deepEqual([sent.status_code, sent.user_id, sent.phone_id], [200, created.user_id, created.phone_id])
    const second = await nextCode(phone, 1)
    assert.ok((await outbox(phone))[0].text.includes('código'))
    // The new code replaced the first one.
    await rejectsWith(
      client.otps.authenticate({ method_id: created.phone_id, code: first }),
      401,
      'unable_to_auth_otp_code',
    )
    const auth = await client.otps.authenticate({ method_id: created.phone_id, code: second })
    assert.equal(auth.user.status, 'active')

    const extra = '+12025550143'
    const attached = await client.otps.whatsapp.send({ phone_number: extra, user_id: created.user_id })
    assert.equal(attached.user_id, created.user_id)
    await client.otps.authenticate({ method_id: attached.phone_id, code: await nextCode(extra, 0) })
    const user = await client.users.get({ user_id: created.user_id })
    assert.deepEqual(user.phone_numbers.map((p) => [p.phone_number, p.verified]).sort(), [
      [phone, true],
      [extra, true],
    ])
  })

  it('the sandbox number and code work in a test project', async () => {
    const sandbox = await client.otps.whatsapp.loginOrCreate({ phone_number: '+10000000000' })
    assert.equal(sandbox.status_code, 200)
    const auth = await client.otps.authenticate({ method_id: sandbox.phone_id, code: '000000' })
    assert.equal(auth.user_id, sandbox.user_id)
  })

  it('errors reach the caller as StytchError with the right error_type and status_code', async () => {
    await rejectsWith(client.otps.whatsapp.loginOrCreate({ phone_number: '12345' }), 400, 'invalid_phone_number')
    await rejectsWith(
      client.otps.whatsapp.loginOrCreate({ phone_number: '+12025550144', expiration_minutes: 11 }),
      400,
      'invalid_expiration_otp',
    )
    await rejectsWith(
      client.otps.whatsapp.loginOrCreate({ phone_number: '+12025550144', locale: 'xx' }),
      400,
      'invalid_locale',
    )

    const phone = '+12025550145'
    const sent = await client.otps.whatsapp.loginOrCreate({ phone_number: phone })
    const code = await nextCode(phone, 0)
    await rejectsWith(
      client.otps.authenticate({ method_id: sent.phone_id, code: wrong(code) }),
      404,
      'otp_code_not_found',
    )
    await rejectsWith(client.otps.authenticate({ method_id: 'nope', code }), 400, 'invalid_method_id')
    await rejectsWith(
      client.otps.authenticate({ method_id: `phone-number-test-${randomUUID()}`, code }),
      404,
      'phone_number_not_found',
    )

    await rejectsWith(client.users.get({ user_id: `user-test-${randomUUID()}` }), 404, 'user_not_found')
    await rejectsWith(client.users.get({ user_id: 'user-test-not-a-uuid' }), 400, 'invalid_user_id')
    await rejectsWith(client.otps.whatsapp.send({ phone_number: '+12025550146' }), 404, 'phone_number_not_found')
    await rejectsWith(
      client.otps.whatsapp.send({ phone_number: '+12025550146', user_id: `user-test-${randomUUID()}` }),
      404,
      'user_not_found',
    )

    const impostor = new Client({ project_id: PROJECT.id, secret: 'secret-test-wrong', env: server.baseUrl })
    await rejectsWith(impostor.users.get({ user_id: sent.user_id }), 401, 'unauthorized_credentials')
    await rejectsWith(impostor.otps.whatsapp.loginOrCreate({ phone_number: phone }), 401, 'unauthorized_credentials')
  })

  it('the outbox over real HTTP: only loopback hosts, only with test-project credentials, only its messages', async () => {
    const phone = '+12025550148'
    await client.otps.whatsapp.loginOrCreate({ phone_number: phone })
    const code = await nextCode(phone, 0)
    const path = `/dev/whatsapp/outbox?phone_number=${encodeURIComponent(phone)}`
    const auth = { authorization: basicAuth(PROJECT) }
    // A DNS-rebinding page reaches the same socket, but its requests carry its own host name.
    const rebound = await getWithHost(path, 'attacker.example', auth)
    assert.equal(rebound.status, 404)
    assert.equal(JSON.parse(rebound.text).error_type, 'route_not_found')
    assert.ok(!rebound.text.includes(code))
    assert.equal((await getWithHost(path, `localhost:${server.port}`, auth)).status, 200)
    const anonymous = await getWithHost(path, `127.0.0.1:${server.port}`)
    assert.equal(anonymous.status, 401)
    assert.ok(!anonymous.text.includes(code))
    // Another test project sees nothing of this project's messages.
    const other = await getWithHost(path, `127.0.0.1:${server.port}`, { authorization: basicAuth(LOCAL_PROJECT) })
    assert.equal(other.status, 200)
    assert.deepEqual(JSON.parse(other.text).messages, [])
  })

  it("the README's local test project works with the SDK and keeps Stytch's default country allowlist", async () => {
    const local = new Client({ project_id: LOCAL_PROJECT.id, secret: LOCAL_PROJECT.secret, env: server.baseUrl })
    const sent = await local.otps.whatsapp.loginOrCreate({ phone_number: '+12025550147' })
    assert.equal(sent.user_created, true)
    await rejectsWith(
      local.otps.whatsapp.loginOrCreate({ phone_number: '+442071838750' }),
      400,
      'invalid_phone_number_country_code',
    )
  })
})
