import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { LIMITS } from '../src/limits'
import { countingEnv, expectStytchError, loginOrCreate, newProject, type TestProject, tableCounts } from './helpers'

const T0 = Date.parse('2026-11-27T10:00:00Z')
const MINUTE = 60_000
const HOUR = 3_600_000
const DAY = 24 * HOUR
const PHONE = '+12025550123'
/** Distinct valid US numbers (+1 202 555 01xx). */
const usPhone = (i: number) => `+12025550${String(100 + i)}`

/** Sets the service clock to T0 + ms (Date only: D1, KV and the queue keep running normally). */
const clockAt = (ms: number) => vi.setSystemTime(T0 + ms)

const send = (project: TestProject, phone: string, extra: Record<string, unknown> = {}, options = {}) =>
  loginOrCreate({ phone_number: phone, ...extra }, { project, ...options })

const withIp = (ip: string) => ({ attributes: { ip_address: ip } })

/** Asserts a 429 too_many_requests naming `limit` in its message. */
function expectLimited(res: Awaited<ReturnType<typeof loginOrCreate>>, limit: keyof typeof LIMITS) {
  expectStytchError(res, 429, 'too_many_requests')
  expect(res.body.error_message).toBe(LIMITS[limit])
}

/** Everything a send can leave behind, across all projects. */
async function footprint() {
  const tables = ['users', 'phones', 'otp_codes', 'deliveries', 'limit_counters', 'limit_guard']
  const counts = await tableCounts(tables)
  const codes = await env.DB.prepare('SELECT phone_id, code_id, attempts FROM otp_codes ORDER BY phone_id').all()
  const kv = await env.OTP_KV.list()
  const kvValues = await Promise.all(kv.keys.map((k) => env.OTP_KV.get(k.name)))
  return { counts, codes: codes.results, kv: kvValues }
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] })
  clockAt(0)
})

describe('defaults of a new project', () => {
  it('waits 30 s between sends to one phone and allows US and CA only', async () => {
    const project = await newProject('test')
    expect((await send(project, PHONE)).status).toBe(200)
    clockAt(29_999)
    expectLimited(await send(project, PHONE), 'phone_cooldown')
    clockAt(30_000)
    expect((await send(project, PHONE)).status).toBe(200)
    expect((await send(project, '+14165550123')).status).toBe(200)
    expectStytchError(await send(project, '+33612345678'), 400, 'invalid_phone_number_country_code')
  })

  it('allows 5 sends to one phone per hour and 10 per day', async () => {
    const project = await newProject('test')
    for (let i = 0; i < 5; i++) {
      clockAt(i * 30_000)
      expect((await send(project, PHONE)).status).toBe(200)
    }
    clockAt(5 * 30_000)
    expectLimited(await send(project, PHONE), 'phone_sends_per_hour')
    for (let i = 0; i < 5; i++) {
      clockAt(HOUR + i * 30_000)
      expect((await send(project, PHONE)).status).toBe(200)
    }
    clockAt(2 * HOUR)
    expectLimited(await send(project, PHONE), 'phone_sends_per_day')
    clockAt(DAY)
    expect((await send(project, PHONE)).status).toBe(200)
  })
})

describe('per-phone limits', () => {
  it('cooldown: N seconds exactly lets the next send through, one millisecond less does not', async () => {
    const project = await newProject('test', { phone_send_cooldown_seconds: 60 })
    expect((await send(project, PHONE)).status).toBe(200)
    clockAt(59_999)
    expectLimited(await send(project, PHONE), 'phone_cooldown')
    clockAt(60_000)
    expect((await send(project, PHONE)).status).toBe(200)
  })

  it('sends per hour: N allowed, N+1 rejected, and the sliding window frees one slot per expired send', async () => {
    const project = await newProject('test', { phone_send_cooldown_seconds: 0, phone_sends_per_hour: 3 })
    for (let i = 0; i < 3; i++) {
      clockAt(i * 1_000)
      expect((await send(project, PHONE)).status).toBe(200)
    }
    clockAt(HOUR - 1)
    expectLimited(await send(project, PHONE), 'phone_sends_per_hour')
    clockAt(HOUR) // the send at 0 has left the window, the ones at 1 s and 2 s have not
    expect((await send(project, PHONE)).status).toBe(200)
    expectLimited(await send(project, PHONE), 'phone_sends_per_hour')
    clockAt(HOUR + 2_000)
    expect((await send(project, PHONE)).status).toBe(200)
  })

  it('sends per day: N allowed across hours, N+1 rejected until the first leaves the 24 h window', async () => {
    const settings = { phone_send_cooldown_seconds: 0, phone_sends_per_hour: 2, phone_sends_per_day: 4 }
    const project = await newProject('test', settings)
    for (const t of [0, 1, HOUR, HOUR + 1]) {
      clockAt(t)
      expect((await send(project, PHONE)).status).toBe(200)
    }
    clockAt(5 * HOUR)
    expectLimited(await send(project, PHONE), 'phone_sends_per_day')
    clockAt(DAY - 1)
    expectLimited(await send(project, PHONE), 'phone_sends_per_day')
    clockAt(DAY)
    expect((await send(project, PHONE)).status).toBe(200)
  })

  it('counts each phone and each project separately', async () => {
    const project = await newProject('test')
    const other = await newProject('test')
    expect((await send(project, PHONE)).status).toBe(200)
    expect((await send(project, usPhone(1))).status).toBe(200)
    expect((await send(other, PHONE)).status).toBe(200)
    expectLimited(await send(project, PHONE), 'phone_cooldown')
  })

  it('20 parallel sends to one phone: exactly as many accepted as the hourly cap (cooldown 0)', async () => {
    const project = await newProject('test', { phone_send_cooldown_seconds: 0, phone_sends_per_hour: 5 })
    const counting = countingEnv(env)
    const results = await Promise.all(Array.from({ length: 20 }, () => send(project, PHONE, {}, { env: counting.env })))
    expect(results.filter((r) => r.status === 200)).toHaveLength(5)
    for (const r of results.filter((r) => r.status !== 200)) expectLimited(r, 'phone_sends_per_hour')
    expect(counting.queueSends).toHaveLength(5)
    expect(new Set(results.filter((r) => r.status === 200).map((r) => r.body.user_id)).size).toBe(1)
    const rows = await env.DB.prepare(
      `SELECT (SELECT COUNT(*) FROM deliveries WHERE project_id = ?1) AS deliveries,
              (SELECT COUNT(*) FROM users WHERE project_id = ?1) AS users`,
    )
      .bind(project.id)
      .first()
    expect(rows).toEqual({ deliveries: 5, users: 1 })
  })

  it('20 parallel sends to one phone with the default cooldown: exactly one accepted', async () => {
    const project = await newProject('test')
    const counting = countingEnv(env)
    const results = await Promise.all(Array.from({ length: 20 }, () => send(project, PHONE, {}, { env: counting.env })))
    expect(results.filter((r) => r.status === 200)).toHaveLength(1)
    expect(results.filter((r) => r.status === 429)).toHaveLength(19)
    expect(counting.queueSends).toHaveLength(1)
    expect(counting.kvPuts).toHaveLength(1)
  })
})

describe('per-IP send limit (attributes.ip_address)', () => {
  it('allows N sends per hour from one IP across phones, rejects N+1, and frees up after an hour and a minute', async () => {
    const project = await newProject('test', { ip_sends_per_hour: 3 })
    for (let i = 0; i < 3; i++) expect((await send(project, usPhone(i), withIp('203.0.113.7'))).status).toBe(200)
    expectLimited(await send(project, usPhone(3), withIp('203.0.113.7')), 'ip_sends_per_hour')
    expect((await send(project, usPhone(4), withIp('203.0.113.8'))).status).toBe(200)
    expect((await send(project, usPhone(5))).status).toBe(200) // no IP supplied: no per-IP limit
    clockAt(HOUR + MINUTE) // bucketed: the window reaches back one more minute
    expect((await send(project, usPhone(6), withIp('203.0.113.7'))).status).toBe(200)
  })

  it('counts an IPv6 /64 as one end user and an IPv4-mapped address as its IPv4', async () => {
    const project = await newProject('test', { ip_sends_per_hour: 2 })
    expect((await send(project, usPhone(0), withIp('2001:db8:1:2::1'))).status).toBe(200)
    expect((await send(project, usPhone(1), withIp('2001:0db8:0001:0002:ffff::9'))).status).toBe(200)
    expectLimited(await send(project, usPhone(2), withIp('2001:db8:1:2:abcd::1')), 'ip_sends_per_hour')
    expect((await send(project, usPhone(3), withIp('2001:db8:1:3::1'))).status).toBe(200)
    expect((await send(project, usPhone(4), withIp('198.51.100.1'))).status).toBe(200)
    expect((await send(project, usPhone(5), withIp('::ffff:198.51.100.1'))).status).toBe(200)
    expectLimited(await send(project, usPhone(6), withIp('198.51.100.1')), 'ip_sends_per_hour')
  })

  it('parallel sends from one IP to different phones: exactly the cap accepted', async () => {
    const project = await newProject('test', { ip_sends_per_hour: 4 })
    const counting = countingEnv(env)
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => send(project, usPhone(i), withIp('192.0.2.1'), { env: counting.env })),
    )
    expect(results.filter((r) => r.status === 200)).toHaveLength(4)
    for (const r of results.filter((r) => r.status !== 200)) expectLimited(r, 'ip_sends_per_hour')
    expect(counting.queueSends).toHaveLength(4)
    const users = await env.DB.prepare('SELECT COUNT(*) AS n FROM users WHERE project_id = ?1').bind(project.id).first()
    expect(users).toEqual({ n: 4 })
  })
})

describe('country allowlist and velocity cap', () => {
  it('rejects a number outside the list with 400 before writing anything', async () => {
    const project = await newProject('test', { allowed_countries: ['FR'] })
    expect((await send(project, '+33612345678')).status).toBe(200) // also warms the project cache
    const counting = countingEnv(env)
    const before = await footprint()
    expectStytchError(await send(project, PHONE, {}, { env: counting.env }), 400, 'invalid_phone_number_country_code')
    expect(await footprint()).toEqual(before)
    expect(counting.d1()).toBe(0)
    expect(counting.queueSends).toHaveLength(0)
  })

  it('lets non-geographic numbers (+800) through only with "*"', async () => {
    const listed = await newProject('test', { allowed_countries: ['US', 'CA', 'FR'] })
    expectStytchError(await send(listed, '+80012345678'), 400, 'invalid_phone_number_country_code')
    // +800 numbers are toll free: they also need every line type allowed.
    const all = await newProject('test', { allowed_countries: '*', allowed_line_types: '*' })
    expect((await send(all, '+80012345678')).status).toBe(200)
    expect((await send(all, '+33612345678')).status).toBe(200)
  })

  it('caps sends per country per hour, N allowed, N+1 rejected, other countries unaffected, frees up after an hour and a minute', async () => {
    const project = await newProject('test', { country_sends_per_hour: 3 })
    for (let i = 0; i < 3; i++) expect((await send(project, usPhone(i))).status).toBe(200)
    expectLimited(await send(project, usPhone(3)), 'country_sends_per_hour')
    expect((await send(project, '+14165550123')).status).toBe(200)
    clockAt(HOUR + MINUTE) // bucketed: the window reaches back one more minute
    expect((await send(project, usPhone(3))).status).toBe(200)
  })

  it('parallel sends to many phones of one country: exactly the cap accepted', async () => {
    const project = await newProject('test', { country_sends_per_hour: 5 })
    const results = await Promise.all(Array.from({ length: 15 }, (_, i) => send(project, usPhone(i))))
    expect(results.filter((r) => r.status === 200)).toHaveLength(5)
    for (const r of results.filter((r) => r.status !== 200)) expectLimited(r, 'country_sends_per_hour')
  })
})

describe('new users per hour', () => {
  it('caps users created per project, still lets existing users log in, and frees up after an hour and a minute', async () => {
    const project = await newProject('test', { new_users_per_hour: 2, phone_send_cooldown_seconds: 0 })
    expect((await send(project, usPhone(0))).body.user_created).toBe(true)
    expect((await send(project, usPhone(1))).body.user_created).toBe(true)
    expectLimited(await send(project, usPhone(2)), 'new_users_per_hour')
    const existing = await send(project, usPhone(0))
    expect(existing.status).toBe(200)
    expect(existing.body.user_created).toBe(false)
    clockAt(HOUR + MINUTE) // bucketed: the window reaches back one more minute
    expect((await send(project, usPhone(2))).body.user_created).toBe(true)
  })

  it('parallel sign-ups: exactly the cap created', async () => {
    const project = await newProject('test', { new_users_per_hour: 3 })
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => send(project, usPhone(i))))
    expect(results.filter((r) => r.status === 200 && r.body.user_created === true)).toHaveLength(3)
    for (const r of results.filter((r) => r.status !== 200)) expectLimited(r, 'new_users_per_hour')
    const users = await env.DB.prepare('SELECT COUNT(*) AS n FROM users WHERE project_id = ?1').bind(project.id).first()
    expect(users).toEqual({ n: 3 })
  })
})
