import { now } from '../clock'
import { parseId } from '../ids'
import type { Channel } from './job'
import type { DeliveryProvider } from './provider'
import { messageText, smsText } from './text'

/** What the console reports for a number it treats as not on WhatsApp: Meta's "message undeliverable". */
export const UNREACHABLE_ERROR_CODE = 131026

/**
 * The local development provider of a channel: "delivers" a code by keeping the message in the
 * dev_outbox table (src/db/dev-outbox.ts), read by GET /dev/outbox; the consumer writes that entry
 * in the transaction that records the delivery sent. Like a real provider it logs nothing on
 * success, so no log line ever carries a code. It is selected only when WHATSAPP_PROVIDER
 * (SMS_PROVIDER) is exactly "console", so a deployed Worker (defaults "meta" and "none") never
 * stores codes, and it delivers only for test projects.
 *
 * `unreachable` (WhatsApp only, from CONSOLE_WHATSAPP_UNREACHABLE): numbers it treats as not on
 * WhatsApp. Like Meta for such a number, it accepts the message and then reports it failed with
 * 131026, a status the consumer applies exactly as the same status from Meta's webhook; nothing
 * reaches the outbox, and a project with whatsapp_fallback 'sms' gets the code by SMS instead.
 */
export function consoleProvider(channel: Channel, unreachable: ReadonlySet<string> = new Set()): DeliveryProvider {
  return {
    name: 'console',
    channel,
    async send(message) {
      // Codes of live projects belong to real people: they are never shown in a developer's outbox
      // or log, even when a deployment selects this provider by mistake.
      if (parseId('project', message.projectId) !== 'test') {
        return { kind: 'failed', errorCode: null, detail: 'console_provider_live_project', alert: true }
      }
      if (channel === 'whatsapp' && unreachable.has(message.phoneNumber)) {
        return {
          kind: 'sent',
          messageId: `wamid.console.${message.deliveryId}`,
          reported: { status: 'failed', errorCode: UNREACHABLE_ERROR_CODE },
        }
      }
      const text =
        channel === 'sms'
          ? smsText(message.locale, message.code, message.autofillDomain)
          : messageText(message.locale, message.code)
      const outbox = {
        id: message.deliveryId,
        channel,
        phone_number: message.phoneNumber,
        code: message.code,
        locale: message.locale,
        text,
        created_at: now(),
      }
      return { kind: 'sent', messageId: null, outbox }
    },
  }
}
