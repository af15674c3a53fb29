import { env } from 'cloudflare:workers'
import { beforeAll, describe, expect, it, vi } from 'vitest'
import { open } from '../src/crypto'
import { DeliveryJobSchema, jobAad } from '../src/delivery/job'
import { messageText, smsText } from '../src/delivery/text'
import { LOCALES } from '../src/schemas'
import { failingBatchDb, failingKv } from './fault-env'
import { exchange, type FuzzRequest, type Outcome } from './fuzz-probe'
import { basicAuth, capturingQueue, type TestProject } from './helpers'
import { capturedLines, consoleDeliveryCode, leaksIn, quietConsole } from './log-capture'
import { project, wrong } from './otp-helpers'
import { secretsIn, workerSecrets } from './secrets'
import { messageSid, postTwilioStatus, twilioCreated, twilioEnv, twilioError } from './sms-helpers'
import { freshPhone, metaEnv, metaError, metaSuccess, runQueue, signWebhook, statusPayload } from './whatsapp-helpers'

/**
 * Leak checks with every secret and every code known: the main flows run end to end (issue, deliver
 * through the console and the Meta provider, with Graph API failures on the way, authenticate right
 * and wrong, sessions, webhooks, deletions, a D1 and a KV outage), then no log line may contain a
 * secret, a credential, a session token or JWT, or a code, and no reply a secret or a code. The console provider's delivery line is the one place a code is
 * printed by design; it must appear exactly once per console delivery and nowhere else.
 */

beforeAll(() => {
  quietConsole()
})

describe('the leak detector', () => {
  const line = (text: string) => ({ level: 'log', text })

  it('recognises exactly the console delivery line, in each locale, and nothing resembling it', () => {
    for (const locale of LOCALES) {
      {
        const text = `[whatsapp console] to +12025550100 (${locale}): ${messageText(locale, '123456')}`
        expect(consoleDeliveryCode(text)).toBe('123456')
        expect(consoleDeliveryCode(`${text} extra`)).toBeNull()
        expect(consoleDeliveryCode(`x${text}`)).toBeNull()
        expect(consoleDeliveryCode(text.replace(`(${locale})`, `(${locale === 'en' ? 'fr' : 'en'})`))).toBeNull()
      }
    }
    expect(consoleDeliveryCode('[whatsapp console] to +12025550100 (en): 123456')).toBeNull()
    // An SMS's line, with or without its autofill line; the autofill line only on SMS, with the same code.
    const sms = `[sms console] to +12025550100 (en): ${smsText('en', '123456', null)}`
    expect(consoleDeliveryCode(sms)).toBe('123456')
    expect(consoleDeliveryCode(`[sms console] to +12025550100 (en): ${smsText('en', '123456', 'a.example')}`)).toBe(
      '123456',
    )
    expect(consoleDeliveryCode(`${sms}\n\n@a.example #654321`)).toBeNull()
    expect(
      consoleDeliveryCode(`[whatsapp console] to +12025550100 (en): ${smsText('en', '123456', 'a.example')}`),
    ).toBeNull()
  })

  it('flags every secret, credential shapes, and known codes outside the delivery line', () => {
    for (const [name, value] of Object.entries(workerSecrets())) {
      expect(leaksIn([line(`context ${value} context`)], [])).toEqual([expect.stringContaining(name)])
    }
    expect(leaksIn([line('Authorization: Basic cHJvamVjdC10ZXN0LTEyMzQ6c2VjcmV0')], [])).toHaveLength(1)
    expect(leaksIn([line('Bearer EAAJB0000000000000000000')], [])).toHaveLength(1)
    expect(leaksIn([line(`secret-test-${crypto.randomUUID()}`)], [])).toHaveLength(1)
    expect(leaksIn([line('{"event":"x","code":"654321"}')], ['654321'])).toHaveLength(1)
    expect(leaksIn([line('{"event":"whatsapp.retry","error_code":654321}')], ['654321'])).toEqual([])
    expect(leaksIn([line('{"event":"x","phone_id":"phone-number-test-1"}')], ['654321'])).toEqual([])
  })
})

const post = (p: TestProject, path: string, body: unknown): FuzzRequest => ({
  method: 'POST',
  path,
  headers: { authorization: basicAuth(p), 'content-type': 'application/json' },
  body: JSON.stringify(body),
})

describe('main flows leak nothing', () => {
  it('issue, deliver (console and Meta, with failures), authenticate, webhooks, deletes, outages', async () => {
    const p = await project()
    const replies: Outcome[] = []
    const codes: string[] = []
    const call = async (request: FuzzRequest, base?: Env) => {
      const o = await exchange(request, base)
      replies.push(o)
      for (const job of o.queueSends) {
        const parsed = DeliveryJobSchema.parse(job)
        codes.push(await open(env.CODE_ENCRYPTION_KEY, parsed.code, jobAad(parsed)))
      }
      return o
    }

    // Issue codes on both routes, with attributes, and one more through a KV outage (a 500).
    const phone = freshPhone()
    const login = await call(
      post(p, '/v1/otps/whatsapp/login_or_create', {
        phone_number: phone,
        attributes: { ip_address: '203.0.113.50', user_agent: 'agent' },
      }),
    )
    const phoneId = String(login.json?.phone_id)
    const userId = String(login.json?.user_id)
    const resend = await call(post(p, '/v1/otps/whatsapp/send', { phone_number: phone }))
    await call(post(p, '/v1/otps/whatsapp/login_or_create', { phone_number: freshPhone() }), {
      ...env,
      OTP_KV: failingKv(env.OTP_KV, ['put']),
    })
    const metaPhone = freshPhone()
    const forMeta = await call(post(p, '/v1/otps/whatsapp/login_or_create', { phone_number: metaPhone }))
    expect(codes.length).toBeGreaterThanOrEqual(3)

    // Deliver: console provider for the first two jobs, Meta (500, timeout, 190, success) for another.
    const consoleJobs = [...login.queueSends, ...resend.queueSends]
    await runQueue(consoleJobs)
    const fetchSpy = vi.spyOn(globalThis, 'fetch')
    fetchSpy.mockResolvedValueOnce(metaError(500, 131000))
    fetchSpy.mockRejectedValueOnce(new DOMException('timed out', 'TimeoutError'))
    fetchSpy.mockResolvedValueOnce(metaSuccess('wamid.leak-check'))
    for (let attempt = 1; attempt <= 3; attempt++)
      await runQueue(forMeta.queueSends, { env: metaEnv(), attempts: attempt })
    expect(fetchSpy).toHaveBeenCalledTimes(3)
    // The Graph API request does carry the code and the token: that is the one place they go.
    expect(String(fetchSpy.mock.calls[0]?.[1]?.body)).toContain(codes.at(-1))
    fetchSpy.mockResolvedValueOnce(metaError(401, 190))
    const expired = await call(post(p, '/v1/otps/whatsapp/login_or_create', { phone_number: freshPhone() }))
    await runQueue(expired.queueSends, { env: metaEnv() })

    // Authenticate: wrong, then a D1 outage, then right, then replayed; a KV outage on a read.
    const latest = codes[1] ?? ''
    await call(
      post(p, '/v1/otps/authenticate', {
        method_id: phoneId,
        code: wrong(latest),
        attributes: { ip_address: '203.0.113.50' },
      }),
    )
    await call(post(p, '/v1/otps/authenticate', { method_id: phoneId, code: latest }), {
      ...env,
      DB: failingBatchDb(env.DB, 2).db,
    })
    await call(post(p, '/v1/otps/authenticate', { method_id: phoneId, code: latest }), {
      ...env,
      OTP_KV: failingKv(env.OTP_KV, ['get']),
    })
    const ok = await call(
      post(p, '/v1/otps/authenticate', { method_id: phoneId, code: latest, session_duration_minutes: 60 }),
    )
    expect(ok.status).toBe(200)
    // Session credentials are bearer secrets too: used, refreshed, presented wrongly, revoked.
    const sessionToken = String(ok.json?.session_token)
    const sessionJwt = String(ok.json?.session_jwt)
    expect(sessionToken.length).toBeGreaterThan(20)
    await call(post(p, '/v1/sessions/authenticate', { session_token: sessionToken, session_duration_minutes: 30 }))
    await call(post(p, '/v1/sessions/authenticate', { session_jwt: sessionJwt }))
    await call(post(p, '/v1/sessions/authenticate', { session_token: `${sessionToken.slice(0, -1)}A` }))
    await call({ method: 'GET', path: `/v1/sessions?user_id=${userId}`, headers: { authorization: basicAuth(p) } })
    await call({ method: 'GET', path: `/v1/sessions/jwks/${p.id}`, headers: {} })
    await call(post(p, '/v1/sessions/revoke', { session_jwt: sessionJwt }))
    await call(post(p, '/v1/otps/authenticate', { method_id: phoneId, code: latest }))
    await call(post(p, '/v1/otps/authenticate', { method_id: phoneId, code: codes[0] ?? '' }))

    // Webhooks (signed, unsigned, handshake with a wrong token), bad credentials, deletions.
    const body = JSON.stringify(
      statusPayload([{ id: 'wamid.leak-check', status: 'failed', errors: [{ code: 131026 }] }]),
    )
    await call({
      method: 'POST',
      path: '/v1/webhooks/whatsapp',
      headers: { 'x-hub-signature-256': await signWebhook(body) },
      body,
    })
    await call({ method: 'POST', path: '/v1/webhooks/whatsapp', headers: { 'x-hub-signature-256': 'sha256=00' }, body })
    await call({
      method: 'GET',
      path: `/v1/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=${env.WHATSAPP_VERIFY_TOKEN}x&hub.challenge=1`,
      headers: {},
    })
    await call({
      ...post(p, '/v1/otps/whatsapp/login_or_create', { phone_number: phone }),
      headers: { authorization: basicAuth({ id: p.id, secret: `${p.secret}x` }) },
    })
    await call({
      method: 'DELETE',
      path: `/v1/users/phone_numbers/${phoneId}`,
      headers: { authorization: basicAuth(p) },
    })
    await call(
      { method: 'DELETE', path: `/v1/users/${userId}`, headers: { authorization: basicAuth(p) } },
      { ...env, OTP_KV: failingKv(env.OTP_KV, ['delete']) },
    )

    const lines = capturedLines()
    // No line carries a code: the console provider delivered the second one (the first was superseded
    // by the resend before the consumer ran) to the outbox only, and printed nothing.
    const delivered = lines.map((l) => consoleDeliveryCode(l.text)).filter((c): c is string => c !== null)
    expect(delivered).toEqual([])
    expect(leaksIn(lines, codes)).toEqual([])
    expect(lines.filter((l) => l.text.includes(sessionToken) || l.text.includes(sessionJwt))).toEqual([])
    // The failures were logged, so the check had them to read.
    for (const event of ['whatsapp.retry', 'whatsapp.failed', 'whatsapp.job_dropped', 'otp.send_undone']) {
      expect(lines.some((l) => l.text.includes(`"event":"${event}"`))).toBe(true)
    }
    expect(lines.some((l) => l.level === 'error' && l.text.includes('"path":"/v1/otps/authenticate"'))).toBe(true)
    for (const reply of replies) {
      const presented = reply.request.headers.authorization
      expect(secretsIn(reply.text, presented ? [presented] : []), reply.text).toEqual([])
      for (const code of codes) expect(reply.text).not.toMatch(new RegExp(`\\b${code}\\b`))
      expect(reply.text).not.toMatch(/\n\s+at |\.ts:\d+:\d+/)
    }
    expect(replies.map((r) => r.status)).toContain(500)
  })

  it('SMS: issue, deliver through Twilio (with failures), fall back from WhatsApp, status callbacks', async () => {
    const before = capturedLines().length
    const p = await project({ whatsapp_fallback: 'sms' })
    const codes: string[] = []
    const jobsOf = async (o: Outcome) => {
      const jobs = o.queueSends.map((j) => DeliveryJobSchema.parse(j))
      for (const job of jobs) codes.push(await open(env.CODE_ENCRYPTION_KEY, job.code, jobAad(job)))
      return jobs
    }
    const sms = await exchange(post(p, '/v1/otps/sms/login_or_create', { phone_number: freshPhone() }))
    const [smsJob] = await jobsOf(sms)
    const fetchSpy = vi.spyOn(globalThis, 'fetch')
    const sid = messageSid()
    fetchSpy.mockResolvedValueOnce(twilioError(429, 20429))
    fetchSpy.mockResolvedValueOnce(twilioCreated(sid))
    for (let attempt = 1; attempt <= 2; attempt++) await runQueue([smsJob], { env: twilioEnv(), attempts: attempt })
    // Twilio's request carries the code and the credentials: that is the one place they go.
    expect(String(fetchSpy.mock.calls[1]?.[1]?.body)).toContain(codes[0])
    await postTwilioStatus(sid, 'undelivered', { errorCode: 30003 })
    await postTwilioStatus(sid, 'delivered', { signature: 'forged' })

    const wa = await exchange(post(p, '/v1/otps/whatsapp/login_or_create', { phone_number: freshPhone() }))
    const queued: unknown[] = []
    fetchSpy.mockResolvedValueOnce(metaError(400, 131026))
    await runQueue(await jobsOf(wa), { env: twilioEnv({ WHATSAPP_QUEUE: capturingQueue(queued) }) })
    expect(queued).toHaveLength(1)
    const [fallback] = queued.map((j) => DeliveryJobSchema.parse(j))
    fetchSpy.mockResolvedValueOnce(twilioCreated(messageSid()))
    await runQueue([fallback], { env: twilioEnv() })
    expect(String(fetchSpy.mock.calls.at(-1)?.[1]?.body)).toContain(codes[1])

    const lines = capturedLines().slice(before)
    expect(leaksIn(lines, codes)).toEqual([])
    for (const event of ['sms.retry', 'sms.status', 'otp.fallback', 'whatsapp.failed']) {
      expect(lines.some((l) => l.text.includes(`"event":"${event}"`))).toBe(true)
    }
    for (const reply of [sms, wa]) for (const code of codes) expect(reply.text).not.toContain(code)
  })
})
