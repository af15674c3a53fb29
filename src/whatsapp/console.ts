import { now } from '../clock'
import { parseId } from '../ids'
import type { Locale } from '../schemas'
import type { WhatsAppProvider } from './provider'

/**
 * The local development provider: "delivers" a code by printing the message to the Worker's log
 * and keeping it in the dev_outbox table, read by GET /dev/whatsapp/outbox. It is selected only when
 * WHATSAPP_PROVIDER is exactly "console", so a deployed Worker (default "meta") never stores or
 * prints codes, and it delivers only for test projects.
 */
export function consoleProvider(db: D1Database): WhatsAppProvider {
  return {
    name: 'console',
    async send(message) {
      // Codes of live projects belong to real people: they are never shown in a developer's outbox
      // or log, even when a deployment selects this provider by mistake.
      if (parseId('project', message.projectId) !== 'test') {
        return { kind: 'failed', errorCode: null, detail: 'console_provider_live_project', alert: true }
      }
      const text = messageText(message.locale, message.code)
      const createdAt = now()
      // Keyed by the delivery id, so a re-run of the same job cannot add a second entry.
      await db
        .prepare(
          `INSERT INTO dev_outbox (id, phone_number, code, locale, text, created_at)
           VALUES (?1, ?2, ?3, ?4, ?5, ?6)
           ON CONFLICT (id) DO NOTHING`,
        )
        .bind(message.deliveryId, message.phoneNumber, message.code, message.locale, text, createdAt)
        .run()
      // The one place a plaintext code is logged: this provider exists to show it to the developer.
      console.log(`[whatsapp console] to ${message.phoneNumber} (${message.locale}): ${text}`)
      return { kind: 'sent', wamid: null }
    },
  }
}

/**
 * The wording of WhatsApp's preset authentication template (body and security recommendation) in
 * each supported language, so the local message reads like the real one. The template has no expiry
 * footer (src/whatsapp/template.ts): Meta fixes that number per template while each request picks
 * its own expiration_minutes, so the number could only be wrong.
 */
export function messageText(locale: Locale, code: string): string {
  switch (locale) {
    case 'es':
      return `${code} es tu código de verificación. Por tu seguridad, no lo compartas.`
    case 'fr':
      return `${code} est votre code de vérification. Pour votre sécurité, ne le partagez pas.`
    case 'pt-br':
      return `${code} é o seu código de verificação. Para sua segurança, não o compartilhe.`
    case 'en':
      return `${code} is your verification code. For your security, do not share this code.`
  }
}

/** A dev_outbox row (created_at in epoch ms). */
export interface OutboxMessage {
  id: string
  phone_number: string
  code: string
  locale: string
  text: string
  created_at: number
}

/**
 * The project's messages, newest first; `phoneNumber` (E.164) narrows to one recipient. An outbox
 * entry's id is its delivery id, and the delivery row names the project.
 */
export async function listOutbox(
  db: D1Database,
  projectId: string,
  phoneNumber: string | undefined,
  limit: number,
): Promise<OutboxMessage[]> {
  const { results } = await db
    .prepare(
      `SELECT o.id, o.phone_number, o.code, o.locale, o.text, o.created_at
       FROM dev_outbox o JOIN deliveries d ON d.id = o.id
       WHERE d.project_id = ?1 AND (?2 IS NULL OR o.phone_number = ?2)
       ORDER BY o.created_at DESC, o.rowid DESC LIMIT ?3`,
    )
    .bind(projectId, phoneNumber ?? null, limit)
    .all<OutboxMessage>()
  return results
}
