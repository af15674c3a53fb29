import { createScheduledController } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  derivedAesKey,
  hmacSha256,
  keyedHash,
  keyedHashMatches,
  open,
  openRotating,
  seal,
  sealCurrent,
  toBase64Url,
} from '../src/crypto'
import { jobAad } from '../src/delivery/job'
import { rotatingSecret } from '../src/env'
import worker from '../src/index'
import { clearSessionKeyCache, signingKey } from '../src/sessions/keys'
import { callJson, expectStytchError, issueCode, type TestProject } from './helpers'
import { authenticate, loginCode, project } from './otp-helpers'
import { login } from './session-helpers'
import { deliveryRow, issueJob, runQueue } from './whatsapp-helpers'

/**
 * Each of OTP_PEPPER, CODE_ENCRYPTION_KEY and SESSION_KEY_ENCRYPTION_KEY rotates without an outage:
 * with `<NAME>_PREVIOUS` set to the old value and the new value as current, what was written under
 * the old value is still read (codes in flight, queued jobs, sealed signing keys), everything new is
 * written under the new value, and once the previous value is removed the old material no longer works.
 */

const NEW_PEPPER = 'rotated-pepper-fedcba9876543210fedcba9876543210'
const NEW_AES_KEY = btoa('rotated-aes-256-gcm-key-32-bytes')

/** The test bindings after `name` was rotated: the new value current, the old one previous. */
const rotated = (name: 'OTP_PEPPER' | 'CODE_ENCRYPTION_KEY' | 'SESSION_KEY_ENCRYPTION_KEY', next: string): Env => ({
  ...env,
  [name]: next,
  [`${name}_PREVIOUS`]: env[name],
})
/** After the rotation has finished: the previous value removed. */
const finished = (name: 'OTP_PEPPER' | 'CODE_ENCRYPTION_KEY' | 'SESSION_KEY_ENCRYPTION_KEY', next: string): Env => ({
  ...env,
  [name]: next,
})

afterEach(() => {
  clearSessionKeyCache()
})

describe('rotation helpers (src/crypto.ts)', () => {
  const old = 'old-secret-0123456789abcdef0123456789abcdef'
  const next = 'new-secret-0123456789abcdef0123456789abcdef'

  it('hash with the current secret and match hashes made under the current or the previous one', async () => {
    const during = { current: next, previous: old }
    expect(await keyedHash(during, 'm')).toEqual(await hmacSha256(next, 'm'))
    expect(await keyedHashMatches(during, 'm', await hmacSha256(next, 'm'))).toBe(true)
    expect(await keyedHashMatches(during, 'm', await hmacSha256(old, 'm'))).toBe(true)
    expect(await keyedHashMatches(during, 'other', await hmacSha256(old, 'm'))).toBe(false)
    expect(await keyedHashMatches({ current: next, previous: null }, 'm', await hmacSha256(old, 'm'))).toBe(false)
  })

  it('seal with the current key and open under either, saying when only the previous one opened it', async () => {
    const oldKey = env.CODE_ENCRYPTION_KEY
    const during = { current: NEW_AES_KEY, previous: oldKey }
    const fresh = await sealCurrent(during, 'x', 'aad')
    expect(await open(NEW_AES_KEY, fresh, 'aad')).toBe('x')
    expect(await openRotating(during, fresh, 'aad')).toEqual({ plaintext: 'x', previous: false })
    const before = await seal(oldKey, 'y', 'aad')
    expect(await openRotating(during, before, 'aad')).toEqual({ plaintext: 'y', previous: true })
    await expect(openRotating({ current: NEW_AES_KEY, previous: null }, before, 'aad')).rejects.toThrow()
    await expect(openRotating(during, before, 'other aad')).rejects.toThrow()
  })

  it('read <NAME>_PREVIOUS from the bindings, and refuse a malformed one', () => {
    expect(rotatingSecret(env, 'OTP_PEPPER')).toEqual({ current: env.OTP_PEPPER, previous: null })
    expect(rotatingSecret(rotated('OTP_PEPPER', NEW_PEPPER), 'OTP_PEPPER')).toEqual({
      current: NEW_PEPPER,
      previous: env.OTP_PEPPER,
    })
    expect(() => rotatingSecret({ ...env, OTP_PEPPER_PREVIOUS: 'short' }, 'OTP_PEPPER')).toThrow(/OTP_PEPPER_PREVIOUS/)
  })
})

describe('OTP_PEPPER rotation', () => {
  it('a code issued before the rotation still logs in during it', async () => {
    const p = await project()
    const { code, phoneId } = await loginCode(p, '+12025550101')
    const res = await authenticate(p, { method_id: phoneId, code }, { env: rotated('OTP_PEPPER', NEW_PEPPER) })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
  })

  it('the send-time IP and user agent hashes of a code in flight still match (ip/user_agent_match_required)', async () => {
    const p = await project()
    const attributes = { ip_address: '203.0.113.9', user_agent: 'rotation-test-agent' }
    const { code, phoneId } = await loginCode(p, '+12025550106', { attributes })
    const options = { ip_match_required: true, user_agent_match_required: true }
    const during = rotated('OTP_PEPPER', NEW_PEPPER)
    const res = await authenticate(p, { method_id: phoneId, code, attributes, options }, { env: during })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
  })

  it('the gate row keeps working too when the KV record is gone (D1 fallback)', async () => {
    const p = await project()
    const { code, phoneId } = await loginCode(p, '+12025550102')
    await env.OTP_KV.delete(`otp:${phoneId}`)
    const res = await authenticate(p, { method_id: phoneId, code }, { env: rotated('OTP_PEPPER', NEW_PEPPER) })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
  })

  it('a code issued during the rotation is hashed with the new pepper and logs in after it', async () => {
    const p = await project()
    const during = rotated('OTP_PEPPER', NEW_PEPPER)
    const { code, phoneId } = await issueDuring(p, '+12025550103', during)
    const res = await authenticate(p, { method_id: phoneId, code }, { env: finished('OTP_PEPPER', NEW_PEPPER) })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
  })

  it('a code from before no longer matches once the previous pepper is removed', async () => {
    const p = await project()
    const { code, phoneId } = await loginCode(p, '+12025550104')
    const res = await authenticate(p, { method_id: phoneId, code }, { env: finished('OTP_PEPPER', NEW_PEPPER) })
    expectStytchError(res, 404, 'otp_code_not_found')
  })
})

describe('CODE_ENCRYPTION_KEY rotation', () => {
  it('a job queued before the rotation is delivered during it', async () => {
    const issued = await issueJob()
    const { result, ids } = await runQueue([issued.job], { env: rotated('CODE_ENCRYPTION_KEY', NEW_AES_KEY) })
    expect(result.explicitAcks).toEqual(ids)
    expect((await deliveryRow(issued.job.id))?.status).toBe('sent')
  })

  it('a job queued before is failed as code_decrypt_failed once the previous key is removed', async () => {
    const issued = await issueJob()
    vi.spyOn(console, 'error').mockImplementation(() => undefined)
    await runQueue([issued.job], { env: finished('CODE_ENCRYPTION_KEY', NEW_AES_KEY) })
    expect(await deliveryRow(issued.job.id)).toMatchObject({ status: 'failed', error_detail: 'code_decrypt_failed' })
  })

  it('a job queued during the rotation is sealed with the new key only', async () => {
    const p = await project()
    const { job } = await issueDuring(p, '+12025550105', rotated('CODE_ENCRYPTION_KEY', NEW_AES_KEY))
    expect(await open(NEW_AES_KEY, job.code, jobAad(job))).toMatch(/^[0-9]{6}$/)
    await expect(open(env.CODE_ENCRYPTION_KEY, job.code, jobAad(job))).rejects.toThrow()
  })
})

describe('SESSION_KEY_ENCRYPTION_KEY rotation', () => {
  const keyRow = (projectId: string) =>
    env.DB.prepare(
      'SELECT kid, private_key_iv, private_key_ct, retired_at FROM session_signing_keys WHERE project_id = ?1',
    )
      .bind(projectId)
      .all<{ kid: string; private_key_iv: string; private_key_ct: string; retired_at: number | null }>()

  it('a signing key sealed before keeps signing during and after the rotation (re-sealed under the new key)', async () => {
    const p = await project()
    const first = await signingKey(env, p.id, 'test', Date.now())
    clearSessionKeyCache()
    const info = vi.spyOn(console, 'log').mockImplementation(() => undefined)
    const during = await signingKey(rotated('SESSION_KEY_ENCRYPTION_KEY', NEW_AES_KEY), p.id, 'test', Date.now())
    expect(during.kid).toBe(first.kid)
    expect(info).toHaveBeenCalledWith(expect.stringContaining('session_key_resealed'))
    clearSessionKeyCache()
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const after = await signingKey(finished('SESSION_KEY_ENCRYPTION_KEY', NEW_AES_KEY), p.id, 'test', Date.now())
    expect(after.kid).toBe(first.kid)
    expect(errors).not.toHaveBeenCalled()
    const { results } = await keyRow(p.id)
    expect(results).toHaveLength(1)
    expect(results[0]?.retired_at).toBeNull()
  })
})

describe('SESSION_KEY_ENCRYPTION_KEY: derived keys, and what was sealed before them or before a rotation', () => {
  const SIGNING_INFO = 'session-signing-key:v1'
  const keyRow = (projectId: string) =>
    env.DB.prepare(
      'SELECT kid, private_key_iv, private_key_ct, sealed_with FROM session_signing_keys WHERE project_id = ?1',
    )
      .bind(projectId)
      .first<{ kid: string; private_key_iv: string; private_key_ct: string; sealed_with: string | null }>()
  const sealedKey = (row: { private_key_iv: string; private_key_ct: string } | null) => ({
    iv: row?.private_key_iv ?? '',
    ct: row?.private_key_ct ?? '',
  })
  const keyAad = (projectId: string, kid: string) => `session-signing-key:v1:${projectId}:${kid}`
  const cron = (bindings: Env) =>
    worker.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: '17 * * * *' }), bindings)

  /**
   * A project whose active signing key was sealed as Workers before key derivation sealed it: with
   * the secret `secret` itself as the AES key, and no fingerprint.
   */
  async function legacyKey(secret: string) {
    const p = await project()
    const pair = (await crypto.subtle.generateKey(
      { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) },
      true,
      ['sign', 'verify'],
    )) as CryptoKeyPair
    const pkcs8 = new Uint8Array((await crypto.subtle.exportKey('pkcs8', pair.privateKey)) as ArrayBuffer)
    const jwk = (await crypto.subtle.exportKey('jwk', pair.publicKey)) as JsonWebKey
    const kid = `jwk-test-${crypto.randomUUID()}`
    const sealed = await seal(secret, toBase64Url(pkcs8), keyAad(p.id, kid))
    const publicJwk = { kty: 'RSA', use: 'sig', key_ops: ['verify'], alg: 'RS256', kid, n: jwk.n, e: jwk.e }
    await env.DB.prepare(
      `INSERT INTO session_signing_keys (kid, project_id, public_jwk, private_key_iv, private_key_ct, created_at)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6)`,
    )
      .bind(kid, p.id, JSON.stringify(publicJwk), sealed.iv, sealed.ct, Date.now())
      .run()
    return { p, kid }
  }

  it('seals new signing keys under a key derived for them, never under the secret itself', async () => {
    const p = await project()
    const key = await signingKey(env, p.id, 'test', Date.now())
    const row = await keyRow(p.id)
    const derived = await derivedAesKey(env.SESSION_KEY_ENCRYPTION_KEY, SIGNING_INFO)
    expect((await open(derived, sealedKey(row), keyAad(p.id, key.kid))).length).toBeGreaterThan(1_000)
    await expect(open(env.SESSION_KEY_ENCRYPTION_KEY, sealedKey(row), keyAad(p.id, key.kid))).rejects.toThrow()
    const tokenKey = await derivedAesKey(env.SESSION_KEY_ENCRYPTION_KEY, 'session-token:v1')
    await expect(open(tokenKey, sealedKey(row), keyAad(p.id, key.kid))).rejects.toThrow()
  })

  it('a key sealed under the secret itself keeps signing, re-sealed under the derived key when read', async () => {
    const { p, kid } = await legacyKey(env.SESSION_KEY_ENCRYPTION_KEY)
    const info = vi.spyOn(console, 'log').mockImplementation(() => undefined)
    expect((await signingKey(env, p.id, 'test', Date.now())).kid).toBe(kid)
    expect(info).toHaveBeenCalledWith(expect.stringContaining('session_key_resealed'))
    const derived = await derivedAesKey(env.SESSION_KEY_ENCRYPTION_KEY, SIGNING_INFO)
    const row = await keyRow(p.id)
    expect((await open(derived, sealedKey(row), keyAad(p.id, kid))).length).toBeGreaterThan(1_000)
    expect(row?.sealed_with).toEqual(expect.any(String))
  })

  it('a key sealed under the previous secret itself, read during a rotation, signs after it', async () => {
    const { p, kid } = await legacyKey(env.SESSION_KEY_ENCRYPTION_KEY)
    vi.spyOn(console, 'log').mockImplementation(() => undefined)
    const during = rotated('SESSION_KEY_ENCRYPTION_KEY', NEW_AES_KEY)
    expect((await signingKey(during, p.id, 'test', Date.now())).kid).toBe(kid)
    clearSessionKeyCache()
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    expect((await signingKey(finished('SESSION_KEY_ENCRYPTION_KEY', NEW_AES_KEY), p.id, 'test', Date.now())).kid).toBe(
      kid,
    )
    expect(errors).not.toHaveBeenCalled()
  })

  it('the hourly run re-seals the key of a project that signs nothing during the rotation', async () => {
    const { p, kid } = await legacyKey(env.SESSION_KEY_ENCRYPTION_KEY)
    const idle = await project()
    const fresh = await signingKey(env, idle.id, 'test', Date.now())
    clearSessionKeyCache()
    vi.spyOn(console, 'log').mockImplementation(() => undefined)
    await cron(rotated('SESSION_KEY_ENCRYPTION_KEY', NEW_AES_KEY))
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const after = finished('SESSION_KEY_ENCRYPTION_KEY', NEW_AES_KEY)
    expect((await signingKey(after, p.id, 'test', Date.now())).kid).toBe(kid)
    expect((await signingKey(after, idle.id, 'test', Date.now())).kid).toBe(fresh.kid)
    expect(errors).not.toHaveBeenCalled()
  })

  describe('session tokens and attributes', () => {
    const attributes = { ip_address: '198.51.100.77', user_agent: 'rotation-agent/2.0' }
    const byJwt = (p: TestProject, jwt: string, bindings: Env) =>
      callJson('POST', '/v1/sessions/authenticate', { project: p, body: { session_jwt: jwt }, env: bindings })

    it('a session read by its JWT during the rotation still returns its token after it', async () => {
      const p = await project()
      const s = await login(p, '+12025550107', { attributes })
      const during = rotated('SESSION_KEY_ENCRYPTION_KEY', NEW_AES_KEY)
      const read = await byJwt(p, s.jwt, during)
      expect(read.body).toMatchObject({ session_token: s.token, session: { attributes } })
      clearSessionKeyCache()
      const after = await byJwt(p, String(read.body.session_jwt), finished('SESSION_KEY_ENCRYPTION_KEY', NEW_AES_KEY))
      expect(after.body).toMatchObject({ session_token: s.token, session: { attributes } })
    })

    it('a session nobody reads during the rotation is re-sealed by the hourly run', async () => {
      const p = await project()
      const s = await login(p, '+12025550108', { attributes })
      // A JWT signed by the rotated key, so that only the session's own seal is put to the test.
      const during = rotated('SESSION_KEY_ENCRYPTION_KEY', NEW_AES_KEY)
      vi.spyOn(console, 'log').mockImplementation(() => undefined)
      await cron(during)
      clearSessionKeyCache()
      const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
      const after = await byJwt(p, s.jwt, finished('SESSION_KEY_ENCRYPTION_KEY', NEW_AES_KEY))
      expect(after.body).toMatchObject({ session_token: s.token, session: { attributes } })
      expect(errors).not.toHaveBeenCalled()
    })
  })
})

/** Issues a code with `bindings` (e.g. during a rotation) and returns it decrypted with their current key. */
const issueDuring = (p: TestProject, phoneNumber: string, bindings: Env) =>
  issueCode(p, { phone_number: phoneNumber }, { env: bindings, deliver: false })
