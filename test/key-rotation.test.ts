import { env } from 'cloudflare:workers'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { hmacSha256, keyedHash, keyedHashMatches, open, openRotating, seal, sealCurrent } from '../src/crypto'
import { jobAad } from '../src/delivery/job'
import { rotatingSecret } from '../src/env'
import { clearSessionKeyCache, signingKey } from '../src/sessions/keys'
import { expectStytchError, issueCode, type TestProject } from './helpers'
import { authenticate, loginCode, project } from './otp-helpers'
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

/** Issues a code with `bindings` (e.g. during a rotation) and returns it decrypted with their current key. */
const issueDuring = (p: TestProject, phoneNumber: string, bindings: Env) =>
  issueCode(p, { phone_number: phoneNumber }, { env: bindings, deliver: false })
