import { env } from 'cloudflare:workers'
import { describe, expect, it, type MockInstance, vi } from 'vitest'
import { callJson, capturingQueue, expectStytchError, issueCode, type TestProject, tableCounts } from './helpers'
import { authenticate, dbGate, wrong } from './otp-helpers'
import { issueSms, SMS_TEST_SETTINGS, smsProject, twilioCreated, twilioEnv, twilioForm } from './sms-helpers'
import { deliveryRow, freshPhone, runQueue } from './whatsapp-helpers'

/**
 * POST /v1/otps/sms/login_or_create and /send: Stytch's SMS routes, on the same user, phone and code
 * model as WhatsApp. Delivery is through the console provider (the test default) unless a test
 * selects Twilio, mocked at the fetch boundary.
 */

const smsLogin = (p: TestProject, body: unknown, e?: Env) =>
  callJson('POST', '/v1/otps/sms/login_or_create', {
    project: p,
    body,
    env: { ...(e ?? env), WHATSAPP_QUEUE: capturingQueue([]) },
  })

const smsSend = (p: TestProject, body: unknown, e?: Env) =>
  callJson('POST', '/v1/otps/sms/send', {
    project: p,
    body,
    env: { ...(e ?? env), WHATSAPP_QUEUE: capturingQueue([]) },
  })

const TABLES = ['users', 'phones', 'otp_codes', 'deliveries', 'limit_counters'] as const

describe('POST /v1/otps/sms/login_or_create', () => {
  it("answers Stytch's shape and queues one SMS job; the code authenticates with a session factor 'sms'", async () => {
    const { body, job, code, project } = await issueSms({ extra: { locale: 'fr', expiration_minutes: 3 } })
    expect(Object.keys(body).sort()).toEqual(['phone_id', 'request_id', 'status_code', 'user_created', 'user_id'])
    expect(body).toMatchObject({ status_code: 200, user_created: true })
    expect(job).toMatchObject({ channel: 'sms', locale: 'fr', phone_id: body.phone_id })
    expect(job).not.toHaveProperty('fallback')
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'queued' })
    const row = await env.DB.prepare('SELECT channel, code_id, fallback_of FROM deliveries WHERE id = ?1')
      .bind(job.id)
      .first()
    expect(row).toEqual({ channel: 'sms', code_id: null, fallback_of: null })

    const auth = await authenticate(project, { method_id: body.phone_id, code, session_duration_minutes: 60 })
    expect(auth.status).toBe(200)
    const factors = (auth.body.session as { authentication_factors: Record<string, unknown>[] }).authentication_factors
    expect(factors).toEqual([
      expect.objectContaining({
        type: 'otp',
        delivery_method: 'sms',
        phone_number_factor: { phone_id: body.phone_id, phone_number: job.phone_number },
      }),
    ])
  })

  it('keeps one user, one phone_id and one live code for a number across both channels', async () => {
    const project = await smsProject()
    const phone = freshPhone()
    const whatsapp = await issueCode(project, { phone_number: phone }, { deliver: false })
    const sms = await issueSms({ project, phoneNumber: phone })
    expect(sms.body).toMatchObject({ user_id: whatsapp.userId, phone_id: whatsapp.phoneId, user_created: false })
    // The SMS code replaced the WhatsApp one: the older code no longer logs in.
    expect((await authenticate(project, { method_id: whatsapp.phoneId, code: whatsapp.code })).status).toBe(401)
    expect((await authenticate(project, { method_id: sms.phoneId, code: sms.code })).status).toBe(200)
    const again = await issueCode(project, { phone_number: phone }, { deliver: false })
    const auth = await authenticate(project, {
      method_id: again.phoneId,
      code: again.code,
      session_duration_minutes: 60,
    })
    const factors = (auth.body.session as { authentication_factors: { delivery_method: string }[] })
      .authentication_factors
    expect(factors.map((f) => f.delivery_method)).toEqual(['whatsapp'])
  })

  it('delivers through the console provider to the outbox, with channel sms', async () => {
    const { job, code, project, phoneNumber } = await issueSms()
    const { result, ids } = await runQueue([job])
    expect(result.explicitAcks).toEqual(ids)
    for (const path of ['/dev/outbox', '/dev/whatsapp/outbox']) {
      const res = await callJson<{ messages: Record<string, unknown>[] }>(
        'GET',
        `${path}?phone_number=${phoneNumber}`,
        {
          project,
        },
      )
      expect(res.body.messages).toEqual([
        expect.objectContaining({
          id: job.id,
          channel: 'sms',
          code,
          text: `${code} is your verification code. For your security, do not share this code.`,
        }),
      ])
    }
  })

  it('ends the message with "@domain #code" when enable_autofill is set and the project names its domain', async () => {
    const project = await smsProject({ sms_autofill_domain: 'login.example.com' })
    const { job, code, phoneNumber } = await issueSms({ project, extra: { enable_autofill: true, locale: 'es' } })
    expect(job.autofill_domain).toBe('login.example.com')
    await runQueue([job])
    const res = await callJson<{ messages: { text: string }[] }>('GET', `/dev/outbox?phone_number=${phoneNumber}`, {
      project,
    })
    expect(res.body.messages[0]?.text).toBe(
      `${code} es tu código de verificación. Por tu seguridad, no lo compartas.\n\n@login.example.com #${code}`,
    )
    // Without enable_autofill the same project's SMS has no autofill line.
    const plain = await issueSms({ project })
    expect(plain.job).not.toHaveProperty('autofill_domain')
  })

  it('refuses enable_autofill without the project setting, changing nothing', async () => {
    const project = await smsProject()
    const before = await tableCounts(TABLES, { projectId: project.id })
    const res = await smsLogin(project, { phone_number: freshPhone(), enable_autofill: true })
    expectStytchError(res, 400, 'bad_request')
    expect(res.body.error_message).toContain('sms_autofill_domain')
    expect(await tableCounts(TABLES, { projectId: project.id })).toEqual(before)
  })

  it('validates like the WhatsApp route (fields, expiration, locale, enable_autofill type)', async () => {
    const project = await smsProject()
    expectStytchError(await smsLogin(project, { phone_number: '12345' }), 400, 'invalid_phone_number')
    expectStytchError(
      await smsLogin(project, { phone_number: freshPhone(), expiration_minutes: 11 }),
      400,
      'invalid_expiration_otp',
    )
    expectStytchError(await smsLogin(project, { phone_number: freshPhone(), locale: 'de' }), 400, 'invalid_locale')
    expectStytchError(
      await smsLogin(project, { phone_number: freshPhone(), enable_autofill: 'yes' }),
      400,
      'bad_request',
    )
    expect((await smsLogin(project, { phone_number: freshPhone(), enable_autofill: null })).status).toBe(200)
  })

  it('applies sms_allowed_countries, separate from allowed_countries (default US and CA)', async () => {
    const project = await smsProject()
    const before = await tableCounts(TABLES, { projectId: project.id })
    // allowed_countries is "*" here, so WhatsApp may go to the UK; SMS keeps its default.
    const uk = '+447400123456'
    expectStytchError(await smsLogin(project, { phone_number: uk }), 400, 'invalid_phone_number_country_code')
    expect(await tableCounts(TABLES, { projectId: project.id })).toEqual(before)
    expect((await issueCode(project, { phone_number: uk }, { deliver: false })).status).toBe(200)
    const wide = await smsProject({ sms_allowed_countries: ['US', 'GB'] })
    expect((await smsLogin(wide, { phone_number: uk })).status).toBe(200)
    expect((await smsLogin(wide, { phone_number: '+5511987654321' })).status).toBe(400)
  })

  it('applies sms_allowed_line_types: toll-free and premium-rate numbers get no SMS', async () => {
    const project = await smsProject({ allowed_line_types: '*' })
    const tollFree = '+18005550123'
    const res = await smsLogin(project, { phone_number: tollFree })
    expectStytchError(res, 400, 'invalid_phone_number')
    expect(res.body.error_message).toContain('sms_allowed_line_types')
    const open = await smsProject({ sms_allowed_line_types: '*' })
    expect((await smsLogin(open, { phone_number: tollFree })).status).toBe(200)
  })

  it('answers 503 and writes nothing on a deployment without an SMS provider', async () => {
    const project = await smsProject()
    const before = await tableCounts(TABLES, { projectId: project.id })
    const none = { ...env, SMS_PROVIDER: 'none' }
    for (const route of [smsLogin, smsSend]) {
      const res = await route(project, { phone_number: freshPhone() }, none)
      expectStytchError(res, 503, 'service_unavailable')
      expect(res.body.error_message).toContain('SMS_PROVIDER')
    }
    expect(await tableCounts(TABLES, { projectId: project.id })).toEqual(before)
  })

  it('shares the per-phone limits with WhatsApp: the cooldown holds across channels', async () => {
    const project = await smsProject({ phone_send_cooldown_seconds: 30 })
    const phone = freshPhone()
    expect((await issueCode(project, { phone_number: phone }, { deliver: false })).status).toBe(200)
    expectStytchError(await smsLogin(project, { phone_number: phone }), 429, 'too_many_requests')
  })

  it('gives the sandbox number a stable user and no message, in test projects', async () => {
    const project = await smsProject()
    const sent: unknown[] = []
    const res = await callJson('POST', '/v1/otps/sms/login_or_create', {
      project,
      body: { phone_number: '+10000000000' },
      env: { ...env, WHATSAPP_QUEUE: capturingQueue(sent) },
    })
    expect(res.status).toBe(200)
    expect(sent).toEqual([])
    expect((await authenticate(project, { method_id: res.body.phone_id, code: '000000' })).status).toBe(200)
  })
})

describe('POST /v1/otps/sms/send', () => {
  it("sends to a user's number and attaches a new one with user_id, as on WhatsApp", async () => {
    const project = await smsProject()
    const first = await issueSms({ project })
    const again = await issueCode(project, { phone_number: first.phoneNumber }, { channel: 'sms', path: 'send' })
    expect(Object.keys(again.body).sort()).toEqual(['phone_id', 'request_id', 'status_code', 'user_id'])
    expect(again.body).toMatchObject({ user_id: first.userId, phone_id: first.phoneId })
    expect(again.job.channel).toBe('sms')

    const other = freshPhone()
    const attached = await issueCode(
      project,
      { phone_number: other, user_id: first.userId },
      { channel: 'sms', path: 'send', deliver: false },
    )
    expect(attached.body.user_id).toBe(first.userId)
    expect((await authenticate(project, { method_id: attached.phoneId, code: attached.code })).status).toBe(200)

    expectStytchError(await smsSend(project, { phone_number: freshPhone() }), 404, 'phone_number_not_found')
  })

  it('keeps the attach rule: an unverified attachment does not receive the number owner’s SMS login', async () => {
    const project = await smsProject()
    const attacker = await issueSms({ project })
    const victimPhone = freshPhone()
    await issueCode(
      project,
      { phone_number: victimPhone, user_id: attacker.userId },
      { channel: 'sms', path: 'send', deliver: false },
    )
    const victim = await issueSms({ project, phoneNumber: victimPhone })
    expect(victim.body.user_id).not.toBe(attacker.userId)
    expect(victim.body.user_created).toBe(true)
  })
})

describe('SMS delivery through Twilio', () => {
  let fetchSpy: MockInstance<typeof fetch>

  it('sends the same code the route issued, and the gate counts a wrong guess as usual', async () => {
    fetchSpy = vi.spyOn(globalThis, 'fetch').mockResolvedValue(twilioCreated('SM0123456789abcdef0123456789abcdef'))
    const project = await smsProject({ ...SMS_TEST_SETTINGS })
    const { job, code, phoneId } = await issueSms({ project })
    await runQueue([job], { env: twilioEnv() })
    expect(twilioForm(fetchSpy.mock.calls[0]?.[1]).get('Body')).toContain(code)
    expect((await authenticate(project, { method_id: phoneId, code: wrong(code) })).status).toBe(404)
    expect(await dbGate(phoneId)).toMatchObject({ attempts: 1 })
    expect((await authenticate(project, { method_id: phoneId, code })).status).toBe(200)
  })
})
