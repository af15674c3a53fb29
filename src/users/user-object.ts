import { rfc3339 } from '../clock'
import type { PhoneRow } from '../db/phones'
import { isLocked, type UserRow } from '../db/users'
import { parseJsonColumn } from '../json-column'
import type { StytchUser } from '../schemas'

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
    trusted_metadata: parseJsonColumn(user.trusted_metadata, 'user_metadata_unreadable'),
    untrusted_metadata: parseJsonColumn(user.untrusted_metadata, 'user_metadata_unreadable'),
  }
  if (user.external_id !== null) body.external_id = user.external_id
  if (locked && user.locked_until !== null) {
    body.lock_created_at = rfc3339(user.lock_created_at ?? at)
    body.lock_expires_at = rfc3339(user.locked_until)
  }
  return body
}
