import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { signJwt } from '../src/sessions/jwt'
import { signingKey } from '../src/sessions/keys'
import { expectStytchError, newProject, type TestProject } from './helpers'
import { authenticate, loginCode, project } from './otp-helpers'
import { decodeParts, type Login, login, sessionsAuthenticate, sessionsRevoke } from './session-helpers'

/**
 * A JWT signed with the project's own current key passes the kid and signature checks, so only the
 * issuer and audience checks stand between it and the session. Each case re-signs a real session's
 * JWT with one claim changed: a JWT for another project (or for no audience) must not name a session
 * of this one.
 */

const PHONE = '+12025550180'
const T0 = Date.parse('2026-11-27T10:00:00Z')

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] })
  vi.setSystemTime(T0)
})

/** The session's JWT, re-signed with the project's current key after `change` edits its payload. */
async function resigned(
  p: TestProject,
  s: Login,
  change: (payload: Record<string, unknown>) => Record<string, unknown>,
): Promise<string> {
  const key = await signingKey(env, p.id, p.env, Date.now())
  expect(decodeParts(s.jwt).header.kid).toBe(key.kid)
  return signJwt(key.privateKey, key.kid, change(decodeParts(s.jwt).payload))
}

const without = (name: string) => (payload: Record<string, unknown>) => {
  const { [name]: _dropped, ...rest } = payload
  return rest
}

/** Claim changes that must each make the JWT name no session. `other` is another project's id. */
const badClaims = (
  p: TestProject,
  other: string,
): [string, (payload: Record<string, unknown>) => Record<string, unknown>][] => [
  ['an audience of another project', (payload) => ({ ...payload, aud: [other] })],
  ['an audience string of another project', (payload) => ({ ...payload, aud: other })],
  ['an empty audience', (payload) => ({ ...payload, aud: [] })],
  ['no audience', without('aud')],
  ['the issuer of another project', (payload) => ({ ...payload, iss: `stytch.com/${other}` })],
  ['an issuer without the stytch.com/ prefix', (payload) => ({ ...payload, iss: p.id })],
  ['no issuer', without('iss')],
]

describe('JWT issuer and audience checks', () => {
  it('accepts the re-signed JWT when no claim changed (the harness itself signs valid JWTs)', async () => {
    const p = await project()
    const s = await login(p, PHONE)
    const same = await resigned(p, s, (payload) => payload)
    expect((await sessionsAuthenticate(p, { session_jwt: same })).status).toBe(200)
    // The audience may also be the bare project id string, as jose and Stytch's SDKs accept.
    const bare = await resigned(p, s, (payload) => ({ ...payload, aud: p.id }))
    expect((await sessionsAuthenticate(p, { session_jwt: bare })).status).toBe(200)
  })

  it('refuses each bad claim on /v1/sessions/authenticate', async () => {
    const p = await project()
    const other = (await newProject()).id
    const s = await login(p, PHONE)
    for (const [name, change] of badClaims(p, other)) {
      const res = await sessionsAuthenticate(p, { session_jwt: await resigned(p, s, change) })
      expect(res.status, name).toBe(404)
      expectStytchError(res, 404, 'session_not_found')
    }
  })

  it('refuses each bad claim on /v1/sessions/revoke, leaving the session live', async () => {
    const p = await project()
    const other = (await newProject()).id
    const s = await login(p, PHONE)
    for (const [name, change] of badClaims(p, other)) {
      const res = await sessionsRevoke(p, { session_jwt: await resigned(p, s, change) })
      expect(res.status, name).toBe(404)
      expectStytchError(res, 404, 'session_not_found')
    }
    expect((await sessionsAuthenticate(p, { session_token: s.token })).status).toBe(200)
  })

  it('refuses each bad claim on /v1/otps/authenticate (session_jwt) without using the code', async () => {
    const p = await project()
    const other = (await newProject()).id
    const s = await login(p, PHONE)
    const { code, phoneId } = await loginCode(p, PHONE)
    for (const [name, change] of badClaims(p, other)) {
      const res = await authenticate(p, { method_id: phoneId, code, session_jwt: await resigned(p, s, change) })
      expect(res.status, name).toBe(404)
      expectStytchError(res, 404, 'session_not_found')
    }
    // The code was never spent: it still authenticates into the session the JWT really belongs to.
    const good = await authenticate(p, { method_id: phoneId, code, session_jwt: s.jwt })
    expect(good.status).toBe(200)
    expect((good.body.session as { session_id: string }).session_id).toBe(s.session.session_id)
  })
})
