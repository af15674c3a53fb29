import type { OutboxMessage } from '../db/dev-outbox'
import type { Locale } from '../schemas'
import type { Channel } from './job'

/** What a provider needs to deliver one code. `code` is plaintext only inside the consumer. */
export interface OutgoingCode {
  deliveryId: string
  /** The project the code was issued for (its id carries the test/live environment). */
  projectId: string
  /** E.164 with '+'. */
  phoneNumber: string
  locale: Locale
  code: string
  expiresAt: number
  /** SMS only: the domain of the `@domain #code` autofill line, or null for none. */
  autofillDomain: string | null
  /**
   * The D1 shard holding the delivery's row. A provider that carries data back in its status
   * callbacks is given it (shardCallbackData), so the webhook updates that shard alone.
   */
  shard: number
}

/**
 * The callback data a send carries for its status webhooks: Meta's biz_opaque_callback_data, the
 * `shard` query parameter of Twilio's StatusCallback URL (which Twilio signs with the rest of the URL).
 */
export function shardCallbackData(shard: number): string {
  return `shard=${shard}`
}

/**
 * The shard a status callback names: Meta's callback data as shardCallbackData wrote it, or the query
 * string of the URL Twilio called; undefined when it names none (a message sent before shards).
 */
export function shardOfCallbackData(value: string | null | undefined): number | undefined {
  const raw = new URLSearchParams(value ?? '').get('shard')
  return raw !== null && /^[0-9]{1,4}$/.test(raw) ? Number(raw) : undefined
}

/** A status the provider already knows it will report for a message it accepted (the console's). */
export interface ReportedStatus {
  status: 'failed'
  errorCode: number
}

/**
 * The outcome of one send attempt, decided by the provider:
 * - `sent`: accepted; `messageId` links the provider's status callbacks back to the delivery (Meta's
 *   wamid, Twilio's message SID; null for the console). `reported`: a status the provider reports for
 *   it at once, applied exactly as the same status from a webhook would be. `outbox`: the local
 *   development outbox entry of a console delivery, written in the transaction that records the
 *   delivery sent, so a delivery costs the consumer two transactions whatever the provider.
 * - `retry`: transient (rate limit, outage, network); try again no sooner than `minDelaySeconds`.
 * - `failed`: permanent for this message; `alert` marks failures an operator must fix (credentials,
 *   template, account, sender), as opposed to ones caused by the recipient; `fallback` marks a
 *   recipient that cannot receive on this channel at all (not on WhatsApp), for whom a project may
 *   fall back to SMS.
 * `errorCode` is the provider's error code when there was one; `detail` is our label, safe to store and log.
 */
export type SendResult =
  | { kind: 'sent'; messageId: string | null; reported?: ReportedStatus; outbox?: OutboxMessage }
  | { kind: 'retry'; errorCode: number | null; detail: string; minDelaySeconds: number }
  | { kind: 'failed'; errorCode: number | null; detail: string; alert: boolean; fallback?: boolean }

/** Delivers codes on one channel. Every answer of the provider is classified; only a local failure (D1) throws. */
export interface DeliveryProvider {
  /** Stored in deliveries.provider. */
  readonly name: string
  readonly channel: Channel
  send(message: OutgoingCode): Promise<SendResult>
}

/**
 * Stands in for a provider whose configuration is missing or invalid: every send fails permanently
 * with an alert, so a misconfigured deploy shows up as failed deliveries and loud logs instead of a
 * queue that retries into the dead-letter queue.
 */
export function unconfiguredProvider(name: string, channel: Channel): DeliveryProvider {
  return {
    name,
    channel,
    async send() {
      return { kind: 'failed', errorCode: null, detail: 'provider_not_configured', alert: true }
    },
  }
}

/** How a provider's error code is handled: retried (no sooner than minDelaySeconds) or final. */
export interface ErrorRule {
  retry: boolean
  label: string
  /** Retries wait at least this long (Meta 131056: one message per 6 s to the same user). */
  minDelaySeconds?: number
  /** Permanent and caused by our side (credentials, template, account, sender): an operator has to act. */
  alert?: boolean
  /** The recipient cannot receive on this channel at all: a project may fall back to SMS. */
  fallback?: boolean
}

/**
 * The SendResult of a provider error with `rule`; undefined is a code missing from the provider's
 * table, labelled `unknownLabel` (meta_error, twilio_error).
 */
export function resultOfRule(
  code: number,
  rule: ErrorRule | undefined,
  httpStatus: number,
  unknownLabel: string,
): Exclude<SendResult, { kind: 'sent' }> {
  if (rule?.retry) {
    return { kind: 'retry', errorCode: code, detail: rule.label, minDelaySeconds: rule.minDelaySeconds ?? 0 }
  }
  if (rule) {
    const failed = { kind: 'failed' as const, errorCode: code, detail: rule.label, alert: rule.alert ?? false }
    return rule.fallback ? { ...failed, fallback: true } : failed
  }
  // A code missing from the table: only an outage status makes it worth another try.
  if (httpStatus >= 500) return { kind: 'retry', errorCode: code, detail: unknownLabel, minDelaySeconds: 0 }
  return { kind: 'failed', errorCode: code, detail: unknownLabel, alert: true }
}

/** A reply without a readable error code, classified by its HTTP status alone. */
export function resultOfStatus(httpStatus: number): Exclude<SendResult, { kind: 'sent' }> {
  if (httpStatus >= 500 || httpStatus === 429 || httpStatus === 408) {
    return { kind: 'retry', errorCode: null, detail: `http_${httpStatus}`, minDelaySeconds: 0 }
  }
  return { kind: 'failed', errorCode: null, detail: `http_${httpStatus}`, alert: true }
}

/** Calls a provider's API with a timeout: the HTTP status and the body's text, or how it failed. */
export async function callProvider(
  fetchFn: typeof fetch,
  url: string,
  init: RequestInit,
  timeoutMs: number,
): Promise<{ status: number; body: unknown } | Exclude<SendResult, { kind: 'sent' }>> {
  try {
    const res = await fetchFn(url, { ...init, signal: AbortSignal.timeout(timeoutMs) })
    const text = await res.text()
    return { status: res.status, body: parseJson(text) }
  } catch (err) {
    // Ambiguous: the provider may have accepted it. A retry sends the same code, so a duplicate is harmless.
    const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')
    return { kind: 'retry', errorCode: null, detail: timedOut ? 'timeout' : 'network_error', minDelaySeconds: 0 }
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}
