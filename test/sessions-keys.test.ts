import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { derivedAesKey, open } from '../src/crypto'
import type { KeyRow } from '../src/db/signing-keys'
import { decodeJwt, JWT_LIFETIME_MS, signJwt, verifySignature } from '../src/sessions/jwt'
import {
  clearSessionKeyCache,
  KEY_CACHE_TTL_MS,
  KEY_MAX_AGE_MS,
  RETIRED_KEY_TRUST_MS,
  signingKey,
  trustedKeys,
  verificationKey,
} from '../src/sessions/keys'
import { call, callJson, newProject } from './helpers'

interface Jwks {
  keys: (JsonWebKey & { kid: string })[]
  request_id: string
  status_code: number
}

const jwksOf = async (projectId: string) => {
  const res = await callJson<Jwks>('GET', `/v1/sessions/jwks/${projectId}`, { project: null })
  expect(res.status).toBe(200)
  return res.body
}

const keyRows = async (projectId: string) =>
  (
    await env.DB.prepare(
      `SELECT kid, public_jwk, private_key_iv, private_key_ct, created_at, retired_at
       FROM session_signing_keys WHERE project_id = ?1 ORDER BY created_at, rowid`,
    )
      .bind(projectId)
      .all<KeyRow>()
  ).results

describe('session signing keys', () => {
  beforeEach(() => {
    clearSessionKeyCache()
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(new Date('2026-06-01T12:00:00Z'))
  })

  it('creates one RS256 key per project on first use, its private half sealed', async () => {
    const project = await newProject()
    expect((await jwksOf(project.id)).keys).toEqual([])
    const key = await signingKey(env, project.id, 'test', Date.now())
    expect(key.kid).toMatch(/^jwk-test-[0-9a-f-]{36}$/)
    const [row, ...more] = await keyRows(project.id)
    expect(more).toEqual([])
    expect(row?.retired_at).toBeNull()
    const publicJwk = JSON.parse(row?.public_jwk ?? '{}') as Record<string, unknown>
    expect(Object.keys(publicJwk).sort()).toEqual(['alg', 'e', 'key_ops', 'kid', 'kty', 'n', 'use'])
    expect(publicJwk).toMatchObject({ kty: 'RSA', use: 'sig', alg: 'RS256', key_ops: ['verify'], kid: key.kid })
    expect(publicJwk.e).toBe('AQAB')
    // 2048-bit modulus: 256 bytes, 342 base64url characters.
    expect(publicJwk.n).toHaveLength(342)
    // The private key is AES-GCM ciphertext under the key HKDF derives from SESSION_KEY_ENCRYPTION_KEY
    // for signing keys, bound to project and kid: it opens only with that key and that context.
    const sealed = { iv: row?.private_key_iv ?? '', ct: row?.private_key_ct ?? '' }
    const aad = `session-signing-key:v1:${project.id}:${key.kid}`
    const sealKey = await derivedAesKey(env.SESSION_KEY_ENCRYPTION_KEY, 'session-signing-key:v1')
    const plaintext = await open(sealKey, sealed, aad)
    expect(plaintext.length).toBeGreaterThan(1_000)
    // No stretch of the key is stored as it is (a 32-character run cannot match random ciphertext by chance).
    for (let at = 0; at + 32 <= plaintext.length; at += 32)
      expect(sealed.ct).not.toContain(plaintext.slice(at, at + 32))
    const otherAad = `session-signing-key:v1:other:${key.kid}`
    await expect(open(sealKey, sealed, otherAad)).rejects.toThrow()
    await expect(open(env.SESSION_KEY_ENCRYPTION_KEY, sealed, aad)).rejects.toThrow()
    await expect(open(env.CODE_ENCRYPTION_KEY, sealed, aad)).rejects.toThrow()
    expect(key.privateKey.extractable).toBe(false)
  })

  it('signs verifiably and publishes exactly the public key in the JWKS, without credentials', async () => {
    const project = await newProject()
    const key = await signingKey(env, project.id, 'test', Date.now())
    const jwt = decodeJwt(await signJwt(key.privateKey, key.kid, { sub: 'x' }))
    if (!jwt) throw new Error('unparseable JWT')
    const jwks = await jwksOf(project.id)
    const stored = JSON.parse((await keyRows(project.id))[0]?.public_jwk ?? '') as unknown
    expect(jwks).toEqual({ keys: [stored], request_id: expect.any(String), status_code: 200 })
    const [published] = jwks.keys
    if (!published) throw new Error('no key published')
    const rs256 = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
    const publicKey = await crypto.subtle.importKey('jwk', published, rs256, false, ['verify'])
    expect(await verifySignature(publicKey, jwt)).toBe(true)
  })

  it('creates a single key when many requests race for the first one', async () => {
    const project = await newProject()
    const keys = await Promise.all(
      Array.from({ length: 5 }, () => {
        clearSessionKeyCache()
        return signingKey(env, project.id, 'test', Date.now())
      }),
    )
    const rows = await keyRows(project.id)
    expect(rows.filter((r) => r.retired_at === null)).toHaveLength(1)
    expect(new Set(keys.map((k) => k.kid))).toEqual(new Set([rows.find((r) => r.retired_at === null)?.kid]))
  })

  it('keeps each project to its own keys', async () => {
    const [a, b] = [await newProject(), await newProject('live')]
    const keyA = await signingKey(env, a.id, 'test', Date.now())
    const keyB = await signingKey(env, b.id, 'live', Date.now())
    expect(keyB.kid).toMatch(/^jwk-live-/)
    expect((await jwksOf(a.id)).keys.map((k) => k.kid)).toEqual([keyA.kid])
    expect((await jwksOf(b.id)).keys.map((k) => k.kid)).toEqual([keyB.kid])
    expect(await verificationKey(env, a.id, keyB.kid, Date.now())).toBeNull()
  })

  it('answers an unknown or malformed project id with an empty key set', async () => {
    expect((await jwksOf('project-test-22222222-2222-4222-8222-222222222222')).keys).toEqual([])
    expect((await jwksOf('not-a-project')).keys).toEqual([])
    const res = await call('GET', '/v1/sessions/jwks/not-a-project', { project: null })
    expect(res.headers.get('x-request-id')).toMatch(/^request-id-test-/)
  })

  it('rotates at KEY_MAX_AGE_MS and keeps publishing the old key until its JWTs have expired', async () => {
    const project = await newProject()
    const start = Date.now()
    const first = await signingKey(env, project.id, 'test', start)
    // Cached for KEY_CACHE_TTL_MS, then reloaded; not rotated before its time.
    expect((await signingKey(env, project.id, 'test', start + KEY_CACHE_TTL_MS + 1)).kid).toBe(first.kid)

    const rotationAt = start + KEY_MAX_AGE_MS
    vi.setSystemTime(rotationAt)
    const second = await signingKey(env, project.id, 'test', rotationAt)
    expect(second.kid).not.toBe(first.kid)
    const rows = await keyRows(project.id)
    expect(rows.map((r) => [r.kid, r.retired_at])).toEqual([
      [first.kid, rotationAt],
      [second.kid, null],
    ])
    // A JWT signed just before the rotation is verifiable until it expires (and then some).
    expect(RETIRED_KEY_TRUST_MS).toBeGreaterThan(JWT_LIFETIME_MS + KEY_CACHE_TTL_MS)
    vi.setSystemTime(rotationAt + JWT_LIFETIME_MS)
    expect((await jwksOf(project.id)).keys.map((k) => k.kid)).toEqual([second.kid, first.kid])
    expect(await verificationKey(env, project.id, first.kid, Date.now())).not.toBeNull()
    // Once the trust window closes the old key is gone from the JWKS and from this server's checks,
    // even from a set cached just before.
    vi.setSystemTime(rotationAt + RETIRED_KEY_TRUST_MS - 1)
    expect(await trustedKeys(env, project.id, Date.now())).toHaveLength(2)
    vi.setSystemTime(rotationAt + RETIRED_KEY_TRUST_MS)
    expect(await verificationKey(env, project.id, first.kid, Date.now())).toBeNull()
    expect((await jwksOf(project.id)).keys.map((k) => k.kid)).toEqual([second.kid])
  })

  it('replaces a key retired by hand (session-keys:rotate) once the signer cache expires', async () => {
    const project = await newProject()
    const start = Date.now()
    const first = await signingKey(env, project.id, 'test', start)
    await env.DB.prepare('UPDATE session_signing_keys SET retired_at = ?2 WHERE project_id = ?1 AND retired_at IS NULL')
      .bind(project.id, start)
      .run()
    expect((await signingKey(env, project.id, 'test', start + 1)).kid).toBe(first.kid)
    const second = await signingKey(env, project.id, 'test', start + KEY_CACHE_TTL_MS)
    expect(second.kid).not.toBe(first.kid)
    const trusted = await trustedKeys(env, project.id, start + KEY_CACHE_TTL_MS)
    expect(trusted.map((k) => k.kid)).toEqual([second.kid, first.kid])
  })

  it('replaces a key that no longer opens because SESSION_KEY_ENCRYPTION_KEY changed', async () => {
    const project = await newProject()
    const first = await signingKey(env, project.id, 'test', Date.now())
    clearSessionKeyCache()
    const changed = { ...env, SESSION_KEY_ENCRYPTION_KEY: btoa('another-session-key-encryption-0') }
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const second = await signingKey(changed, project.id, 'test', Date.now())
    expect(errors).toHaveBeenCalledWith(expect.stringContaining('session_key_unreadable'))
    errors.mockRestore()
    expect(second.kid).not.toBe(first.kid)
    expect((await keyRows(project.id)).map((r) => r.retired_at === null)).toEqual([false, true])
  })

  it('refuses to sign without the secret rather than storing a key unsealed', async () => {
    const project = await newProject()
    const missing = { ...env, SESSION_KEY_ENCRYPTION_KEY: '' }
    const attempt = signingKey(missing, project.id, 'test', Date.now())
    await expect(attempt).rejects.toThrow(/SESSION_KEY_ENCRYPTION_KEY/)
    expect(await keyRows(project.id)).toEqual([])
  })
})
