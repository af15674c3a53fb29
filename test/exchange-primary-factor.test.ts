import { env } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import { expectStytchError, issueCode, type TestProject } from './helpers'
import { authenticate, dbGate, dbPhone, exchangeNumber, getUser, loginCode, project, send } from './otp-helpers'
import { type Login, login, sessionsAuthenticate, sessionsList } from './session-helpers'

// PUT /v1/users/{id}/exchange_primary_factor keeps the user's number until the new one is proven: the
// new number is added as a pending exchange (an attachment, with the 5-minute window of /send), and
// the user's own code on it completes the swap inside the authenticate batch. A change of the primary
// factor ends the user's other sessions.
const OLD = '+12025550170'
const NEW = '+12025550171'
const THIRD = '+12025550172'
const T0 = new Date('2026-11-27T10:00:00Z').getTime()
const ATTACH_WINDOW_MS = 5 * 60_000

type Phone = { phone_id: string; phone_number: string; verified: boolean }
const phoneNumbersOf = async (p: TestProject, userId: string) =>
  (await getUser(p, userId)).body.phone_numbers as Phone[]

/** A user with a verified number and two live sessions (two logins). */
async function userWithSessions(p: TestProject): Promise<[Login, Login]> {
  const first = await login(p, OLD)
  const second = await login(p, OLD)
  expect(second.userId).toBe(first.userId)
  return [first, second]
}

/** Asserts the session is gone: refused by its token and by its JWT alike. */
async function expectRevoked(p: TestProject, s: Login) {
  expectStytchError(await sessionsAuthenticate(p, { session_token: s.token }), 404, 'session_not_found')
  expectStytchError(await sessionsAuthenticate(p, { session_jwt: s.jwt }), 404, 'session_not_found')
  expectStytchError(await send(p, { phone_number: OLD, session_jwt: s.jwt }), 404, 'session_not_found')
}

/** Exchanges the user's number for NEW and has the user's code sent to NEW (the completing flow). */
async function pendingExchange(p: TestProject, userId: string) {
  const res = await exchangeNumber(p, userId, { phone_number: NEW })
  expect(res.status, JSON.stringify(res.body)).toBe(200)
  return issueCode(p, { phone_number: NEW, user_id: userId, expiration_minutes: 10 }, { path: 'send' })
}

describe('exchange_primary_factor: the old number stays until the new one is proven', () => {
  it('adds the new number unverified beside the old one; the old number keeps logging in', async () => {
    const p = await project()
    const [s] = await userWithSessions(p)
    const res = await exchangeNumber(p, s.userId, { phone_number: NEW })
    expect(res.status).toBe(200)
    expect(res.body.user_id).toBe(s.userId)
    const user = res.body.user as { phone_numbers: Phone[] }
    expect(user.phone_numbers).toEqual([
      { phone_id: s.phoneId, phone_number: OLD, verified: true },
      { phone_id: expect.any(String), phone_number: NEW, verified: false },
    ])
    expect(await phoneNumbersOf(p, s.userId)).toEqual(user.phone_numbers)
    // Nothing changed for the old number or the sessions yet.
    expect((await loginCode(p, OLD)).userId).toBe(s.userId)
    expect((await sessionsAuthenticate(p, { session_token: s.token })).status).toBe(200)
    // The pending number is no claim: without a user it is unknown, and another user cannot have it.
    expectStytchError(await send(p, { phone_number: NEW }), 404, 'phone_number_not_found')
    const other = await loginCode(p, THIRD)
    expectStytchError(await send(p, { phone_number: NEW, user_id: other.userId }), 409, 'duplicate_phone_number')
    // Repeating the exchange changes nothing but the window: still one pending number.
    const again = await exchangeNumber(p, s.userId, { phone_number: NEW })
    expect(again.status).toBe(200)
    expect((again.body.user as { phone_numbers: Phone[] }).phone_numbers).toEqual(user.phone_numbers)
  })

  it("the user's code on the new number swaps the numbers and ends the user's other sessions", async () => {
    const p = await project()
    const [s1, s2] = await userWithSessions(p)
    const oldCode = await loginCode(p, OLD, { expiration_minutes: 10 })
    const sent = await pendingExchange(p, s1.userId)
    expect(sent.userId).toBe(s1.userId)

    const done = await authenticate(p, { method_id: sent.phoneId, code: sent.code, session_duration_minutes: 60 })
    expect(done.status, JSON.stringify(done.body)).toBe(200)
    expect(done.body.user_id).toBe(s1.userId)
    expect((done.body.user as { phone_numbers: Phone[] }).phone_numbers).toEqual([
      { phone_id: sent.phoneId, phone_number: NEW, verified: true },
    ])
    expect(await phoneNumbersOf(p, s1.userId)).toEqual([{ phone_id: sent.phoneId, phone_number: NEW, verified: true }])
    expect(await dbPhone(sent.phoneId)).toMatchObject({ verified: 1, attach_expires_at: null })
    // The old phone, its code (gate and KV record) are gone in the same batch.
    expect(await dbPhone(s1.phoneId)).toBeNull()
    expect(await dbGate(s1.phoneId)).toBeNull()
    expect(await env.OTP_KV.get(`otp:${s1.phoneId}`)).toBeNull()
    expectStytchError(
      await authenticate(p, { method_id: s1.phoneId, code: oldCode.code }),
      404,
      'phone_number_not_found',
    )
    // Every other session ended, by token and by JWT; the completing authenticate's session lives.
    await expectRevoked(p, s1)
    await expectRevoked(p, s2)
    const kept = String(done.body.session_token)
    expect((await sessionsAuthenticate(p, { session_token: kept })).status).toBe(200)
    expect((await sessionsAuthenticate(p, { session_jwt: String(done.body.session_jwt) })).status).toBe(200)
    const live = (await sessionsList(p, s1.userId)).body.sessions as { session_id: string }[]
    expect(live.map((x) => x.session_id)).toEqual([(done.body.session as { session_id: string }).session_id])
    // The old number is free; the new one logs in to the user.
    expect((await loginCode(p, OLD)).body.user_created).toBe(true)
    expect((await loginCode(p, NEW)).userId).toBe(s1.userId)
  })

  it('the session presented to the completing authenticate is kept; without one, every session ends', async () => {
    const p = await project()
    const [s1, s2] = await userWithSessions(p)
    const sent = await pendingExchange(p, s1.userId)
    const done = await authenticate(p, { method_id: sent.phoneId, code: sent.code, session_token: s1.token })
    expect(done.status, JSON.stringify(done.body)).toBe(200)
    expect(done.body.session_token).toBe(s1.token)
    expect((await sessionsAuthenticate(p, { session_token: s1.token })).status).toBe(200)
    await expectRevoked(p, s2)

    const q = await project()
    const [t1, t2] = await userWithSessions(q)
    const quiet = await pendingExchange(q, t1.userId)
    const plain = await authenticate(q, { method_id: quiet.phoneId, code: quiet.code })
    expect(plain.status).toBe(200)
    expect(plain.body.session).toBeNull()
    await expectRevoked(q, t1)
    await expectRevoked(q, t2)
    expect((await sessionsList(q, t1.userId)).body.sessions).toEqual([])
  })

  it('an exchange not proven within the window lapses: the old number and the sessions stay', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(T0)
    const p = await project()
    const [s] = await userWithSessions(p)
    const sent = await pendingExchange(p, s.userId)
    vi.setSystemTime(T0 + ATTACH_WINDOW_MS + 1)
    expect(await phoneNumbersOf(p, s.userId)).toEqual([{ phone_id: s.phoneId, phone_number: OLD, verified: true }])
    expectStytchError(
      await authenticate(p, { method_id: sent.phoneId, code: sent.code }),
      401,
      'unable_to_auth_otp_code',
    )
    expect(await dbPhone(sent.phoneId)).toBeNull()
    expect((await sessionsAuthenticate(p, { session_token: s.token })).status).toBe(200)
    expect((await loginCode(p, NEW)).body.user_created).toBe(true)
  })

  it('a new exchange replaces the pending one; exchanging to the current number cancels it', async () => {
    const p = await project()
    const [s] = await userWithSessions(p)
    const first = await pendingExchange(p, s.userId)
    const replaced = await exchangeNumber(p, s.userId, { phone_number: THIRD })
    expect(replaced.status).toBe(200)
    expect((replaced.body.user as { phone_numbers: Phone[] }).phone_numbers).toEqual([
      { phone_id: s.phoneId, phone_number: OLD, verified: true },
      { phone_id: expect.any(String), phone_number: THIRD, verified: false },
    ])
    // The first pending number and its code are gone.
    expect(await dbPhone(first.phoneId)).toBeNull()
    expect(await env.OTP_KV.get(`otp:${first.phoneId}`)).toBeNull()
    expectStytchError(
      await authenticate(p, { method_id: first.phoneId, code: first.code }),
      404,
      'phone_number_not_found',
    )

    const cancelled = await exchangeNumber(p, s.userId, { phone_number: OLD })
    expect(cancelled.status).toBe(200)
    expect((cancelled.body.user as { phone_numbers: Phone[] }).phone_numbers).toEqual([
      { phone_id: s.phoneId, phone_number: OLD, verified: true },
    ])
    expect((await loginCode(p, THIRD)).body.user_created).toBe(true)
    expect((await sessionsAuthenticate(p, { session_token: s.token })).status).toBe(200)
  })

  it('a /send attachment verified by its code is added, not swapped: no session ends', async () => {
    const p = await project()
    const [s1, s2] = await userWithSessions(p)
    const added = await issueCode(p, { phone_number: NEW, user_id: s1.userId }, { path: 'send' })
    expect((await authenticate(p, { method_id: added.phoneId, code: added.code })).status).toBe(200)
    expect((await phoneNumbersOf(p, s1.userId)).map((n) => [n.phone_number, n.verified])).toEqual([
      [OLD, true],
      [NEW, true],
    ])
    expect((await sessionsAuthenticate(p, { session_token: s1.token })).status).toBe(200)
    expect((await sessionsAuthenticate(p, { session_jwt: s2.jwt })).status).toBe(200)
  })
})
