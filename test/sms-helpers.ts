import { env } from 'cloudflare:workers'
import { expect } from 'vitest'
import { hmacSha1 } from '../src/crypto'
import { signedText } from '../src/sms/webhook'
import { callJson, issueCode, newProject, type TestProject } from './helpers'
import { freshPhone, metaEnv } from './whatsapp-helpers'

/**
 * Helpers for the SMS tests: Twilio mocked at the fetch boundary, its status callbacks signed as
 * Twilio signs them, and projects that send SMS.
 */

/** The test bindings with Twilio selected for SMS and Meta for WhatsApp (both mocked at fetch). */
export const twilioEnv = (overrides: Partial<Env> = {}): Env => metaEnv({ SMS_PROVIDER: 'twilio', ...overrides })

/** Settings that keep the non-SMS limits out of the way of SMS tests (the SMS ones keep their defaults). */
export const SMS_TEST_SETTINGS = {
  phone_send_cooldown_seconds: 0,
  phone_sends_per_hour: 1_000,
  phone_sends_per_day: 10_000,
  allowed_countries: '*',
}

/** A fresh project for SMS tests; `settings` go over SMS_TEST_SETTINGS. */
export const smsProject = (settings: Record<string, unknown> = {}) =>
  newProject('test', { ...SMS_TEST_SETTINGS, ...settings })

/** A Twilio REST reply. */
export function twilioReply(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } })
}

let sidCounter = 0

/** A Twilio message SID (SM + 32 hex), different on every call. */
export function messageSid(): string {
  sidCounter += 1
  return `SM${sidCounter.toString(16).padStart(32, '0')}`
}

/** Twilio's 201 for a created message. */
export const twilioCreated = (sid: string) =>
  twilioReply(201, {
    sid,
    status: 'queued',
    to: '+12025550100',
    from: env.TWILIO_SENDER,
    body: 'redacted',
    error_code: null,
    error_message: null,
  })

/** Twilio's error reply. */
export const twilioError = (status: number, code: number) =>
  twilioReply(status, {
    code,
    message: `error ${code}`,
    more_info: `https://www.twilio.com/docs/errors/${code}`,
    status,
  })

/** X-Twilio-Signature for `url` and `params`, as Twilio computes it with the account's auth token. */
export async function signTwilio(
  url: string,
  params: URLSearchParams,
  token: string = env.TWILIO_AUTH_TOKEN ?? '',
): Promise<string> {
  const mac = await hmacSha1(token, signedText(url, params))
  return btoa(String.fromCharCode(...mac))
}

export const TWILIO_CALLBACK = 'http://localhost/v1/webhooks/twilio'

/** Posts a signed Twilio status callback for `sid` to the Worker. */
export async function postTwilioStatus(
  sid: string,
  status: string,
  options: { errorCode?: number; env?: Env; signature?: string } = {},
) {
  const params = new URLSearchParams({
    SmsSid: sid,
    SmsStatus: status,
    MessageSid: sid,
    MessageStatus: status,
    AccountSid: env.TWILIO_ACCOUNT_SID,
    From: env.TWILIO_SENDER,
    To: '+12025550100',
    ApiVersion: '2010-04-01',
  })
  if (options.errorCode !== undefined) params.set('ErrorCode', String(options.errorCode))
  const signature = options.signature ?? (await signTwilio(TWILIO_CALLBACK, params))
  return callJson('POST', '/v1/webhooks/twilio', {
    project: null,
    rawBody: params.toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-twilio-signature': signature },
    ...(options.env ? { env: options.env } : {}),
  })
}

/** Issues an SMS code through the real SMS route (captured, not queued) and returns it with its job. */
export async function issueSms(
  options: { project?: TestProject; phoneNumber?: string; extra?: Record<string, unknown> } = {},
) {
  const project = options.project ?? (await smsProject())
  const phoneNumber = options.phoneNumber ?? freshPhone()
  const issued = await issueCode(
    project,
    { phone_number: phoneNumber, ...options.extra },
    { channel: 'sms', deliver: false },
  )
  expect(issued.job.channel).toBe('sms')
  return { ...issued, project, phoneNumber }
}

/** The form body of a Twilio Messages.json call the fetch spy saw. */
export function twilioForm(init: RequestInit | undefined): URLSearchParams {
  return new URLSearchParams(String(init?.body ?? ''))
}
