import { env } from 'cloudflare:workers'
import { type CallOptions, callJson, issueCode, LENIENT_LIMITS, newProject, type TestProject } from './helpers'

/**
 * Domain helpers for the authenticate, send and users tests. Every test makes its own project, so
 * phone numbers repeat freely and no test sees another's users, codes or counters.
 */

/** A fresh project with the default OTP and lock settings (or `settings` over them), on `shard` (0: DB). */
export const project = (settings: Record<string, unknown> = {}, projectEnv: 'test' | 'live' = 'test', shard = 0) =>
  newProject(projectEnv, { ...LENIENT_LIMITS, ...settings }, shard)

export const authenticate = (p: TestProject, body: unknown, options: CallOptions = {}) =>
  callJson('POST', '/v1/otps/authenticate', { ...options, project: p, body })

export const send = (p: TestProject, body: unknown, options: CallOptions = {}) =>
  callJson('POST', '/v1/otps/whatsapp/send', { ...options, project: p, body })

export const getUser = (p: TestProject, userId: string) => callJson('GET', `/v1/users/${userId}`, { project: p })

export const deleteUser = (p: TestProject, userId: string) => callJson('DELETE', `/v1/users/${userId}`, { project: p })

export const deletePhone = (p: TestProject, phoneId: string) =>
  callJson('DELETE', `/v1/users/phone_numbers/${phoneId}`, { project: p })

export const exchangeNumber = (p: TestProject, ref: string, body: unknown, options: CallOptions = {}) =>
  callJson('PUT', `/v1/users/${encodeURIComponent(ref)}/exchange_primary_factor`, { ...options, project: p, body })

/** login_or_create for `phoneNumber` and the code it sent. */
export const loginCode = (p: TestProject, phoneNumber: string, extra: Record<string, unknown> = {}) =>
  issueCode(p, { phone_number: phoneNumber, ...extra })

/** A 6-digit code that is not `code`. */
export const wrong = (code: string) => String((Number(code) + 1) % 1_000_000).padStart(6, '0')

/** Adds counting of KV reads and deletes to a countingEnv. */
export function countingKv(base: Env): { env: Env; kvGets: string[]; kvDeletes: string[] } {
  const kvGets: string[] = []
  const kvDeletes: string[] = []
  const kv = new Proxy(base.OTP_KV, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver)
      if (typeof value !== 'function') return value
      if (prop === 'get' || prop === 'getWithMetadata' || prop === 'delete') {
        return (key: string, ...rest: unknown[]) => {
          ;(prop === 'delete' ? kvDeletes : kvGets).push(key)
          return (value as (...a: unknown[]) => unknown).apply(target, [key, ...rest])
        }
      }
      return value.bind(target)
    },
  })
  return { env: { ...base, OTP_KV: kv }, kvGets, kvDeletes }
}

export interface DbUser {
  status: string
  failed_authentications: number
  lock_created_at: number | null
  locked_until: number | null
}

export const dbUser = (userId: string) =>
  env.DB.prepare('SELECT status, failed_authentications, lock_created_at, locked_until FROM users WHERE id = ?1')
    .bind(userId)
    .first<DbUser>()

export const dbGate = (phoneId: string) =>
  env.DB.prepare('SELECT code_id, attempts, consumed_at, consumed_by FROM otp_codes WHERE phone_id = ?1')
    .bind(phoneId)
    .first<{ code_id: string; attempts: number; consumed_at: number | null; consumed_by: string | null }>()

export const dbPhone = (phoneId: string) =>
  env.DB.prepare('SELECT user_id, phone_number, verified, attach_expires_at FROM phones WHERE id = ?1')
    .bind(phoneId)
    .first<{ user_id: string; phone_number: string; verified: number; attach_expires_at: number | null }>()

/** Counts each status in a list of replies, e.g. { 200: 1, 401: 11 }. */
export function statusCounts(replies: { status: number }[]): Record<number, number> {
  const counts: Record<number, number> = {}
  for (const r of replies) counts[r.status] = (counts[r.status] ?? 0) + 1
  return counts
}
