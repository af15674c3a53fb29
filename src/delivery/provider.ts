import type { Locale } from '../schemas'

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
}

/**
 * The outcome of one send attempt, decided by the provider:
 * - `sent`: accepted; `wamid` links Meta's status webhooks back to the delivery (null for console).
 * - `retry`: transient (rate limit, outage, network); try again no sooner than `minDelaySeconds`.
 * - `failed`: permanent for this message; `alert` marks failures an operator must fix (token,
 *   template, account), as opposed to ones caused by the recipient.
 * `errorCode` is Meta's `error.code` when there was one; `detail` is our label, safe to store and log.
 */
export type SendResult =
  | { kind: 'sent'; wamid: string | null }
  | { kind: 'retry'; errorCode: number | null; detail: string; minDelaySeconds: number }
  | { kind: 'failed'; errorCode: number | null; detail: string; alert: boolean }

/** Delivers one code. Every answer of the provider is classified; only a local failure (D1) throws. */
export interface WhatsAppProvider {
  /** Stored in deliveries.provider. */
  readonly name: string
  send(message: OutgoingCode): Promise<SendResult>
}

/**
 * Stands in for a provider whose configuration is missing or invalid: every send fails permanently
 * with an alert, so a misconfigured deploy shows up as failed deliveries and loud logs instead of a
 * queue that retries into the dead-letter queue.
 */
export function unconfiguredProvider(name: string): WhatsAppProvider {
  return {
    name,
    async send() {
      return { kind: 'failed', errorCode: null, detail: 'provider_not_configured', alert: true }
    },
  }
}
