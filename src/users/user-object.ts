import { rfc3339 } from '../clock'
import type { UserStatus } from '../db/users'
import type { StytchUser } from '../schemas'
import { parseMetadata } from './metadata'

/** The user columns every read of a User object selects (aliases match these names). */
export interface UserRow {
  user_id: string
  status: UserStatus
  created_at: number
  lock_created_at: number | null
  locked_until: number | null
  first_name: string
  middle_name: string
  last_name: string
  /** JSON objects (src/users/metadata.ts). */
  trusted_metadata: string
  untrusted_metadata: string
  external_id: string | null
}

/** One phone of a user as read from D1 (`verified` is SQLite's 0/1). */
export interface PhoneRow {
  phone_id: string
  phone_number: string
  verified: number
}

/** True while the user's lock is in force; an expired lock is just history. */
export function isLocked(user: Pick<UserRow, 'locked_until'>, at: number): boolean {
  return user.locked_until !== null && user.locked_until > at
}

/**
 * Stytch's User object from our rows. Factors this service does not have are empty arrays; unset
 * name parts are empty strings (as Stytch shows an unnamed user); external_id appears only when set,
 * and lock times only while a lock is in force.
 */
export function userObject(user: UserRow, phones: readonly PhoneRow[], at: number): StytchUser {
  const locked = isLocked(user, at)
  const body: StytchUser = {
    user_id: user.user_id,
    emails: [],
    status: user.status,
    phone_numbers: phones.map((p) => ({
      phone_id: p.phone_id,
      phone_number: p.phone_number,
      verified: p.verified === 1,
    })),
    webauthn_registrations: [],
    providers: [],
    totps: [],
    crypto_wallets: [],
    biometric_registrations: [],
    is_locked: locked,
    roles: [],
    name: { first_name: user.first_name, middle_name: user.middle_name, last_name: user.last_name },
    created_at: rfc3339(user.created_at),
    trusted_metadata: parseMetadata(user.trusted_metadata),
    untrusted_metadata: parseMetadata(user.untrusted_metadata),
  }
  if (user.external_id !== null) body.external_id = user.external_id
  if (locked && user.locked_until !== null) {
    body.lock_created_at = rfc3339(user.lock_created_at ?? at)
    body.lock_expires_at = rfc3339(user.locked_until)
  }
  return body
}
