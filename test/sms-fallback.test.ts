import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it, type MockInstance, vi } from 'vitest'
import { open } from '../src/crypto'
import { type DeliveryJob, DeliveryJobSchema, jobAad } from '../src/delivery/job'
import { callJson, capturingQueue, issueCode, type TestProject } from './helpers'
import { authenticate } from './otp-helpers'
import { messageSid, postTwilioStatus, smsProject, twilioCreated, twilioEnv, twilioForm } from './sms-helpers'
import {
  deliveryRow,
  freshPhone,
  metaError,
  metaSuccess,
  runQueue,
  signWebhook,
  statusPayload,
} from './whatsapp-helpers'

/**
 * WhatsApp → SMS fallback: when Meta says the recipient cannot receive WhatsApp (131026, in the send
 * reply or a status webhook), a project with whatsapp_fallback 'sms' gets the same code out once by
 * SMS while it is live. Meta and Twilio are mocked at the fetch boundary; jobs are captured and run
 * through the Worker's queue() handler.
 */

let fetchSpy: MockInstance<typeof fetch>

beforeEach(() => {
  fetchSpy = vi.spyOn(globalThis, 'fetch').mockRejectedValue(new Error('unexpected fetch'))
  vi.spyOn(Math, 'random').mockReturnValue(0)
})

const fallbackProject = (settings: Record<string, unknown> = {}) =>
  smsProject({ whatsapp_fallback: 'sms', ...settings })

/** Issues a WhatsApp code (job captured) for a fresh number of `project`. */
async function whatsappCode(project: TestProject, phoneNumber = freshPhone()) {
  const issued = await issueCode(project, { phone_number: phoneNumber }, { deliver: false })
  return { ...issued, phoneNumber }
}

/** Runs WhatsApp jobs with Meta (mocked) and Twilio selected; returns the jobs they queued (the fallbacks). */
async function deliver(jobs: unknown[], overrides: Partial<Env> = {}, attempts = 1) {
  const queued: unknown[] = []
  const e = twilioEnv({ WHATSAPP_QUEUE: capturingQueue(queued), ...overrides })
  const run = await runQueue(jobs, { env: e, attempts })
  return { ...run, queued: queued.map((j) => DeliveryJobSchema.parse(j)), env: e }
}

async function postMetaStatus(payload: unknown, e: Env) {
  const body = JSON.stringify(payload)
  const headers = { 'content-type': 'application/json', 'x-hub-signature-256': await signWebhook(body) }
  const res = await callJson('POST', '/v1/webhooks/whatsapp', { project: null, rawBody: body, headers, env: e })
  expect(res.status).toBe(200)
}

/** The plain code inside a job, decrypted as the consumer does. */
const codeOf = (job: DeliveryJob) => open(env.CODE_ENCRYPTION_KEY, job.code, jobAad(job))

interface Row {
  id: string
  channel: string
  status: string
  error_code: number | null
  code_id: string | null
  fallback_of: string | null
  fallback_code: string | null
  expires_at: number
}

const rowsOfPhone = async (phoneId: string) =>
  (
    await env.DB.prepare(
      `SELECT id, channel, status, error_code, code_id, fallback_of, fallback_code, expires_at FROM deliveries
       WHERE phone_id = ?1 ORDER BY created_at, channel DESC`,
    )
      .bind(phoneId)
      .all<Row>()
  ).results

describe('fallback from the send reply: Meta answers 131026 at once', () => {
  it('sends the same code once by SMS, with the original expiry, and it authenticates', async () => {
    const project = await fallbackProject()
    const wa = await whatsappCode(project)
    expect(wa.job.fallback).toBe('sms')
    fetchSpy.mockResolvedValueOnce(metaError(400, 131026))
    const { queued, result, ids } = await deliver([wa.job])
    expect(result.explicitAcks).toEqual(ids)

    expect(queued).toHaveLength(1)
    const sms = queued[0] as DeliveryJob
    expect(sms).toMatchObject({
      channel: 'sms',
      phone_id: wa.phoneId,
      phone_number: wa.phoneNumber,
      expires_at: wa.job.expires_at,
      locale: 'en',
    })
    expect(sms.id).not.toBe(wa.job.id)
    expect(await codeOf(sms)).toBe(wa.code)
    // The ciphertext is bound to its own job: the WhatsApp job's sealed code is not reused as is.
    expect(sms.code).not.toEqual(wa.job.code)

    expect(await rowsOfPhone(wa.phoneId)).toEqual([
      expect.objectContaining({ id: wa.job.id, channel: 'whatsapp', status: 'failed', error_code: 131026 }),
      expect.objectContaining({
        id: sms.id,
        channel: 'sms',
        status: 'queued',
        code_id: wa.job.id,
        fallback_of: wa.job.id,
        expires_at: wa.job.expires_at,
      }),
    ])

    const sid = messageSid()
    fetchSpy.mockResolvedValueOnce(twilioCreated(sid))
    await deliver([sms])
    expect(twilioForm(fetchSpy.mock.calls.at(-1)?.[1]).get('Body')).toContain(wa.code)
    expect(await deliveryRow(sms.id)).toMatchObject({ status: 'sent', provider: 'twilio', wamid: sid })

    const auth = await authenticate(project, { method_id: wa.phoneId, code: wa.code, session_duration_minutes: 60 })
    expect(auth.status).toBe(200)
    const factors = (auth.body.session as { authentication_factors: { delivery_method: string }[] })
      .authentication_factors
    expect(factors.map((f) => f.delivery_method)).toEqual(['sms'])
  })

  it('does nothing more for a project without the fallback, or for a failure that is not the recipient’s', async () => {
    const off = await smsProject()
    const a = await whatsappCode(off)
    expect(a.job).not.toHaveProperty('fallback')
    fetchSpy.mockResolvedValueOnce(metaError(400, 131026))
    expect((await deliver([a.job])).queued).toEqual([])

    vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const on = await fallbackProject()
    for (const code of [131042, 131049, 131047, 131030, 100]) {
      const b = await whatsappCode(on)
      fetchSpy.mockResolvedValueOnce(metaError(400, code))
      expect((await deliver([b.job])).queued).toEqual([])
      expect(await deliveryRow(b.job.id)).toMatchObject({ status: 'failed', error_code: code })
    }
  })

  it('checks the project setting when Meta answers, not only when the code was issued', async () => {
    const project = await fallbackProject()
    const wa = await whatsappCode(project)
    await env.DB.prepare(`UPDATE projects SET settings = ?2 WHERE id = ?1`)
      .bind(project.id, JSON.stringify({ ...project.settings, whatsapp_fallback: 'none' }))
      .run()
    const { clearProjectCache } = await import('../src/db/projects')
    clearProjectCache()
    fetchSpy.mockResolvedValueOnce(metaError(400, 131026))
    expect((await deliver([wa.job])).queued).toEqual([])
  })
})

describe('fallback from a status webhook: Meta accepts, then reports 131026', () => {
  it('keeps the code sealed until the status, then sends it by SMS once; duplicates do nothing', async () => {
    const project = await fallbackProject()
    const wa = await whatsappCode(project)
    fetchSpy.mockResolvedValueOnce(metaSuccess('wamid.fallback-1'))
    const sent = await deliver([wa.job])
    expect(sent.queued).toEqual([])
    const kept = await env.DB.prepare('SELECT fallback_code FROM deliveries WHERE id = ?1')
      .bind(wa.job.id)
      .first<{ fallback_code: string }>()
    // Sealed exactly as on the queue: never the code in clear.
    expect(JSON.parse(kept?.fallback_code ?? '{}')).toEqual({ v: 1, locale: 'en', code: wa.job.code })
    expect(kept?.fallback_code).not.toContain(wa.code)

    const queued: unknown[] = []
    const e = twilioEnv({ WHATSAPP_QUEUE: capturingQueue(queued) })
    const failed = statusPayload([{ id: 'wamid.fallback-1', status: 'failed', errors: [{ code: 131026 }] }])
    await postMetaStatus(failed, e)
    await postMetaStatus(failed, e)
    expect(queued).toHaveLength(1)
    const sms = DeliveryJobSchema.parse(queued[0])
    expect(await codeOf(sms)).toBe(wa.code)
    expect(sms.expires_at).toBe(wa.job.expires_at)

    const rows = await rowsOfPhone(wa.phoneId)
    expect(rows).toEqual([
      expect.objectContaining({ channel: 'whatsapp', status: 'failed', error_code: 131026, fallback_code: null }),
      expect.objectContaining({ channel: 'sms', status: 'queued', fallback_of: wa.job.id }),
    ])
    expect((await authenticate(project, { method_id: wa.phoneId, code: wa.code })).status).toBe(200)
  })

  it('clears the sealed code once WhatsApp delivers, and never falls back after that', async () => {
    const project = await fallbackProject()
    const wa = await whatsappCode(project)
    fetchSpy.mockResolvedValueOnce(metaSuccess('wamid.fallback-2'))
    await deliver([wa.job])
    const queued: unknown[] = []
    const e = twilioEnv({ WHATSAPP_QUEUE: capturingQueue(queued) })
    await postMetaStatus(statusPayload([{ id: 'wamid.fallback-2', status: 'delivered' }]), e)
    expect(await rowsOfPhone(wa.phoneId)).toEqual([
      expect.objectContaining({ status: 'delivered', fallback_code: null }),
    ])
    // A late failure from another device changes nothing and sends nothing.
    await postMetaStatus(statusPayload([{ id: 'wamid.fallback-2', status: 'failed', errors: [{ code: 131026 }] }]), e)
    expect(queued).toEqual([])
  })

  it.each([
    ['the code expired', 'expired'],
    ['a newer code replaced it', 'replaced'],
    ['the code was used', 'used'],
  ])('sends nothing when %s first', async (_name, what) => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const project = await fallbackProject()
    const wa = await whatsappCode(project)
    fetchSpy.mockResolvedValueOnce(metaSuccess(`wamid.late-${what}`))
    await deliver([wa.job])
    if (what === 'expired') vi.setSystemTime(wa.job.expires_at)
    if (what === 'replaced') await whatsappCode(project, wa.phoneNumber)
    if (what === 'used')
      expect((await authenticate(project, { method_id: wa.phoneId, code: wa.code })).status).toBe(200)
    const queued: unknown[] = []
    await postMetaStatus(
      statusPayload([{ id: `wamid.late-${what}`, status: 'failed', errors: [{ code: 131026 }] }]),
      twilioEnv({ WHATSAPP_QUEUE: capturingQueue(queued) }),
    )
    expect(queued).toEqual([])
    const sms = await env.DB.prepare(`SELECT count(*) AS n FROM deliveries WHERE fallback_of = ?1`)
      .bind(wa.job.id)
      .first()
    expect(sms).toEqual({ n: 0 })
  })
})

describe('the fallback is an SMS like any other: allowlists and SMS limits apply', () => {
  it('refuses a number outside sms_allowed_countries (WhatsApp may reach more countries than SMS)', async () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined)
    const project = await fallbackProject()
    const wa = await whatsappCode(project, '+447400123456')
    fetchSpy.mockResolvedValueOnce(metaError(400, 131026))
    expect((await deliver([wa.job])).queued).toEqual([])
    const line = warn.mock.calls.map((c) => String(c[0])).find((l) => l.includes('"otp.fallback"'))
    expect(JSON.parse(line ?? '{}')).toMatchObject({
      outcome: 'refused',
      detail: 'invalid_phone_number_country_code',
      delivery_id: wa.job.id,
    })
  })

  it('charges the per-country SMS cap, and a fallback over it is refused', async () => {
    vi.spyOn(console, 'warn').mockImplementation(() => undefined)
    vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const project = await fallbackProject({ sms_country_sends_per_hour: 1 })
    const first = await whatsappCode(project)
    fetchSpy.mockResolvedValueOnce(metaError(400, 131026))
    expect((await deliver([first.job])).queued).toHaveLength(1)
    const second = await whatsappCode(project)
    fetchSpy.mockResolvedValueOnce(metaError(400, 131026))
    expect((await deliver([second.job])).queued).toEqual([])
    expect(await rowsOfPhone(second.phoneId)).toEqual([
      expect.objectContaining({ channel: 'whatsapp', status: 'failed' }),
    ])
    // The cap is the SMS cap: WhatsApp codes still go out.
    expect((await whatsappCode(project)).status).toBe(200)
    const counted = await env.DB.prepare(
      `SELECT sum(n) AS n FROM limit_counters WHERE project_id = ?1 AND kind = 'sms_country_sends_per_hour'`,
    )
      .bind(project.id)
      .first()
    expect(counted).toEqual({ n: 1 })
  })

  it('raises an alert when the project asks for SMS and the deployment sends none', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const project = await fallbackProject()
    const wa = await whatsappCode(project)
    fetchSpy.mockResolvedValueOnce(metaError(400, 131026))
    expect((await deliver([wa.job], { SMS_PROVIDER: 'none' })).queued).toEqual([])
    const line = errors.mock.calls.map((c) => String(c[0])).find((l) => l.includes('"otp.fallback"'))
    expect(JSON.parse(line ?? '{}')).toMatchObject({ outcome: 'unavailable', alert: true })
  })
})

describe('local simulation: CONSOLE_WHATSAPP_UNREACHABLE', () => {
  const consoleEnv = (queued: unknown[]) => ({
    ...env,
    WHATSAPP_PROVIDER: 'console',
    SMS_PROVIDER: 'console',
    CONSOLE_WHATSAPP_UNREACHABLE: '+12025550199, +12025550198',
    WHATSAPP_QUEUE: capturingQueue(queued),
  })

  it('reports a listed number as not on WhatsApp through the status path; the SMS lands in the outbox', async () => {
    const project = await fallbackProject()
    const wa = await whatsappCode(project, '+12025550199')
    const queued: unknown[] = []
    await runQueue([wa.job], { env: consoleEnv(queued) })
    expect(fetchSpy).not.toHaveBeenCalled()
    expect(await deliveryRow(wa.job.id)).toMatchObject({
      status: 'failed',
      error_code: 131026,
      error_detail: 'meta_status_failed',
      wamid: `wamid.console.${wa.job.id}`,
    })
    expect(queued).toHaveLength(1)
    await runQueue(queued, { env: consoleEnv([]) })

    const res = await callJson<{ messages: Record<string, unknown>[] }>(
      'GET',
      '/dev/outbox?phone_number=%2B12025550199',
      { project },
    )
    expect(res.body.messages).toEqual([expect.objectContaining({ channel: 'sms', code: wa.code })])
    expect((await authenticate(project, { method_id: wa.phoneId, code: wa.code })).status).toBe(200)
  })

  it('delivers other numbers by WhatsApp as usual, and an unlisted project gets no SMS', async () => {
    const project = await fallbackProject()
    const reachable = await whatsappCode(project, '+12025550197')
    const queued: unknown[] = []
    await runQueue([reachable.job], { env: consoleEnv(queued) })
    expect(queued).toEqual([])
    expect(await deliveryRow(reachable.job.id)).toMatchObject({ status: 'sent' })

    const noFallback = await smsProject()
    const wa = await whatsappCode(noFallback, '+12025550198')
    await runQueue([wa.job], { env: consoleEnv(queued) })
    expect(queued).toEqual([])
    expect(await deliveryRow(wa.job.id)).toMatchObject({ status: 'failed', error_code: 131026 })
  })
})

describe('SMS status of a fallback', () => {
  it('records delivered on the fallback row, leaving the WhatsApp row failed: the chain stays readable', async () => {
    const project = await fallbackProject()
    const wa = await whatsappCode(project)
    fetchSpy.mockResolvedValueOnce(metaError(400, 131026))
    const [sms] = (await deliver([wa.job])).queued
    if (!sms) throw new Error('no fallback')
    const sid = messageSid()
    fetchSpy.mockResolvedValueOnce(twilioCreated(sid))
    await deliver([sms])
    expect((await postTwilioStatus(sid, 'delivered')).status).toBe(200)
    expect((await rowsOfPhone(wa.phoneId)).map((r) => [r.channel, r.status, r.error_code])).toEqual([
      ['whatsapp', 'failed', 131026],
      ['sms', 'delivered', null],
    ])
  })
})
