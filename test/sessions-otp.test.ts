import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { countingEnv, expectStytchError, issueCode, loginOrCreate, newProject } from './helpers'
import { authenticate, deleteUser, loginCode, project, send, wrong } from './otp-helpers'
import { decodeParts, iso, login, sessionsAuthenticate, sessionsList, verifiesWithJwks } from './session-helpers'

const PHONE = '+12025550170'
const SECOND_PHONE = '+12025550171'
const T0 = Date.parse('2026-11-27T10:00:00Z')
const MINUTE = 60_000

const sessionRows = async (userId: string) =>
  (await env.DB.prepare('SELECT id FROM sessions WHERE user_id = ?1').bind(userId).all<{ id: string }>()).results

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] })
  vi.setSystemTime(T0)
})

describe('POST /v1/otps/authenticate with session_duration_minutes', () => {
  it('starts a session with the WhatsApp OTP factor, a 44-character token and a 5-minute JWT', async () => {
    const p = await project()
    const { code, phoneId, userId } = await loginCode(p, PHONE)
    const attributes = { ip_address: '203.0.113.7', user_agent: 'Mozilla/5.0' }
    const res = await authenticate(p, { method_id: phoneId, code, session_duration_minutes: 90, attributes })
    expect(res.status).toBe(200)
    const { session_token: token, session_jwt: jwt, session } = res.body
    expect(token).toMatch(/^[A-Za-z0-9_-]{44}$/)
    expect(session).toEqual({
      session_id: expect.stringMatching(/^session-test-[0-9a-f-]{36}$/),
      user_id: userId,
      started_at: iso(T0),
      last_accessed_at: iso(T0),
      expires_at: iso(T0 + 90 * MINUTE),
      attributes,
      authentication_factors: [
        {
          type: 'otp',
          delivery_method: 'whatsapp',
          last_authenticated_at: iso(T0),
          created_at: iso(T0),
          updated_at: iso(T0),
          phone_number_factor: { phone_id: phoneId, phone_number: PHONE },
        },
      ],
      custom_claims: {},
      roles: [],
    })
    const { header, payload } = decodeParts(String(jwt))
    expect(header).toEqual({ alg: 'RS256', kid: expect.stringMatching(/^jwk-test-/), typ: 'JWT' })
    const { session_id: id, user_id: _user, custom_claims: _claims, ...claim } = session as Record<string, unknown>
    expect(payload).toEqual({
      aud: [p.id],
      exp: T0 / 1000 + 300,
      iat: T0 / 1000,
      nbf: T0 / 1000,
      iss: `stytch.com/${p.id}`,
      sub: userId,
      'https://stytch.com/session': { id, ...claim },
    })
    expect(await verifiesWithJwks(p.id, String(jwt))).toBe(true)
  })

  it('labels a live project session session-live-', async () => {
    const p = await newProject('live', { allowed_countries: '*' })
    const s = await login(p, PHONE)
    expect(s.session.session_id).toMatch(/^session-live-/)
    expect(decodeParts(s.jwt).header.kid).toMatch(/^jwk-live-/)
  })

  it('starts sessions for the sandbox number and code', async () => {
    const p = await project()
    const created = await loginOrCreate({ phone_number: '+10000000000' }, { project: p })
    const body = { method_id: created.body.phone_id, code: '000000', session_duration_minutes: 5 }
    const res = await authenticate(p, body)
    expect(res.status).toBe(200)
    expect(res.body.session).toMatchObject({ user_id: created.body.user_id, expires_at: iso(T0 + 5 * MINUTE) })
  })

  it('starts no session for a wrong code or without session_duration_minutes', async () => {
    const p = await project()
    const { code, phoneId, userId } = await loginCode(p, PHONE)
    const bad = await authenticate(p, { method_id: phoneId, code: wrong(code), session_duration_minutes: 60 })
    expectStytchError(bad, 404, 'otp_code_not_found')
    const plain = await authenticate(p, { method_id: phoneId, code })
    expect(plain.body).toMatchObject({ session_token: '', session_jwt: '', session: null })
    expect(await sessionRows(userId)).toEqual([])
  })

  it("purges the user's expired sessions when it starts one, and not on a refused attempt", async () => {
    const p = await project()
    const old = await login(p, PHONE, { session_duration_minutes: 5 })
    vi.setSystemTime(T0 + 10 * MINUTE)
    const { code, phoneId } = await loginCode(p, PHONE)
    await authenticate(p, { method_id: phoneId, code: wrong(code), session_duration_minutes: 60 })
    expect(await sessionRows(old.userId)).toEqual([{ id: old.session.session_id }])
    const res = await authenticate(p, { method_id: phoneId, code, session_duration_minutes: 60 })
    expect(await sessionRows(old.userId)).toEqual([{ id: (res.body.session as { session_id: string }).session_id }])
  })

  it('costs no extra D1 round trip: the session rides in the code-consuming batch', async () => {
    const p = await project()
    await login(p, '+12025550179') // warms the project and its signing key in this isolate
    const counts: number[] = []
    for (const extra of [{}, { session_duration_minutes: 60 }]) {
      const { code, phoneId } = await loginCode(p, PHONE)
      const counting = countingEnv(env)
      const res = await authenticate(p, { method_id: phoneId, code, ...extra }, { env: counting.env })
      expect(res.status).toBe(200)
      counts.push(counting.d1())
    }
    expect(counts[1]).toBe(counts[0])
  })

  it('stores custom claims without reserved ones, and refuses over 4 KB before using the code', async () => {
    const p = await project()
    const { code, phoneId } = await loginCode(p, PHONE)
    const tooBig = { session_duration_minutes: 60, session_custom_claims: { blob: 'x'.repeat(4_100) } }
    expectStytchError(await authenticate(p, { method_id: phoneId, code, ...tooBig }), 400, 'custom_claims_too_large')
    const claims = { role: 'admin', exp: 1, aud: 'x', 'https://stytch.com/organization': {} }
    const res = await authenticate(p, {
      method_id: phoneId,
      code,
      session_duration_minutes: 60,
      session_custom_claims: claims,
    })
    expect(res.body.session).toMatchObject({ custom_claims: { role: 'admin' } })
    expect(decodeParts(String(res.body.session_jwt)).payload).toMatchObject({ role: 'admin', exp: T0 / 1000 + 300 })
  })
})

describe('POST /v1/otps/authenticate with an existing session', () => {
  it('adds the factor to the session (by token), extends it on request, and echoes the token', async () => {
    const p = await project()
    const s = await login(p, PHONE)
    vi.setSystemTime(T0 + 10 * MINUTE)
    const second = await issueCode(p, { phone_number: SECOND_PHONE, session_token: s.token }, { path: 'send' })
    expect(second.userId).toBe(s.userId)
    const res = await authenticate(p, {
      method_id: second.phoneId,
      code: second.code,
      session_token: s.token,
      session_duration_minutes: 120,
    })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ session_token: s.token, user_id: s.userId })
    expect(res.body.session).toMatchObject({
      session_id: s.session.session_id,
      started_at: iso(T0),
      last_accessed_at: iso(T0 + 10 * MINUTE),
      expires_at: iso(T0 + 130 * MINUTE),
      authentication_factors: [
        { phone_number_factor: { phone_id: s.phoneId, phone_number: PHONE }, last_authenticated_at: iso(T0) },
        {
          phone_number_factor: { phone_id: second.phoneId, phone_number: SECOND_PHONE },
          last_authenticated_at: iso(T0 + 10 * MINUTE),
        },
      ],
    })
    expect(await sessionRows(s.userId)).toHaveLength(1)
  })

  it('refreshes the factor when the same phone authenticates again (by JWT), returning the session token', async () => {
    const p = await project()
    const s = await login(p, PHONE)
    vi.setSystemTime(T0 + 20 * MINUTE) // the JWT has expired; its session has not
    const { code } = await loginCode(p, PHONE)
    const res = await authenticate(p, { method_id: s.phoneId, code, session_jwt: s.jwt })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ session_token: s.token })
    const session = res.body.session as { expires_at: string; authentication_factors: unknown[] }
    expect(session.expires_at).toBe(s.session.expires_at)
    expect(session.authentication_factors).toEqual([
      expect.objectContaining({ created_at: iso(T0), last_authenticated_at: iso(T0 + 20 * MINUTE) }),
    ])
    expect(decodeParts(String(res.body.session_jwt)).payload.iat).toBe((T0 + 20 * MINUTE) / 1000)
  })

  it("refuses another user's session or a dead one before using the code", async () => {
    const p = await project()
    const mine = await login(p, PHONE)
    const theirs = await login(p, SECOND_PHONE)
    const { code, phoneId } = await loginCode(p, PHONE)
    const mismatch = await authenticate(p, { method_id: phoneId, code, session_token: theirs.token })
    expectStytchError(mismatch, 400, 'user_id_mismatch')
    vi.setSystemTime(T0 + 60 * MINUTE)
    const { code: fresh } = await loginCode(p, PHONE)
    expectStytchError(
      await authenticate(p, { method_id: phoneId, code: fresh, session_jwt: mine.jwt }),
      404,
      'session_not_found',
    )
    expect((await authenticate(p, { method_id: phoneId, code: fresh })).status).toBe(200)
  })
})

describe('POST /v1/otps/whatsapp/send with a session', () => {
  it.each(['session_token', 'session_jwt'] as const)("attaches the number to the %s's user", async (field) => {
    const p = await project()
    const s = await login(p, PHONE)
    const res = await send(p, { phone_number: SECOND_PHONE, [field]: field === 'session_token' ? s.token : s.jwt })
    expect(res.status).toBe(200)
    expect(res.body.user_id).toBe(s.userId)
  })

  it('refuses a dead session, or one whose user is not the user_id given', async () => {
    const p = await project()
    const s = await login(p, PHONE)
    const other = await login(p, SECOND_PHONE)
    const mismatch = await send(p, { phone_number: '+12025550172', session_token: s.token, user_id: other.userId })
    expectStytchError(mismatch, 400, 'user_id_mismatch')
    expect((await send(p, { phone_number: '+12025550172', session_token: s.token, user_id: s.userId })).status).toBe(
      200,
    )
    vi.setSystemTime(T0 + 60 * MINUTE)
    expectStytchError(await send(p, { phone_number: '+12025550173', session_jwt: s.jwt }), 404, 'session_not_found')
  })
})

describe('deleting a user', () => {
  it('revokes its sessions and their factors', async () => {
    const p = await project()
    const s = await login(p, PHONE)
    await login(p, PHONE)
    expect(await sessionRows(s.userId)).toHaveLength(2)
    expect((await deleteUser(p, s.userId)).status).toBe(200)
    expect(await sessionRows(s.userId)).toEqual([])
    const orphans = await env.DB.prepare(
      'SELECT count(*) AS n FROM session_factors WHERE session_id NOT IN (SELECT id FROM sessions)',
    ).first<{ n: number }>()
    expect(orphans?.n).toBe(0)
    expectStytchError(await sessionsAuthenticate(p, { session_token: s.token }), 404, 'session_not_found')
    expectStytchError(await sessionsList(p, s.userId), 404, 'user_not_found')
  })
})
