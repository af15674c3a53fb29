import * as z from 'zod'
import { isTestSecret, isTestSitekey } from './turnstile'

/** The example's bindings: the service behind a Service Binding, and its own settings. */
export interface Bindings {
  /** Service Binding to the whatsapp-otp Worker (wrangler.toml `[[services]]`). */
  AUTH: Pick<Fetcher, 'fetch'>
  /** KV namespace (wrangler.toml `[[kv_namespaces]]`): completed logins, until their cookie would expire. */
  LOGINS: Pick<KVNamespace, 'get' | 'put'>
  STYTCH_PROJECT_ID: string
  STYTCH_SECRET: string
  COOKIE_SECRET: string
  TURNSTILE_SITE_KEY: string
  TURNSTILE_SECRET_KEY: string
  RESEND_COOLDOWN_SECONDS?: string
  OTP_MAX_ATTEMPTS?: string
  SESSION_DURATION_MINUTES?: string
  DEV_OUTBOX_URL?: string
}

const Config = z
  .object({
    projectId: z.string().regex(/^project-(test|live)-[0-9a-f-]{36}$/, 'STYTCH_PROJECT_ID must be a project id'),
    secret: z.string().min(1, 'STYTCH_SECRET is not set'),
    cookieSecret: z.string().min(32, 'COOKIE_SECRET must be at least 32 characters'),
    turnstileSiteKey: z.string().min(1, 'TURNSTILE_SITE_KEY is not set'),
    turnstileSecretKey: z.string().min(1, 'TURNSTILE_SECRET_KEY is not set'),
    // Must equal the project's phone_send_cooldown_seconds and otp_max_attempts: the API does not report them.
    resendCooldownSeconds: z.coerce.number().int().min(0).max(3_600).default(30),
    otpMaxAttempts: z.coerce.number().int().min(1).max(20).default(5),
    sessionDurationMinutes: z.coerce.number().int().min(5).max(527_040).default(60),
    devOutboxUrl: z.url().optional(),
  })
  .refine((c) => !(c.projectId.startsWith('project-live-') && isTestSecret(c.turnstileSecretKey)), {
    message:
      "TURNSTILE_SECRET_KEY is one of Cloudflare's Turnstile test keys, which pass every request: a live project needs the widget's own secret",
  })
  .refine((c) => !(c.projectId.startsWith('project-live-') && isTestSitekey(c.turnstileSiteKey)), {
    message:
      "TURNSTILE_SITE_KEY is one of Cloudflare's Turnstile test keys, which skip the check: a live project needs the widget's own sitekey",
  })
export type Config = z.infer<typeof Config>

/** Parses the bindings once per isolate and binding object; a misconfiguration throws with every problem named. */
const parsed = new WeakMap<object, Config>()
export function config(env: Bindings): Config {
  const cached = parsed.get(env)
  if (cached) return cached
  const result = Config.safeParse({
    projectId: env.STYTCH_PROJECT_ID,
    secret: env.STYTCH_SECRET,
    cookieSecret: env.COOKIE_SECRET,
    turnstileSiteKey: env.TURNSTILE_SITE_KEY,
    turnstileSecretKey: env.TURNSTILE_SECRET_KEY,
    resendCooldownSeconds: env.RESEND_COOLDOWN_SECONDS || undefined,
    otpMaxAttempts: env.OTP_MAX_ATTEMPTS || undefined,
    sessionDurationMinutes: env.SESSION_DURATION_MINUTES || undefined,
    devOutboxUrl: env.DEV_OUTBOX_URL || undefined,
  })
  if (!result.success) {
    throw new Error(`web-login is misconfigured: ${result.error.issues.map((i) => i.message).join('; ')}`)
  }
  parsed.set(env, result.data)
  return result.data
}
