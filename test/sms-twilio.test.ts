import { env } from 'cloudflare:workers'
import { beforeEach, describe, expect, it, type MockInstance, vi } from 'vitest'
import { buildTwilioRequest, classifyTwilioError, TWILIO_ERROR_RULES, twilioConfig } from '../src/sms/twilio'
import { signedText, twilioStatusEvent, verifyTwilioSignature } from '../src/sms/webhook'
import { callJson, expectStytchError } from './helpers'
import {
  issueSms,
  messageSid,
  postTwilioStatus,
  signTwilio,
  TWILIO_CALLBACK,
  twilioCreated,
  twilioEnv,
  twilioError,
  twilioForm,
  twilioReply,
} from './sms-helpers'
import { DEAD_LETTER_QUEUE, deliveryRow, runQueue } from './whatsapp-helpers'

/**
 * The Twilio Programmable Messaging provider and its status callback, with Twilio mocked at the
 * fetch boundary: the exact REST request, the retry policy by Twilio error code, the dead-letter
 * queue, and X-Twilio-Signature.
 */

let fetchSpy: MockInstance<typeof fetch>

beforeEach(() => {
  fetchSpy = vi.spyOn(globalThis, 'fetch').mockRejectedValue(new Error('unexpected fetch'))
  vi.spyOn(Math, 'random').mockReturnValue(0)
})

const ACCOUNT = 'AC0123456789abcdef0123456789abcdef'

describe('Twilio provider: the REST request', () => {
  it('posts Messages.json form-encoded with Basic auth (account SID and auth token), the code first', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const { job, code, phoneNumber } = await issueSms({ extra: { locale: 'pt-br', expiration_minutes: 2 } })
    vi.setSystemTime(Date.now() + 20_000)
    const sid = messageSid()
    fetchSpy.mockResolvedValueOnce(twilioCreated(sid))
    const { result, ids } = await runQueue([job], {
      env: twilioEnv({ TWILIO_STATUS_CALLBACK_URL: 'https://otp.example.com/v1/webhooks/twilio' }),
    })
    expect(result.explicitAcks).toEqual(ids)
    expect(fetchSpy).toHaveBeenCalledTimes(1)
    const [url, init] = fetchSpy.mock.calls[0] ?? []
    expect(url).toBe(`https://api.twilio.com/2010-04-01/Accounts/${ACCOUNT}/Messages.json`)
    expect(init?.method).toBe('POST')
    const headers = new Headers(init?.headers)
    expect(headers.get('authorization')).toBe(`Basic ${btoa(`${ACCOUNT}:${env.TWILIO_AUTH_TOKEN}`)}`)
    expect(headers.get('content-type')).toBe('application/x-www-form-urlencoded')
    expect(Object.fromEntries(twilioForm(init))).toEqual({
      To: phoneNumber,
      From: '+15005550006',
      Body: `${code} é o seu código de verificação. Para sua segurança, não o compartilhe.`,
      // What is left of the 2-minute code after 20 s in the queue: Twilio drops it after that.
      ValidityPeriod: '100',
      // The delivery's shard rides along in the URL Twilio calls back (and signs).
      StatusCallback: 'https://otp.example.com/v1/webhooks/twilio?shard=0',
    })
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'sent', provider: 'twilio', wamid: sid, attempts: 1 })
  })

  it('authenticates with an API key when one is set, and sends from a Messaging Service', async () => {
    const { job } = await issueSms()
    fetchSpy.mockResolvedValueOnce(twilioCreated(messageSid()))
    const e = twilioEnv({
      TWILIO_API_KEY_SID: `SK${'1'.repeat(32)}`,
      TWILIO_API_KEY_SECRET: 'A'.repeat(32),
      TWILIO_SENDER: `MG${'2'.repeat(32)}`,
    })
    await runQueue([job], { env: e })
    const init = fetchSpy.mock.calls[0]?.[1]
    expect(new Headers(init?.headers).get('authorization')).toBe(
      `Basic ${btoa(`SK${'1'.repeat(32)}:${'A'.repeat(32)}`)}`,
    )
    const form = twilioForm(init)
    expect(form.get('MessagingServiceSid')).toBe(`MG${'2'.repeat(32)}`)
    expect(form.has('From')).toBe(false)
    expect(form.has('StatusCallback')).toBe(false)
  })

  it('logs neither the code nor the credentials, and never writes the dev outbox', async () => {
    const lines: string[] = []
    for (const level of ['log', 'warn', 'error'] as const) {
      vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
        lines.push(args.map(String).join(' '))
      })
    }
    const { job, code } = await issueSms()
    fetchSpy.mockResolvedValueOnce(twilioCreated(messageSid()))
    await runQueue([job], { env: twilioEnv() })
    const text = lines.join('\n')
    // A successful send logs no line at all (its metrics data point counts it).
    expect(lines).toEqual([])
    for (const secret of [code, env.TWILIO_AUTH_TOKEN ?? 'missing']) expect(text).not.toContain(secret)
    const outbox = await env.DB.prepare('SELECT count(*) AS n FROM dev_outbox WHERE id = ?1').bind(job.id).first()
    expect(outbox).toEqual({ n: 0 })
  })

  it('builds the request from its configuration alone (ValidityPeriod at least 1 s, at most 10 h)', () => {
    const checked = twilioConfig(twilioEnv())
    if (!checked.ok) throw new Error(checked.reason)
    const message = {
      deliveryId: 'd',
      projectId: 'project-test-x',
      phoneNumber: '+12025550100',
      locale: 'en' as const,
      code: '123456',
      autofillDomain: 'example.com',
      shard: 0,
    }
    const at = 1_000_000
    const form = (expiresAt: number) =>
      new URLSearchParams(String(buildTwilioRequest(checked.config, { ...message, expiresAt }, at).init.body))
    expect(form(at + 500).get('ValidityPeriod')).toBe('1')
    expect(form(at + 100 * 3_600_000).get('ValidityPeriod')).toBe('36000')
    expect(form(at + 60_000).get('Body')).toBe(
      '123456 is your verification code. For your security, do not share this code.\n\n@example.com #123456',
    )
  })
})

describe('Twilio provider: retry policy by error code', () => {
  const retryable = Object.entries(TWILIO_ERROR_RULES)
    .filter(([, r]) => r.retry)
    .map(([code, r]) => [Number(code), r.minDelaySeconds ?? 0] as const)
  const recipient = Object.entries(TWILIO_ERROR_RULES)
    .filter(([, r]) => !r.retry && !r.alert)
    .map(([code]) => Number(code))
  const operator = Object.entries(TWILIO_ERROR_RULES)
    .filter(([, r]) => !r.retry && r.alert)
    .map(([code]) => Number(code))

  it('classifies the codes that matter: rate limits retry, STOP and bad numbers fail quietly, set-up alerts', () => {
    expect(retryable.map(([c]) => c).sort()).toEqual([20429, 20500, 20503, 21611])
    for (const code of [21211, 21610, 21612, 21614, 30003, 30005, 30006]) expect(recipient).toContain(code)
    for (const code of [20003, 21408, 21606, 21608, 30007, 30034]) expect(operator).toContain(code)
    expect(classifyTwilioError(400, { code: 99999 })).toEqual({
      kind: 'failed',
      errorCode: 99999,
      detail: 'twilio_error',
      alert: true,
    })
    expect(classifyTwilioError(503, { code: 99999 })).toMatchObject({ kind: 'retry', detail: 'twilio_error' })
    expect(classifyTwilioError(502, '<html>')).toMatchObject({ kind: 'retry', errorCode: null, detail: 'http_502' })
    expect(classifyTwilioError(401, undefined)).toMatchObject({ kind: 'failed', detail: 'http_401', alert: true })
  })

  it.each(retryable)('retries %i with backoff (at least %i s)', async (code, minDelay) => {
    const { job } = await issueSms()
    fetchSpy.mockResolvedValueOnce(twilioError(code === 20429 ? 429 : code >= 20500 ? 503 : 400, code))
    const { retry, result } = await runQueue([job], { env: twilioEnv() })
    expect(result.retryMessages).toHaveLength(1)
    expect(retry[0]).toHaveBeenCalledWith({ delaySeconds: Math.max(2, minDelay) })
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'sending', error_code: code, lease_until: null })
  })

  it.each([...recipient, ...operator])('acks %i as a permanent failure and records the code', async (code) => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const { job } = await issueSms()
    fetchSpy.mockResolvedValueOnce(twilioError(code === 20003 ? 401 : code === 20404 ? 404 : 400, code))
    const { result, ids } = await runQueue([job], { env: twilioEnv() })
    expect(result.explicitAcks).toEqual(ids)
    const rule = TWILIO_ERROR_RULES[code]
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'failed', error_code: code, error_detail: rule?.label })
    const line = JSON.parse(String(errors.mock.calls.at(-1)?.[0]))
    expect(line).toMatchObject({ event: 'sms.failed', error_code: code, alert: rule?.alert ?? false })
  })

  it('retries a timeout or a network error, then sends', async () => {
    const { job } = await issueSms()
    fetchSpy.mockRejectedValueOnce(new TypeError('fetch failed'))
    const first = await runQueue([job], { env: twilioEnv() })
    expect(first.retry[0]).toHaveBeenCalledWith({ delaySeconds: 2 })
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'sending', error_detail: 'network_error' })
    const sid = messageSid()
    fetchSpy.mockResolvedValueOnce(twilioCreated(sid))
    await runQueue([job], { env: twilioEnv(), attempts: 2 })
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'sent', wamid: sid, attempts: 2, error_detail: null })
  })

  it('records a dead letter as failed with the last error code, as for WhatsApp', async () => {
    vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const { job } = await issueSms()
    fetchSpy.mockResolvedValueOnce(twilioError(429, 20429))
    await runQueue([job], { env: twilioEnv() })
    await runQueue([job], { env: twilioEnv(), queue: DEAD_LETTER_QUEUE })
    expect(await deliveryRow(job.id)).toMatchObject({
      status: 'failed',
      error_code: 20429,
      error_detail: 'retries_exhausted',
    })
  })

  it.each([
    ['no account SID', { TWILIO_ACCOUNT_SID: '' }],
    ['no auth token', { TWILIO_AUTH_TOKEN: '' }],
    ['a sender that is neither a number nor a Messaging Service', { TWILIO_SENDER: 'MyApp' }],
    ['an API key without its secret', { TWILIO_API_KEY_SID: `SK${'1'.repeat(32)}` }],
    ['a status callback that is not https', { TWILIO_STATUS_CALLBACK_URL: 'http://otp.example.com/cb' }],
    ['an unknown SMS_PROVIDER', { SMS_PROVIDER: 'Twilio' }],
  ])('fails deliveries loudly without calling Twilio when there is %s', async (_name, overrides) => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const { job } = await issueSms()
    const { result, ids } = await runQueue([job], { env: twilioEnv(overrides) })
    expect(fetchSpy).not.toHaveBeenCalled()
    expect(result.explicitAcks).toEqual(ids)
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'failed', error_detail: 'provider_not_configured' })
    expect(errors).toHaveBeenCalledWith(expect.stringContaining('sms.provider_not_configured'))
  })
})

describe('POST /v1/webhooks/twilio: the status callback', () => {
  async function sentSms() {
    const issued = await issueSms()
    const sid = messageSid()
    fetchSpy.mockResolvedValueOnce(twilioCreated(sid))
    await runQueue([issued.job], { env: twilioEnv() })
    return { ...issued, sid }
  }

  it('computes the signature as Twilio documents it: URL, then sorted name+value pairs', async () => {
    const params = new URLSearchParams({ To: '+1', MessageSid: 'SMx', Body: 'a b', AccountSid: 'AC1' })
    expect(signedText('https://h/x?y=1', params)).toBe('https://h/x?y=1AccountSidAC1Bodya bMessageSidSMxTo+1')
    const signature = await signTwilio('https://h/x?y=1', params, 'token')
    expect(await verifyTwilioSignature('token', 'https://h/x?y=1', params, signature)).toBe(true)
    expect(await verifyTwilioSignature('token', 'https://h/x?y=2', params, signature)).toBe(false)
    expect(await verifyTwilioSignature('other', 'https://h/x?y=1', params, signature)).toBe(false)
    expect(await verifyTwilioSignature('token', 'https://h/x?y=1', params, undefined)).toBe(false)
    expect(await verifyTwilioSignature('token', 'https://h/x?y=1', params, 'not base64!')).toBe(false)
  })

  it('moves a delivery to delivered, and a failed status records Twilio’s code (not an alert for the recipient)', async () => {
    const a = await sentSms()
    expect((await postTwilioStatus(a.sid, 'sent')).status).toBe(200)
    expect((await postTwilioStatus(a.sid, 'delivered')).status).toBe(200)
    expect(await deliveryRow(a.job.id)).toMatchObject({ status: 'delivered' })
    // Out of order and duplicated: never backwards.
    expect((await postTwilioStatus(a.sid, 'undelivered', { errorCode: 30003 })).status).toBe(200)
    expect(await deliveryRow(a.job.id)).toMatchObject({ status: 'delivered', error_code: null })

    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined)
    const b = await sentSms()
    expect((await postTwilioStatus(b.sid, 'undelivered', { errorCode: 30003 })).status).toBe(200)
    expect(await deliveryRow(b.job.id)).toMatchObject({
      status: 'failed',
      error_code: 30003,
      error_detail: 'twilio_status_failed',
    })
    expect(JSON.parse(String(warn.mock.calls.at(-1)?.[0]))).toMatchObject({
      event: 'sms.status',
      status: 'failed',
      error_code: 30003,
      detail: 'unreachable_handset',
      alert: false,
    })
  })

  it('alerts on a failure the operator must fix (carrier filtering)', async () => {
    const errors = vi.spyOn(console, 'error').mockImplementation(() => undefined)
    const { sid, job } = await sentSms()
    await postTwilioStatus(sid, 'failed', { errorCode: 30007 })
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'failed', error_code: 30007 })
    expect(JSON.parse(String(errors.mock.calls.at(-1)?.[0]))).toMatchObject({ event: 'sms.status', alert: true })
  })

  it('refuses a callback without a valid signature and changes nothing', async () => {
    const { sid, job } = await sentSms()
    for (const signature of ['', 'bm90IGl0', await signTwilio(TWILIO_CALLBACK, new URLSearchParams({ a: 'b' }))]) {
      expectStytchError(await postTwilioStatus(sid, 'delivered', { signature }), 401, 'invalid_webhook_signature')
    }
    // Signed with another account's token.
    const params = new URLSearchParams({ MessageSid: sid, MessageStatus: 'delivered' })
    const forged = await signTwilio(TWILIO_CALLBACK, params, '0'.repeat(32))
    const res = await callJson('POST', '/v1/webhooks/twilio', {
      project: null,
      rawBody: params.toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': forged },
    })
    expectStytchError(res, 401, 'invalid_webhook_signature')
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'sent' })
  })

  it('answers 503 without an auth token, and acknowledges statuses it does not record', async () => {
    const { sid, job } = await sentSms()
    const res = await postTwilioStatus(sid, 'delivered', { env: { ...env, TWILIO_AUTH_TOKEN: '' } })
    expectStytchError(res, 503, 'service_unavailable')
    for (const status of ['queued', 'sending', 'accepted', 'sent']) {
      expect((await postTwilioStatus(sid, status)).status).toBe(200)
    }
    expect((await postTwilioStatus(messageSid(), 'delivered')).status).toBe(200)
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'sent' })
  })

  it('reads only well-formed statuses: the SID shape and a numeric ErrorCode', () => {
    const sid = `SM${'a'.repeat(32)}`
    const event = (p: Record<string, string>) => twilioStatusEvent(new URLSearchParams(p))
    expect(event({ MessageSid: sid, MessageStatus: 'failed', ErrorCode: '30008' })).toEqual({
      messageId: sid,
      status: 'failed',
      errorCode: 30008,
    })
    expect(event({ MessageSid: sid, MessageStatus: 'failed', ErrorCode: 'x' })).toMatchObject({ errorCode: null })
    expect(event({ MessageSid: 'wamid.x', MessageStatus: 'delivered' })).toBeNull()
    expect(event({ MessageSid: sid, MessageStatus: 'read' })).toBeNull()
  })
})

describe('Twilio reply without a readable SID', () => {
  it('still records the message as sent (resending would duplicate it)', async () => {
    const { job } = await issueSms()
    fetchSpy.mockResolvedValueOnce(twilioReply(201, { status: 'queued' }))
    await runQueue([job], { env: twilioEnv() })
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'sent', wamid: null })
  })
})
