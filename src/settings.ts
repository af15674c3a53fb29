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

/** The answer a request gets from a limit (the README's limits table). */
const TOO_MANY = '`429 too_many_requests`'

/**
 * Per-project settings, stored as JSON in projects.settings. Every key is optional in storage and
 * takes the default below, so new settings never need a data migration. The README's limits table
 * (Abuse limits) is built from the limits below (every setting but the sdk_* ones): name, default,
 * range, description and `error`, the answer the limit gives (`npm run docs:tables` rewrites it; a
 * test fails when the README differs), so the two cannot drift apart.
 */
export const ProjectSettingsSchema = z.object({
  otp_max_attempts: z.number().int().min(1).max(20).default(5).meta({
    description: 'Wrong guesses one code survives; after that it is dead even for the right code.',
    error: 'then `401 unable_to_auth_otp_code`',
  }),
  user_lock_threshold: z
    .number()
    .int()
    .min(1)
    .max(100)
    .default(10)
    .meta({
      description:
        "Consecutive failed authentications that lock a user (Stytch's user lock); only wrong codes against a " +
        'live code count.',
      error: '`429 user_lock_limit_reached`',
    }),
  user_lock_seconds: z
    .number()
    .int()
    .min(300)
    .max(604_800)
    .default(3_600)
    .meta({ description: 'How long a user lock lasts.', error: '' }),
  phone_send_cooldown_seconds: z.number().int().min(0).max(3_600).default(30).meta({
    description: 'Minimum time between two sends to one phone number (0: none).',
    error: TOO_MANY,
  }),
  phone_sends_per_hour: z
    .number()
    .int()
    .min(1)
    .max(1_000)
    .default(5)
    .meta({ description: 'Sends to one phone number, last 60 min.', error: TOO_MANY }),
  phone_sends_per_day: z
    .number()
    .int()
    .min(1)
    .max(10_000)
    .default(10)
    .meta({ description: 'Sends to one phone number, last 24 h.', error: TOO_MANY }),
  ip_sends_per_hour: z.number().int().min(1).max(1_000_000).default(20).meta({
    description: 'Sends per `attributes.ip_address` (an IPv4 address; an IPv6 /64), last 60 min.',
    error: TOO_MANY,
  }),
  ipv6_56_sends_per_hour: z.number().int().min(1).max(1_000_000).default(100).meta({
    description: 'Sends per IPv6 /56 (what ISPs typically delegate to a home), last 60 min.',
    error: TOO_MANY,
  }),
  ipv6_48_sends_per_hour: z
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(1_000)
    .meta({ description: 'Sends per IPv6 /48 (a typical site delegation), last 60 min.', error: TOO_MANY }),
  ip_failed_auths_per_hour: z
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(30)
    .meta({
      description:
        'Failed authenticates per `attributes.ip_address` (an IPv4 address; an IPv6 /64), last 60 min: every ' +
        'attempt that does not succeed, unknown `method_id`s included; once reached, every attempt from that IP ' +
        'gets 429, whatever the code.',
      error: TOO_MANY,
    }),
  ipv6_56_failed_auths_per_hour: z
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(150)
    .meta({ description: 'The same per IPv6 /56.', error: TOO_MANY }),
  ipv6_48_failed_auths_per_hour: z
    .number()
    .int()
    .min(1)
    .max(1_000_000)
    .default(1_500)
    .meta({ description: 'The same per IPv6 /48.', error: TOO_MANY }),
  failed_auths_per_hour: z
    .number()
    .int()
    .min(1)
    .max(100_000_000)
    .default(50_000)
    .meta({
      description:
        'Wrong codes entered against live codes in the whole project, from any IP or none, last 60 min (unknown ' +
        '`method_id`s, dead codes and the sandbox count nothing). Reaching it engages the **brake**, logged as an ' +
        'alert: it refuses no one (right codes keep working from every IP) but makes wrong ones dearer, as the ' +
        'next two rows say, until the count falls below it.',
      error: 'none of its own',
    }),
  brake_otp_max_attempts: z
    .number()
    .int()
    .min(1)
    .max(20)
    .default(1)
    .meta({
      description:
        'While the brake is engaged: wrong guesses a code survives in all; the guess that reaches it uses the ' +
        'code up, so every further guess needs a new send (held by the per-phone send limits). No effect above ' +
        '`otp_max_attempts`.',
      error: 'then `401 unable_to_auth_otp_code`',
    }),
  brake_ip_divisor: z
    .number()
    .int()
    .min(1)
    .max(1_000)
    .default(10)
    .meta({
      description:
        'While the brake is engaged: each per-IP failed-authentication cap above is divided by this, rounded up ' +
        '(30 → 3, 150 → 15, 1500 → 150).',
      error: TOO_MANY,
    }),
  allowed_countries: z
    .union([z.literal('*'), z.array(z.string().regex(/^[A-Z]{2}$/)).min(1)])
    .default(['US', 'CA'])
    .meta({
      description:
        'ISO 3166-1 alpha-2 countries that may receive codes, or `"*"` for all; numbers without a country ' +
        '(+800, +881…) only with `"*"`.',
      error: '`400 invalid_phone_number_country_code`',
    }),
  allowed_line_types: z
    .union([z.literal('*'), z.array(z.enum(LINE_TYPES)).min(1)])
    .default(['MOBILE', 'FIXED_LINE_OR_MOBILE'])
    .meta({
      description:
        'Line types (libphonenumber\'s) that may receive codes, or `"*"` for all; premium-rate, toll-free, ' +
        'personal, shared-cost, VoIP and plain landline numbers are refused unless listed (toll fraud: such ' +
        'numbers earn their holder money per message); a number of unknown type only with `"*"`.',
      error: "`400 invalid_phone_number` (the message says the number's type is not allowed)",
    }),
  country_sends_per_hour: z.number().int().min(1).max(100_000_000).default(100_000).meta({
    description: 'Sends per destination country, last 60 min (pumping circuit-breaker); logged as an alert.',
    error: TOO_MANY,
  }),
  new_users_per_hour: z
    .number()
    .int()
    .min(1)
    .max(100_000_000)
    .default(50_000)
    .meta({ description: 'Users created, last 60 min.', error: TOO_MANY }),
  search_rows_per_minute: z
    .number()
    .int()
    .min(5_000)
    .max(1_000_000_000_000)
    .default(1_000_000)
    .meta({
      description:
        "Rows D1 reads for the project's `POST /v1/users/search` calls (D1's `rows_read`), last 1–2 min; each " +
        'search is charged at least 5,000 rows, reserved before it runs, and what it read beyond that right ' +
        "after; keeps one project's searches from monopolising the database every project shares.",
      error: TOO_MANY,
    }),
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
    .meta({
      description:
        '`sms`: when Meta reports that the number cannot receive the WhatsApp message (not on WhatsApp), the same ' +
        'code goes out once by SMS while it is live (WhatsApp → SMS fallback).',
      error: '',
    }),
  sms_allowed_countries: z
    .union([z.literal('*'), z.array(z.string().regex(/^[A-Z]{2}$/)).min(1)])
    .default(['US', 'CA'])
    .meta({
      description:
        'ISO 3166-1 alpha-2 countries that may receive codes by SMS (the SMS routes and the fallback), or `"*"` ' +
        'for all; separate from `allowed_countries`.',
      error: '`400 invalid_phone_number_country_code`',
    }),
  sms_allowed_line_types: z
    .union([z.literal('*'), z.array(z.enum(LINE_TYPES)).min(1)])
    .default(['MOBILE', 'FIXED_LINE_OR_MOBILE'])
    .meta({
      description: 'Line types that may receive codes by SMS, or `"*"` for all, as `allowed_line_types`.',
      error: '`400 invalid_phone_number`',
    }),
  sms_country_sends_per_hour: z.number().int().min(1).max(100_000_000).default(1_000).meta({
    description: 'SMS per destination country, last 60 min (pumping circuit-breaker); logged as an alert.',
    error: TOO_MANY,
  }),
  sms_sends_per_hour_by_country: z
    .record(z.string().regex(/^[A-Z]{2}$/), z.number().int().min(0).max(100_000_000))
    .default({})
    .meta({
      description:
        'Per-country SMS caps an hour that replace `sms_country_sends_per_hour` for those countries, e.g. ' +
        '`{"BR":100,"NG":0}` (0 stops SMS there).',
      error: TOO_MANY,
    }),
  sms_breaker_min_sends: z.number().int().min(1).max(1_000_000).default(50).meta({
    description:
      "The SMS pumping breaker judges a country's SMS conversion only once this many SMS were sent there in the hour.",
    error: '',
  }),
  sms_breaker_min_conversion_percent: z
    .number()
    .int()
    .min(0)
    .max(100)
    .default(10)
    .meta({
      description:
        "Under this share of a country's SMS codes authenticated, SMS to it pause (the breaker trips; an alert); 0 " +
        'turns the breaker off.',
      error: 'then `429 too_many_requests` for SMS to that country',
    }),
  sms_breaker_cooldown_minutes: z.number().int().min(1).max(10_080).default(60).meta({
    description: 'How long SMS to a country stay paused after the breaker trips; WhatsApp is not affected.',
    error: '',
  }),
  sms_autofill_domain: z
    .string()
    .regex(/^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$/)
    .nullable()
    .default(null)
    .meta({
      description:
        'The domain of your login page (e.g. example.com): with `enable_autofill` an SMS ends with ' +
        '"@domain #code", which browsers and iOS offer to fill in on that domain only.',
      error: '',
    }),
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
