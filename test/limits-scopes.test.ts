import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { LIMITS } from '../src/limits'
import { ProjectSettingsSchema } from '../src/settings'
import { callJson, countingEnv, expectStytchError, issueCode, newProject, type TestProject, tableRows } from './helpers'
import { capturedLines } from './log-capture'

// The per-network IPv6 limits (/56, /48), the project-wide brake on failed authentications, and the
// error bound of the bucketed counters.

const T0 = Date.parse('2026-11-27T10:00:00Z')
const MINUTE = 60_000
const HOUR = 60 * MINUTE
const clockAt = (ms: number) => vi.setSystemTime(T0 + ms)

type Reply = { status: number; headers: Headers; body: Record<string, unknown> }
const post = (p: TestProject, path: string, body: unknown, e: Env = env) =>
  callJson('POST', path, { project: p, body, env: e })
const loginOrCreate = (p: TestProject, phone: string, extra: Record<string, unknown> = {}, e?: Env) =>
  post(p, '/v1/otps/whatsapp/login_or_create', { phone_number: phone, ...extra }, e)
const authenticate = (p: TestProject, phoneId: string, code: string, ip?: string) =>
  post(p, '/v1/otps/authenticate', { method_id: phoneId, code, ...(ip ? { attributes: { ip_address: ip } } : {}) })
const withIp = (ip: string) => ({ attributes: { ip_address: ip } })
/** Distinct valid US numbers (+1 202 555 01xx). */
const usPhone = (i: number) => `+12025550${String(100 + i)}`
const wrongCode = (code: string, i = 1) => String((Number(code) + i) % 1_000_000).padStart(6, '0')

function expectLimited(res: Reply, limit: keyof typeof LIMITS) {
  expectStytchError(res, 429, 'too_many_requests')
  expect(res.body.error_message).toBe(LIMITS[limit])
}

/** Everything a request could change, for "a refused request changes nothing". */
async function footprint() {
  const tables = ['users', 'phones', 'otp_codes', 'deliveries', 'limit_counters', 'limit_guard']
  return await tableRows(tables)
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] })
  clockAt(0)
})

describe('IPv6 sends are also counted per /56 and per /48', () => {
  const generous = { ip_sends_per_hour: 100 }

  it('one /56 holder rotating /64s: the /56 cap trips, another /56 of the same /48 still passes', async () => {
    const p = await newProject('test', { ...generous, ipv6_56_sends_per_hour: 3 })
    // Three different /64s inside 2001:db8:0:100::/56.
    for (let i = 0; i < 3; i++) {
      expect((await loginOrCreate(p, usPhone(i), withIp(`2001:db8:0:1${i}0::1`))).status).toBe(200)
    }
    expectLimited(await loginOrCreate(p, usPhone(3), withIp('2001:db8:0:1ff::1')), 'ipv6_56_sends_per_hour')
    expect((await loginOrCreate(p, usPhone(4), withIp('2001:db8:0:200::1'))).status).toBe(200)
    // IPv4 has no network scopes.
    for (let i = 5; i < 9; i++) expect((await loginOrCreate(p, usPhone(i), withIp(`198.51.100.${i}`))).status).toBe(200)
  })

  it('one /48 holder rotating /56s: the /48 cap trips, and a refused send changes nothing', async () => {
    const p = await newProject('test', { ...generous, ipv6_56_sends_per_hour: 100, ipv6_48_sends_per_hour: 4 })
    for (let i = 0; i < 4; i++) {
      expect((await loginOrCreate(p, usPhone(i), withIp(`2001:db8:7:${i}00::1`))).status).toBe(200)
    }
    const before = await footprint()
    const counting = countingEnv(env)
    expectLimited(
      await loginOrCreate(p, usPhone(4), withIp('2001:db8:7:ff00::1'), counting.env),
      'ipv6_48_sends_per_hour',
    )
    expect(await footprint()).toEqual(before)
    expect(counting.queueSends).toHaveLength(0)
    expect(counting.kvPuts).toHaveLength(0)
    expect((await loginOrCreate(p, usPhone(5), withIp('2001:db8:8::1'))).status).toBe(200)
  })

  it('parallel sends from one /48 over many /64s: exactly the /48 cap accepted', async () => {
    const p = await newProject('test', { ...generous, ipv6_56_sends_per_hour: 100, ipv6_48_sends_per_hour: 5 })
    const results = await Promise.all(
      Array.from({ length: 15 }, (_, i) => loginOrCreate(p, usPhone(i), withIp(`2001:db8:9:${i.toString(16)}::1`))),
    )
    expect(results.filter((r) => r.status === 200)).toHaveLength(5)
    for (const r of results.filter((r) => r.status !== 200)) expectLimited(r, 'ipv6_48_sends_per_hour')
  })

  it('defaults: the /56 and /48 caps are above the /64 cap', () => {
    const d = ProjectSettingsSchema.parse({})
    expect(d.ipv6_56_sends_per_hour).toBeGreaterThan(d.ip_sends_per_hour)
    expect(d.ipv6_48_sends_per_hour).toBeGreaterThan(d.ipv6_56_sends_per_hour)
    expect(d.ipv6_56_failed_auths_per_hour).toBeGreaterThan(d.ip_failed_auths_per_hour)
    expect(d.ipv6_48_failed_auths_per_hour).toBeGreaterThan(d.ipv6_56_failed_auths_per_hour)
  })
})

describe('failed authentications per IPv6 /56 and /48', () => {
  const lenientCode = { otp_max_attempts: 20, user_lock_threshold: 100, ip_failed_auths_per_hour: 100 }

  it('guesses from rotating /64s of one /56 trip the /56 cap; then even the right code gets 429 from it', async () => {
    const p = await newProject('test', { ...lenientCode, ipv6_56_failed_auths_per_hour: 3 })
    const { phoneId, code } = await issueCode(p, { phone_number: usPhone(0) })
    for (let i = 1; i <= 3; i++) {
      expectStytchError(
        await authenticate(p, phoneId, wrongCode(code, i), `2001:db8:5:1${i}0::1`),
        404,
        'otp_code_not_found',
      )
    }
    expectLimited(await authenticate(p, phoneId, code, '2001:db8:5:1ff::1'), 'ipv6_56_failed_auths_per_hour')
    expect((await authenticate(p, phoneId, code, '2001:db8:5:200::1')).status).toBe(200)
  })

  it('guesses from rotating /56s of one /48 trip the /48 cap', async () => {
    const p = await newProject('test', {
      ...lenientCode,
      ipv6_56_failed_auths_per_hour: 100,
      ipv6_48_failed_auths_per_hour: 2,
    })
    const { phoneId, code } = await issueCode(p, { phone_number: usPhone(1) })
    for (let i = 1; i <= 2; i++) {
      expectStytchError(
        await authenticate(p, phoneId, wrongCode(code, i), `2001:db8:6:${i}00::1`),
        404,
        'otp_code_not_found',
      )
    }
    expectLimited(
      await authenticate(p, phoneId, wrongCode(code, 9), '2001:db8:6:ff00::1'),
      'ipv6_48_failed_auths_per_hour',
    )
  })
})

describe('failed_auths_per_hour: the project-wide brake', () => {
  const lenientCode = {
    otp_max_attempts: 20,
    user_lock_threshold: 100,
    ip_failed_auths_per_hour: 100,
    phone_send_cooldown_seconds: 0,
  }
  // The brake's counter and the alert lines it logged.
  const projectFailures = async (p: TestProject) =>
    (
      await env.DB.prepare(
        `SELECT COALESCE(SUM(n), 0) AS n FROM limit_counters WHERE project_id = ?1 AND kind = 'failed_auths_per_hour'`,
      )
        .bind(p.id)
        .first<{ n: number }>()
    )?.n
  const brakeAlerts = (from: number) =>
    capturedLines()
      .slice(from)
      .filter((l) => l.text.includes('"failed_auths_per_hour"'))
      .map((l) => ({ level: l.level, line: JSON.parse(l.text) as Record<string, unknown> }))

  it('once tripped, right codes still log users in from any IP; wrong ones burn their code; one alert', async () => {
    const p = await newProject('test', { ...lenientCode, failed_auths_per_hour: 3 })
    const other = await newProject('test', { ...lenientCode, failed_auths_per_hour: 3 })
    const seen = capturedLines().length
    const attacked = await issueCode(p, { phone_number: usPhone(2) })
    for (const [i, ip] of ['198.51.100.1', undefined, '2001:db8:a::1'].entries()) {
      expectStytchError(
        await authenticate(p, attacked.phoneId, wrongCode(attacked.code, i + 1), ip),
        404,
        'otp_code_not_found',
      )
    }
    expect(await projectFailures(p)).toBe(3)
    // The brake is engaged: the alert fired once, when the third failure reached the limit.
    expect(brakeAlerts(seen)).toEqual([
      {
        level: 'error',
        line: {
          level: 'error',
          event: 'limit_tripped',
          limit: 'failed_auths_per_hour',
          project_id: p.id,
          action: 'brake',
          alert: true,
        },
      },
    ])
    // A fourth wrong code is judged (no 429), and under the brake it uses up its code.
    expectStytchError(
      await authenticate(p, attacked.phoneId, wrongCode(attacked.code, 4), '203.0.113.9'),
      404,
      'otp_code_not_found',
    )
    expectStytchError(
      await authenticate(p, attacked.phoneId, attacked.code, '192.0.2.200'),
      401,
      'unable_to_auth_otp_code',
    )
    // Another user logs in with the right code, from a fresh IP and from none.
    const victim = await issueCode(p, { phone_number: usPhone(5) })
    expect((await authenticate(p, victim.phoneId, victim.code, '192.0.2.201')).status).toBe(200)
    const again = await issueCode(p, { phone_number: usPhone(6) })
    expect((await authenticate(p, again.phoneId, again.code)).status).toBe(200)
    // The attacked user too, with a new code.
    const fresh = await issueCode(p, { phone_number: usPhone(2) })
    expect((await authenticate(p, fresh.phoneId, fresh.code, '192.0.2.202')).status).toBe(200)
    expect(brakeAlerts(seen)).toHaveLength(1)
    // Another project is not affected: its codes still survive wrong guesses.
    const o = await issueCode(other, { phone_number: usPhone(2) })
    expectStytchError(await authenticate(other, o.phoneId, wrongCode(o.code)), 404, 'otp_code_not_found')
    expect((await authenticate(other, o.phoneId, o.code)).status).toBe(200)
  })

  it('counts only attempts against a live code: unknown method_ids, dead codes and the sandbox count nothing', async () => {
    const p = await newProject('test', { ...lenientCode, otp_max_attempts: 1, failed_auths_per_hour: 2 })
    for (let i = 0; i < 5; i++) {
      const unknown = `phone-number-test-00000000-0000-4000-8000-00000000000${i}`
      expectStytchError(await authenticate(p, unknown, '123456', `198.51.100.${i}`), 404, 'phone_number_not_found')
    }
    // One wrong guess kills this code (otp_max_attempts 1); guesses at the dead code are not attempts on a live one.
    const { phoneId, code } = await issueCode(p, { phone_number: usPhone(7) })
    expectStytchError(await authenticate(p, phoneId, wrongCode(code)), 404, 'otp_code_not_found')
    for (let i = 2; i < 6; i++) {
      expectStytchError(await authenticate(p, phoneId, wrongCode(code, i)), 401, 'unable_to_auth_otp_code')
    }
    const sandbox = await loginOrCreate(p, '+10000000000')
    expectStytchError(await authenticate(p, String(sandbox.body.phone_id), '000001'), 404, 'otp_code_not_found')
    expect(await projectFailures(p)).toBe(1)
    // Not engaged: a code still survives up to otp_max_attempts.
    const next = await issueCode(p, { phone_number: usPhone(8) })
    expect((await authenticate(p, next.phoneId, next.code)).status).toBe(200)
  })

  it('while engaged, the per-IP caps are divided by brake_ip_divisor; other IPs keep logging in', async () => {
    const p = await newProject('test', {
      ...lenientCode,
      ip_failed_auths_per_hour: 30,
      brake_ip_divisor: 10,
      failed_auths_per_hour: 1,
    })
    const first = await issueCode(p, { phone_number: usPhone(9) })
    expectStytchError(await authenticate(p, first.phoneId, wrongCode(first.code)), 404, 'otp_code_not_found')
    // Engaged: 30 / 10 = 3 failures per IP. The first burns its code, the next two meet a dead code.
    const target = await issueCode(p, { phone_number: usPhone(10) })
    expectStytchError(
      await authenticate(p, target.phoneId, wrongCode(target.code), '198.51.100.7'),
      404,
      'otp_code_not_found',
    )
    for (let i = 2; i <= 3; i++) {
      expectStytchError(
        await authenticate(p, target.phoneId, wrongCode(target.code, i), '198.51.100.7'),
        401,
        'unable_to_auth_otp_code',
      )
    }
    const own = await issueCode(p, { phone_number: usPhone(11) })
    expectLimited(await authenticate(p, own.phoneId, own.code, '198.51.100.7'), 'ip_failed_auths_per_hour')
    expect((await authenticate(p, own.phoneId, own.code, '198.51.100.8')).status).toBe(200)
  })

  it('parallel wrong guesses without any IP: as many as the cap are judged as usual, the next one burns the code', async () => {
    const p = await newProject('test', { ...lenientCode, failed_auths_per_hour: 5 })
    const seen = capturedLines().length
    const { phoneId, code } = await issueCode(p, { phone_number: usPhone(3) })
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => authenticate(p, phoneId, wrongCode(code, i + 1))),
    )
    expect(results.filter((r) => r.status === 404)).toHaveLength(6)
    for (const r of results.filter((r) => r.status !== 404)) expectStytchError(r, 401, 'unable_to_auth_otp_code')
    expect(brakeAlerts(seen)).toHaveLength(1)
    expect(await projectFailures(p)).toBe(6)
    const next = await issueCode(p, { phone_number: usPhone(3) })
    expect((await authenticate(p, next.phoneId, next.code)).status).toBe(200)
  })
})

describe('the error bound of the bucketed counters', () => {
  it('never lets more than the limit through in 60 minutes; frees a slot once its minute bucket is 61 minutes old', async () => {
    const p = await newProject('test', { country_sends_per_hour: 3 })
    // Sends at 0:00.5, 0:30 and 0:59:59.
    for (const [i, at] of [500, 30 * MINUTE, HOUR - 1_000].entries()) {
      clockAt(at)
      expect((await loginOrCreate(p, usPhone(i))).status).toBe(200)
    }
    clockAt(HOUR + 600) // the first send is 60 min 0.1 s old: outside a true sliding hour, still in its bucket
    expectLimited(await loginOrCreate(p, usPhone(3)), 'country_sends_per_hour')
    clockAt(HOUR + MINUTE - 1)
    expectLimited(await loginOrCreate(p, usPhone(3)), 'country_sends_per_hour')
    clockAt(HOUR + MINUTE) // the 0:00 bucket has left the window: exactly one slot is free again
    expect((await loginOrCreate(p, usPhone(3))).status).toBe(200)
    expectLimited(await loginOrCreate(p, usPhone(4)), 'country_sends_per_hour')
  })

  it('reads a bounded number of counter rows whatever the history', async () => {
    const p = await newProject('test', { country_sends_per_hour: 10_000_000, new_users_per_hour: 10_000_000 })
    // An hour of heavy history: every minute bucket of the country and new-user counters already full,
    // and 5,000 other numbers' per-phone rows.
    await env.DB.prepare(
      `WITH RECURSIVE m(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM m WHERE i < 60)
       INSERT INTO limit_counters (project_id, kind, subject, bucket, n, expires_at)
       SELECT ?1, k.kind, k.subject, ?2 - i * 60000, 10000, ?2 + 3600000 FROM m,
         (SELECT 'country_sends_per_hour' AS kind, 'US' AS subject UNION ALL SELECT 'new_users_per_hour', '') k`,
    )
      .bind(p.id, T0)
      .run()
    await env.DB.prepare(
      `WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 5000)
       INSERT INTO limit_counters (project_id, kind, subject, bucket, n, expires_at)
       SELECT ?1, 'phone', '+1303555' || printf('%04d', i), ?2 - i, 1, ?2 + 86400000 FROM s`,
    )
      .bind(p.id, T0)
      .run()
    const rowsRead: number[] = []
    const measuring: Env = {
      ...env,
      DB: new Proxy(env.DB, {
        get(target, prop) {
          if (prop === 'batch') {
            return async (statements: D1PreparedStatement[]) => {
              const results = await target.batch(statements)
              rowsRead.push(results.reduce((n, r) => n + r.meta.rows_read, 0))
              return results
            }
          }
          const value = Reflect.get(target, prop)
          return typeof value === 'function' ? value.bind(target) : value
        },
      }),
    }
    expect((await loginOrCreate(p, usPhone(0), {}, measuring)).status).toBe(200)
    // 61 rows per bucketed counter (2), a few per-phone rows, the batch's own lookups: far below the
    // 5,122 rows (or 1.2 million events) of history.
    expect(rowsRead).toHaveLength(1)
    expect(rowsRead[0]).toBeLessThan(400)
  })
})
