import * as z from 'zod'
import { bytesEqual, fromHex, hmacSha256, sha256 } from '../crypto'
import type { StatusEvent } from './deliveries'

/**
 * Meta's webhook: the X-Hub-Signature-256 check and the status events it carries
 * (shared/docs/platform.md §1.7).
 */

const SIGNATURE = /^sha256=([0-9a-f]{64})$/i

/**
 * True when `header` is `sha256=<hex>` of HMAC-SHA-256(app secret, raw body bytes). The body must be
 * the bytes as received: Meta signs its own serialisation, which a re-encoded JSON would not match.
 */
export async function verifySignature(
  appSecret: string,
  rawBody: Uint8Array,
  header: string | undefined,
): Promise<boolean> {
  const match = header ? SIGNATURE.exec(header.trim()) : null
  const presented = match?.[1] ? fromHex(match[1]) : null
  if (!presented) return false
  return bytesEqual(await hmacSha256(appSecret, rawBody), presented)
}

/** Constant-time equality of two strings of any length (compares their SHA-256 digests). */
export async function secretEquals(a: string, b: string): Promise<boolean> {
  const [da, db] = await Promise.all([sha256(a), sha256(b)])
  return bytesEqual(da, db)
}

const StatusItem = z.object({
  id: z.string().min(1).max(256),
  status: z.enum(['sent', 'delivered', 'read', 'failed']),
  errors: z.array(z.object({ code: z.number().int() })).optional(),
})

// Only the path to statuses[] is required; any other field or event type Meta adds is ignored.
const Payload = z.object({
  entry: z.array(
    z.object({
      changes: z.array(
        z.object({ value: z.object({ statuses: z.array(z.unknown()).optional() }).optional() }),
      ),
    }),
  ),
})

/**
 * The status events in a webhook payload. Other notifications (inbound messages, account updates)
 * and statuses this service does not track yield nothing rather than an error, since Meta would
 * otherwise keep redelivering them.
 */
export function statusEvents(payload: unknown): StatusEvent[] {
  const parsed = Payload.safeParse(payload)
  if (!parsed.success) return []
  const events: StatusEvent[] = []
  for (const entry of parsed.data.entry) {
    for (const change of entry.changes) {
      for (const raw of change.value?.statuses ?? []) {
        const item = StatusItem.safeParse(raw)
        if (!item.success) continue
        const errorCode = item.data.errors?.[0]?.code ?? null
        events.push({ wamid: item.data.id, status: item.data.status, errorCode })
      }
    }
  }
  return events
}
