import { bytesEqual, fromBase64, hmacSha1 } from '../crypto'
import type { StatusEvent } from '../delivery/deliveries'

/**
 * Twilio's status callback: the X-Twilio-Signature check and the delivery status it carries.
 *
 * Twilio signs each request with the account's auth token: Base64(HMAC-SHA1(auth token, the full URL
 * it called followed by every POST parameter sorted by name, each name immediately followed by its
 * value)). The URL is the one the request was made to, query string included.
 */

/** The string Twilio signs: the URL, then each parameter as name + value, sorted by name (then value). */
export function signedText(url: string, params: URLSearchParams): string {
  const pairs = [...params.entries()].sort(([a, x], [b, y]) => (a === b ? compare(x, y) : compare(a, b)))
  return url + pairs.map(([name, value]) => name + value).join('')
}

const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

/** True when `header` is Twilio's signature of `url` and `params` under `authToken`, compared in constant time. */
export async function verifyTwilioSignature(
  authToken: string,
  url: string,
  params: URLSearchParams,
  header: string | undefined,
): Promise<boolean> {
  const presented = header ? fromBase64(header.trim()) : null
  if (!presented) return false
  return bytesEqual(await hmacSha1(authToken, signedText(url, params)), presented)
}

// Twilio's MessageStatus values → the delivery statuses they move a row to. queued, sending, sent and
// accepted say no more than the send's own reply did; the rest (scheduled, receiving, read of other
// channels) do not occur for our SMS and are ignored.
const STATUSES: Readonly<Record<string, StatusEvent['status']>> = {
  delivered: 'delivered',
  undelivered: 'failed',
  failed: 'failed',
  canceled: 'failed',
}

/**
 * The status event in a callback's parameters, or null when it is not one this service records.
 * Twilio's ErrorCode is kept only when it is a number; its free texts are never read.
 */
export function twilioStatusEvent(params: URLSearchParams): StatusEvent | null {
  const messageId = params.get('MessageSid') ?? params.get('SmsSid') ?? ''
  const status = STATUSES[params.get('MessageStatus') ?? params.get('SmsStatus') ?? '']
  if (!/^(SM|MM)[0-9a-f]{32}$/.test(messageId) || !status) return null
  const code = params.get('ErrorCode') ?? ''
  const errorCode = status === 'failed' && /^[0-9]{1,9}$/.test(code) ? Number(code) : null
  return { messageId, status, errorCode }
}
