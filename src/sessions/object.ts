import { rfc3339 } from '../clock'
import type { FactorRow, SessionRow } from '../db/sessions'
import { StytchError } from '../errors'
import { parseJsonColumn } from '../json-column'
import type { StytchAuthenticationFactor, StytchSession } from '../schemas'
import { isReservedClaim } from './jwt'
import type { SessionAttributes } from './sealing'

/** Total size of a session's custom claims (serialised JSON, UTF-8 bytes), as Stytch limits them. */
export const MAX_CUSTOM_CLAIMS_BYTES = 4_096

/**
 * Roles a session carries. This service has no RBAC; users carry no roles (src/users/user-object.ts),
 * and a session has its user's roles.
 */
const SESSION_ROLES: string[] = []

/** Stytch's Session object from a session row, its attributes (opened: ./sealing.ts) and its factors. */
export function sessionObject(
  row: SessionRow,
  attributes: SessionAttributes,
  factors: readonly FactorRow[],
): StytchSession {
  return {
    session_id: row.id,
    user_id: row.user_id,
    started_at: rfc3339(row.started_at),
    last_accessed_at: rfc3339(row.last_accessed_at),
    expires_at: rfc3339(row.expires_at),
    attributes: { ip_address: attributes.ip_address, user_agent: attributes.user_agent },
    authentication_factors: factors.filter((f) => f.session_id === row.id).map(factorObject),
    custom_claims: parseClaims(row.custom_claims),
    roles: [...SESSION_ROLES],
  }
}

function factorObject(f: FactorRow): StytchAuthenticationFactor {
  return {
    type: 'otp',
    delivery_method: f.delivery_method === 'sms' ? 'sms' : 'whatsapp',
    last_authenticated_at: rfc3339(f.last_authenticated_at),
    created_at: rfc3339(f.created_at),
    updated_at: rfc3339(f.updated_at),
    phone_number_factor: { phone_id: f.phone_id, phone_number: f.phone_number },
  }
}

/** A session's stored custom claims (the column's JSON). */
export const parseClaims = (json: string) => parseJsonColumn(json, 'session_claims_unreadable')

/**
 * Applies a session_custom_claims update as Stytch describes it: a value sets its claim, null
 * deletes it, reserved claims are ignored. The result is JSON for the sessions.custom_claims column;
 * more than MAX_CUSTOM_CLAIMS_BYTES in all is `custom_claims_too_large`.
 */
export function mergeCustomClaims(current: Record<string, unknown>, update: Record<string, unknown>): string {
  // A Map, so that a claim named __proto__ stays an ordinary claim.
  const merged = new Map(Object.entries(current))
  for (const [name, value] of Object.entries(update)) {
    if (isReservedClaim(name)) continue
    if (value === null) merged.delete(name)
    else merged.set(name, value)
  }
  const json = JSON.stringify(Object.fromEntries(merged))
  if (new TextEncoder().encode(json).byteLength > MAX_CUSTOM_CLAIMS_BYTES)
    throw new StytchError('custom_claims_too_large')
  return json
}

/** The custom claims of a new session (no current claims), as column JSON. */
export const initialCustomClaims = (update: Record<string, unknown> | undefined) => mergeCustomClaims({}, update ?? {})
