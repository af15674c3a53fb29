// Attack sequences that span several requests, replayed over real HTTP against the Worker started as
// `npm run dev` starts it (test/node/server.mjs), with the codes read from the local outbox as a
// person would read them on their phone.
//   - The attach-window pre-account takeover: an attacker's account attaches the victim's number
//     through the "add a phone" flow (/send with user_id); the victim then logs in with that number.
//     The victim must get an account of their own, and the attacker's account never the number.
//   - The same takeover through exchange_primary_factor: the attacker's account exchanges its number
//     for the victim's. The new number is only a pending exchange until the account proves it with a
//     code, so the victim's login_or_create still lands in the victim's own account, the attacker's
//     code for the number dies, and a completed exchange ends the account's other sessions.
//   - Toll-fraud numbers refused before anything is sent.
// Run by `npm run test:node` (part of `npm test`).
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { describe, it } from 'node:test'
import { Client } from 'stytch'
import { basicAuth, readOutbox, serveDuringTests, waitForCode } from './server.mjs'

const PROJECT = {
  id: `project-test-${randomUUID()}`,
  secret: `secret-test-takeover-${randomUUID()}`,
  env: 'test',
  settings: { phone_send_cooldown_seconds: 0, phone_sends_per_hour: 1_000, phone_sends_per_day: 10_000 },
}
const AUTH = basicAuth(PROJECT)
const OUTBOX_TIMEOUT_MS = 30_000

let server
let client

serveDuringTests({ projects: [PROJECT] }, (s) => {
  server = s
  client = new Client({ project_id: PROJECT.id, secret: PROJECT.secret, env: server.baseUrl })
})

async function api(method, path, body) {
  const res = await fetch(new URL(path, server.baseUrl), {
    method,
    headers: { authorization: AUTH, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return { status: res.status, body: await res.json() }
}

const outbox = (phone) => readOutbox(server.baseUrl, PROJECT, phone)
const nextCode = (phone, seen) => waitForCode(server.baseUrl, PROJECT, phone, seen, OUTBOX_TIMEOUT_MS)

/** login_or_create then authenticate with the delivered code; returns the authenticate reply. */
async function login(phone) {
  const seen = (await outbox(phone)).length
  const sent = await api('POST', '/v1/otps/whatsapp/login_or_create', { phone_number: phone })
  assert.equal(sent.status, 200, JSON.stringify(sent.body))
  const code = await nextCode(phone, seen)
  const auth = await api('POST', '/v1/otps/authenticate', {
    method_id: sent.body.phone_id,
    code,
    session_duration_minutes: 60,
  })
  return { sent, auth }
}

describe('account takeover through the /send attach window', () => {
  it("the victim's login_or_create during the window lands in the victim's own account", async () => {
    const attacker = await login('+12025550190')
    assert.equal(attacker.auth.status, 200)
    const attackerId = attacker.auth.body.user_id
    const victimPhone = '+12025550191'

    // The attacker's account adds the victim's number; the code goes to the victim's WhatsApp.
    const seen = (await outbox(victimPhone)).length
    const attach = await api('POST', '/v1/otps/whatsapp/send', { phone_number: victimPhone, user_id: attackerId })
    assert.equal(attach.status, 200, JSON.stringify(attach.body))
    assert.equal(attach.body.user_id, attackerId)
    await nextCode(victimPhone, seen)

    // Inside the window, the victim logs in with their number, as they always do.
    const victim = await login(victimPhone)
    assert.equal(victim.sent.body.user_created, true)
    assert.notEqual(victim.sent.body.user_id, attackerId)
    assert.equal(victim.auth.status, 200, JSON.stringify(victim.auth.body))
    assert.equal(victim.auth.body.user_id, victim.sent.body.user_id)
    assert.equal(victim.auth.body.session.user_id, victim.sent.body.user_id)

    // The attacker's account shows only its own number; the victim's has theirs, verified.
    const attackerUser = await api('GET', `/v1/users/${attackerId}`)
    assert.deepEqual(
      attackerUser.body.phone_numbers.map((p) => p.phone_number),
      ['+12025550190'],
    )
    const victimUser = await api('GET', `/v1/users/${victim.sent.body.user_id}`)
    assert.deepEqual(victimUser.body.phone_numbers, [
      { phone_id: victim.sent.body.phone_id, phone_number: victimPhone, verified: true },
    ])
    // The number cannot be attached again.
    const again = await api('POST', '/v1/otps/whatsapp/send', { phone_number: victimPhone, user_id: attackerId })
    assert.equal(again.status, 409)
    assert.equal(again.body.error_type, 'duplicate_phone_number')
  })

  it('/send without a user answers 404 for a number that is only attached', async () => {
    const attacker = await login('+12025550192')
    const victimPhone = '+12025550193'
    const attach = await api('POST', '/v1/otps/whatsapp/send', {
      phone_number: victimPhone,
      user_id: attacker.auth.body.user_id,
    })
    assert.equal(attach.status, 200)
    const res = await api('POST', '/v1/otps/whatsapp/send', { phone_number: victimPhone })
    assert.equal(res.status, 404)
    assert.equal(res.body.error_type, 'phone_number_not_found')
  })
})

describe('account takeover through exchange_primary_factor', () => {
  it("the victim's login_or_create gets the victim's own user; the attacker's code for the number is void", async () => {
    const attackerPhone = '+12025550194'
    const victimPhone = '+12025550195'
    // 1. The attacker signs up and keeps a session.
    const attacker = await login(attackerPhone)
    assert.equal(attacker.auth.status, 200)
    const attackerId = attacker.auth.body.user_id
    const token = attacker.auth.body.session_token

    // 2. The attacker's account exchanges its number for the victim's: only a pending exchange.
    const exchanged = await client.users.exchangePrimaryFactor({ user_id: attackerId, phone_number: victimPhone })
    assert.deepEqual(
      exchanged.user.phone_numbers.map((p) => [p.phone_number, p.verified]),
      [
        [attackerPhone, true],
        [victimPhone, false],
      ],
    )
    // The attacker has a code sent to the number through its own session; it reaches the victim.
    const seen = (await outbox(victimPhone)).length
    const attach = await api('POST', '/v1/otps/whatsapp/send', { phone_number: victimPhone, session_token: token })
    assert.equal(attach.status, 200, JSON.stringify(attach.body))
    assert.equal(attach.body.user_id, attackerId)
    const attackerCode = await nextCode(victimPhone, seen)

    // 3-4. The victim logs in with their number, as always: a new user of their own, V verified there.
    const victim = await login(victimPhone)
    assert.equal(victim.sent.body.user_created, true)
    assert.notEqual(victim.sent.body.user_id, attackerId)
    assert.equal(victim.auth.status, 200, JSON.stringify(victim.auth.body))
    assert.equal(victim.auth.body.session.user_id, victim.sent.body.user_id)
    assert.deepEqual((await api('GET', `/v1/users/${victim.sent.body.user_id}`)).body.phone_numbers, [
      { phone_id: victim.sent.body.phone_id, phone_number: victimPhone, verified: true },
    ])

    // The attacker's code for the number is void; the attacker's account never got it.
    const late = await api('POST', '/v1/otps/authenticate', { method_id: attach.body.phone_id, code: attackerCode })
    assert.equal(late.status, 404)
    assert.equal(late.body.error_type, 'phone_number_not_found')
    assert.deepEqual(
      (await client.users.get({ user_id: attackerId })).phone_numbers.map((p) => p.phone_number),
      [attackerPhone],
    )
    // 5. The attacker's session reaches only its own account and cannot take the number again.
    const own = await client.sessions.authenticate({ session_token: token })
    assert.equal(own.user.user_id, attackerId)
    const again = await api('POST', '/v1/otps/whatsapp/send', { phone_number: victimPhone, session_token: token })
    assert.equal(again.status, 409)
    assert.equal(again.body.error_type, 'duplicate_phone_number')
  })

  it("a completed exchange swaps the numbers and ends the user's other sessions, by token and by JWT", async () => {
    const oldPhone = '+12025550196'
    const newPhone = '+12025550197'
    const first = await login(oldPhone)
    const userId = first.auth.body.user_id
    await client.users.exchangePrimaryFactor({ user_id: userId, phone_number: newPhone })
    const seen = (await outbox(newPhone)).length
    const sent = await client.otps.whatsapp.send({ phone_number: newPhone, user_id: userId })
    const code = await nextCode(newPhone, seen)
    const done = await client.otps.authenticate({ method_id: sent.phone_id, code, session_duration_minutes: 60 })
    assert.equal(done.user_id, userId)
    assert.deepEqual(
      done.user.phone_numbers.map((p) => [p.phone_number, p.verified]),
      [[newPhone, true]],
    )
    for (const credential of [
      { session_token: first.auth.body.session_token },
      { session_jwt: first.auth.body.session_jwt },
    ]) {
      const revoked = await api('POST', '/v1/sessions/authenticate', credential)
      assert.equal(revoked.status, 404)
      assert.equal(revoked.body.error_type, 'session_not_found')
    }
    assert.equal((await client.sessions.authenticate({ session_token: done.session_token })).user.user_id, userId)
    // The old number is free again.
    const reused = await api('POST', '/v1/otps/whatsapp/login_or_create', { phone_number: oldPhone })
    assert.equal(reused.body.user_created, true)
  })
})

describe('toll-fraud numbers', () => {
  for (const [number, kind] of [
    ['+19002345678', 'premium rate'],
    ['+18002345679', 'toll free'],
    ['+15002345678', 'personal number'],
  ]) {
    it(`refuses ${number} (${kind}) and sends nothing`, async () => {
      const res = await api('POST', '/v1/otps/whatsapp/login_or_create', { phone_number: number })
      assert.equal(res.status, 400)
      assert.equal(res.body.error_type, 'invalid_phone_number')
      assert.match(res.body.error_message, new RegExp(kind))
      assert.deepEqual(await outbox(number), [])
    })
  }
})
