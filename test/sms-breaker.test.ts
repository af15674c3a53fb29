import { env } from 'cloudflare:workers'
import fc from 'fast-check'
import { beforeEach, describe, expect, it, vi } from 'vitest'
import { BREAKER_GRACE_MS } from '../src/limits'
import { callJson, capturingQueue, expectStytchError, type TestProject } from './helpers'
import { authenticate } from './otp-helpers'
import { smsProject } from './sms-helpers'

/**
 * The SMS pumping defences, on a fixed clock: the per-country SMS caps and the conversion breaker
 * (trip, hold, reset), and that ordinary traffic never meets the breaker.
 */

/** Every time below is relative to this instant. */
const T = Date.parse('2026-12-01T09:00:00Z')
const MINUTE = 60_000

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['Date'] })
  vi.setSystemTime(T)
})

let numbers = 0
/** A US (or, with `ca`, Canadian) mobile-or-landline number not used before in this file. */
const phone = (ca = false) => {
  numbers += 1
  return `${ca ? '+1416555' : '+1202555'}${String(numbers).padStart(4, '0')}`
}

/** An SMS login_or_create; the job is captured (no consumer runs). Returns the reply and the job's code. */
async function sms(project: TestProject, phoneNumber = phone()) {
  const sent: unknown[] = []
  const res = await callJson('POST', '/v1/otps/sms/login_or_create', {
    project,
    body: { phone_number: phoneNumber },
    env: { ...env, WHATSAPP_QUEUE: capturingQueue(sent) },
  })
  return { ...res, jobs: sent }
}

async function whatsapp(project: TestProject, phoneNumber = phone()) {
  return callJson('POST', '/v1/otps/whatsapp/login_or_create', {
    project,
    body: { phone_number: phoneNumber },
    env: { ...env, WHATSAPP_QUEUE: capturingQueue([]) },
  })
}

/** The code of an SMS just issued, read from the job as the consumer would. */
async function issuedCode(jobs: unknown[]): Promise<string> {
  const { open } = await import('../src/crypto')
  const { DeliveryJobSchema, jobAad } = await import('../src/delivery/job')
  const job = DeliveryJobSchema.parse(jobs[0])
  return open(env.CODE_ENCRYPTION_KEY, job.code, jobAad(job))
}

/** The `sms.breaker_tripped` alert lines logged so far (console.error is captured). */
function tripLines(errors: { mock: { calls: unknown[][] } }): Record<string, unknown>[] {
  return errors.mock.calls
    .map((c) => String(c[0]))
    .filter((l) => l.includes('"sms.breaker_tripped"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

const PAUSED = /paused for this project/

describe('per-country SMS caps', () => {
  it('caps SMS to a country per hour (a per-country value over the general one); other countries and WhatsApp go on', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const project = await smsProject({ sms_country_sends_per_hour: 3, sms_sends_per_hour_by_country: { CA: 1 } })
    for (let i = 0; i < 3; i++) expect((await sms(project)).status).toBe(200)
    const over = await sms(project)
    expectStytchError(over, 429, 'too_many_requests')
    expect(over.body.error_message).toContain('SMS codes were sent')
    expect(over.jobs).toEqual([])
    expect((await sms(project, phone(true))).status).toBe(200)
    expectStytchError(await sms(project, phone(true)), 429, 'too_many_requests')
    expect((await whatsapp(project)).status).toBe(200)
    // An hour (and a bucket) later the window has moved on.
    vi.setSystemTime(T + 61 * MINUTE)
    expect((await sms(project)).status).toBe(200)
  })

  it('holds under concurrency: 15 parallel SMS against a cap of 5 give exactly 5', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const project = await smsProject({ sms_country_sends_per_hour: 5 })
    const replies = await Promise.all(Array.from({ length: 15 }, () => sms(project)))
    const statuses = replies.map((r) => r.status).sort()
    expect(statuses).toEqual([...Array(5).fill(200), ...Array(10).fill(429)])
    expect(replies.flatMap((r) => r.jobs)).toHaveLength(5)
  })

  it('stops SMS to a country whose cap is 0', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const project = await smsProject({ sms_sends_per_hour_by_country: { CA: 0 } })
    expectStytchError(await sms(project, phone(true)), 429, 'too_many_requests')
    expect((await sms(project)).status).toBe(200)
  })
})

describe('the conversion breaker', () => {
  it('trips once the floor of unconverted SMS is reached, holds for the cool-down, then resets', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const project = await smsProject()
    // The defaults: 50 SMS, under 10% authenticated, 60 minutes.
    expect(project.settings).not.toHaveProperty('sms_breaker_min_sends')
    // Pumping: nobody enters a code. 49 SMS, then a 50th once they are past the grace: not yet.
    for (let i = 0; i < 49; i++) expect((await sms(project)).status).toBe(200)
    vi.setSystemTime(T + BREAKER_GRACE_MS + 2 * MINUTE)
    expect((await sms(project)).status).toBe(200)
    expect(tripLines(errors)).toEqual([])
    // Once the 50th is past the grace too, the next send trips the breaker (and still goes out).
    vi.setSystemTime(T + 2 * BREAKER_GRACE_MS + 4 * MINUTE)
    const tripping = await sms(project)
    expect(tripping.status).toBe(200)
    const tripAt = Date.now()
    expect(tripLines(errors)).toEqual([
      {
        level: 'error',
        event: 'sms.breaker_tripped',
        project_id: project.id,
        country: 'US',
        min_sends: 50,
        min_conversion_percent: 10,
        paused_until: new Date(tripAt + 60 * MINUTE).toISOString(),
        alert: true,
      },
    ])

    // The trip is a counter row (what `npm run stats` reads): its millisecond, kept an hour past the pause.
    const trip = await env.DB.prepare(
      `SELECT subject, bucket, expires_at FROM limit_counters WHERE project_id = ?1 AND kind = 'sms_breaker'`,
    )
      .bind(project.id)
      .all()
    expect(trip.results).toEqual([{ subject: 'US', bucket: tripAt, expires_at: tripAt + 120 * MINUTE }])

    // Held: SMS to the US are refused, and change nothing; WhatsApp and Canadian SMS are not affected.
    for (const at of [tripAt, tripAt + 30 * MINUTE, tripAt + 60 * MINUTE - 1]) {
      vi.setSystemTime(at)
      const refused = await sms(project)
      expectStytchError(refused, 429, 'too_many_requests')
      expect(refused.body.error_message).toMatch(PAUSED)
      expect(refused.jobs).toEqual([])
    }
    expect((await whatsapp(project)).status).toBe(200)
    expect((await sms(project, phone(true))).status).toBe(200)

    // Reset: after the cool-down SMS go out again, and the sends that tripped it are not judged again.
    vi.setSystemTime(tripAt + 60 * MINUTE)
    for (let i = 0; i < 5; i++) expect((await sms(project)).status).toBe(200)
    vi.setSystemTime(tripAt + 60 * MINUTE + BREAKER_GRACE_MS + 2 * MINUTE)
    expect((await sms(project)).status).toBe(200)
    expect(tripLines(errors)).toHaveLength(1)
  })

  it('judges the share authenticated: at the threshold it holds, just under it it trips', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const settings = { sms_breaker_min_sends: 10, sms_breaker_min_conversion_percent: 20 }
    const converting = await smsProject(settings)
    const pumped = await smsProject(settings)
    // 10 SMS each; 2 of 10 (20%) authenticated in one project, 1 of 10 (10%) in the other.
    for (const [project, conversions] of [
      [converting, 2],
      [pumped, 1],
    ] as const) {
      for (let i = 0; i < 10; i++) {
        const issued = await sms(project)
        if (i < conversions) {
          const code = await issuedCode(issued.jobs)
          expect((await authenticate(project, { method_id: issued.body.phone_id, code })).status).toBe(200)
        }
      }
    }
    vi.setSystemTime(T + BREAKER_GRACE_MS + 2 * MINUTE)
    expect((await sms(converting)).status).toBe(200)
    expect((await sms(converting)).status).toBe(200)
    expect((await sms(pumped)).status).toBe(200)
    expectStytchError(await sms(pumped), 429, 'too_many_requests')
    expect(tripLines(errors).map((l) => l.project_id)).toEqual([pumped.id])
  })

  it('trips once under concurrency: of parallel sends past the floor, one goes out and trips it', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const project = await smsProject({ sms_breaker_min_sends: 5 })
    for (let i = 0; i < 5; i++) expect((await sms(project)).status).toBe(200)
    vi.setSystemTime(T + BREAKER_GRACE_MS + 2 * MINUTE)
    const replies = await Promise.all(Array.from({ length: 10 }, () => sms(project)))
    expect(replies.map((r) => r.status).sort()).toEqual([200, ...Array(9).fill(429)])
    expect(tripLines(errors)).toHaveLength(1)
  })

  it('counts only SMS: WhatsApp codes never authenticated do not trip it, nor do WhatsApp logins convert', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const project = await smsProject({ sms_breaker_min_sends: 5 })
    for (let i = 0; i < 20; i++) expect((await whatsapp(project)).status).toBe(200)
    vi.setSystemTime(T + BREAKER_GRACE_MS + 2 * MINUTE)
    for (let i = 0; i < 3; i++) expect((await sms(project)).status).toBe(200)
    expect(tripLines(errors)).toEqual([])
  })

  it('is off with a threshold of 0', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const project = await smsProject({ sms_breaker_min_sends: 1, sms_breaker_min_conversion_percent: 0 })
    for (let i = 0; i < 5; i++) expect((await sms(project)).status).toBe(200)
    vi.setSystemTime(T + BREAKER_GRACE_MS + 2 * MINUTE)
    for (let i = 0; i < 5; i++) expect((await sms(project)).status).toBe(200)
    expect(tripLines(errors)).toEqual([])
  })

  it('never meets ordinary traffic: three hours of SMS logins at a poor 35% conversion, default settings', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const project = await smsProject()
    // A seeded run (FUZZ_SEED), so the traffic is the same on every run and a failure replays.
    const seed = Number(env.FUZZ_SEED) || 20261130
    const minutes = fc.sample(fc.record({ sends: fc.integer({ min: 0, max: 4 }), entered: fc.nat(99) }), {
      seed,
      numRuns: 180,
    })
    let sent = 0
    let converted = 0
    for (const [minute, traffic] of minutes.entries()) {
      vi.setSystemTime(T + minute * MINUTE)
      for (let i = 0; i < traffic.sends; i++) {
        const issued = await sms(project)
        expect(issued.status, `minute ${minute}, seed ${seed}`).toBe(200)
        sent += 1
        // About a third of users enter their code (the draw is per minute, rotated per send).
        if ((traffic.entered + i * 37) % 100 < 35) {
          const code = await issuedCode(issued.jobs)
          expect((await authenticate(project, { method_id: issued.body.phone_id, code })).status).toBe(200)
          converted += 1
        }
      }
    }
    expect(sent).toBeGreaterThan(300)
    expect(converted / sent).toBeGreaterThan(0.25)
    expect(converted / sent).toBeLessThan(0.45)
    expect(tripLines(errors)).toEqual([])
  })
})
