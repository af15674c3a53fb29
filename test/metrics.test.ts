import { env } from 'cloudflare:workers'
import { afterAll, afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from 'vitest'
import { dataPoint } from '../src/metrics'
import { callJson, newProject, type TestProject } from './helpers'
import {
  capturingQueue,
  DEAD_LETTER_QUEUE,
  issueJob,
  metaEnv,
  metaError,
  metaSuccess,
  runQueue,
  signWebhook,
  statusPayload,
} from './whatsapp-helpers'

/**
 * Every event kind writes exactly one Analytics Engine data point with the documented layout
 * (src/metrics.ts), through a fake METRICS binding; none ever carries a phone number, a code or an
 * IP address. The Graph API is mocked at fetch.
 */

interface FakeDataset {
  dataset: AnalyticsEngineDataset
  points: AnalyticsEngineDataPoint[]
}

function fakeMetrics(): FakeDataset {
  const points: AnalyticsEngineDataPoint[] = []
  return { points, dataset: { writeDataPoint: (p?: AnalyticsEngineDataPoint) => void (p && points.push(p)) } }
}

// Everything any test here wrote, and every number, code and IP it used: checked at the end.
const allPoints: AnalyticsEngineDataPoint[] = []
const secrets = new Set<string>()
const IP = '203.0.113.77'

const OPEN = { phone_send_cooldown_seconds: 0, phone_sends_per_hour: 1_000, phone_sends_per_day: 10_000 }
const ANY_COUNTRY = { ...OPEN, allowed_countries: '*' }

let metrics: FakeDataset
let fetchSpy: MockInstance<typeof fetch>

beforeEach(() => {
  metrics = fakeMetrics()
  fetchSpy = vi.spyOn(globalThis, 'fetch').mockRejectedValue(new Error('unexpected fetch'))
})

afterEach(() => {
  allPoints.push(...metrics.points)
})

const point = (blobs: string[], doubles: unknown[] = [1, 0, 0]) => ({ indexes: [blobs[2]], blobs, doubles })

/** A code issued (job captured, no metrics binding), remembered as a secret with its number. */
async function issued(project?: TestProject, phoneNumber?: string, locale = 'en') {
  const issuedJob = await issueJob({
    ...(project ? { project } : {}),
    ...(phoneNumber ? { phoneNumber } : {}),
    extra: { locale, attributes: { ip_address: IP } },
  })
  secrets.add(issuedJob.code)
  secrets.add(issuedJob.phoneNumber)
  return issuedJob
}

async function postWebhook(payload: unknown, e: Env) {
  const body = JSON.stringify(payload)
  const headers = { 'content-type': 'application/json', 'x-hub-signature-256': await signWebhook(body) }
  const res = await callJson('POST', '/v1/webhooks/whatsapp', { project: null, rawBody: body, headers, env: e })
  expect(res.status).toBe(200)
}

describe('metrics: one data point per event', () => {
  it('a send: kind send, outcome queued, with project, country and locale', async () => {
    const project = await newProject('test', ANY_COUNTRY)
    const phone = '+447400123456'
    secrets.add(phone)
    const sent: unknown[] = []
    const e = { ...env, METRICS: metrics.dataset, WHATSAPP_QUEUE: capturingQueue(sent) }
    const res = await callJson('POST', '/v1/otps/whatsapp/login_or_create', {
      project,
      env: e,
      body: { phone_number: phone, locale: 'pt-br', attributes: { ip_address: IP } },
    })
    expect(res.status).toBe(200)
    expect(metrics.points).toEqual([point(['send', 'queued', project.id, 'GB', 'pt-br', '', '', 'whatsapp'])])
  })

  it('provider results from the consumer: accepted, retry and failed with Meta’s code and attempts', async () => {
    const accepted = await issued(undefined, undefined, 'es')
    fetchSpy.mockResolvedValueOnce(metaSuccess('wamid.metrics-accepted'))
    await runQueue([accepted.job], { env: metaEnv({ METRICS: metrics.dataset }) })
    expect(metrics.points).toEqual([
      point(['provider', 'accepted', accepted.project.id, 'US', 'es', '', '', 'whatsapp'], [1, expect.any(Number), 1]),
    ])

    metrics.points.length = 0
    const retried = await issued(undefined, undefined, 'fr')
    fetchSpy.mockResolvedValueOnce(metaError(429, 130429))
    await runQueue([retried.job], { env: metaEnv({ METRICS: metrics.dataset }) })
    fetchSpy.mockResolvedValueOnce(metaError(400, 131026))
    await runQueue([retried.job], { env: metaEnv({ METRICS: metrics.dataset }), attempts: 2 })
    const id = retried.project.id
    expect(metrics.points).toEqual([
      point(
        ['provider', 'retry', id, 'US', 'fr', 'throughput_limit', '130429', 'whatsapp'],
        [1, expect.any(Number), 1],
      ),
      point(['provider', 'failed', id, 'US', 'fr', 'undeliverable', '131026', 'whatsapp'], [1, expect.any(Number), 2]),
    ])
    for (const p of metrics.points) expect(p.doubles?.[1]).toBeGreaterThanOrEqual(0)
  })

  it('a dead letter that ends a pending delivery: failed, retries_exhausted, with the last code', async () => {
    const { job, project } = await issued()
    fetchSpy.mockResolvedValueOnce(metaError(503, 131016))
    await runQueue([job], { env: metaEnv() })
    await runQueue([job], { env: metaEnv({ METRICS: metrics.dataset }), queue: DEAD_LETTER_QUEUE })
    expect(metrics.points).toEqual([
      point(['provider', 'failed', project.id, 'US', 'en', 'retries_exhausted', '131016', 'whatsapp'], [1, 0, 0]),
    ])
    // A second copy of the dead letter finds the delivery finished: no second result.
    await runQueue([job], { env: metaEnv({ METRICS: metrics.dataset }), queue: DEAD_LETTER_QUEUE })
    expect(metrics.points).toHaveLength(1)
  })

  it('provider results from the status webhook: delivered and read with latency, failed with the code', async () => {
    const project = await newProject('test', ANY_COUNTRY)
    const { job } = await issued(project, '+5511987654321', 'pt-br')
    fetchSpy.mockResolvedValueOnce(metaSuccess('wamid.metrics-webhook'))
    await runQueue([job], { env: metaEnv() })
    const other = await issued(project, '+33612345678', 'fr')
    fetchSpy.mockResolvedValueOnce(metaSuccess('wamid.metrics-webhook-failed'))
    await runQueue([other.job], { env: metaEnv() })

    const e = { ...env, METRICS: metrics.dataset }
    await postWebhook(statusPayload([{ id: 'wamid.metrics-webhook', status: 'delivered' }]), e)
    await postWebhook(statusPayload([{ id: 'wamid.metrics-webhook', status: 'read' }]), e)
    // A duplicate moves nothing and counts nothing.
    await postWebhook(statusPayload([{ id: 'wamid.metrics-webhook', status: 'delivered' }]), e)
    await postWebhook(
      statusPayload([{ id: 'wamid.metrics-webhook-failed', status: 'failed', errors: [{ code: 131042 }] }]),
      e,
    )
    const latency = [1, expect.any(Number), 1]
    expect(metrics.points).toEqual([
      point(['provider', 'delivered', project.id, 'BR', '', '', '', 'whatsapp'], latency),
      point(['provider', 'read', project.id, 'BR', '', '', '', 'whatsapp'], latency),
      point(['provider', 'failed', project.id, 'FR', '', 'payment_issue', '131042', 'whatsapp'], latency),
    ])
  })

  it('authenticate outcomes: success and the error type of a refusal', async () => {
    const { job, code, project } = await issued()
    const e = { ...env, METRICS: metrics.dataset }
    const wrong = code === '000001' ? '000002' : '000001'
    const authenticate = (c: string) =>
      callJson('POST', '/v1/otps/authenticate', {
        project,
        env: e,
        body: { method_id: job.phone_id, code: c, attributes: { ip_address: IP } },
      })
    expect((await authenticate(wrong)).status).toBe(404)
    expect((await authenticate(code)).status).toBe(200)
    expect((await authenticate(code)).status).toBe(401)
    expect(metrics.points).toEqual([
      point(['authenticate', 'otp_code_not_found', project.id, 'US', '', '', '', '']),
      point(['authenticate', 'success', project.id, 'US', '', '', '', '']),
      point(['authenticate', 'unable_to_auth_otp_code', project.id, 'US', '', '', '', '']),
    ])
  })

  it('a tripped limit: kind limit, outcome the limit’s name, with the send’s country and locale', async () => {
    const project = await newProject('test', { phone_send_cooldown_seconds: 60 })
    const phone = '+12025550177'
    secrets.add(phone)
    const e = { ...env, METRICS: metrics.dataset, WHATSAPP_QUEUE: capturingQueue([]) }
    const send = () =>
      callJson('POST', '/v1/otps/whatsapp/login_or_create', {
        project,
        env: e,
        body: { phone_number: phone, locale: 'es', attributes: { ip_address: IP } },
      })
    expect((await send()).status).toBe(200)
    expect((await send()).status).toBe(429)
    expect(metrics.points).toEqual([
      point(['send', 'queued', project.id, 'US', 'es', '', '', 'whatsapp']),
      point(['limit', 'phone_cooldown', project.id, 'US', 'es', '', '', 'whatsapp']),
    ])
  })

  it('SMS: a send, its provider result, a WhatsApp → SMS fallback and a breaker trip, each on its channel', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const project = await newProject('test', {
      ...OPEN,
      whatsapp_fallback: 'sms',
      sms_breaker_min_sends: 1,
      sms_breaker_min_conversion_percent: 50,
    })
    const phone = '+12025550174'
    secrets.add(phone)
    const queued: unknown[] = []
    const e = {
      ...env,
      METRICS: metrics.dataset,
      WHATSAPP_PROVIDER: 'meta',
      SMS_PROVIDER: 'twilio',
      WHATSAPP_QUEUE: capturingQueue(queued),
    }
    const wa = await callJson('POST', '/v1/otps/whatsapp/login_or_create', {
      project,
      env: e,
      body: { phone_number: phone, attributes: { ip_address: IP } },
    })
    expect(wa.status).toBe(200)
    fetchSpy.mockResolvedValueOnce(metaError(400, 131026))
    await runQueue(queued.splice(0), { env: e })
    expect(queued).toHaveLength(1)
    fetchSpy.mockResolvedValueOnce(new Response(JSON.stringify({ sid: `SM${'f'.repeat(32)}` }), { status: 201 }))
    await runQueue(queued.splice(0), { env: e })
    const id = project.id
    expect(metrics.points).toEqual([
      point(['send', 'queued', id, 'US', 'en', '', '', 'whatsapp']),
      point(['provider', 'failed', id, 'US', 'en', 'undeliverable', '131026', 'whatsapp'], [1, expect.any(Number), 1]),
      point(['fallback', 'queued', id, 'US', 'en', '', '131026', 'sms']),
      point(['provider', 'accepted', id, 'US', 'en', '', '', 'sms'], [1, expect.any(Number), 1]),
    ])

    // The code was never entered: with a floor of 1 past the grace, the next SMS send trips the breaker.
    metrics.points.length = 0
    vi.useFakeTimers({ toFake: ['Date'] })
    vi.setSystemTime(Date.now() + 7 * 60_000)
    const next = await callJson('POST', '/v1/otps/sms/login_or_create', {
      project,
      env: e,
      body: { phone_number: '+12025550175', locale: 'fr' },
    })
    secrets.add('+12025550175')
    expect(next.status).toBe(200)
    expect(metrics.points).toEqual([
      point(['breaker', 'tripped', id, 'US', 'fr', '', '', 'sms']),
      point(['send', 'queued', id, 'US', 'fr', '', '', 'sms']),
    ])
    expect(errors).toHaveBeenCalledWith(expect.stringContaining('"sms.breaker_tripped"'))
  })

  it('the sandbox writes nothing: no message is sent and no real login happens', async () => {
    const project = await newProject('test')
    const e = { ...env, METRICS: metrics.dataset }
    const res = await callJson('POST', '/v1/otps/whatsapp/login_or_create', {
      project,
      env: e,
      body: { phone_number: '+10000000000' },
    })
    expect(res.status).toBe(200)
    const auth = await callJson('POST', '/v1/otps/authenticate', {
      project,
      env: e,
      body: { method_id: res.body.phone_id, code: '000000' },
    })
    expect(auth.status).toBe(200)
    expect(metrics.points).toEqual([])
  })

  it('works without the binding, and a failing binding never fails the request', async () => {
    const { METRICS: _absent, ...withoutBinding } = env
    const sent: unknown[] = []
    const send = (e: Env, phone: string) =>
      callJson('POST', '/v1/otps/whatsapp/login_or_create', {
        env: { ...e, WHATSAPP_QUEUE: capturingQueue(sent) },
        body: { phone_number: phone },
      })
    expect((await send(withoutBinding as unknown as Env, '+12025550178')).status).toBe(200)
    const broken = {
      writeDataPoint: () => {
        throw new Error('Analytics Engine unavailable')
      },
    }
    expect((await send({ ...env, METRICS: broken }, '+12025550179')).status).toBe(200)
    expect(sent).toHaveLength(2)
  })
})

describe('metrics: the layout keeps labels only', () => {
  it('drops any value that is not a label, so a number or free text can never be written', () => {
    const p = dataPoint({
      kind: 'provider',
      outcome: 'failed',
      project: 'project-test-00000000-0000-4000-8000-000000000000',
      country: '+12025550123',
      locale: '12025550123',
      detail: 'Message failed: (#131026) see https://example',
      errorCode: '131026',
      latencyMs: 1500,
      attempts: 2,
      channel: 'whats app',
    })
    expect(p).toEqual({
      indexes: ['project-test-00000000-0000-4000-8000-000000000000'],
      blobs: ['provider', 'failed', 'project-test-00000000-0000-4000-8000-000000000000', '', '', '', '131026', ''],
      doubles: [1, 1500, 2],
    })
  })
})

afterAll(() => {
  // Nothing written by any test above holds a phone number (with or without '+'), a code or an IP.
  expect(allPoints.length).toBeGreaterThan(10)
  const written = JSON.stringify(allPoints)
  for (const secret of secrets) {
    expect(written).not.toContain(secret)
    expect(written).not.toContain(secret.replace(/^\+/, ''))
  }
  expect(written).not.toContain(IP)
})
