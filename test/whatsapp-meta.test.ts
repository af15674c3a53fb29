import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it, type MockInstance, vi } from 'vitest'
import { classifyMetaError, META_ERROR_RULES } from '../src/whatsapp/meta'
import {
  DEAD_LETTER_QUEUE,
  deliveryRow,
  issueJob,
  metaEnv,
  metaError,
  metaReply,
  metaSuccess,
  runQueue,
} from './whatsapp-helpers'

const GRAPH_URL = 'https://graph.facebook.com/v26.0/106540352242922/messages'

let fetchSpy: MockInstance<typeof fetch>

beforeEach(() => {
  // No network here: any call not mocked by the test fails loudly.
  fetchSpy = vi.spyOn(globalThis, 'fetch').mockRejectedValue(new Error('unexpected fetch'))
  vi.spyOn(Math, 'random').mockReturnValue(0)
})

function sentRequest(call = 0): { url: string; init: RequestInit; body: unknown } {
  const args = fetchSpy.mock.calls[call]
  if (!args) throw new Error(`fetch call ${call} was not made`)
  const [url, init] = args
  return { url: String(url), init: init ?? {}, body: JSON.parse(String(init?.body)) }
}

describe('Meta provider: the Graph API request', () => {
  it.each([
    ['en', 'en_US'],
    ['es', 'es'],
    ['fr', 'fr'],
    ['pt-br', 'pt_BR'],
  ])('sends the authentication template for locale %s in template language %s', async (locale, language) => {
    const { job, code, phoneNumber } = await issueJob({ extra: { locale } })
    fetchSpy.mockResolvedValueOnce(metaSuccess('wamid.HBgLMTIwMjU1NTAxMDAVAgARGBI1'))

    const { result, ids } = await runQueue([job], { env: metaEnv() })

    expect(fetchSpy).toHaveBeenCalledTimes(1)
    const { url, init, body } = sentRequest()
    expect(url).toBe(GRAPH_URL)
    expect(init.method).toBe('POST')
    expect(init.headers).toEqual({
      Authorization: `Bearer ${env.WHATSAPP_ACCESS_TOKEN}`,
      'Content-Type': 'application/json',
    })
    expect(body).toEqual({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: phoneNumber.slice(1),
      type: 'template',
      template: {
        name: 'verification_code',
        language: { code: language },
        components: [
          { type: 'body', parameters: [{ type: 'text', text: code }] },
          { type: 'button', sub_type: 'url', index: '0', parameters: [{ type: 'text', text: code }] },
        ],
      },
      // Echoed in the status webhooks, which then update the delivery's shard alone.
      biz_opaque_callback_data: 'shard=0',
    })
    expect(result.explicitAcks).toEqual(ids)
    expect(result.retryMessages).toEqual([])
    expect(await deliveryRow(job.id)).toMatchObject({
      status: 'sent',
      provider: 'meta',
      wamid: 'wamid.HBgLMTIwMjU1NTAxMDAVAgARGBI1',
      attempts: 1,
      error_code: null,
      lease_until: null,
    })
  })

  it('takes template languages and names from configuration', async () => {
    const { job } = await issueJob()
    fetchSpy.mockResolvedValueOnce(metaSuccess('wamid.configured'))
    await runQueue([job], {
      env: metaEnv({
        WHATSAPP_TEMPLATE_LANGUAGES: '{"en":"en_GB"}',
        WHATSAPP_TEMPLATE_NAME: 'login_code',
        WHATSAPP_GRAPH_VERSION: 'v25.0',
      }),
    })
    const { url, body } = sentRequest()
    expect(url).toBe('https://graph.facebook.com/v25.0/106540352242922/messages')
    expect(body).toMatchObject({ template: { name: 'login_code', language: { code: 'en_GB' } } })
  })

  it('logs neither the code nor the access token, and never writes the dev outbox', async () => {
    const { job, code, phoneNumber } = await issueJob()
    const lines: string[] = []
    for (const level of ['log', 'warn', 'error', 'info', 'debug'] as const) {
      vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
        lines.push(args.map(String).join(' '))
      })
    }
    fetchSpy.mockResolvedValueOnce(metaError(400, 131026))
    await runQueue([job], { env: metaEnv() })
    const retried = await issueJob()
    fetchSpy.mockResolvedValueOnce(metaSuccess('wamid.logged'))
    await runQueue([retried.job], { env: metaEnv() })

    expect(lines.length).toBeGreaterThan(0)
    for (const line of [...lines]) {
      expect(line).not.toContain(code)
      expect(line).not.toContain(retried.code)
      expect(line).not.toContain(env.WHATSAPP_ACCESS_TOKEN)
      expect(line).not.toContain(phoneNumber)
    }
    const outbox = await env.DB.prepare('SELECT count(*) AS n FROM dev_outbox').first<{ n: number }>()
    expect(outbox?.n).toBe(0)
  })
})

describe('Meta provider: retry policy by error.code', () => {
  const retryable = Object.entries(META_ERROR_RULES)
    .filter(([, rule]) => rule.retry)
    .map(([code, rule]) => [Number(code), rule.minDelaySeconds ?? 0] as const)
  const permanent = Object.entries(META_ERROR_RULES)
    .filter(([, rule]) => !rule.retry)
    .map(([code]) => Number(code))

  it('covers the platform table', () => {
    expect(retryable.map(([code]) => code).sort((a, b) => a - b)).toEqual([
      1, 2, 4, 613, 80007, 130429, 131000, 131016, 131056, 131057, 133004,
    ])
    expect(permanent).toEqual(expect.arrayContaining([100, 131008, 131009, 132000, 132001, 132012, 131026, 131030]))
    expect(permanent).toEqual(expect.arrayContaining([190, 0, 10, 368, 131031, 131042, 131048]))
  })

  it('classifies codes beyond the common table: maintenance retries, an unregistered number alerts', () => {
    // 131057: the business account is in maintenance mode (a throughput upgrade): temporary.
    expect(classifyMetaError(400, { error: { code: 131057 } })).toMatchObject({
      kind: 'retry',
      detail: 'account_maintenance',
    })
    // 133010: the sending number is not registered on the Cloud API: only the operator can fix it.
    expect(classifyMetaError(400, { error: { code: 133010 } })).toEqual({
      kind: 'failed',
      errorCode: 133010,
      detail: 'phone_not_registered',
      alert: true,
    })
    // A recipient-side permanent failure is not an alert.
    expect(classifyMetaError(400, { error: { code: 131049 } })).toMatchObject({ kind: 'failed', alert: false })
  })

  // The HTTP status is deliberately "wrong" (400) for all of them: the code decides, not the status.
  it.each(retryable)('retries %i with backoff (at least %i s)', async (code, minDelay) => {
    const { job } = await issueJob()
    fetchSpy.mockResolvedValueOnce(metaError(400, code))

    const { result, retry, ids } = await runQueue([job], { env: metaEnv() })

    expect(result.explicitAcks).toEqual([])
    expect(result.retryMessages).toEqual([{ msgId: ids[0] }])
    expect(retry[0]).toHaveBeenCalledWith({ delaySeconds: Math.max(2, minDelay) })
    expect(await deliveryRow(job.id)).toMatchObject({
      status: 'sending',
      attempts: 1,
      error_code: code,
      lease_until: null,
    })
  })

  it.each([...permanent, 200, 299])('acks %i as a permanent failure and records the code', async (code) => {
    const { job } = await issueJob()
    fetchSpy.mockResolvedValueOnce(metaError(code === 190 ? 401 : 400, code))

    const { result, retry, ids } = await runQueue([job], { env: metaEnv() })

    expect(result.explicitAcks).toEqual(ids)
    expect(retry[0]).not.toHaveBeenCalled()
    expect(await deliveryRow(job.id)).toMatchObject({
      status: 'failed',
      attempts: 1,
      error_code: code,
      lease_until: null,
    })
  })

  it('waits at least 6 s before retrying the pair rate limit 131056, plus jitter', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999)
    const { job } = await issueJob()
    fetchSpy.mockResolvedValueOnce(metaError(400, 131056))
    const { retry } = await runQueue([job], { env: metaEnv() })
    expect(retry[0]).toHaveBeenCalledWith({ delaySeconds: 9 })
  })

  it('backs off exponentially with the delivery attempt', async () => {
    const delays: unknown[] = []
    for (const attempts of [1, 2, 3, 4, 5, 6]) {
      const { job } = await issueJob()
      fetchSpy.mockResolvedValueOnce(metaError(429, 130429))
      const { retry } = await runQueue([job], { env: metaEnv(), attempts })
      delays.push(retry[0]?.mock.calls[0]?.[0])
    }
    expect(delays).toEqual([2, 4, 8, 16, 32, 60].map((delaySeconds) => ({ delaySeconds })))
  })

  it.each([
    ['a network error', () => Promise.reject(new TypeError('Network connection lost.')), 'network_error'],
    ['a timeout', () => Promise.reject(new DOMException('The operation timed out.', 'TimeoutError')), 'timeout'],
    ['a 502 without JSON', () => Promise.resolve(metaReply(502, '<html>Bad Gateway</html>')), 'http_502'],
    // A proxy in front of the Graph API can time out or throttle without Meta's JSON error body.
    ['a bare 408 without JSON', () => Promise.resolve(metaReply(408, 'Request Timeout')), 'http_408'],
    ['a bare 429 without JSON', () => Promise.resolve(metaReply(429, '')), 'http_429'],
    ['a 500 with an unknown code', () => Promise.resolve(metaError(500, 999_999)), 'meta_error'],
  ])('retries %s', async (_name, reply, detail) => {
    const { job } = await issueJob()
    fetchSpy.mockImplementationOnce(reply)
    const { result, retry } = await runQueue([job], { env: metaEnv() })
    expect(result.retryMessages).toHaveLength(1)
    expect(retry[0]).toHaveBeenCalledWith({ delaySeconds: 2 })
    expect(await deliveryRow(job.id)).toMatchObject({
      status: 'sending',
      error_detail: detail,
      lease_until: null,
    })
  })

  it.each([
    ['a 400 without JSON', () => metaReply(400, 'Bad Request'), null, 'http_400'],
    ['a 400 with an unknown code', () => metaError(400, 999_999), 999_999, 'meta_error'],
  ])('fails %s permanently', async (_name, reply, errorCode, detail) => {
    const { job } = await issueJob()
    fetchSpy.mockResolvedValueOnce(reply())
    const { result, ids } = await runQueue([job], { env: metaEnv() })
    expect(result.explicitAcks).toEqual(ids)
    expect(await deliveryRow(job.id)).toMatchObject({
      status: 'failed',
      error_code: errorCode,
      error_detail: detail,
    })
  })

  it('sends on the next attempt after a retryable error, counting both attempts', async () => {
    const { job } = await issueJob()
    fetchSpy.mockResolvedValueOnce(metaError(400, 131000))
    await runQueue([job], { env: metaEnv() })
    fetchSpy.mockResolvedValueOnce(metaSuccess('wamid.second'))
    const { result, ids } = await runQueue([job], { env: metaEnv(), attempts: 2 })
    expect(result.explicitAcks).toEqual(ids)
    expect(fetchSpy).toHaveBeenCalledTimes(2)
    expect(await deliveryRow(job.id)).toMatchObject({
      status: 'sent',
      wamid: 'wamid.second',
      attempts: 2,
      error_code: null,
      error_detail: null,
    })
  })
})

describe('dead-letter queue', () => {
  it('records the final failure with the last error code', async () => {
    const { job } = await issueJob()
    fetchSpy.mockResolvedValueOnce(metaError(429, 130429))
    await runQueue([job], { env: metaEnv(), attempts: 7 })

    const { result, ids } = await runQueue([job], { env: metaEnv(), queue: DEAD_LETTER_QUEUE })

    expect(result.explicitAcks).toEqual(ids)
    expect(await deliveryRow(job.id)).toMatchObject({
      status: 'failed',
      error_code: 130429,
      error_detail: 'retries_exhausted',
    })
  })

  it('leaves a delivery that finished meanwhile alone', async () => {
    const { job } = await issueJob()
    fetchSpy.mockResolvedValueOnce(metaSuccess('wamid.done'))
    await runQueue([job], { env: metaEnv() })
    const { result, ids } = await runQueue([job], { queue: DEAD_LETTER_QUEUE })
    expect(result.explicitAcks).toEqual(ids)
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'sent', wamid: 'wamid.done' })
  })
})

describe('Meta provider configuration', () => {
  it.each([
    ['no access token', { WHATSAPP_ACCESS_TOKEN: '' }],
    ['no phone number id', { WHATSAPP_PHONE_NUMBER_ID: '' }],
    ['a malformed Graph version', { WHATSAPP_GRAPH_VERSION: 'latest' }],
    ['template languages that are not JSON', { WHATSAPP_TEMPLATE_LANGUAGES: 'en=en_US' }],
    ['a template language with a hyphen', { WHATSAPP_TEMPLATE_LANGUAGES: '{"pt-br":"pt-BR"}' }],
  ])('fails deliveries loudly without calling Meta when there is %s', async (_name, overrides) => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const { job } = await issueJob()
    const { result, ids } = await runQueue([job], { env: metaEnv(overrides) })
    expect(fetchSpy).not.toHaveBeenCalled()
    expect(result.explicitAcks).toEqual(ids)
    expect(await deliveryRow(job.id)).toMatchObject({
      status: 'failed',
      error_detail: 'provider_not_configured',
    })
    expect(errors).toHaveBeenCalledWith(expect.stringContaining('whatsapp.provider_not_configured'))
  })

  it('uses no provider at all for an unknown WHATSAPP_PROVIDER', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const { job } = await issueJob()
    await runQueue([job], { env: metaEnv({ WHATSAPP_PROVIDER: 'Console' }) })
    expect(fetchSpy).not.toHaveBeenCalled()
    expect(await deliveryRow(job.id)).toMatchObject({
      status: 'failed',
      error_detail: 'provider_not_configured',
    })
    const outbox = await env.DB.prepare('SELECT count(*) AS n FROM dev_outbox').first<{ n: number }>()
    expect(outbox?.n).toBe(0)
  })
})
