import type { Locale } from '../schemas'

/**
 * The wording of a code message, the same on both channels and with the code first: WhatsApp's
 * preset authentication template (body and security recommendation) in each supported language, so
 * the console's message reads like the real one and an SMS reads like the WhatsApp message it may
 * replace. No expiry: Meta fixes that number per template while each request picks its own
 * expiration_minutes (src/whatsapp/template.ts), so the number could only be wrong.
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

/**
 * An SMS: the message text, and with an autofill domain a last line `@domain #code` (the
 * origin-bound one-time-code format that Safari on iOS and macOS and Chrome's WebOTP read: the code
 * is offered on that domain only, so a phishing page cannot have it filled in).
 */
export function smsText(locale: Locale, code: string, autofillDomain: string | null): string {
  const text = messageText(locale, code)
  return autofillDomain ? `${text}\n\n@${autofillDomain} #${code}` : text
}
