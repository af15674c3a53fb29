import * as z from 'zod'
import { LOCALES } from '../schemas'

/** The channels a code goes out on. */
export const CHANNELS = ['whatsapp', 'sms'] as const
export type Channel = (typeof CHANNELS)[number]

/**
 * A delivery job on the delivery queue (WHATSAPP_QUEUE, which carries both channels). `id` is the
 * delivery's id (deliveries.id) and its idempotency key: the code_id of the code it carries, except
 * for an SMS fallback, whose delivery row names its code. The code itself travels only encrypted
 * (AES-256-GCM, key CODE_ENCRYPTION_KEY, additional data `jobAad(job)`), and is decrypted only in
 * the consumer (and, for a fallback, where the fallback is decided).
 *
 * `channel` is absent from jobs queued before SMS existed: they are WhatsApp jobs. `fallback`
 * marks a WhatsApp job of a project whose whatsapp_fallback is 'sms'; `autofill_domain` an SMS job
 * whose message ends with the `@domain #code` autofill line; `country` the destination region.
 * `start_fallback` marks a WhatsApp job whose message Meta reported undeliverable (error_code) while
 * its project was paused by a move between shards: the consumer does not send it again but starts its
 * SMS fallback (src/delivery/fallback.ts).
 */
export const DeliveryJobSchema = z.object({
  v: z.literal(1),
  id: z.string().min(1),
  project_id: z.string().min(1),
  phone_id: z.string().min(1),
  phone_number: z.string().min(1),
  locale: z.enum(LOCALES),
  expires_at: z.number().int(),
  code: z.object({ iv: z.string().min(1), ct: z.string().min(1) }),
  channel: z.enum(CHANNELS).default('whatsapp'),
  fallback: z.literal('sms').optional(),
  autofill_domain: z.string().min(1).max(253).optional(),
  /**
   * The destination region (sendCountry) as the issue computed it, for the metrics' country: the
   * consumer does not parse the number again. Absent from jobs queued before it was carried.
   */
  country: z.string().min(1).max(3).optional(),
  start_fallback: z.object({ error_code: z.number().int().nullable() }).optional(),
})

export type DeliveryJob = z.infer<typeof DeliveryJobSchema>

/**
 * How an issued code is delivered: its channel, and what that channel's job carries besides the
 * code. A WhatsApp code may fall back to SMS (the project's whatsapp_fallback); an SMS goes to a
 * country (counted by the SMS limits) and may end with an autofill line for a domain.
 */
export type DeliveryPlan =
  | { channel: 'whatsapp'; fallback: boolean }
  | { channel: 'sms'; country: string; autofillDomain: string | null }

/**
 * Binds the encrypted code to its job so a ciphertext cannot be replayed inside another job. The
 * prefix names WhatsApp for every channel: jobs queued before SMS existed must still decrypt.
 */
export function jobAad(job: Pick<DeliveryJob, 'id' | 'phone_id' | 'phone_number'>): string {
  return `whatsapp-job:v1:${job.id}:${job.phone_id}:${job.phone_number}`
}
