import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { ipKeys, ipPrefixes, LIMITS, type SendSubject, sendLimitStatements, trippedLimit } from '../src/limits'
import { purge } from '../src/retention'
import { parseSettings } from '../src/settings'
import {
  countingEnv,
  expectStytchError,
  loginOrCreate,
  newProject,
  queryPlan,
  type TestProject,
  tableCounts,
} from './helpers'

const T0 = Date.parse('2026-11-27T10:00:00Z')
const MINUTE = 60_000
const HOUR = 3_600_000
const DAY = 24 * HOUR
const SANDBOX = '+10000000000'
const clockAt = (ms: number) => vi.setSystemTime(T0 + ms)

const send = (project: TestProject, phone: string, extra: Record<string, unknown> = {}, options = {}) =>
  loginOrCreate({ phone_number: phone, ...extra }, { project, ...options })

/** Everything a send can leave behind, across all projects, including the stored code hashes. */
async function footprint() {
  const tables = ['users', 'phones', 'otp_codes', 'deliveries', 'limit_counters', 'limit_guard']
  const counts = await tableCounts(tables)
  const codes = await env.DB.prepare(
    'SELECT phone_id, code_id, attempts, created_at FROM otp_codes ORDER BY phone_id',
  ).all()
  const kv = await env.OTP_KV.list()
  const kvValues = await Promise.all(kv.keys.map(async (k) => [k.name, await env.OTP_KV.get(k.name)]))
  return { counts, codes: codes.results, kv: kvValues }
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] })
  clockAt(0)
})

describe('a rejected request changes nothing', () => {
  const cases: [string, Record<string, unknown>, (p: TestProject) => Promise<unknown>, string, keyof typeof LIMITS][] =
    [
      ['cooldown on an existing phone', {}, (p) => send(p, '+12025550123'), '+12025550123', 'phone_cooldown'],
      [
        'per-IP cap on a new phone',
        { ip_sends_per_hour: 1 },
        (p) => send(p, '+12025550124', { attributes: { ip_address: '192.0.2.9' } }),
        '+12025550125',
        'ip_sends_per_hour',
      ],
      [
        'country cap on a new phone',
        { country_sends_per_hour: 1 },
        (p) => send(p, '+12025550126'),
        '+12025550127',
        'country_sends_per_hour',
      ],
      [
        'new-user cap on a new phone',
        { new_users_per_hour: 1 },
        (p) => send(p, '+12025550128'),
        '+12025550129',
        'new_users_per_hour',
      ],
    ]
  it.each(cases)(
    '%s: no user, phone, code, KV key, delivery, job or counted event',
    async (_name, settings, prime, phone, limit) => {
      const project = await newProject('test', settings)
      await prime(project)
      const before = await footprint()
      const counting = countingEnv(env)
      const extra = limit === 'ip_sends_per_hour' ? { attributes: { ip_address: '192.0.2.9' } } : {}
      const res = await send(project, phone, extra, { env: counting.env })
      expectStytchError(res, 429, 'too_many_requests')
      expect(res.body.error_message).toBe(LIMITS[limit])
      expect(await footprint()).toEqual(before)
      expect(counting.queueSends).toHaveLength(0)
      expect(counting.kvPuts).toHaveLength(0)
      expect(counting.d1()).toBe(1)
    },
  )
})

describe('the sandbox number', () => {
  it('is exempt from the per-phone limits', async () => {
    const project = await newProject('test', { phone_sends_per_hour: 1, phone_sends_per_day: 1 })
    for (let i = 0; i < 12; i++) {
      const res = await send(project, SANDBOX)
      expect(res.status).toBe(200)
      expect(res.body.user_created).toBe(i === 0)
    }
  })

  it('counts against the per-IP limit', async () => {
    const project = await newProject('test', { ip_sends_per_hour: 2 })
    const ip = { attributes: { ip_address: '192.0.2.44' } }
    expect((await send(project, SANDBOX, ip)).status).toBe(200)
    expect((await send(project, '+12025550123', ip)).status).toBe(200)
    expectStytchError(await send(project, SANDBOX, ip), 429, 'too_many_requests')
  })

  it('counts against the new-user cap when it creates its user, and is outside any country', async () => {
    const project = await newProject('test', {
      new_users_per_hour: 1,
      allowed_countries: ['FR'],
      country_sends_per_hour: 1,
    })
    expect((await send(project, '+33612345678')).body.user_created).toBe(true)
    const res = await send(project, SANDBOX)
    expectStytchError(res, 429, 'too_many_requests')
    expect(res.body.error_message).toBe(LIMITS.new_users_per_hour)
    clockAt(HOUR + MINUTE) // a per-project counter's window reaches back one more minute bucket
    expect((await send(project, SANDBOX)).body.user_created).toBe(true)
    expect((await send(project, SANDBOX)).status).toBe(200) // existing user: no cap, no allowlist, no country
  })
})

describe('cost and housekeeping', () => {
  it('is still exactly one D1 round trip for an allowed login_or_create with every limit in play', async () => {
    const project = await newProject('test')
    await send(project, '+12025550140') // warms the project cache
    const counting = countingEnv(env)
    const res = await send(
      project,
      '+12025550141',
      { attributes: { ip_address: '2001:db8::1' } },
      { env: counting.env },
    )
    expect(res.status).toBe(200)
    expect(res.body.user_created).toBe(true)
    expect(counting.d1()).toBe(1)
    const rows = await env.DB.prepare(
      'SELECT kind, subject, bucket, n FROM limit_counters WHERE project_id = ?1 ORDER BY kind, subject',
    )
      .bind(project.id)
      .all()
    const [v64, v56, v48] = await ipKeys(env, '2001:db8::1')
    expect(rows.results).toEqual(
      [
        { kind: 'country_sends_per_hour', subject: 'US', bucket: T0, n: 2 },
        { kind: 'ip_sends_per_hour', subject: v64?.key, bucket: T0, n: 1 },
        { kind: 'ipv6_48_sends_per_hour', subject: v48?.key, bucket: T0, n: 1 },
        { kind: 'ipv6_56_sends_per_hour', subject: v56?.key, bucket: T0, n: 1 },
        { kind: 'new_users_per_hour', subject: '', bucket: T0, n: 2 },
        { kind: 'phone', subject: '+12025550140', bucket: T0, n: 1 },
        { kind: 'phone', subject: '+12025550141', bucket: T0, n: 1 },
      ].sort((a, b) => (a.kind + a.subject < b.kind + b.subject ? -1 : 1)),
    )
  })

  it('leaves expired counter rows to the hourly retention run: a send deletes none, the run purges them', async () => {
    const lenient = { phone_send_cooldown_seconds: 0, phone_sends_per_hour: 1_000, phone_sends_per_day: 1_000 }
    const project = await newProject('test', lenient)
    // One exact per-phone row per send (each at its own millisecond), one country row per minute.
    for (let i = 0; i < 70; i++) {
      clockAt(i * 1_000)
      expect((await send(project, '+12025550150')).status).toBe(200)
    }
    const count = async (where: string) =>
      (
        await env.DB.prepare(`SELECT COUNT(*) AS n FROM limit_counters WHERE ${where}`)
          .bind(Date.now())
          .first<{ n: number }>()
      )?.n ?? -1
    clockAt(DAY + HOUR) // every row recorded so far in this file has expired
    const total = await count('?1 = ?1')
    expect(await count('expires_at <= ?1')).toBe(total)
    expect(total).toBeGreaterThan(64)
    expect((await send(project, '+12025550150')).status).toBe(200)
    // The send recorded its phone and country rows and deleted nothing.
    expect(await count('?1 = ?1')).toBe(total + 2)
    expect(await purge(env, Date.now())).toMatchObject({ limit_counters: total })
    expect(await count('expires_at <= ?1')).toBe(0)
    expect(await count('?1 = ?1')).toBe(2)
  })

  it('leaves other database failures as a 500', async () => {
    const log = vi.spyOn(console, 'error').mockImplementation(() => {})
    const project = await newProject('test')
    const broken: Env = {
      ...env,
      DB: new Proxy(env.DB, {
        get(target, prop, receiver) {
          if (prop === 'batch') {
            return () => Promise.reject(new Error('D1_ERROR: UNIQUE constraint failed: users.id: SQLITE_CONSTRAINT'))
          }
          const value = Reflect.get(target, prop, receiver)
          return typeof value === 'function' ? value.bind(target) : value
        },
      }),
    }
    expectStytchError(await send(project, '+12025550160', {}, { env: broken }), 500, 'internal_server_error')
    log.mockRestore()
  })
})

describe('trippedLimit', () => {
  it('reads the limit from the D1 error text, also through a cause', () => {
    const d1 =
      'D1_ERROR: CHECK constraint failed: limit_phone_cooldown: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_CHECK)'
    expect(trippedLimit(new Error(d1))).toBe('phone_cooldown')
    expect(trippedLimit(new Error('CHECK constraint failed: limit_new_users_per_hour'))).toBe('new_users_per_hour')
    expect(trippedLimit(new Error('D1_ERROR', { cause: new Error(d1) }))).toBe('phone_cooldown')
  })

  it('ignores every other error', () => {
    expect(trippedLimit(new Error('D1_ERROR: CHECK constraint failed: kind IN (...): SQLITE_CONSTRAINT'))).toBeNull()
    expect(trippedLimit(new Error('CHECK constraint failed: limit_unknown_thing'))).toBeNull()
    expect(trippedLimit(new Error('CHECK constraint failed: limit_constructor'))).toBeNull()
    expect(trippedLimit(new Error('D1_ERROR: UNIQUE constraint failed: users.id'))).toBeNull()
    expect(trippedLimit('CHECK constraint failed: limit_phone_cooldown')).toBeNull()
    expect(trippedLimit(null)).toBeNull()
  })
})

describe('ipPrefixes', () => {
  it.each([
    ['203.0.113.7', ['203.0.113.7']],
    ['2001:db8:1:2::1', ['2001:db8:1:2::/64', '2001:db8:1::/56', '2001:db8:1::/48']],
    ['2001:0DB8:0001:02ab:ffff:0:0:9', ['2001:db8:1:2ab::/64', '2001:db8:1:200::/56', '2001:db8:1::/48']],
    ['::1', ['::/64', '::/56', '::/48']],
    ['fe80::', ['fe80::/64', 'fe80::/56', 'fe80::/48']],
    ['::ffff:198.51.100.1', ['198.51.100.1']],
    ['::ffff:c633:6401', ['198.51.100.1']],
    ['64:ff9b::198.51.100.1', ['64:ff9b::/64', '64:ff9b::/56', '64:ff9b::/48']],
  ])('%s counts as %j', (ip, prefixes) => {
    expect(ipPrefixes(ip).map((p) => p.prefix)).toEqual(prefixes)
    expect(ipPrefixes(ip).map((p) => p.scope)).toEqual(prefixes.length === 1 ? ['ip'] : ['ip', 'ipv6_56', 'ipv6_48'])
  })

  it('stores keyed hashes: one per scope, the same for every spelling, never the address', async () => {
    const a = await ipKeys(env, '2001:db8::1')
    const b = await ipKeys(env, '2001:0db8:0:0:0:0:0:1')
    expect(a).toEqual(b)
    expect(a).toHaveLength(3)
    for (const k of a) expect(k.key).toMatch(/^[A-Za-z0-9_-]{22}$/)
    // Another host of the same /64: the same three keys. Another /64 of the same /56: only the /64 differs.
    expect(await ipKeys(env, '2001:db8:0:0:ffff::1')).toEqual(a)
    const other = await ipKeys(env, '2001:db8:0:1::1')
    expect(other.map((k, i) => k.key === a[i]?.key)).toEqual([false, true, true])
    expect(JSON.stringify(a)).not.toContain('2001')
    expect(await ipKeys(env, undefined)).toEqual([])
  })
})

describe("the guard's statement", () => {
  // workerd's D1PreparedStatement keeps its SQL and bound values as `statement` and `params`.
  const sqlOf = (stmt: D1PreparedStatement) => {
    const { statement, params } = stmt as unknown as { statement: unknown; params: unknown[] }
    if (typeof statement !== 'string' || !Array.isArray(params)) throw new Error('a D1 statement without its SQL')
    return { statement, params }
  }

  it('sums each window once: the outer condition is not compiled into the inner select a second time', async () => {
    const at = Date.now()
    const subject: SendSubject = {
      projectId: 'project-test-guard-plan',
      settings: parseSettings('{}'),
      phoneNumber: '+12025550123',
      country: 'US',
      ip: await ipKeys(env, '2001:db8:1234:5678::1'),
      mintedUserId: 'user-test-guard-plan',
      deliveryId: 'delivery-guard-plan',
      now: at,
    }
    const guard = sendLimitStatements(env.DB, subject).at(-1)
    if (!guard) throw new Error('no guard statement')
    const { statement, params } = sqlOf(guard)
    expect(statement).toMatch(/^INSERT INTO limit_guard/)
    const checks = (statement.match(/\bAS c\d+\b/g) ?? []).length
    // With the defaults: the phone's cooldown, hour and day, three IP scopes, the country, new users.
    expect(checks).toBe(8)
    const lines = await queryPlan(statement, ...params)
    const sums = lines.filter((l) => l.startsWith('SEARCH limit_counters USING PRIMARY KEY'))
    expect(sums).toHaveLength(checks)
  })
})
