import { createScheduledController } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import worker from '../src/index'
import { CODE_GRACE_MS, DEV_OUTBOX_MS, PURGES, purge } from '../src/retention'
import { newProject } from './helpers'
import { authenticate, loginCode, project } from './otp-helpers'

/** A fixed clock: every time below is relative to it. */
const T = Date.parse('2026-11-30T12:00:00Z')
const DAY = 24 * 60 * 60_000

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] })
  vi.setSystemTime(T)
})

let seq = 0
const id = (prefix: string) => {
  seq += 1
  return `${prefix}-${seq}`
}

/** A user with one phone in a fresh project; returns their ids. */
async function owner() {
  const p = await newProject()
  const userId = id('user-test')
  const phoneId = id('phone-number-test')
  await env.DB.batch([
    env.DB.prepare(`INSERT INTO users (id, project_id, status, created_at) VALUES (?1, ?2, 'active', ?3)`).bind(
      userId,
      p.id,
      T - DAY,
    ),
    env.DB.prepare(
      `INSERT INTO phones (id, project_id, user_id, phone_number, verified, created_at) VALUES (?1, ?2, ?3, ?4, 1, ?5)`,
    ).bind(phoneId, p.id, userId, `+1202555${String(seq).padStart(4, '0')}`, T - DAY),
  ])
  return { projectId: p.id, userId, phoneId }
}

async function code(expiresAt: number) {
  const o = await owner()
  await env.DB.prepare(
    `INSERT INTO otp_codes (phone_id, project_id, code_id, mac, expires_at, created_at) VALUES (?1, ?2, ?3, 'mac', ?4, ?5)`,
  )
    .bind(o.phoneId, o.projectId, id('code'), expiresAt, expiresAt - 120_000)
    .run()
  return o.phoneId
}

async function delivery(createdAt: number) {
  const deliveryId = id('delivery')
  await env.DB.prepare(
    `INSERT INTO deliveries (id, project_id, phone_id, status, expires_at, created_at, updated_at)
     VALUES (?1, 'project-x', 'phone-x', 'delivered', ?2, ?3, ?3)`,
  )
    .bind(deliveryId, createdAt + 120_000, createdAt)
    .run()
  return deliveryId
}

/** A sent WhatsApp delivery that kept its sealed fallback code, its code expiring at `expiresAt`. */
async function keptFallbackCode(expiresAt: number) {
  const deliveryId = id('delivery')
  await env.DB.prepare(
    `INSERT INTO deliveries (id, project_id, phone_id, status, expires_at, created_at, updated_at, fallback_code)
     VALUES (?1, 'project-x', 'phone-x', 'sent', ?2, ?3, ?3, '{"v":1}')`,
  )
    .bind(deliveryId, expiresAt, expiresAt - 120_000)
    .run()
  return deliveryId
}

async function session(expiresAt: number) {
  const o = await owner()
  const sessionId = id('session-test')
  await env.DB.batch([
    env.DB.prepare(
      `INSERT INTO sessions (id, project_id, user_id, token_hash, started_at, last_accessed_at, expires_at)
       VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)`,
    ).bind(sessionId, o.projectId, o.userId, id('hash'), expiresAt - 3_600_000, expiresAt),
    env.DB.prepare(
      `INSERT INTO session_factors (session_id, type, delivery_method, phone_id, phone_number, created_at,
         last_authenticated_at, updated_at) VALUES (?1, 'otp', 'whatsapp', ?2, '+12025550000', ?3, ?3, ?3)`,
    ).bind(sessionId, o.phoneId, expiresAt - 3_600_000),
  ])
  return sessionId
}

async function limitCounter(expiresAt: number) {
  await env.DB.prepare(
    `INSERT INTO limit_counters (project_id, kind, subject, bucket, n, expires_at)
     VALUES ('project-x', 'country_sends_per_hour', ?1, ?2, 1, ?3)`,
  )
    .bind(id('c'), expiresAt - 3_660_000, expiresAt)
    .run()
}

async function outbox(createdAt: number) {
  const outboxId = id('outbox')
  await env.DB.prepare(
    `INSERT INTO dev_outbox (id, phone_number, code, locale, text, created_at) VALUES (?1, '+12025550000', '000000', 'en', 't', ?2)`,
  )
    .bind(outboxId, createdAt)
    .run()
  return outboxId
}

const exists = async (sql: string, value: string) => (await env.DB.prepare(sql).bind(value).first()) !== null

async function clearTables() {
  await env.DB.batch(PURGES.map(({ table }) => env.DB.prepare(`DELETE FROM ${table}`)))
}

/** Fires the Worker's scheduled() handler as the cron trigger does, and returns its log line. */
async function runCron() {
  const log = vi.spyOn(console, 'log')
  await worker.scheduled(createScheduledController({ scheduledTime: T, cron: '17 * * * *' }), env)
  const line = log.mock.calls.map((c) => String(c[0])).find((l) => l.includes('"retention.purged"'))
  log.mockRestore()
  expect(line).toBeDefined()
  return JSON.parse(line ?? '{}') as Record<string, unknown>
}

describe('retention purge (scheduled)', () => {
  it('deletes exactly what is past its time in every table, keeps the rest, and logs counts only', async () => {
    await clearTables()
    const oldCode = await code(T - CODE_GRACE_MS - 1)
    const graceCode = await code(T - CODE_GRACE_MS + 60_000)
    const liveCode = await code(T + 60_000)
    const oldDelivery = await delivery(T - 30 * DAY - 1)
    const recentDelivery = await delivery(T - 29 * DAY)
    const expiredSession = await session(T - 1)
    const liveSession = await session(T + 60_000)
    await limitCounter(T - 1)
    await limitCounter(T)
    await limitCounter(T + 1)
    const oldOutbox = await outbox(T - DEV_OUTBOX_MS - 1)
    const recentOutbox = await outbox(T - 60_000)
    const expiredFallback = await keptFallbackCode(T)
    const liveFallback = await keptFallbackCode(T + 60_000)

    const logged = await runCron()

    expect(logged).toEqual({
      level: 'info',
      event: 'retention.purged',
      shard: 0,
      otp_codes: 1,
      deliveries: 1,
      session_factors: 1,
      sessions: 1,
      limit_counters: 2,
      dev_outbox: 1,
      fallback_codes: 1,
      rounds: 1,
      complete: true,
    })
    const code_ = 'SELECT 1 FROM otp_codes WHERE phone_id = ?1'
    expect([await exists(code_, oldCode), await exists(code_, graceCode), await exists(code_, liveCode)]).toEqual([
      false,
      true,
      true,
    ])
    const delivery_ = 'SELECT 1 FROM deliveries WHERE id = ?1'
    expect([await exists(delivery_, oldDelivery), await exists(delivery_, recentDelivery)]).toEqual([false, true])
    const session_ = 'SELECT 1 FROM sessions WHERE id = ?1'
    expect([await exists(session_, expiredSession), await exists(session_, liveSession)]).toEqual([false, true])
    const factor = 'SELECT 1 FROM session_factors WHERE session_id = ?1'
    expect([await exists(factor, expiredSession), await exists(factor, liveSession)]).toEqual([false, true])
    const counters = await env.DB.prepare('SELECT expires_at FROM limit_counters').all<{ expires_at: number }>()
    expect(counters.results.map((r) => r.expires_at)).toEqual([T + 1])
    const outbox_ = 'SELECT 1 FROM dev_outbox WHERE id = ?1'
    expect([await exists(outbox_, oldOutbox), await exists(outbox_, recentOutbox)]).toEqual([false, true])
    // The delivery stays; only its sealed code goes once the code has expired.
    const kept = 'SELECT 1 FROM deliveries WHERE id = ?1 AND fallback_code IS NOT NULL'
    expect([await exists(kept, expiredFallback), await exists(kept, liveFallback)]).toEqual([false, true])
    expect(await exists(delivery_, expiredFallback)).toBe(true)

    // A second run finds nothing more.
    expect(await runCron()).toMatchObject({
      otp_codes: 0,
      deliveries: 0,
      session_factors: 0,
      sessions: 0,
      limit_counters: 0,
      dev_outbox: 0,
      fallback_codes: 0,
    })
  })

  it('keeps deliveries for DELIVERY_RETENTION_DAYS, and falls back to 30 days for a malformed value', async () => {
    await clearTables()
    const eightDays = await delivery(T - 8 * DAY)
    const sixDays = await delivery(T - 6 * DAY)
    expect(await purge({ ...env, DELIVERY_RETENTION_DAYS: 'soon' }, T)).toMatchObject({ deliveries: 0 })
    expect(await purge({ ...env, DELIVERY_RETENTION_DAYS: '7' }, T)).toMatchObject({ deliveries: 1 })
    const delivery_ = 'SELECT 1 FROM deliveries WHERE id = ?1'
    expect([await exists(delivery_, eightDays), await exists(delivery_, sixDays)]).toEqual([false, true])
  })

  it('works in bounded batches: a run stops after its rounds, oldest first, and the next run continues', async () => {
    await clearTables()
    for (let i = 0; i < 25; i++) await limitCounter(T - 1_000 + i)
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined)
    expect(await purge(env, T, { batchRows: 10, maxRounds: 2 })).toMatchObject({ limit_counters: 20 })
    expect(log).toHaveBeenCalledWith(expect.stringContaining('"rounds":2,"complete":false'))
    const left = await env.DB.prepare('SELECT expires_at FROM limit_counters ORDER BY expires_at').all<{
      expires_at: number
    }>()
    expect(left.results.map((r) => r.expires_at)).toEqual([20, 21, 22, 23, 24].map((i) => T - 1_000 + i))
    expect(await purge(env, T, { batchRows: 10, maxRounds: 2 })).toMatchObject({ limit_counters: 5 })
    expect(log).toHaveBeenLastCalledWith(expect.stringContaining('"rounds":1,"complete":true'))
  })

  it('leaves a live code working: it authenticates after a purge', async () => {
    const p = await project()
    const { code: plain, phoneId } = await loginCode(p, '+12025550199')
    await runCron()
    const res = await authenticate(p, { method_id: phoneId, code: plain })
    expect(res.status, JSON.stringify(res.body)).toBe(200)
  })

  it('has one purge per table that holds expiring personal or counting data', () => {
    expect(PURGES.map((p) => p.table)).toEqual([
      'otp_codes',
      'deliveries',
      'session_factors',
      'sessions',
      'limit_counters',
      'dev_outbox',
    ])
  })
})
