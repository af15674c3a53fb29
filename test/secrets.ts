import { env } from 'cloudflare:workers'
import { expect } from 'vitest'
import { basicAuth, TEST_PROJECT } from './helpers'

/**
 * What must never leave the Worker in a reply or a log line: its secrets (as configured for tests in
 * vitest.config.ts), project secrets, and credentials as they travel in an Authorization header.
 */

/** Every secret the test Worker holds, by name. */
export function workerSecrets(): Record<string, string> {
  return {
    OTP_PEPPER: env.OTP_PEPPER,
    CODE_ENCRYPTION_KEY: env.CODE_ENCRYPTION_KEY,
    SESSION_KEY_ENCRYPTION_KEY: env.SESSION_KEY_ENCRYPTION_KEY,
    WHATSAPP_ACCESS_TOKEN: env.WHATSAPP_ACCESS_TOKEN,
    WHATSAPP_APP_SECRET: env.WHATSAPP_APP_SECRET,
    WHATSAPP_VERIFY_TOKEN: env.WHATSAPP_VERIFY_TOKEN,
    TWILIO_AUTH_TOKEN: env.TWILIO_AUTH_TOKEN ?? '',
    'the local test project secret': TEST_PROJECT.secret,
    'the local test project Authorization header': basicAuth(TEST_PROJECT).slice('Basic '.length),
  }
}

/**
 * Shapes of secrets that are generated per test (helpers.newProject, scripts/project.mjs) and of
 * credentials in a header (Basic or Bearer with a long value).
 */
export const SECRET_PATTERNS: Record<string, RegExp> = {
  'a project secret': /secret-(test|live)-([0-9a-f-]{36}|[A-Za-z0-9_-]{43})/,
  'Basic credentials': /Basic\s+[A-Za-z0-9+/]{16,}={0,2}/i,
  'a Bearer token': /Bearer\s+[A-Za-z0-9._~+/-]{16,}/i,
}

/** The names of the secrets and secret shapes found in `text`. */
export function secretsIn(text: string, extra: string[] = []): string[] {
  const found = Object.entries(workerSecrets())
    .filter(([, value]) => value.length > 0 && text.includes(value))
    .map(([name]) => name)
  for (const [name, pattern] of Object.entries(SECRET_PATTERNS)) if (pattern.test(text)) found.push(name)
  for (const value of extra) if (text.includes(value)) found.push('the presented Authorization header')
  return found
}

/** Fails when `text` carries a secret; `where` says which request or log line it was. */
export function expectNoSecrets(text: string, where: string, extra: string[] = []): void {
  expect(secretsIn(text, extra), where).toEqual([])
}
