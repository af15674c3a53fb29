import { createScheduledController } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { derivedAesKey, open, sha256, toHex } from '../src/crypto'
import worker from '../src/index'
import { resealSessions } from '../src/sessions/sealing'
import { callJson, countingEnv, expectStytchError, type TestProject } from './helpers'
import { project as projectOn } from './otp-helpers'
import {
  decodeParts,
  iso,
  jwks,
  type Login,
  login,
  sessionsAuthenticate,
  sessionsList,
  sessionsRevoke,
  verifiesWithJwks,
  withPayload,
} from './session-helpers'

const PHONE = '+12025550160'
const T0 = Date.parse('2026-11-27T10:00:00Z')
const MINUTE = 60_000

// This file's projects live on the second shard (DB_1): every sessions route, the JWKS, the JWT
// verification and the hourly re-seal work against the database the project's record names.
const SHARD = 1
const db = env.DB_1
const shardEnv: Env = { ...env, DB: db }
const project = (settings: Record<string, unknown> = {}) => projectOn(settings, 'test', SHARD)

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] })
  vi.setSystemTime(T0)
})

describe('POST /v1/sessions/authenticate', () => {
  it('authenticates by token: the session marked accessed, the token echoed, a fresh JWT and the user', async () => {
    const p = await project()
    const s = await login(p, PHONE)
    vi.setSystemTime(T0 + 10 * MINUTE)
    const res = await sessionsAuthenticate(p, { session_token: s.token })
    expect(res.status).toBe(200)
    expect(Object.keys(res.body).sort()).toEqual([
      'request_id',
      'session',
      'session_jwt',
      'session_token',
      'status_code',
      'user',
    ])
    expect(res.body).toMatchObject({ session_token: s.token, status_code: 200 })
    expect(res.body.session).toEqual({
      ...s.session,
      last_accessed_at: iso(T0 + 10 * MINUTE),
      expires_at: iso(T0 + 60 * MINUTE),
    })
    expect(res.body.user).toMatchObject({
      user_id: s.userId,
      status: 'active',
      phone_numbers: [{ phone_id: s.phoneId, phone_number: PHONE, verified: true }],
    })
    const jwt = String(res.body.session_jwt)
    expect(jwt).not.toBe(s.jwt)
    expect(decodeParts(jwt).payload).toMatchObject({ iat: (T0 + 10 * MINUTE) / 1000 })
  })

  it('authenticates by JWT, even an expired one while its session lives, and returns the session token', async () => {
    const p = await project()
    const s = await login(p, PHONE)
    vi.setSystemTime(T0 + 30 * MINUTE) // the JWT expired 25 minutes ago; the session has 30 left
    const res = await sessionsAuthenticate(p, { session_jwt: s.jwt })
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ session_token: s.token, session: { session_id: s.session.session_id } })
    expect(decodeParts(String(res.body.session_jwt)).payload.exp).toBe((T0 + 35 * MINUTE) / 1000)
  })

  it('sets the expiry to session_duration_minutes from now, longer or shorter', async () => {
    const p = await project()
    const s = await login(p, PHONE)
    vi.setSystemTime(T0 + 50 * MINUTE)
    const longer = await sessionsAuthenticate(p, { session_token: s.token, session_duration_minutes: 600 })
    expect(longer.body.session).toMatchObject({ expires_at: iso(T0 + 650 * MINUTE) })
    const shorter = await sessionsAuthenticate(p, { session_jwt: s.jwt, session_duration_minutes: 5 })
    expect(shorter.body.session).toMatchObject({ expires_at: iso(T0 + 55 * MINUTE) })
    vi.setSystemTime(T0 + 55 * MINUTE)
    expectStytchError(await sessionsAuthenticate(p, { session_token: s.token }), 404, 'session_not_found')
  })

  it('never issues a JWT that outlives its session', async () => {
    const p = await project()
    const s = await login(p, PHONE, { session_duration_minutes: 5 })
    expect(decodeParts(s.jwt).payload.exp).toBe((T0 + 5 * MINUTE) / 1000)
    vi.setSystemTime(T0 + 3 * MINUTE)
    const res = await sessionsAuthenticate(p, { session_token: s.token })
    expect(decodeParts(String(res.body.session_jwt)).payload.exp).toBe((T0 + 5 * MINUTE) / 1000)
  })

  it('answers session_not_found once the session has expired, by token and by JWT', async () => {
    const p = await project()
    const s = await login(p, PHONE)
    vi.setSystemTime(T0 + 60 * MINUTE - 1)
    expect((await sessionsAuthenticate(p, { session_token: s.token })).status).toBe(200)
    vi.setSystemTime(T0 + 60 * MINUTE)
    expectStytchError(await sessionsAuthenticate(p, { session_token: s.token }), 404, 'session_not_found')
    expectStytchError(await sessionsAuthenticate(p, { session_jwt: s.jwt }), 404, 'session_not_found')
    expect((await sessionsList(p, s.userId)).body.sessions).toEqual([])
  })

  it('is one D1 round trip on a warm isolate (no custom claims)', async () => {
    const p = await project()
    const s = await login(p, PHONE)
    await sessionsAuthenticate(p, { session_jwt: s.jwt }) // loads the verification keys into the isolate
    for (const credential of [{ session_token: s.token }, { session_jwt: s.jwt }]) {
      const counting = countingEnv(env)
      const res = await sessionsAuthenticate(p, credential, { env: counting.env })
      expect(res.status).toBe(200)
      expect(counting.d1(), JSON.stringify(credential).slice(0, 20)).toBe(1)
    }
  })

  it('updates custom claims: values set, null deletes, reserved ignored; in the JWT at top level', async () => {
    const p = await project()
    const s = await login(p, PHONE, { session_custom_claims: { plan: 'free', team: 'a', sub: 'forged' } })
    expect(s.session.custom_claims).toEqual({ plan: 'free', team: 'a' })
    const update = { plan: 'pro', team: null, seats: 3, iss: 'evil', 'https://stytch.com/session': { id: 'x' } }
    const res = await sessionsAuthenticate(p, { session_token: s.token, session_custom_claims: update })
    expect(res.status).toBe(200)
    expect(res.body.session).toMatchObject({ custom_claims: { plan: 'pro', seats: 3 } })
    const { payload } = decodeParts(String(res.body.session_jwt))
    expect(payload).toMatchObject({ plan: 'pro', seats: 3, sub: s.userId, iss: `stytch.com/${p.id}` })
    expect(payload).not.toHaveProperty('team')
    expect(payload['https://stytch.com/session']).toMatchObject({ id: s.session.session_id })
    // Kept for later authentications.
    const later = await sessionsAuthenticate(p, { session_jwt: String(res.body.session_jwt) })
    expect(later.body.session).toMatchObject({ custom_claims: { plan: 'pro', seats: 3 } })
  })

  it('reads a damaged custom_claims column as no claims, logs it, and a later update starts from none', async () => {
    const p = await project()
    const s = await login(p, PHONE, { session_custom_claims: { plan: 'free' } })
    await db.prepare(`UPDATE sessions SET custom_claims = '[1' WHERE id = ?1`).bind(s.session.session_id).run()
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const res = await sessionsAuthenticate(p, { session_token: s.token })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
    expect(res.body.session).toMatchObject({ custom_claims: {} })
    const updated = await sessionsAuthenticate(p, { session_token: s.token, session_custom_claims: { seats: 2 } })
    expect(updated.body.session).toMatchObject({ custom_claims: { seats: 2 } })
    const logged = errors.mock.calls.map((c) => JSON.parse(String(c[0])))
    expect(logged).toContainEqual({ level: 'error', event: 'session_claims_unreadable' })
  })

  it('refuses custom claims over 4 KB in all, changing nothing', async () => {
    const p = await project()
    const s = await login(p, PHONE, { session_custom_claims: { a: 'x'.repeat(2_000) } })
    const res = await sessionsAuthenticate(p, {
      session_token: s.token,
      session_custom_claims: { b: 'y'.repeat(2_100) },
      session_duration_minutes: 600,
    })
    expectStytchError(res, 400, 'custom_claims_too_large')
    const after = await sessionsAuthenticate(p, { session_token: s.token })
    expect(after.body.session).toMatchObject({
      custom_claims: { a: 'x'.repeat(2_000) },
      expires_at: s.session.expires_at,
    })
  })

  it.each([
    [{}, 'no_session_arguments'],
    [{ session_token: null, session_jwt: null }, 'no_session_arguments'],
    [{ session_token: 'abc', session_jwt: 'a.b.c' }, 'too_many_session_arguments'],
    [{ session_token: 'not a token!' }, 'invalid_session_token'],
    [{ session_token: 42 }, 'invalid_session_token'],
    [{ session_jwt: 'not-a-jwt' }, 'invalid_session_jwt'],
    [{ session_jwt: 'eyJ.x.y' }, 'invalid_session_jwt'],
    [{ session_token: 'abc', session_duration_minutes: 4 }, 'invalid_session_duration_minutes'],
    [{ session_token: 'abc', session_custom_claims: [1] }, 'invalid_session_custom_claims'],
    [{ session_token: 'abc', authorization_check: { resource_id: 'r', action: 'a' } }, 'bad_request'],
  ])('refuses %j with 400 %s', async (body, errorType) => {
    expectStytchError(await sessionsAuthenticate(await project(), body), 400, errorType)
  })

  it('refuses a tampered JWT, an alg-none JWT and an unknown token', async () => {
    const p = await project()
    const s = await login(p, PHONE)
    const other = await login(p, '+12025550161')
    const tampered = withPayload(s.jwt, (payload) => ({ ...payload, sub: other.userId }))
    expectStytchError(await sessionsAuthenticate(p, { session_jwt: tampered }), 404, 'session_not_found')
    const [, body] = s.jwt.split('.')
    const none = `${btoa(JSON.stringify({ alg: 'none', typ: 'JWT' })).replace(/=+$/, '')}.${body}.AAAA`
    expectStytchError(await sessionsAuthenticate(p, { session_jwt: none }), 400, 'invalid_session_jwt')
    const unknown = 'WJtR5BCy38Szd5AfoDpf0iqFKEt4EE5JhjlWUY7l3FtY'
    expectStytchError(await sessionsAuthenticate(p, { session_token: unknown }), 404, 'session_not_found')
  })
})

describe('POST /v1/sessions/revoke', () => {
  it.each(['session_id', 'session_token', 'session_jwt'] as const)('revokes by %s, at once', async (field) => {
    const p = await project()
    const s = await login(p, PHONE)
    const keep = await login(p, PHONE)
    const value = { session_id: s.session.session_id, session_token: s.token, session_jwt: s.jwt }[field]
    const res = await sessionsRevoke(p, { [field]: value })
    expect(res.status).toBe(200)
    expect(Object.keys(res.body).sort()).toEqual(['request_id', 'status_code'])
    expectStytchError(await sessionsAuthenticate(p, { session_token: s.token }), 404, 'session_not_found')
    expectStytchError(await sessionsAuthenticate(p, { session_jwt: s.jwt }), 404, 'session_not_found')
    expectStytchError(await sessionsRevoke(p, { [field]: value }), 404, 'session_not_found')
    // Only that session: the user's other one lives on.
    expect((await sessionsAuthenticate(p, { session_token: keep.token })).status).toBe(200)
    const rows = await db
      .prepare('SELECT count(*) AS n FROM session_factors WHERE session_id = ?1')
      .bind(s.session.session_id)
      .first<{ n: number }>()
    expect(rows?.n).toBe(0)
  })

  it('revokes with an expired JWT', async () => {
    const p = await project()
    const s = await login(p, PHONE)
    vi.setSystemTime(T0 + 20 * MINUTE)
    expect((await sessionsRevoke(p, { session_jwt: s.jwt })).status).toBe(200)
    expectStytchError(await sessionsAuthenticate(p, { session_token: s.token }), 404, 'session_not_found')
  })

  it.each([
    [{}, 'no_session_revoke_arguments'],
    [{ session_id: null }, 'no_session_revoke_arguments'],
    [{ session_id: `session-test-${crypto.randomUUID()}`, session_token: 'abc' }, 'too_many_session_revoke_arguments'],
    [{ session_token: 'abc', session_jwt: 'a.b.c' }, 'too_many_session_revoke_arguments'],
    [{ session_id: 'session-123' }, 'invalid_session_id'],
    [{ session_id: `user-test-${crypto.randomUUID()}` }, 'invalid_session_id'],
    [{ session_token: '' }, 'invalid_session_token'],
    [{ session_jwt: 'x' }, 'invalid_session_jwt'],
  ])('refuses %j with 400 %s', async (body, errorType) => {
    expectStytchError(await sessionsRevoke(await project(), body), 400, errorType)
  })

  it('answers an unknown session id with 404', async () => {
    const res = await sessionsRevoke(await project(), { session_id: `session-test-${crypto.randomUUID()}` })
    expectStytchError(res, 404, 'session_not_found')
  })
})

describe('GET /v1/sessions', () => {
  it("lists the user's live sessions, newest first, with their factors", async () => {
    const p = await project()
    const first = await login(p, PHONE, { session_duration_minutes: 30 })
    vi.setSystemTime(T0 + MINUTE)
    const second = await login(p, PHONE, { session_duration_minutes: 120 })
    await login(p, '+12025550162') // another user's session
    const res = await sessionsList(p, first.userId)
    expect(res.status).toBe(200)
    expect(Object.keys(res.body).sort()).toEqual(['request_id', 'sessions', 'status_code'])
    expect(res.body.sessions).toEqual([second.session, first.session])
    vi.setSystemTime(T0 + 30 * MINUTE)
    expect((await sessionsList(p, first.userId)).body.sessions).toEqual([second.session])
  })

  it('answers a user without sessions with an empty list, and an unknown user with 404', async () => {
    const p = await project()
    const s = await login(p, PHONE)
    await sessionsRevoke(p, { session_token: s.token })
    expect((await sessionsList(p, s.userId)).body).toMatchObject({ sessions: [], status_code: 200 })
    expectStytchError(await sessionsList(p, `user-test-${crypto.randomUUID()}`), 404, 'user_not_found')
  })

  it('validates user_id', async () => {
    const p = await project()
    expectStytchError(await sessionsList(p, 'user-test-1'), 400, 'invalid_user_id')
    expectStytchError(await callJson('GET', '/v1/sessions', { project: p }), 400, 'bad_request')
  })
})

describe('session storage', () => {
  it('looks the token up by its SHA-256, never stores it in clear, and issues 44-character tokens', async () => {
    const p = await project()
    const s = await login(p, PHONE)
    expect(s.token).toMatch(/^[A-Za-z0-9_-]{44}$/)
    const row = await db
      .prepare('SELECT * FROM sessions WHERE id = ?1')
      .bind(s.session.session_id)
      .first<Record<string, unknown>>()
    expect(row?.token_hash).toBe(toHex(await sha256(s.token)))
    expect(JSON.stringify(row)).not.toContain(s.token)
    // In the project's shard only: the first database holds its directory record and nothing else.
    const elsewhere = await env.DB.prepare('SELECT COUNT(*) AS n FROM sessions WHERE project_id = ?1')
      .bind(p.id)
      .first<{ n: number }>()
    expect(elsewhere?.n).toBe(0)
  })

  const ATTRIBUTES = { ip_address: '203.0.113.50', user_agent: 'sealed-agent/1.0' }
  const sessionRow = (id: string) =>
    db.prepare('SELECT * FROM sessions WHERE id = ?1').bind(id).first<Record<string, unknown>>()
  /** The attributes every session reply shows for `s`: by token, by JWT, and in the user's list. */
  async function shownAttributes(p: TestProject, s: Login) {
    const byToken = await sessionsAuthenticate(p, { session_token: s.token })
    const byJwt = await sessionsAuthenticate(p, { session_jwt: s.jwt })
    const listed = (await sessionsList(p, s.userId)).body.sessions as { session_id: string; attributes: unknown }[]
    return [
      (byToken.body.session as { attributes: unknown }).attributes,
      (byJwt.body.session as { attributes: unknown }).attributes,
      listed.find((x) => x.session_id === s.session.session_id)?.attributes,
    ]
  }

  it('keeps the IP address and user agent only sealed, under a sibling key of the token seal', async () => {
    const p = await project()
    const s = await login(p, PHONE, { attributes: ATTRIBUTES })
    expect(s.session.attributes).toEqual(ATTRIBUTES)
    const row = await sessionRow(s.session.session_id)
    expect(row).toMatchObject({ ip_address: '', user_agent: '' })
    expect(JSON.stringify(row)).not.toContain(ATTRIBUTES.ip_address)
    expect(JSON.stringify(row)).not.toContain(ATTRIBUTES.user_agent)
    // AES-256-GCM under the key HKDF derives from SESSION_KEY_ENCRYPTION_KEY for this purpose alone,
    // bound to project and session: the token's key does not open it.
    const sealed = { iv: String(row?.attributes_iv), ct: String(row?.attributes_ct) }
    const aad = `session-attributes:v1:${p.id}:${s.session.session_id}`
    const key = await derivedAesKey(env.SESSION_KEY_ENCRYPTION_KEY, 'session-attributes:v1')
    expect(JSON.parse(await open(key, sealed, aad))).toEqual(ATTRIBUTES)
    const tokenKey = await derivedAesKey(env.SESSION_KEY_ENCRYPTION_KEY, 'session-token:v1')
    await expect(open(tokenKey, sealed, aad)).rejects.toThrow()
    await expect(open(key, sealed, `session-attributes:v1:${p.id}:other`)).rejects.toThrow()
    expect(await shownAttributes(p, s)).toEqual([ATTRIBUTES, ATTRIBUTES, ATTRIBUTES])
  })

  it('reads sessions stored in clear before, and seals them when read or on the hourly run', async () => {
    const p = await project()
    const read = await login(p, PHONE, { attributes: ATTRIBUTES })
    const idle = await login(p, PHONE, { attributes: ATTRIBUTES })
    // As a Worker before sealing left them: attributes in clear, none sealed, no key fingerprint.
    for (const s of [read, idle]) {
      await db
        .prepare(
          `UPDATE sessions SET ip_address = ?2, user_agent = ?3, attributes_iv = NULL, attributes_ct = NULL,
           sealed_with = NULL WHERE id = ?1`,
        )
        .bind(s.session.session_id, ATTRIBUTES.ip_address, ATTRIBUTES.user_agent)
        .run()
    }
    const byToken = await sessionsAuthenticate(p, { session_token: read.token })
    expect((byToken.body.session as { attributes: unknown }).attributes).toEqual(ATTRIBUTES)
    expect(await sessionRow(read.session.session_id)).toMatchObject({ ip_address: '', user_agent: '' })
    expect(await sessionRow(idle.session.session_id)).toMatchObject(ATTRIBUTES)
    await worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: '17 * * * *' }), env)
    const sealed = await sessionRow(idle.session.session_id)
    expect(sealed).toMatchObject({ ip_address: '', user_agent: '' })
    expect(sealed?.attributes_ct).toEqual(expect.any(String))
    for (const s of [read, idle]) expect(await shownAttributes(p, s)).toEqual([ATTRIBUTES, ATTRIBUTES, ATTRIBUTES])
  })

  it('the sealing run works in bounded rounds and says when nothing is left', async () => {
    const p = await project()
    const logins: Login[] = []
    for (let i = 0; i < 5; i++) logins.push(await login(p, PHONE, { attributes: ATTRIBUTES }))
    // A first run seals whatever else is due in this file's shard, so that only these five are.
    await resealSessions(shardEnv, Date.now())
    await db
      .prepare(
        `UPDATE sessions SET ip_address = ?2, user_agent = ?3, attributes_iv = NULL, attributes_ct = NULL,
         sealed_with = NULL WHERE project_id = ?1`,
      )
      .bind(p.id, ATTRIBUTES.ip_address, ATTRIBUTES.user_agent)
      .run()
    expect(await resealSessions(shardEnv, Date.now(), { batchRows: 2, maxRounds: 2 })).toEqual({
      sessions: 4,
      complete: false,
    })
    expect(await resealSessions(shardEnv, Date.now(), { batchRows: 2, maxRounds: 2 })).toEqual({
      sessions: 1,
      complete: true,
    })
    const { results } = await db
      .prepare('SELECT ip_address, user_agent, sealed_with FROM sessions WHERE project_id = ?1')
      .bind(p.id)
      .all<{ ip_address: string; user_agent: string; sealed_with: string | null }>()
    expect(results.map((r) => [r.ip_address, r.user_agent, typeof r.sealed_with])).toEqual(
      Array(5).fill(['', '', 'string']),
    )
    for (const s of logins) expect(await shownAttributes(p, s)).toEqual([ATTRIBUTES, ATTRIBUTES, ATTRIBUTES])
  })
})

describe('project isolation', () => {
  it("never lets one project see, use or revoke another project's sessions", async () => {
    const a = await project()
    const b = await project()
    const s = await login(a, PHONE)
    await login(b, PHONE) // b has a key of its own now
    expectStytchError(await sessionsAuthenticate(b, { session_token: s.token }), 404, 'session_not_found')
    expectStytchError(await sessionsAuthenticate(b, { session_jwt: s.jwt }), 404, 'session_not_found')
    expectStytchError(await sessionsRevoke(b, { session_id: s.session.session_id }), 404, 'session_not_found')
    expectStytchError(await sessionsRevoke(b, { session_token: s.token }), 404, 'session_not_found')
    expectStytchError(await sessionsRevoke(b, { session_jwt: s.jwt }), 404, 'session_not_found')
    expectStytchError(await sessionsList(b, s.userId), 404, 'user_not_found')
    // A's JWT verifies against A's JWKS only.
    expect(await verifiesWithJwks(a.id, s.jwt)).toBe(true)
    expect(await verifiesWithJwks(b.id, s.jwt)).toBe(false)
    expect((await sessionsAuthenticate(a, { session_token: s.token })).status).toBe(200)
  })

  it('requires project credentials everywhere but on the JWKS', async () => {
    const p = await project()
    const s = await login(p, PHONE)
    const anonymous = { project: null }
    for (const [method, path, body] of [
      ['POST', '/v1/sessions/authenticate', { session_token: s.token }],
      ['POST', '/v1/sessions/revoke', { session_token: s.token }],
      ['GET', `/v1/sessions?user_id=${s.userId}`, undefined],
    ] as const) {
      expectStytchError(await callJson(method, path, { ...anonymous, body }), 401, 'unauthorized_credentials')
    }
    const published = await jwks(p.id)
    expect(published.status).toBe(200)
    expect(published.body.keys).toHaveLength(1)
  })
})
