import { env } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import { pausingBatchDb } from './fault-env'
import { callJson, countingEnv, expectStytchError, issueCode, loginOrCreate } from './helpers'
import { authenticate, dbPhone, exchangeNumber, getUser, loginCode, project, send } from './otp-helpers'
import { login, sessionsAuthenticate } from './session-helpers'

// An attacker's account X attaches a victim's number V through the integrator's "add a phone" flow
// (/send with user_id X). An attachment is no claim on V: the victim's login must never resolve to X.
const ATTACKER_PHONE = '+12025550170'
const VICTIM_PHONE = '+12025550171'
const T0 = new Date('2026-11-27T10:00:00Z')

/** The attacker's account, its own number verified (as after a normal signup). */
async function attackerAccount(p: Awaited<ReturnType<typeof project>>) {
  const signup = await loginCode(p, ATTACKER_PHONE)
  expect((await authenticate(p, { method_id: signup.phoneId, code: signup.code })).status).toBe(200)
  return signup.userId
}

const phoneNumbersOf = async (p: Awaited<ReturnType<typeof project>>, userId: string) =>
  ((await getUser(p, userId)).body.phone_numbers as { phone_number: string; verified: boolean }[]) ?? []

/**
 * The victim logs in with their own number while the attacker's account has it attached: a new user
 * of the victim's own, whose session and verified number are the victim's. Returns that login.
 */
async function victimLogsIn(p: Awaited<ReturnType<typeof project>>, attacker: string, attachPhoneId: string) {
  const victim = await loginCode(p, VICTIM_PHONE)
  expect(victim.body).toMatchObject({ user_created: true })
  expect(victim.userId).not.toBe(attacker)
  expect(victim.phoneId).not.toBe(attachPhoneId)
  const session = await authenticate(p, { method_id: victim.phoneId, code: victim.code, session_duration_minutes: 60 })
  expect(session.status).toBe(200)
  expect(session.body.user_id).toBe(victim.userId)
  expect((session.body.session as { user_id: string }).user_id).toBe(victim.userId)
  expect(await phoneNumbersOf(p, victim.userId)).toEqual([
    { phone_id: victim.phoneId, phone_number: VICTIM_PHONE, verified: true },
  ])
  return victim
}

describe('an unverified attachment is no claim on the number', () => {
  it('login_or_create during the attach window creates the real owner and voids the attach code', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(T0)
    const p = await project()
    const attacker = await attackerAccount(p)
    const attach = await issueCode(p, { phone_number: VICTIM_PHONE, user_id: attacker }, { path: 'send' })
    expect(attach.body.user_id).toBe(attacker)

    // 31 s later, well inside the 5-minute window, the victim logs in with their own number.
    vi.setSystemTime(T0.getTime() + 31_000)
    await victimLogsIn(p, attacker, attach.phoneId)
    // The attacker's account never gets the number, and its attach code no longer authenticates.
    expect((await phoneNumbersOf(p, attacker)).map((n) => n.phone_number)).toEqual([ATTACKER_PHONE])
    expect(await dbPhone(attach.phoneId)).toBeNull()
    expectStytchError(
      await authenticate(p, { method_id: attach.phoneId, code: attach.code }),
      404,
      'phone_number_not_found',
    )
    // Attaching the number again is refused: it now has an owner.
    expectStytchError(await send(p, { phone_number: VICTIM_PHONE, user_id: attacker }), 409, 'duplicate_phone_number')
  })

  it('/send without a user treats an attached number as unknown and changes nothing', async () => {
    const p = await project()
    const attacker = await attackerAccount(p)
    const attach = await issueCode(p, { phone_number: VICTIM_PHONE, user_id: attacker }, { path: 'send' })

    const counting = countingEnv(env)
    const res = await send(p, { phone_number: VICTIM_PHONE }, { env: counting.env })
    expectStytchError(res, 404, 'phone_number_not_found')
    expect(counting.queueSends).toEqual([])
    expect(counting.kvPuts).toEqual([])
    const deliveries = await env.DB.prepare('SELECT COUNT(*) AS n FROM deliveries WHERE phone_id = ?1')
      .bind(attach.phoneId)
      .first<{ n: number }>()
    expect(deliveries?.n).toBe(1)

    // The attach flow itself still works: its own code, within the window, verifies the number on X.
    const done = await authenticate(p, { method_id: attach.phoneId, code: attach.code })
    expect(done.status).toBe(200)
    expect(done.body.user_id).toBe(attacker)
    expect(await dbPhone(attach.phoneId)).toMatchObject({ user_id: attacker, verified: 1, attach_expires_at: null })
    // Verified, it is the user's number like any other: /send without a user reaches it.
    expect((await send(p, { phone_number: VICTIM_PHONE })).body).toMatchObject({ user_id: attacker })
  })

  it('attach racing the owner’s login_or_create never puts the owner in the attaching account', async () => {
    const p = await project()
    const attacker = await attackerAccount(p)
    const rounds = 8
    for (let i = 0; i < rounds; i++) {
      const number = `+1202555018${i}`
      const attachEnv = countingEnv(env)
      const [attach, login] = await Promise.all([
        callJson('POST', '/v1/otps/whatsapp/send', {
          project: p,
          body: { phone_number: number, user_id: attacker },
          env: attachEnv.env,
        }),
        loginOrCreate({ phone_number: number }, { project: p }),
      ])
      expect(login.status, JSON.stringify(login.body)).toBe(200)
      expect(login.body.user_id).not.toBe(attacker)
      expect(login.body.user_created).toBe(true)
      // Whichever committed first: the attach was refused (409) or was released by the login.
      expect([200, 409]).toContain(attach.status)
      const owner = await env.DB.prepare('SELECT user_id FROM phones WHERE project_id = ?1 AND phone_number = ?2')
        .bind(p.id, number)
        .first<{ user_id: string }>()
      expect(owner?.user_id).toBe(login.body.user_id)
    }
    expect((await phoneNumbersOf(p, attacker)).map((n) => n.phone_number)).toEqual([ATTACKER_PHONE])
  })
})

// The same attack through PUT /v1/users/{id}/exchange_primary_factor: the attacker's account X
// exchanges its number for the victim's number V. Until X proves V with a code sent to V, the exchange
// is an attachment like /send's: the victim's own login_or_create must never resolve to X.
describe('exchange_primary_factor is no claim on the new number', () => {
  it("the victim's login_or_create gets the victim's own new user; the attacker's code for the number is void", async () => {
    const p = await project()
    // 1. The attacker signs up with their own number and keeps a session.
    const attacker = await login(p, ATTACKER_PHONE)
    // 2. The attacker's account exchanges its number for the victim's.
    const exchanged = await exchangeNumber(p, attacker.userId, { phone_number: VICTIM_PHONE })
    expect(exchanged.status, JSON.stringify(exchanged.body)).toBe(200)
    expect(Object.keys(exchanged.body).sort()).toEqual(['request_id', 'status_code', 'user', 'user_id'])
    // The old number stays until the new one is proven; the new one is listed unverified.
    const pending = (exchanged.body.user as { phone_numbers: { phone_id: string }[] }).phone_numbers
    expect(pending).toEqual([
      { phone_id: attacker.phoneId, phone_number: ATTACKER_PHONE, verified: true },
      { phone_id: expect.any(String), phone_number: VICTIM_PHONE, verified: false },
    ])
    // The attacker has a code sent to V through its own session (the code reaches the victim's phone).
    const attach = await issueCode(p, { phone_number: VICTIM_PHONE, session_token: attacker.token }, { path: 'send' })
    expect(attach.userId).toBe(attacker.userId)
    expect(attach.phoneId).toBe(pending[1]?.phone_id)

    // 3-4. The victim logs in with their own number, as they always do: a new user of their own, whose
    // session and verified number are the victim's.
    await victimLogsIn(p, attacker.userId, attach.phoneId)

    // The attacker's code for V is void, and the attacker's account never got V.
    expect(await dbPhone(attach.phoneId)).toBeNull()
    expectStytchError(
      await authenticate(p, { method_id: attach.phoneId, code: attach.code }),
      404,
      'phone_number_not_found',
    )
    expect(await phoneNumbersOf(p, attacker.userId)).toEqual([
      { phone_id: attacker.phoneId, phone_number: ATTACKER_PHONE, verified: true },
    ])
    // 5. The attacker's session reaches only the attacker's own account, and cannot take V again.
    const own = await sessionsAuthenticate(p, { session_token: attacker.token })
    expect(own.body.user).toMatchObject({ user_id: attacker.userId, phone_numbers: [{ phone_number: ATTACKER_PHONE }] })
    expectStytchError(
      await send(p, { phone_number: VICTIM_PHONE, session_token: attacker.token }),
      409,
      'duplicate_phone_number',
    )
    expectStytchError(
      await exchangeNumber(p, attacker.userId, { phone_number: VICTIM_PHONE }),
      409,
      'duplicate_phone_number',
    )
  })

  it("never releases another user's in-window /send attachment into a claim of its own", async () => {
    const p = await project()
    const adder = await attackerAccount(p)
    const exchanger = await login(p, '+12025550172')
    const attach = await issueCode(
      p,
      { phone_number: VICTIM_PHONE, user_id: adder, expiration_minutes: 10 },
      { path: 'send' },
    )
    const before = await dbPhone(attach.phoneId)

    expectStytchError(
      await exchangeNumber(p, exchanger.userId, { phone_number: VICTIM_PHONE }),
      409,
      'duplicate_phone_number',
    )
    // The attachment is untouched and still verifiable by its own flow only; the exchanger keeps its number.
    expect(await dbPhone(attach.phoneId)).toEqual(before)
    expect(await phoneNumbersOf(p, exchanger.userId)).toEqual([
      { phone_id: exchanger.phoneId, phone_number: '+12025550172', verified: true },
    ])
    // The number's owner logs in: the attachment is released and the owner gets a user of their own.
    const owner = await loginCode(p, VICTIM_PHONE)
    expect(owner.body).toMatchObject({ user_created: true })
    expect([adder, exchanger.userId]).not.toContain(owner.userId)
  })

  describe("an exchange racing the owner's login_or_create never puts the owner in the exchanging account", () => {
    /** The owner's login and the attacker's account afterwards, checked the same way whatever the order. */
    async function expectOwnerAlone(p: Awaited<ReturnType<typeof project>>, attacker: string, owner: string) {
      const row = await env.DB.prepare(
        'SELECT user_id, verified FROM phones WHERE project_id = ?1 AND phone_number = ?2',
      )
        .bind(p.id, VICTIM_PHONE)
        .first<{ user_id: string }>()
      expect(row?.user_id).toBe(owner)
      expect((await phoneNumbersOf(p, attacker)).map((n) => n.phone_number)).toEqual([ATTACKER_PHONE])
    }

    /** While `paused` holds another request, the owner logs in to completion; then that request goes on. */
    async function ownerLogsInMeanwhile(
      p: Awaited<ReturnType<typeof project>>,
      paused: { paused: Promise<void>; resume: () => void },
    ) {
      await paused.paused
      const owner = await loginCode(p, VICTIM_PHONE)
      paused.resume()
      expect(owner.body).toMatchObject({ user_created: true })
      return owner
    }

    it('the exchange reads the number as free, the login commits, then the exchange writes: 409', async () => {
      const p = await project()
      const attacker = await attackerAccount(p)
      // The exchange's first batch reads the state; its second, paused here, writes.
      const paused = pausingBatchDb(env.DB, 1)
      const exchanging = exchangeNumber(p, attacker, { phone_number: VICTIM_PHONE }, { env: { ...env, DB: paused.db } })
      const owner = await ownerLogsInMeanwhile(p, paused)
      expectStytchError(await exchanging, 409, 'duplicate_phone_number')
      await expectOwnerAlone(p, attacker, owner.userId)
    })

    it('the login reads nothing yet, the exchange commits, then the login runs: the owner gets a new user', async () => {
      const p = await project()
      const attacker = await attackerAccount(p)
      // login_or_create is one batch, paused here before it runs.
      const paused = pausingBatchDb(env.DB, 0)
      const logging = issueCode(p, { phone_number: VICTIM_PHONE }, { env: { ...env, DB: paused.db } })
      await paused.paused
      const exchanged = await exchangeNumber(p, attacker, { phone_number: VICTIM_PHONE })
      expect(exchanged.status).toBe(200)
      paused.resume()
      const owner = await logging
      expect(owner.body).toMatchObject({ user_created: true })
      expect(owner.userId).not.toBe(attacker)
      await expectOwnerAlone(p, attacker, owner.userId)
    })

    it("the exchanging account's code is checked after the owner's login committed: void", async () => {
      const p = await project()
      const attacker = await attackerAccount(p)
      expect((await exchangeNumber(p, attacker, { phone_number: VICTIM_PHONE })).status).toBe(200)
      const attach = await issueCode(p, { phone_number: VICTIM_PHONE, user_id: attacker }, { path: 'send' })
      // authenticate (no session) runs one batch, paused here: the owner logs in meanwhile.
      const paused = pausingBatchDb(env.DB, 0)
      const authenticating = authenticate(
        p,
        { method_id: attach.phoneId, code: attach.code },
        { env: { ...env, DB: paused.db } },
      )
      const owner = await ownerLogsInMeanwhile(p, paused)
      expectStytchError(await authenticating, 404, 'phone_number_not_found')
      await expectOwnerAlone(p, attacker, owner.userId)
    })
  })
})
