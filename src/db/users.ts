import { ownsNumber, releaseAttachmentByNumber } from './phones'

/**
 * D1 statements for users and their phone numbers. Statement builders return prepared statements so
 * callers can put them into one batch (one round trip, one transaction).
 */

export type UserStatus = 'active' | 'pending'

export interface PhoneOwnerRow {
  phone_id: string
  user_id: string
  status: UserStatus
  verified: number
  user_created: number
}

/**
 * Find-or-create for (project, phone number), race-safe inside one batch: D1 runs a batch as one
 * transaction and serialises statements, so of N concurrent batches for the same new number exactly
 * one inserts; the others see the row and insert nothing. The last statement reads the owner back.
 * An unverified number attached by /send is released first, inside its window or not: an attachment
 * is no claim on the number (src/db/phones.ts), so its real owner is found or created instead.
 */
export function findOrCreateStatements(
  db: D1Database,
  args: { projectId: string; phoneNumber: string; userId: string; phoneId: string; status: UserStatus; now: number },
): { statements: D1PreparedStatement[]; owner: D1PreparedStatement } {
  const { projectId, phoneNumber, userId, phoneId, status, now } = args
  return {
    statements: [
      releaseAttachmentByNumber(db, projectId, phoneNumber),
      db
        .prepare(
          `INSERT INTO users (id, project_id, status, created_at)
           SELECT ?3, ?1, ?4, ?5 WHERE NOT EXISTS (SELECT 1 FROM phones WHERE project_id = ?1 AND phone_number = ?2)`,
        )
        .bind(projectId, phoneNumber, userId, status, now),
      db
        .prepare(
          `INSERT INTO phones (id, project_id, user_id, phone_number, verified, created_at)
           SELECT ?3, ?1, ?4, ?2, 0, ?5 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?4)
             AND NOT EXISTS (SELECT 1 FROM phones WHERE project_id = ?1 AND phone_number = ?2)`,
        )
        .bind(projectId, phoneNumber, phoneId, userId, now),
    ],
    owner: phoneOwnerStatement(db, projectId, phoneNumber, { mintedUserId: userId, claims: 'owner' }),
  }
}

/**
 * The phone's owner; `user_created` is 1 when the owner is the user id this request minted. With
 * `claims: 'owner'` a number held only by an unverified attachment has no owner (/send without a
 * user must not route a login into the attaching account); 'any' also returns the attaching user.
 */
export function phoneOwnerStatement(
  db: D1Database,
  projectId: string,
  phoneNumber: string,
  options: { mintedUserId?: string; claims: 'owner' | 'any' },
): D1PreparedStatement {
  const claim = options.claims === 'owner' ? `AND ${ownsNumber('p.')}` : ''
  return db
    .prepare(
      `SELECT p.id AS phone_id, p.user_id, u.status, p.verified, (p.user_id = ?3) AS user_created
       FROM phones p JOIN users u ON u.id = p.user_id WHERE p.project_id = ?1 AND p.phone_number = ?2 ${claim}`,
    )
    .bind(projectId, phoneNumber, options.mintedUserId ?? '')
}
