import { describe, expect, it } from 'vitest'
import { messageText } from '../src/delivery/text'
import { LOCALES, LoginOrCreateRequest, SendRequest } from '../src/schemas'
import { MESSAGE_TTL_SECONDS, templateUpsertBody } from '../src/whatsapp/template'

/**
 * The template and the codes agree: the message time-to-live never exceeds the lifetime of any
 * code a request may ask for, and no message states an expiry that could differ from the code's.
 */
describe('WhatsApp template in step with the codes', () => {
  const allowed = (schema: typeof LoginOrCreateRequest | typeof SendRequest) =>
    Array.from({ length: 40 }, (_, i) => i - 5).filter(
      (minutes) => schema.safeParse({ phone_number: '+12025550123', expiration_minutes: minutes }).success,
    )

  it('the message TTL is at most every allowed expiration_minutes, on both send routes', () => {
    for (const schema of [LoginOrCreateRequest, SendRequest]) {
      const minutes = allowed(schema)
      expect(minutes).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
      for (const m of minutes) expect(MESSAGE_TTL_SECONDS).toBeLessThanOrEqual(m * 60)
    }
    // Inside the range Meta accepts for message_send_ttl_seconds.
    expect(MESSAGE_TTL_SECONDS).toBeGreaterThanOrEqual(30)
    expect(MESSAGE_TTL_SECONDS).toBeLessThanOrEqual(900)
  })

  it('the template carries that TTL and no expiry footer (it would state one number for every code)', () => {
    const body = templateUpsertBody('verification_code', ['en_US', 'es', 'fr', 'pt_BR'])
    expect(body.message_send_ttl_seconds).toBe(MESSAGE_TTL_SECONDS)
    expect(body.components.map((c) => c.type)).toEqual(['body', 'buttons'])
    expect(JSON.stringify(body)).not.toContain('code_expiration_minutes')
  })

  it('the local message reads like the template: no number of minutes in any locale', () => {
    for (const locale of LOCALES) {
      const text = messageText(locale, '123456')
      expect(text.startsWith('123456 ')).toBe(true)
      expect(text.replace('123456', '')).not.toMatch(/[0-9]/)
    }
  })
})
