import * as z from 'zod'
import { bytesEqual, fromHex, hmacSha256, sha256 } from '../crypto'
import type { StatusEvent } from '../delivery/deliveries'
import { shardOfCallbackData } from '../delivery/provider'

/**
 * Meta's webhook: the X-Hub-Signature-256 check, the message status events it carries, and the
 * notices an operator must see: template status changes (field `message_template_status_update`)
 * and errors Meta reports for the account rather than for one message (top-level `value.errors`).
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
  // Whatever it holds, a status is still applied: a value not ours routes nowhere in particular.
  biz_opaque_callback_data: z.unknown().optional(),
})

// Only the path to statuses[] is required; any other field or event type Meta adds is ignored.
const Payload = z.object({
  entry: z.array(
    z.object({
      changes: z.array(z.object({ value: z.object({ statuses: z.array(z.unknown()).optional() }).optional() })),
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
        const event: StatusEvent = { messageId: item.data.id, status: item.data.status, errorCode }
        // The shard the send recorded (src/whatsapp/meta.ts), for routing the status to it.
        const callback = item.data.biz_opaque_callback_data
        const shard = typeof callback === 'string' ? shardOfCallbackData(callback) : undefined
        if (shard !== undefined) event.shard = shard
        events.push(event)
      }
    }
  }
  return events
}

/** A notice from the webhook that concerns the account or the template, not one message. */
export type WebhookNotice =
  | { kind: 'template_status'; event: string; template: string; language: string; reason: string }
  | { kind: 'error'; errorCode: number }

// Only labels leave this module: Meta's free texts (titles, messages, other_info) are never read.
const Label = (max: number) =>
  z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/)
    .max(max)
const TemplateStatus = z.object({
  event: z.string().regex(/^[A-Z_]{1,40}$/),
  message_template_name: Label(512).optional(),
  message_template_language: Label(16).optional(),
  reason: z.string().optional(),
})
const ErrorItem = z.object({ code: z.number().int() })
const Changes = z.object({
  entry: z.array(
    z.object({ changes: z.array(z.object({ field: z.string().optional(), value: z.unknown().optional() })) }),
  ),
})

/**
 * Template status updates and account-level errors in a webhook payload. A template update needs
 * the subscription to the `message_template_status_update` field in the Meta app; errors arrive on
 * the `messages` field beside (or instead of) statuses.
 */
export function webhookNotices(payload: unknown): WebhookNotice[] {
  const parsed = Changes.safeParse(payload)
  if (!parsed.success) return []
  const notices: WebhookNotice[] = []
  for (const entry of parsed.data.entry) {
    for (const change of entry.changes) {
      if (change.field === 'message_template_status_update') {
        const update = TemplateStatus.safeParse(change.value)
        if (!update.success) continue
        const reason = update.data.reason ?? ''
        notices.push({
          kind: 'template_status',
          event: update.data.event,
          template: update.data.message_template_name ?? '',
          language: update.data.message_template_language ?? '',
          // Meta's reason is an upper-case label (NONE, INCORRECT_CATEGORY, …); anything else is dropped.
          reason: /^[A-Z_]{1,64}$/.test(reason) ? reason : '',
        })
        continue
      }
      const errors = z.object({ errors: z.array(z.unknown()) }).safeParse(change.value)
      for (const raw of errors.success ? errors.data.errors : []) {
        const item = ErrorItem.safeParse(raw)
        if (item.success) notices.push({ kind: 'error', errorCode: item.data.code })
      }
    }
  }
  return notices
}

/**
 * Template states after which codes stop going out (or soon will): each needs a human. APPROVED,
 * PENDING, IN_APPEAL and REINSTATED are only logged.
 */
export const ALERTING_TEMPLATE_EVENTS: ReadonlySet<string> = new Set([
  'PAUSED',
  'DISABLED',
  'REJECTED',
  'FLAGGED',
  'PENDING_DELETION',
  'DELETED',
  'LOCKED',
])
