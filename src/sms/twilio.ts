import * as z from 'zod'
import { now } from '../clock'
import { httpsUrl, TWILIO_API_ORIGIN, TWILIO_PATTERNS, twilioSender } from '../config'
import {
  callProvider,
  type DeliveryProvider,
  type ErrorRule,
  type OutgoingCode,
  resultOfRule,
  resultOfStatus,
  type SendResult,
  shardCallbackData,
} from '../delivery/provider'
import { smsText } from '../delivery/text'

/**
 * The Twilio Programmable Messaging provider: one SMS per code,
 * `POST https://api.twilio.com/2010-04-01/Accounts/<AccountSid>/Messages.json`, form-encoded, HTTP
 * Basic with the account SID and auth token (or an API key SID and secret). Errors are classified by
 * Twilio's error `code`, as Meta's are.
 */

/** Twilio answers in well under a second; past this the attempt is retried (the same code, harmless). */
const TWILIO_TIMEOUT_MS = 10_000
/** Twilio's longest ValidityPeriod (seconds a message may wait in Twilio's queue). */
const MAX_VALIDITY_SECONDS = 36_000

/** The provider's configuration, checked by twilioConfig(). */
export interface TwilioConfig {
  accountSid: string
  /** The HTTP Basic user and password of the REST API: the account SID and auth token, or an API key. */
  username: string
  password: string
  sender: { From: string } | { MessagingServiceSid: string }
  statusCallbackUrl: string | null
}

/**
 * Reads and checks the provider's configuration. Values end up in a URL, a form and a credential,
 * so each is held to its documented shape; the reason names the variable but never its value.
 */
export function twilioConfig(env: Env): { ok: true; config: TwilioConfig } | { ok: false; reason: string } {
  const accountSid = (env.TWILIO_ACCOUNT_SID ?? '').trim()
  if (!TWILIO_PATTERNS.accountSid.test(accountSid)) {
    return { ok: false, reason: 'TWILIO_ACCOUNT_SID must be AC followed by 32 hex digits' }
  }
  const authToken = (env.TWILIO_AUTH_TOKEN ?? '').trim()
  if (!TWILIO_PATTERNS.authToken.test(authToken)) {
    return { ok: false, reason: 'TWILIO_AUTH_TOKEN must be set (32 hex digits)' }
  }
  const sender = twilioSender(env.TWILIO_SENDER)
  if (!sender) return { ok: false, reason: 'TWILIO_SENDER must be an E.164 number or a Messaging Service SID' }
  const apiKeySid = (env.TWILIO_API_KEY_SID ?? '').trim()
  const apiKeySecret = (env.TWILIO_API_KEY_SECRET ?? '').trim()
  if (apiKeySid || apiKeySecret) {
    if (!TWILIO_PATTERNS.apiKeySid.test(apiKeySid) || !TWILIO_PATTERNS.apiKeySecret.test(apiKeySecret)) {
      return { ok: false, reason: 'TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET must be set together and well-formed' }
    }
  }
  const callback = (env.TWILIO_STATUS_CALLBACK_URL ?? '').trim()
  if (callback && httpsUrl(callback)) {
    return { ok: false, reason: 'TWILIO_STATUS_CALLBACK_URL must be an https URL' }
  }
  return {
    ok: true,
    config: {
      accountSid,
      username: apiKeySid || accountSid,
      password: apiKeySid ? apiKeySecret : authToken,
      sender,
      statusCallbackUrl: callback || null,
    },
  }
}

/**
 * The StatusCallback of one message: TWILIO_STATUS_CALLBACK_URL with the shard of its delivery row as
 * the `shard` query parameter (shardCallbackData), so its callbacks update that shard alone. Twilio
 * signs the URL it calls, query included, so the parameter cannot be altered on the way.
 */
export function statusCallbackUrl(base: string, shard: number): string {
  const url = new URL(base)
  for (const [name, value] of new URLSearchParams(shardCallbackData(shard))) url.searchParams.set(name, value)
  return url.toString()
}

/**
 * The exact REST request for one code. ValidityPeriod is the code's remaining lifetime: Twilio drops
 * a message still waiting in its queue once the code it carries could no longer log in.
 */
export function buildTwilioRequest(
  config: TwilioConfig,
  message: OutgoingCode,
  at: number = now(),
): { url: string; init: RequestInit } {
  const form = new URLSearchParams({
    To: message.phoneNumber,
    Body: smsText(message.locale, message.code, message.autofillDomain),
    ...config.sender,
    ValidityPeriod: String(Math.min(MAX_VALIDITY_SECONDS, Math.max(1, Math.ceil((message.expiresAt - at) / 1000)))),
  })
  if (config.statusCallbackUrl) form.set('StatusCallback', statusCallbackUrl(config.statusCallbackUrl, message.shard))
  return {
    url: `${TWILIO_API_ORIGIN}/2010-04-01/Accounts/${config.accountSid}/Messages.json`,
    init: {
      method: 'POST',
      headers: {
        Authorization: `Basic ${btoa(`${config.username}:${config.password}`)}`,
        'Content-Type': 'application/x-www-form-urlencoded',
      },
      body: form.toString(),
    },
  }
}

/**
 * Twilio's error `code` → what to do, for the REST API's synchronous errors and the ErrorCode of a
 * failed or undelivered status callback alike. Twilio's codes name the cause exactly, so the code
 * decides, as for Meta; the HTTP status is used only when a reply carries no code.
 * - retried: Twilio's own overload and outages (20429, 20500, 20503) and a sender queue that is full
 *   for now (21611, at least 10 s later);
 * - failed, the recipient's side (no alert): a number that is invalid, not SMS-capable, a landline or
 *   short code, unreachable or unknown to the carrier, blocked, or opted out with STOP (21610);
 * - failed with an alert, our side: credentials and account (20003, 20404, 30002), the sender and
 *   Messaging Service (21212, 21606, 21660, 21703, 21704), region permissions (21408), a trial account
 *   (21608), request bugs (21602-21604, 21617), carrier filtering and US registration or caps (30007,
 *   30010, 30022, 30023, 30032, 30034, 63038) and queue overflow reported afterwards (30001). A code
 *   missing here fails with an alert (retried if the HTTP status is 5xx).
 */
export const TWILIO_ERROR_RULES: Readonly<Record<number, ErrorRule>> = {
  20429: { retry: true, label: 'twilio_rate_limit' },
  20500: { retry: true, label: 'twilio_internal_error' },
  20503: { retry: true, label: 'twilio_service_unavailable' },
  21611: { retry: true, label: 'sender_queue_full', minDelaySeconds: 10 },
  21211: { retry: false, label: 'invalid_to_number' },
  21265: { retry: false, label: 'to_is_short_code' },
  21601: { retry: false, label: 'not_sms_capable' },
  21610: { retry: false, label: 'recipient_unsubscribed' },
  21612: { retry: false, label: 'unreachable_via_sms' },
  21614: { retry: false, label: 'not_a_mobile_number' },
  21635: { retry: false, label: 'to_is_landline' },
  30003: { retry: false, label: 'unreachable_handset' },
  30004: { retry: false, label: 'message_blocked' },
  30005: { retry: false, label: 'unknown_handset' },
  30006: { retry: false, label: 'landline_or_unreachable_carrier' },
  30008: { retry: false, label: 'carrier_unknown_error' },
  20003: { retry: false, label: 'twilio_authentication_failed', alert: true },
  20404: { retry: false, label: 'twilio_resource_not_found', alert: true },
  21212: { retry: false, label: 'invalid_from_number', alert: true },
  21408: { retry: false, label: 'region_not_enabled', alert: true },
  21602: { retry: false, label: 'body_required', alert: true },
  21603: { retry: false, label: 'from_required', alert: true },
  21604: { retry: false, label: 'to_required', alert: true },
  21606: { retry: false, label: 'from_not_sms_capable', alert: true },
  21608: { retry: false, label: 'trial_unverified_recipient', alert: true },
  21617: { retry: false, label: 'body_too_long', alert: true },
  21660: { retry: false, label: 'from_account_mismatch', alert: true },
  21703: { retry: false, label: 'messaging_service_no_sender', alert: true },
  21704: { retry: false, label: 'messaging_service_empty', alert: true },
  30001: { retry: false, label: 'queue_overflow', alert: true },
  30002: { retry: false, label: 'account_suspended', alert: true },
  30007: { retry: false, label: 'carrier_filtered', alert: true },
  30010: { retry: false, label: 'price_exceeds_max', alert: true },
  30022: { retry: false, label: 'us_a2p_rate_limit', alert: true },
  30023: { retry: false, label: 'us_a2p_daily_cap', alert: true },
  30032: { retry: false, label: 'toll_free_unverified', alert: true },
  30034: { retry: false, label: 'us_a2p_unregistered', alert: true },
  63038: { retry: false, label: 'account_daily_limit', alert: true },
}

export function twilioErrorRule(code: number): ErrorRule | undefined {
  return TWILIO_ERROR_RULES[code]
}

const TwilioErrorBody = z.object({ code: z.number().int() })
const TwilioSuccessBody = z.object({ sid: z.string().regex(/^(SM|MM)[0-9a-f]{32}$/) })

/** Classifies a non-2xx REST reply by Twilio's `code`, falling back to the HTTP status without one. */
export function classifyTwilioError(httpStatus: number, body: unknown): Exclude<SendResult, { kind: 'sent' }> {
  const parsed = TwilioErrorBody.safeParse(body)
  if (!parsed.success) return resultOfStatus(httpStatus)
  const code = parsed.data.code
  return resultOfRule(code, twilioErrorRule(code), httpStatus, 'twilio_error')
}

/** The Twilio provider over an injectable `fetch` (tests mock the REST API at this boundary). */
export function twilioProvider(config: TwilioConfig, fetchFn: typeof fetch): DeliveryProvider {
  return {
    name: 'twilio',
    channel: 'sms',
    async send(message) {
      const { url, init } = buildTwilioRequest(config, message)
      const reply = await callProvider(fetchFn, url, init, TWILIO_TIMEOUT_MS)
      if ('kind' in reply) return reply
      if (reply.status >= 200 && reply.status < 300) {
        const ok = TwilioSuccessBody.safeParse(reply.body)
        // Accepted without a readable SID: still sent (resending would duplicate), just untrackable.
        return { kind: 'sent', messageId: ok.success ? ok.data.sid : null }
      }
      return classifyTwilioError(reply.status, reply.body)
    },
  }
}
