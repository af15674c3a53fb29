import { configEntry } from './config'
import type { RotatingSecret } from './crypto'
import type { Project } from './db/projects'
import type { SessionCredential } from './sessions/credentials'

/** Hono's environment: bindings come from `wrangler types` (worker-configuration.d.ts), one source. */
export interface AppEnv {
  Bindings: Env
  Variables: {
    requestId: string
    project: Project
    /** /sdk/v1: the page's origin once the project authorizes it (the CORS headers name it). */
    sdkOrigin: string | undefined
    /** /sdk/v1: the logged-in user's session (Basic password, or the HttpOnly cookies), or null. */
    sdkSession: SessionCredential | null
  }
}

/** The secrets that accept a `<NAME>_PREVIOUS` value during a rotation. */
export type RotatableSecret = 'OTP_PEPPER' | 'CODE_ENCRYPTION_KEY' | 'SESSION_KEY_ENCRYPTION_KEY'

/** A secret that must be set for the service to work; a missing one is a deploy error, logged loudly. */
export function requireSecret(env: Env, name: RotatableSecret): string {
  return checkedSecret(name, env[name])
}

/**
 * The secret with its previous value, if one is set (`<NAME>_PREVIOUS`): read, never written
 * (src/crypto.ts RotatingSecret). A previous value that is set must be as well-formed as the current one.
 */
export function rotatingSecret(env: Env, name: RotatableSecret): RotatingSecret {
  const previousName = `${name}_PREVIOUS` as const
  const previous = env[previousName]
  return {
    current: requireSecret(env, name),
    previous: previous ? checkedSecret(previousName, previous) : null,
  }
}

/** The value if set and well-formed by the configuration list (src/config.ts); otherwise a deploy error. */
function checkedSecret(name: string, value: unknown): string {
  if (typeof value !== 'string' || value === '') throw new Error(`Worker secret ${name} is missing`)
  const problem = configEntry(name).problem(value)
  if (problem) throw new Error(`Worker secret ${name} ${problem}`)
  return value
}

/** Previous values during a key rotation: optional secrets, which `wrangler types` does not list. */
interface RotationSecrets {
  OTP_PEPPER_PREVIOUS?: string
  CODE_ENCRYPTION_KEY_PREVIOUS?: string
  SESSION_KEY_ENCRYPTION_KEY_PREVIOUS?: string
}

/**
 * Twilio's secrets: needed only with SMS_PROVIDER "twilio", so wrangler.toml does not require them
 * (an environment that turns Twilio on adds TWILIO_AUTH_TOKEN to its `secrets.required`) and
 * `wrangler types` does not list them.
 */
interface TwilioSecrets {
  TWILIO_AUTH_TOKEN?: string
  TWILIO_API_KEY_SECRET?: string
}

declare global {
  interface Env extends RotationSecrets, TwilioSecrets {}
  namespace Cloudflare {
    interface Env extends RotationSecrets, TwilioSecrets {}
  }
}
