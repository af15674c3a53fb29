import { env } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import { callJson, countingEnv, expectStytchError, issueCode, loginOrCreate } from './helpers'
import { authenticate, dbPhone, getUser, loginCode, project, send } from './otp-helpers'

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
    const victim = await loginCode(p, VICTIM_PHONE)
    expect(victim.body).toMatchObject({ user_created: true })
    expect(victim.userId).not.toBe(attacker)
    expect(victim.phoneId).not.toBe(attach.phoneId)

    const session = await authenticate(p, {
      method_id: victim.phoneId,
      code: victim.code,
      session_duration_minutes: 60,
    })
    expect(session.status).toBe(200)
    expect(session.body.user_id).toBe(victim.userId)
    expect((session.body.session as { user_id: string }).user_id).toBe(victim.userId)
    expect(await phoneNumbersOf(p, victim.userId)).toEqual([
      { phone_id: victim.phoneId, phone_number: VICTIM_PHONE, verified: true },
    ])
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
