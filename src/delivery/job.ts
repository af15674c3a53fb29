import * as z from 'zod'
import { LOCALES } from '../schemas'

/**
 * A delivery job on the WhatsApp queue. `id` is the code_id of the code it carries and the
 * idempotency key of the delivery (deliveries.id). The code itself travels only encrypted
 * (AES-256-GCM, key CODE_ENCRYPTION_KEY, additional data `jobAad(job)`), and is decrypted only in
 * the consumer.
 */
export const WhatsAppJobSchema = z.object({
  v: z.literal(1),
  id: z.string().min(1),
  project_id: z.string().min(1),
  phone_id: z.string().min(1),
  phone_number: z.string().min(1),
  locale: z.enum(LOCALES),
  expires_at: z.number().int(),
  code: z.object({ iv: z.string().min(1), ct: z.string().min(1) }),
})

export type WhatsAppJob = z.infer<typeof WhatsAppJobSchema>

/** Binds the encrypted code to its job so a ciphertext cannot be replayed inside another job. */
export function jobAad(job: Pick<WhatsAppJob, 'id' | 'phone_id' | 'phone_number'>): string {
  return `whatsapp-job:v1:${job.id}:${job.phone_id}:${job.phone_number}`
}
