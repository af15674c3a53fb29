import { now } from '../clock'
import { insertOutboxMessage } from '../db/dev-outbox'
import { parseId } from '../ids'
import type { Locale } from '../schemas'
import type { WhatsAppProvider } from './provider'

/**
 * The local development provider: "delivers" a code by printing the message to the Worker's log
 * and keeping it in the dev_outbox table (src/db/dev-outbox.ts), read by GET /dev/whatsapp/outbox.
 * It is selected only when WHATSAPP_PROVIDER is exactly "console", so a deployed Worker (default
 * "meta") never stores or prints codes, and it delivers only for test projects.
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
      await insertOutboxMessage(db, {
        id: message.deliveryId,
        phone_number: message.phoneNumber,
        code: message.code,
        locale: message.locale,
        text,
        created_at: now(),
      })
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
