import type { Project } from './db/projects'

/** Hono's environment: bindings come from `wrangler types` (worker-configuration.d.ts), one source. */
export interface AppEnv {
  Bindings: Env
  Variables: {
    requestId: string
    project: Project
  }
}

/** A secret that must be set for the service to work; a missing one is a deploy error, logged loudly. */
export function requireSecret(
  env: Env,
  name: 'OTP_PEPPER' | 'CODE_ENCRYPTION_KEY' | 'SESSION_KEY_ENCRYPTION_KEY',
): string {
  const value = env[name]
  if (typeof value !== 'string' || value.length < 32) {
    throw new Error(`Worker secret ${name} is missing or shorter than 32 characters`)
  }
  return value
}
