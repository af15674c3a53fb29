import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { clearSessionKeyCache, KEY_CACHE_TTL_MS } from '../src/sessions/keys'
import { expectStytchError, type TestProject } from './helpers'
import { project } from './otp-helpers'
import { decodeParts, jwks, login, sessionsAuthenticate } from './session-helpers'

/**
 * The emergency path for a compromised signing key (`npm run session-keys:revoke`): the script
 * deletes the key row. Unlike a rotation, which keeps the retired key trusted until its JWTs expire,
 * a revoked key stops being published and trusted as soon as an isolate's key cache expires.
 */

const T0 = Date.parse('2026-11-27T10:00:00Z')

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] })
  vi.setSystemTime(T0)
  clearSessionKeyCache()
})

/** What scripts/session-keys.mjs revoke runs for a project's active key. */
const revokeActive = (p: TestProject) =>
  env.DB.prepare('DELETE FROM session_signing_keys WHERE project_id = ?1 AND retired_at IS NULL RETURNING kid')
    .bind(p.id)
    .all<{ kid: string }>()

/** What scripts/session-keys.mjs rotate runs for one project. */
const rotate = (p: TestProject, at: number) =>
  env.DB.prepare('UPDATE session_signing_keys SET retired_at = ?2 WHERE project_id = ?1 AND retired_at IS NULL')
    .bind(p.id, at)
    .run()

describe('session-keys:revoke', () => {
  it('stops trusting and publishing the key within the key cache lifetime, with no overlap for its JWTs', async () => {
    const p = await project()
    const s = await login(p, '+12025550195')
    const kid = decodeParts(s.jwt).header.kid
    expect((await sessionsAuthenticate(p, { session_jwt: s.jwt })).status).toBe(200)

    expect((await revokeActive(p)).results).toEqual([{ kid }])
    vi.setSystemTime(T0 + KEY_CACHE_TTL_MS)
    expectStytchError(await sessionsAuthenticate(p, { session_jwt: s.jwt }), 404, 'session_not_found')
    expect((await jwks(p.id)).body.keys.map((k) => k.kid)).not.toContain(kid)

    // The session itself lives on: its token still works and yields a JWT under a fresh key.
    const byToken = await sessionsAuthenticate(p, { session_token: s.token })
    expect(byToken.status).toBe(200)
    const fresh = String(byToken.body.session_jwt)
    expect(decodeParts(fresh).header.kid).not.toBe(kid)
    expect((await sessionsAuthenticate(p, { session_jwt: fresh })).status).toBe(200)
    expect((await jwks(p.id)).body.keys.map((k) => k.kid)).toEqual([decodeParts(fresh).header.kid])
  })

  it('is refused at once by an isolate that has not cached the key', async () => {
    const p = await project()
    const s = await login(p, '+12025550196')
    await revokeActive(p)
    clearSessionKeyCache()
    expectStytchError(await sessionsAuthenticate(p, { session_jwt: s.jwt }), 404, 'session_not_found')
  })

  it('differs from a rotation, whose retired key stays trusted at the same moment', async () => {
    const p = await project()
    const s = await login(p, '+12025550197')
    await rotate(p, T0)
    vi.setSystemTime(T0 + KEY_CACHE_TTL_MS)
    expect((await sessionsAuthenticate(p, { session_jwt: s.jwt })).status).toBe(200)
  })
})
