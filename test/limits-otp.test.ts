import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { LIMITS } from '../src/limits'
import { callJson, countingEnv, expectStytchError, issueCode, newProject, type TestProject } from './helpers'

const T0 = Date.parse('2026-11-27T10:00:00Z')
const MINUTE = 60_000
const HOUR = 3_600_000
const PHONE = '+12025550123'
const SANDBOX = '+10000000000'
const clockAt = (ms: number) => vi.setSystemTime(T0 + ms)

type Reply = { status: number; headers: Headers; body: Record<string, unknown> }
const post = (project: TestProject, path: string, body: unknown, e: Env = env) =>
  callJson('POST', path, { project, body, env: e })
const loginOrCreate = (p: TestProject, phone: string, extra: Record<string, unknown> = {}, e?: Env) =>
  post(p, '/v1/otps/whatsapp/login_or_create', { phone_number: phone, ...extra }, e)
const send = (p: TestProject, phone: string, extra: Record<string, unknown> = {}, e?: Env) =>
  post(p, '/v1/otps/whatsapp/send', { phone_number: phone, ...extra }, e)
const authenticate = (p: TestProject, phoneId: string, code: string, ip?: string) =>
  post(p, '/v1/otps/authenticate', { method_id: phoneId, code, ...(ip ? { attributes: { ip_address: ip } } : {}) })
const withIp = (ip: string) => ({ attributes: { ip_address: ip } })

function expectLimited(res: Reply, limit: keyof typeof LIMITS) {
  expectStytchError(res, 429, 'too_many_requests')
  expect(res.body.error_message).toBe(LIMITS[limit])
}

const wrongCode = (code: string, i = 1) => String((Number(code) + i) % 1_000_000).padStart(6, '0')

/** The gate, the user's failure count and the project's counted events. */
async function authFootprint(p: TestProject, phoneId: string) {
  return env.DB.prepare(
    `SELECT c.code_id, c.attempts, c.consumed_at, u.failed_authentications, u.locked_until,
       (SELECT SUM(n) FROM limit_counters WHERE project_id = ?2) AS events
     FROM otp_codes c JOIN phones p ON p.id = c.phone_id JOIN users u ON u.id = p.user_id WHERE c.phone_id = ?1`,
  )
    .bind(phoneId, p.id)
    .first()
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] })
  clockAt(0)
})

describe('POST /v1/otps/whatsapp/send shares the send limits', () => {
  it('counts against the same per-phone cooldown as login_or_create', async () => {
    const p = await newProject('test')
    expect((await loginOrCreate(p, PHONE)).status).toBe(200)
    clockAt(10_000)
    expectLimited(await send(p, PHONE), 'phone_cooldown')
    clockAt(30_000)
    expect((await send(p, PHONE)).status).toBe(200)
    clockAt(40_000)
    expectLimited(await loginOrCreate(p, PHONE), 'phone_cooldown')
  })

  it('per-phone hourly cap: N allowed, N+1 rejected, changing nothing', async () => {
    const p = await newProject('test', { phone_send_cooldown_seconds: 0, phone_sends_per_hour: 3 })
    expect((await loginOrCreate(p, PHONE)).status).toBe(200)
    expect((await send(p, PHONE)).status).toBe(200)
    expect((await send(p, PHONE)).status).toBe(200)
    const gate = await env.DB.prepare('SELECT code_id, created_at FROM otp_codes').all()
    const kv = await env.OTP_KV.list()
    const counting = countingEnv(env)
    expectLimited(await send(p, PHONE, {}, counting.env), 'phone_sends_per_hour')
    expect(counting.queueSends).toHaveLength(0)
    expect(counting.kvPuts).toHaveLength(0)
    expect((await env.DB.prepare('SELECT code_id, created_at FROM otp_codes').all()).results).toEqual(gate.results)
    expect((await env.OTP_KV.list()).keys).toEqual(kv.keys)
    clockAt(HOUR)
    expect((await send(p, PHONE)).status).toBe(200)
  })

  it('20 parallel sends to one phone: exactly as many accepted as the cap allows', async () => {
    const p = await newProject('test', { phone_send_cooldown_seconds: 0, phone_sends_per_hour: 6 })
    expect((await loginOrCreate(p, PHONE)).status).toBe(200)
    const counting = countingEnv(env)
    const results = await Promise.all(Array.from({ length: 20 }, () => send(p, PHONE, {}, counting.env)))
    expect(results.filter((r) => r.status === 200)).toHaveLength(5)
    for (const r of results.filter((r) => r.status !== 200)) expectLimited(r, 'phone_sends_per_hour')
    expect(counting.queueSends).toHaveLength(5)
  })

  it('counts per IP across login_or_create and send', async () => {
    const p = await newProject('test', { ip_sends_per_hour: 2, phone_send_cooldown_seconds: 0 })
    expect((await loginOrCreate(p, PHONE, withIp('192.0.2.1'))).status).toBe(200)
    expect((await loginOrCreate(p, '+12025550124')).status).toBe(200)
    expect((await send(p, '+12025550124', withIp('192.0.2.1'))).status).toBe(200)
    clockAt(60_000)
    expectLimited(await send(p, PHONE, withIp('192.0.2.1')), 'ip_sends_per_hour')
    expect((await send(p, PHONE, withIp('192.0.2.2'))).status).toBe(200)
  })

  it('applies the country allowlist and the country cap', async () => {
    const p = await newProject('test', { country_sends_per_hour: 2, phone_send_cooldown_seconds: 0 })
    const { userId } = await issueCode(p, { phone_number: PHONE })
    expectStytchError(await send(p, '+33612345678', { user_id: userId }), 400, 'invalid_phone_number_country_code')
    const phones = await env.DB.prepare('SELECT COUNT(*) AS n FROM phones WHERE user_id = ?1').bind(userId).first()
    expect(phones).toEqual({ n: 1 })
    expect((await send(p, PHONE)).status).toBe(200)
    expectLimited(await send(p, PHONE), 'country_sends_per_hour')
  })

  it('counts nothing for a send it refuses for other reasons', async () => {
    const p = await newProject('test', { phone_sends_per_hour: 1, ip_sends_per_hour: 1, country_sends_per_hour: 1 })
    for (let i = 0; i < 3; i++)
      expectStytchError(await send(p, PHONE, withIp('192.0.2.1')), 404, 'phone_number_not_found')
    expect((await loginOrCreate(p, PHONE, withIp('192.0.2.1'))).status).toBe(200)
  })

  it('exempts the sandbox number from the per-phone limits', async () => {
    const p = await newProject('test', { phone_sends_per_hour: 1 })
    for (let i = 0; i < 5; i++) expect((await send(p, SANDBOX)).status).toBe(200)
  })
})

describe('POST /v1/otps/authenticate: failed authentications per IP', () => {
  const lenientCode = { otp_max_attempts: 20, user_lock_threshold: 100 }

  it('N failures allowed, then 429 for any attempt, even the right code, changing nothing', async () => {
    const p = await newProject('test', { ...lenientCode, ip_failed_auths_per_hour: 3 })
    const { phoneId, code } = await issueCode(p, { phone_number: PHONE })
    for (let i = 1; i <= 3; i++) {
      expectStytchError(await authenticate(p, phoneId, wrongCode(code, i), '198.51.100.7'), 404, 'otp_code_not_found')
    }
    const before = await authFootprint(p, phoneId)
    // events: the send's phone, country and new-user events, and the three failures per IP and per project
    expect(before).toMatchObject({ attempts: 3, failed_authentications: 3, events: 9 })
    expectLimited(await authenticate(p, phoneId, wrongCode(code, 4), '198.51.100.7'), 'ip_failed_auths_per_hour')
    expectLimited(await authenticate(p, phoneId, code, '198.51.100.7'), 'ip_failed_auths_per_hour')
    expect(await authFootprint(p, phoneId)).toEqual(before)
    expect((await authenticate(p, phoneId, code, '198.51.100.8')).status).toBe(200)
  })

  it('does not count successes, nor attempts without an IP', async () => {
    const p = await newProject('test', { ...lenientCode, ip_failed_auths_per_hour: 1, phone_send_cooldown_seconds: 0 })
    for (let i = 0; i < 4; i++) {
      const { phoneId, code } = await issueCode(p, { phone_number: PHONE })
      expect((await authenticate(p, phoneId, code, '198.51.100.7')).status).toBe(200)
    }
    const { phoneId, code } = await issueCode(p, { phone_number: PHONE })
    for (let i = 1; i <= 3; i++)
      expectStytchError(await authenticate(p, phoneId, wrongCode(code, i)), 404, 'otp_code_not_found')
    expectStytchError(await authenticate(p, phoneId, wrongCode(code, 4), '198.51.100.7'), 404, 'otp_code_not_found')
    expectLimited(await authenticate(p, phoneId, code, '198.51.100.7'), 'ip_failed_auths_per_hour')
  })

  it('counts unknown method_ids and wrong codes on the sandbox number; frees up after an hour and a minute', async () => {
    const p = await newProject('test', { ...lenientCode, ip_failed_auths_per_hour: 2 })
    const sandbox = await loginOrCreate(p, SANDBOX)
    const sandboxId = String(sandbox.body.phone_id)
    expect((await authenticate(p, sandboxId, '000000', '203.0.113.1')).status).toBe(200)
    expectStytchError(await authenticate(p, sandboxId, '000001', '203.0.113.1'), 404, 'otp_code_not_found')
    const unknown = 'phone-number-test-00000000-0000-4000-8000-000000000001'
    expectStytchError(await authenticate(p, unknown, '123456', '203.0.113.1'), 404, 'phone_number_not_found')
    expectLimited(await authenticate(p, sandboxId, '000000', '203.0.113.1'), 'ip_failed_auths_per_hour')
    clockAt(HOUR + MINUTE) // bucketed: the window reaches back one more minute
    expect((await authenticate(p, sandboxId, '000000', '203.0.113.1')).status).toBe(200)
  })

  it('parallel guesses from one IP: exactly the allowed number get a verdict', async () => {
    const p = await newProject('test', { ...lenientCode, ip_failed_auths_per_hour: 4 })
    const { phoneId, code } = await issueCode(p, { phone_number: PHONE })
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => authenticate(p, phoneId, wrongCode(code, i + 1), '2001:db8:7::1')),
    )
    expect(results.filter((r) => r.status === 404)).toHaveLength(4)
    for (const r of results.filter((r) => r.status !== 404)) expectLimited(r, 'ip_failed_auths_per_hour')
    expect(await authFootprint(p, phoneId)).toMatchObject({ attempts: 4, failed_authentications: 4 })
  })
})
