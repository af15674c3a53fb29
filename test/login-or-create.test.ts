import { env } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import type { StoredCode } from '../src/otp/code-store'
import { countingEnv, expectStytchError, issueCode, loginOrCreate, newProject, TEST_PROJECT } from './helpers'

const usersWithPhone = async (phone: string) =>
  (
    await env.DB.prepare(
      'SELECT u.id, u.status, p.verified FROM users u JOIN phones p ON p.user_id = u.id WHERE p.phone_number = ?1',
    )
      .bind(phone)
      .all<{ id: string; status: string; verified: number }>()
  ).results

describe('POST /v1/otps/whatsapp/login_or_create', () => {
  it('creates a user for a new phone and returns exactly the five fields', async () => {
    const res = await loginOrCreate({ phone_number: '+12025550123' })
    expect(res.status).toBe(200)
    expect(Object.keys(res.body).sort()).toEqual(['phone_id', 'request_id', 'status_code', 'user_created', 'user_id'])
    expect(res.body).toMatchObject({ status_code: 200, user_created: true })
    expect(res.body.user_id).toMatch(/^user-test-[0-9a-f-]{36}$/)
    expect(res.body.phone_id).toMatch(/^phone-number-test-[0-9a-f-]{36}$/)
    expect(res.body.request_id).toMatch(/^request-id-test-[0-9a-f-]{36}$/)
    expect(res.headers.get('x-request-id')).toBe(res.body.request_id)
    const again = await loginOrCreate({ phone_number: '+12025550123' })
    expect(again.body).toMatchObject({ user_id: res.body.user_id, phone_id: res.body.phone_id, user_created: false })
    expect(again.body.request_id).not.toBe(res.body.request_id)
    expect(await usersWithPhone('+12025550123')).toEqual([{ id: res.body.user_id, status: 'active', verified: 0 }])
  })

  it('is one D1 round trip, one KV write and one queue send on a warm isolate', async () => {
    const counting = countingEnv(env)
    await loginOrCreate({ phone_number: '+12025550124' }) // warms the project cache
    const res = await loginOrCreate({ phone_number: '+12025550125' }, { env: counting.env })
    expect(res.status).toBe(200)
    expect(counting.d1()).toBe(1)
    expect(counting.kvPuts).toEqual([`otp:${res.body.phone_id}`])
    expect(counting.queueSends).toHaveLength(1)
  })

  it('creates exactly one user when 25 requests race for the same new phone', async () => {
    const results = await Promise.all(Array.from({ length: 25 }, () => loginOrCreate({ phone_number: '+12025550130' })))
    expect(results.map((r) => r.status)).toEqual(Array(25).fill(200))
    expect(results.filter((r) => r.body.user_created === true)).toHaveLength(1)
    expect(new Set(results.map((r) => r.body.user_id)).size).toBe(1)
    expect(new Set(results.map((r) => r.body.phone_id)).size).toBe(1)
    expect(await usersWithPhone('+12025550130')).toHaveLength(1)
    const orphans = await env.DB.prepare(
      'SELECT COUNT(*) AS n FROM users u WHERE NOT EXISTS (SELECT 1 FROM phones p WHERE p.user_id = u.id)',
    ).first<{ n: number }>()
    expect(orphans?.n).toBe(0)
  })

  it('creates the user as pending with create_user_as_pending and leaves an existing user as it is', async () => {
    const res = await loginOrCreate({ phone_number: '+12025550131', create_user_as_pending: true })
    expect(res.body.user_created).toBe(true)
    expect(await usersWithPhone('+12025550131')).toEqual([{ id: res.body.user_id, status: 'pending', verified: 0 }])
    const active = await loginOrCreate({ phone_number: '+12025550132' })
    const again = await loginOrCreate({ phone_number: '+12025550132', create_user_as_pending: true })
    expect(again.body).toMatchObject({ user_id: active.body.user_id, user_created: false })
    expect((await usersWithPhone('+12025550132'))[0]?.status).toBe('active')
  })

  it('stores only keyed hashes in KV, with the default 2-minute lifetime and the attributes', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(new Date('2026-11-27T10:00:00Z'))
    const attributes = { ip_address: '203.0.113.7', user_agent: 'Mozilla/5.0 test' }
    const { body, code, job } = await issueCode(TEST_PROJECT, { phone_number: '+12025550133', attributes })
    expect(code).toMatch(/^[0-9]{6}$/)
    const raw = await env.OTP_KV.get(`otp:${body.phone_id}`)
    expect(raw).not.toBeNull()
    expect(raw).not.toContain(code)
    const stored = JSON.parse(raw ?? '{}') as StoredCode
    expect(stored).toEqual({
      v: 1,
      code_id: job.id,
      mac: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      expires_at: Date.parse('2026-11-27T10:02:00Z'),
      ip_hash: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      ua_hash: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      // The destination region for the metrics, and what a success on this code can do (a new
      // number is its owner's, not an attachment; WhatsApp without the SMS fallback).
      country: 'US',
      needs: { attached: false, sms: false },
    })
    expect(raw).not.toContain('203.0.113.7')
    expect(raw).not.toContain('Mozilla')
    const jobText = JSON.stringify(job)
    expect(jobText).not.toContain(`"${code}"`)
    expect(job).toMatchObject({ v: 1, phone_id: body.phone_id, phone_number: '+12025550133', locale: 'en' })
    const dump = JSON.stringify(
      await env.DB.batch(
        ['users', 'phones', 'otp_codes', 'deliveries'].map((t) => env.DB.prepare(`SELECT * FROM ${t}`)),
      ),
    )
    expect(dump).not.toContain(code)
  })

  it('honours expiration_minutes and locale', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(new Date('2026-11-27T10:00:00Z'))
    const { body, job } = await issueCode(TEST_PROJECT, {
      phone_number: '+12025550134',
      expiration_minutes: 10,
      locale: 'pt-br',
    })
    expect(job.locale).toBe('pt-br')
    expect(job.expires_at).toBe(Date.parse('2026-11-27T10:10:00Z'))
    const gate = await env.DB.prepare('SELECT expires_at, attempts FROM otp_codes WHERE phone_id = ?1')
      .bind(body.phone_id)
      .first()
    expect(gate).toEqual({ expires_at: Date.parse('2026-11-27T10:10:00Z'), attempts: 0 })
  })

  it('replaces the previous code of the phone with a new one', async () => {
    const first = await issueCode(TEST_PROJECT, { phone_number: '+12025550135' })
    const second = await issueCode(TEST_PROJECT, { phone_number: '+12025550135' })
    expect(second.job.id).not.toBe(first.job.id)
    const stored = await env.OTP_KV.get<StoredCode>(`otp:${first.body.phone_id}`, 'json')
    expect(stored?.code_id).toBe(second.job.id)
    const gate = await env.DB.prepare('SELECT code_id FROM otp_codes WHERE phone_id = ?1')
      .bind(first.body.phone_id)
      .first<{ code_id: string }>()
    expect(gate?.code_id).toBe(second.job.id)
  })

  it('accepts null for optional fields and ignores unknown fields', async () => {
    const res = await loginOrCreate({
      phone_number: '+12025550136',
      expiration_minutes: null,
      locale: null,
      attributes: null,
      create_user_as_pending: null,
      telemetry_id: 'ignored',
    })
    expect(res.status).toBe(200)
  })

  describe('sandbox number +10000000000', () => {
    it('returns a stable user and phone in a test project and enqueues nothing', async () => {
      const counting = countingEnv(env)
      const a = await loginOrCreate({ phone_number: '+10000000000' }, { env: counting.env })
      const b = await loginOrCreate({ phone_number: '+10000000000' }, { env: counting.env })
      expect(a.status).toBe(200)
      expect(b.body).toMatchObject({ user_id: a.body.user_id, phone_id: a.body.phone_id, user_created: false })
      expect(counting.queueSends).toHaveLength(0)
      expect(counting.kvPuts).toHaveLength(0)
    })

    it('is an invalid number in a live project', async () => {
      const live = await newProject('live')
      expectStytchError(
        await loginOrCreate({ phone_number: '+10000000000' }, { project: live }),
        400,
        'invalid_phone_number',
      )
    })
  })

  it('mints ids with the live infix in a live project', async () => {
    const live = await newProject('live')
    const res = await loginOrCreate({ phone_number: '+12025550137' }, { project: live })
    expect(res.body.user_id).toMatch(/^user-live-/)
    expect(res.body.phone_id).toMatch(/^phone-number-live-/)
    expect(res.body.request_id).toMatch(/^request-id-live-/)
  })

  it('keeps projects apart: the same phone is a different user in another project', async () => {
    const other = await newProject('test')
    const mine = await loginOrCreate({ phone_number: '+12025550138' })
    const theirs = await loginOrCreate({ phone_number: '+12025550138' }, { project: other })
    expect(theirs.body.user_created).toBe(true)
    expect(theirs.body.user_id).not.toBe(mine.body.user_id)
  })
})

describe('login_or_create validation', () => {
  const cases: [string, unknown, string][] = [
    ['missing phone_number', {}, 'bad_request'],
    ['phone_number not a string', { phone_number: 12025550123 }, 'invalid_phone_number'],
    ['national format', { phone_number: '2025550123' }, 'invalid_phone_number'],
    ['spaces', { phone_number: '+1 202 555 0123' }, 'invalid_phone_number'],
    ['dashes', { phone_number: '+1-202-555-0123' }, 'invalid_phone_number'],
    ['leading zero country code', { phone_number: '+02025550123' }, 'invalid_phone_number'],
    ['too long', { phone_number: '+1202555012345678' }, 'invalid_phone_number'],
    ['not a real number', { phone_number: '+1202555012' }, 'invalid_phone_number'],
    ['fullwidth plus', { phone_number: '＋12025550123' }, 'invalid_phone_number'],
    ['arabic-indic digits', { phone_number: '+١٢٠٢٥٥٥٠١٢٣' }, 'invalid_phone_number'],
    ['empty string', { phone_number: '' }, 'invalid_phone_number'],
    ['expiration 0', { phone_number: '+12025550123', expiration_minutes: 0 }, 'invalid_expiration_otp'],
    ['expiration 11', { phone_number: '+12025550123', expiration_minutes: 11 }, 'invalid_expiration_otp'],
    ['expiration fractional', { phone_number: '+12025550123', expiration_minutes: 1.5 }, 'invalid_expiration_otp'],
    ['expiration string', { phone_number: '+12025550123', expiration_minutes: '5' }, 'invalid_expiration_otp'],
    ['locale unknown', { phone_number: '+12025550123', locale: 'de' }, 'invalid_locale'],
    ['locale wrong case', { phone_number: '+12025550123', locale: 'pt-BR' }, 'invalid_locale'],
    ['pending not boolean', { phone_number: '+12025550123', create_user_as_pending: 'yes' }, 'bad_request'],
    ['attributes not object', { phone_number: '+12025550123', attributes: 'x' }, 'bad_request'],
    ['bad ip', { phone_number: '+12025550123', attributes: { ip_address: '999.1.1.1' } }, 'invalid_ip_address'],
    [
      'huge user agent',
      { phone_number: '+12025550123', attributes: { user_agent: 'a'.repeat(2_000) } },
      'invalid_user_agent',
    ],
  ]
  it.each(cases)('rejects %s', async (_name, body, errorType) => {
    const counting = countingEnv(env)
    const res = await loginOrCreate(body, { env: counting.env })
    expectStytchError(res, 400, errorType)
    expect(counting.queueSends).toHaveLength(0)
    expect(counting.kvPuts).toHaveLength(0)
  })

  it('changes nothing when rejecting', async () => {
    const before = await env.DB.prepare(
      'SELECT (SELECT COUNT(*) FROM users) AS u, (SELECT COUNT(*) FROM phones) AS p',
    ).first()
    await loginOrCreate({ phone_number: '+12025550199', expiration_minutes: 99 })
    const after = await env.DB.prepare(
      'SELECT (SELECT COUNT(*) FROM users) AS u, (SELECT COUNT(*) FROM phones) AS p',
    ).first()
    expect(after).toEqual(before)
  })

  it('accepts the boundaries 1 and 10 for expiration_minutes and every locale', async () => {
    for (const [i, extra] of [
      { expiration_minutes: 1 },
      { expiration_minutes: 10 },
      { locale: 'en' },
      { locale: 'es' },
      { locale: 'fr' },
      { locale: 'pt-br' },
    ].entries()) {
      const res = await loginOrCreate({ phone_number: `+1202555016${i}`, ...extra })
      expect(res.status).toBe(200)
    }
  })
})
