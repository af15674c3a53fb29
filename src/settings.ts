import type { NumberType } from 'libphonenumber-js/max'
import * as z from 'zod'

/** The line types libphonenumber's full metadata tells apart (allowed_line_types). */
export const LINE_TYPES = [
  'MOBILE',
  'FIXED_LINE_OR_MOBILE',
  'FIXED_LINE',
  'PREMIUM_RATE',
  'TOLL_FREE',
  'SHARED_COST',
  'VOIP',
  'PERSONAL_NUMBER',
  'PAGER',
  'UAN',
  'VOICEMAIL',
] as const satisfies readonly NonNullable<NumberType>[]
export type LineType = (typeof LINE_TYPES)[number]

/**
 * Per-project settings, stored as JSON in projects.settings. Every key is optional in storage and
 * takes the default below, so new settings never need a data migration. The README's limits table
 * (Abuse limits) lists the same settings in more words; keep the two in step.
 */
export const ProjectSettingsSchema = z.object({
  otp_max_attempts: z
    .number()
    .int()
    .min(1)
    .max(20)
    .default(5)
    .describe('Wrong guesses a single code survives; after that it is dead even for the right code.'),
  user_lock_threshold: z
    .number()
    .int()
    .min(1)
    .max(100)
    .default(10)
    .describe(
      'Consecutive failed authentications that lock a user (Stytch user lock); only wrong codes against a ' +
        'live code count.',
    ),
  user_lock_seconds: z.number().int().min(300).max(604_800).default(3_600).describe('How long a user lock lasts.'),
  phone_send_cooldown_seconds: z
    .number()
    .int()
    .min(0)
    .max(3_600)
    .default(30)
    .describe('Minimum time between two sends to one phone number.'),
  phone_sends_per_hour: z.number().int().min(1).max(1_000).default(5).describe('Sends to one phone number per hour.'),
  phone_sends_per_day: z
    .number()
    .int()
    .min(1)
    .max(10_000)
    .default(10)
    .describe('Sends to one phone number per 24 hours.'),
  ip_sends_per_hour: z
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(20)
    .describe('Sends per end-user IP (attributes.ip_address: an IPv4 address, an IPv6 /64) per hour.'),
  ipv6_56_sends_per_hour: z
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(100)
    .describe('Sends per end-user IPv6 /56 (a typical home delegation) per hour.'),
  ipv6_48_sends_per_hour: z
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(1_000)
    .describe('Sends per end-user IPv6 /48 (a typical site delegation) per hour.'),
  ip_failed_auths_per_hour: z
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(30)
    .describe('Failed authentications per end-user IP (an IPv4 address, an IPv6 /64) per hour.'),
  ipv6_56_failed_auths_per_hour: z
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(150)
    .describe('Failed authentications per end-user IPv6 /56 per hour.'),
  ipv6_48_failed_auths_per_hour: z
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(1_500)
    .describe('Failed authentications per end-user IPv6 /48 per hour.'),
  failed_auths_per_hour: z
    .number()
    .int()
    .min(1)
    .max(100_000_000)
    .default(50_000)
    .describe(
      'Wrong codes entered against live codes per project per hour, from any IP; reaching it engages the ' +
        'project-wide brake (logged as an alert). The brake refuses no one: right codes keep working, wrong ' +
        'ones cost more (brake_otp_max_attempts, brake_ip_divisor) until the count falls below it.',
    ),
  brake_otp_max_attempts: z
    .number()
    .int()
    .min(1)
    .max(20)
    .default(1)
    .describe(
      'While the brake is engaged: wrong guesses a code survives in all; the guess that reaches it uses the ' +
        'code up (no effect above otp_max_attempts).',
    ),
  brake_ip_divisor: z
    .number()
    .int()
    .min(1)
    .max(1_000)
    .default(10)
    .describe('While the brake is engaged: each per-IP failed-authentication cap is divided by this (rounded up).'),
  allowed_countries: z
    .union([z.literal('*'), z.array(z.string().regex(/^[A-Z]{2}$/)).min(1)])
    .default(['US', 'CA'])
    .describe('ISO 3166-1 alpha-2 countries that may receive codes, or "*" for all.'),
  allowed_line_types: z
    .union([z.literal('*'), z.array(z.enum(LINE_TYPES)).min(1)])
    .default(['MOBILE', 'FIXED_LINE_OR_MOBILE'])
    .describe(
      'Line types (libphonenumber) that may receive codes, or "*" for all. Premium-rate, toll-free and personal numbers only pump money.',
    ),
  country_sends_per_hour: z
    .number()
    .int()
    .min(1)
    .max(100_000_000)
    .default(100_000)
    .describe('Sends per destination country per hour (pumping circuit-breaker; logged as an alert).'),
  new_users_per_hour: z
    .number()
    .int()
    .min(1)
    .max(100_000_000)
    .default(50_000)
    .describe('Users a project may create per hour.'),
  search_rows_per_minute: z
    .number()
    .int()
    .min(5_000)
    .max(1_000_000_000_000)
    .default(1_000_000)
    .describe(
      "Rows D1 may read for the project's user searches per minute (D1's rows_read; each search counts at least 5,000).",
    ),
  sdk_enabled: z
    .boolean()
    .optional()
    .describe(
      'Whether the frontend SDKs may call /sdk/v1 with the public token. Unset: on for a test project, and for a ' +
        'live project once sdk_authorized_origins lists an origin.',
    ),
  sdk_authorized_origins: z
    .array(z.string().max(256).refine(isOrigin, 'expected an origin such as https://app.example.com'))
    .max(100)
    .default([])
    .describe(
      'Exact origins (scheme://host[:port]) whose pages may call /sdk/v1. A test project also accepts ' +
        'http://localhost and http://127.0.0.1 on any port.',
    ),
  sdk_max_session_minutes: z
    .number()
    .int()
    .min(5)
    .max(527_040)
    .default(10_080)
    .describe('The longest session_duration_minutes the frontend SDKs may ask for (default 7 days).'),
  sdk_http_only_cookies: z
    .boolean()
    .default(false)
    .describe(
      'The service sets stytch_session / stytch_session_jwt itself as HttpOnly cookies and leaves the tokens ' +
        "out of SDK replies (for a service on the app's own site).",
    ),
  sdk_cookie_domain: z
    .string()
    .max(253)
    .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$/, 'expected a domain such as example.com')
    .optional()
    .describe(
      "The Domain of the HttpOnly cookies (e.g. example.com when the service is auth.example.com); unset: the service's own host only.",
    ),
  whatsapp_fallback: z
    .enum(['none', 'sms'])
    .default('none')
    .describe(
      'sms: when Meta reports that the number cannot receive the WhatsApp message (not on WhatsApp), the same code goes out once by SMS while it is live.',
    ),
  sms_allowed_countries: z
    .union([z.literal('*'), z.array(z.string().regex(/^[A-Z]{2}$/)).min(1)])
    .default(['US', 'CA'])
    .describe(
      'ISO 3166-1 alpha-2 countries that may receive codes by SMS (SMS routes and the fallback), or "*" for all.',
    ),
  sms_allowed_line_types: z
    .union([z.literal('*'), z.array(z.enum(LINE_TYPES)).min(1)])
    .default(['MOBILE', 'FIXED_LINE_OR_MOBILE'])
    .describe('Line types (libphonenumber) that may receive codes by SMS, or "*" for all.'),
  sms_country_sends_per_hour: z
    .number()
    .int()
    .min(1)
    .max(100_000_000)
    .default(1_000)
    .describe('SMS per destination country per hour (pumping circuit-breaker; logged as an alert).'),
  sms_sends_per_hour_by_country: z
    .record(z.string().regex(/^[A-Z]{2}$/), z.number().int().min(0).max(100_000_000))
    .default({})
    .describe(
      'Per-country SMS caps per hour that replace sms_country_sends_per_hour, e.g. {"BR":100}; 0 stops SMS there.',
    ),
  sms_breaker_min_sends: z
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(50)
    .describe(
      "Pumping breaker floor: it judges a country's SMS conversion only once this many SMS were sent there in the hour.",
    ),
  sms_breaker_min_conversion_percent: z
    .number()
    .int()
    .min(0)
    .max(100)
    .default(10)
    .describe(
      "Pumping breaker threshold: below this share of a country's SMS codes authenticated, SMS to it pause (0 turns the breaker off).",
    ),
  sms_breaker_cooldown_minutes: z
    .number()
    .int()
    .min(1)
    .max(10_080)
    .default(60)
    .describe('How long SMS to a country stay paused once the breaker trips (WhatsApp is not affected).'),
  sms_autofill_domain: z
    .string()
    .regex(/^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/)
    .nullable()
    .default(null)
    .describe(
      'The domain of your login page (e.g. example.com): with enable_autofill an SMS ends with "@domain #code", which browsers and iOS offer to fill in on that domain only.',
    ),
})

/** An origin exactly as browsers send it: http(s), a host, an optional port, nothing else. */
function isOrigin(value: string): boolean {
  try {
    const url = new URL(value)
    return (url.protocol === 'https:' || url.protocol === 'http:') && url.origin === value
  } catch {
    return false
  }
}

export type ProjectSettings = z.infer<typeof ProjectSettingsSchema>

/**
 * How long a Worker isolate keeps a project's record (its settings and secret hash) before reading it
 * again (src/db/projects.ts). A changed setting applies everywhere within this time. A rotated secret
 * is accepted at once (a secret that does not match the cached record makes the isolate read it
 * again), but the old one is refused only as each isolate's copy expires or that isolate sees the new
 * one: everywhere within this time, not on its next use. Isolates cannot be told sooner without a D1
 * read on every request, which the cache exists to avoid.
 */
export const PROJECT_CACHE_TTL_MS = 30_000

/** What `npm run project:update` tells the operator once the project row is written (scripts/project.mjs). */
export function projectUpdateNotice(secretRotated: boolean): string {
  const seconds = PROJECT_CACHE_TTL_MS / 1_000
  return secretRotated
    ? `The new secret works at once. The old one is refused everywhere within ${seconds} seconds: until then a ` +
        'Worker isolate that read the project before the rotation, and has not yet seen the new secret, still ' +
        `accepts it (project cache lifetime). Other changes apply within ${seconds} seconds too.`
    : `Running Workers pick up the change within ${seconds} seconds (project cache lifetime).`
}

/** Parses stored settings; an unreadable value falls back to the defaults (and is logged). */
export function parseSettings(json: string): ProjectSettings {
  try {
    const result = ProjectSettingsSchema.safeParse(JSON.parse(json))
    if (result.success) return result.data
    console.error('project settings invalid, using defaults', result.error.issues)
  } catch {
    console.error('project settings are not JSON, using defaults')
  }
  return ProjectSettingsSchema.parse({})
}
