import type { UserStatus } from './users'

/**
 * D1 statements over the phones table: numbers, their owners, attachments by /send, and the
 * deletion or exchange of a number. Like src/db/users.ts, builders return prepared statements so
 * callers can batch them.
 *
 * An unverified number attached to an existing user (attach_expires_at set) belongs to that user
 * only until attach_expires_at; afterwards it is released: deleted on every write path that touches
 * it, and left out of every read. Even inside its window an attachment is no claim on the number
 * against anyone but the attaching flow itself: whoever attaches a number cannot receive that
 * number's logins. login_or_create releases it on the spot and finds or creates the number's real
 * owner; /send without a user treats the number as unknown. Otherwise an account could attach a
 * victim's number and collect the victim's login (a pre-account takeover).
 */

/** How long a number attached by /send stays on the user without a successful authenticate. */
export const ATTACH_WINDOW_MS = 5 * 60_000

/** One phone of a user as read from D1 (`verified` is SQLite's 0/1). */
export interface PhoneRow {
  phone_id: string
  phone_number: string
  verified: number
}

/**
 * SQL over `phones p`: the row is visible unless it is an attachment whose window has passed by
 * `at` (a placeholder or parameter reference holding now).
 */
export const visiblePhone = (at: string) =>
  `(p.verified = 1 OR p.attach_expires_at IS NULL OR p.attach_expires_at > ${at})`
const VISIBLE = visiblePhone('?3')

/**
 * SQL over a `phones` row (optionally qualified, e.g. 'p.'): the row is the number's real owner, i.e.
 * verified, or created for the number by login_or_create, rather than an unverified attachment.
 */
export const ownsNumber = (p = '') => `(${p}verified = 1 OR ${p}attach_expires_at IS NULL)`

/**
 * SQL over a `phones` row: a code may be issued for it. `ownerParam` is the bound parameter holding
 * the user the caller issues for: with one, the row must be that user's (/send attaching a number
 * must not issue a code for another user); with NULL, the row must be the number's real owner rather
 * than an unverified attachment. The code's gate row and its delivery row are written under this
 * same condition, so either both exist or neither does.
 */
export const issuedFor = (ownerParam: string) =>
  `(user_id = ${ownerParam} OR (${ownerParam} IS NULL AND ${ownsNumber()}))`

/**
 * Releases the number if it is an unverified attachment, whether or not its window has passed (the
 * gate row goes with it, so the attaching flow's code stops working): for login_or_create, which must
 * never resolve a number to a user whose only claim on it is an attachment, and for users.create and
 * exchange_primary_factor, which must never treat such a number as that user's.
 */
export function releaseAttachmentByNumber(db: D1Database, projectId: string, phoneNumber: string) {
  return db
    .prepare(`DELETE FROM phones WHERE project_id = ?1 AND phone_number = ?2 AND NOT ${ownsNumber()}`)
    .bind(projectId, phoneNumber)
}

/** Releases the number if it is an attachment whose window has passed (the gate row goes with it). */
export function releaseExpiredByNumber(db: D1Database, projectId: string, phoneNumber: string, at: number) {
  return releaseExpired(db, projectId, 'phone_number', phoneNumber, at)
}

/** As releaseExpiredByNumber, for a phone id; `meta.changes` is 1 when it released the phone. */
export function releaseExpiredById(db: D1Database, projectId: string, phoneId: string, at: number) {
  return releaseExpired(db, projectId, 'id', phoneId, at)
}

function releaseExpired(
  db: D1Database,
  projectId: string,
  column: 'phone_number' | 'id',
  value: string,
  at: number,
): D1PreparedStatement {
  return db
    .prepare(
      `DELETE FROM phones WHERE project_id = ?1 AND ${column} = ?2 AND verified = 0
         AND attach_expires_at IS NOT NULL AND attach_expires_at <= ?3`,
    )
    .bind(projectId, value, at)
}

/**
 * Attaches a number nobody in the project has to an existing user of the project, unverified, for
 * the attach window; a user of the same project that already holds it unverified gets a fresh window.
 */
export function attachStatements(
  db: D1Database,
  args: { projectId: string; phoneNumber: string; phoneId: string; userId: string; at: number },
): D1PreparedStatement[] {
  const { projectId, phoneNumber, phoneId, userId, at } = args
  return [
    db
      .prepare(
        `INSERT INTO phones (id, project_id, user_id, phone_number, verified, attach_expires_at, created_at)
         SELECT ?3, ?1, ?4, ?2, 0, ?5 + ?6, ?5
         WHERE EXISTS (SELECT 1 FROM users WHERE id = ?4 AND project_id = ?1)
           AND NOT EXISTS (SELECT 1 FROM phones WHERE project_id = ?1 AND phone_number = ?2)`,
      )
      .bind(projectId, phoneNumber, phoneId, userId, at, ATTACH_WINDOW_MS),
    db
      .prepare(
        `UPDATE phones SET attach_expires_at = ?4 + ?5
         WHERE project_id = ?1 AND phone_number = ?2 AND user_id = ?3 AND verified = 0
           AND attach_expires_at IS NOT NULL`,
      )
      .bind(projectId, phoneNumber, userId, at, ATTACH_WINDOW_MS),
  ]
}

/**
 * A user's visible phones (PhoneRow columns), in the order they were added. The user is given by id
 * or as the owner of `phoneId`, so the statement can run in the same batch that changes that phone,
 * or as the owner of the session whose token hashes to `sessionTokenHash` (sessions/authenticate).
 */
export function userPhonesStatement(
  db: D1Database,
  projectId: string,
  owner: { userId: string } | { phoneId: string } | { sessionTokenHash: string },
  at: number,
): D1PreparedStatement {
  const user =
    'userId' in owner
      ? '?2'
      : 'phoneId' in owner
        ? '(SELECT user_id FROM phones WHERE id = ?2 AND project_id = ?1)'
        : '(SELECT user_id FROM sessions WHERE token_hash = ?2 AND project_id = ?1)'
  const key = 'userId' in owner ? owner.userId : 'phoneId' in owner ? owner.phoneId : owner.sessionTokenHash
  return db
    .prepare(
      `SELECT p.id AS phone_id, p.phone_number, p.verified FROM phones p
       WHERE p.project_id = ?1 AND p.user_id = ${user} AND ${VISIBLE}
       ORDER BY p.created_at, p.rowid`,
    )
    .bind(projectId, key, at)
}

/** Deletes one phone (its gate goes first: deletePhoneCodeStatement in src/db/otp-codes.ts). */
export function deletePhoneStatement(db: D1Database, projectId: string, phoneId: string): D1PreparedStatement {
  return db.prepare('DELETE FROM phones WHERE project_id = ?1 AND id = ?2').bind(projectId, phoneId)
}

/** Deletes all of a user's phones (their gates go first: deleteUserCodesStatement). */
export function deleteUserPhonesStatement(db: D1Database, projectId: string, userId: string): D1PreparedStatement {
  return db.prepare('DELETE FROM phones WHERE project_id = ?1 AND user_id = ?2').bind(projectId, userId)
}

/**
 * A new user's first phone, unverified, in the batch that inserts the user: written only if that
 * user now exists in the project (its insert was itself conditioned on nobody holding the number)
 * and nobody holds the number.
 */
export function insertPhoneStatement(
  db: D1Database,
  p: { projectId: string; phoneNumber: string; phoneId: string; userId: string; at: number },
): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO phones (id, project_id, user_id, phone_number, verified, created_at)
       SELECT ?3, ?1, ?4, ?2, 0, ?5 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?4 AND project_id = ?1)
         AND NOT EXISTS (SELECT 1 FROM phones WHERE project_id = ?1 AND phone_number = ?2)`,
    )
    .bind(p.projectId, p.phoneNumber, p.phoneId, p.userId, p.at)
}

/**
 * What a success's effects bind, in this order: ?1 phone id, ?2 project id, ?3 request id, ?4 the
 * sandbox number or NULL. The `succeeded` condition they are written under (otpSucceededSql in
 * src/db/otp-codes.ts) refers to the same placeholders.
 */
export type SuccessParams = readonly [
  phoneId: string,
  projectId: string,
  requestId: string,
  sandboxNumber: string | null,
]

/**
 * A success's effect on the phone: verified, and no longer an attachment that could lapse. Written
 * only when `succeeded` holds.
 */
export function verifyPhoneStatement(db: D1Database, params: SuccessParams, succeeded: string): D1PreparedStatement {
  return db
    .prepare(
      `UPDATE phones SET verified = 1, attach_expires_at = NULL WHERE id = ?1 AND project_id = ?2 AND ${succeeded}`,
    )
    .bind(...params)
}

/** The ids of a user's phones (for their KV keys). */
export function phoneIdsStatement(db: D1Database, projectId: string, userId: string): D1PreparedStatement {
  return db.prepare('SELECT id FROM phones WHERE project_id = ?1 AND user_id = ?2').bind(projectId, userId)
}

/** The row holding a number in the project (at most one), whatever its state. */
export function numberHolderStatement(db: D1Database, projectId: string, phoneNumber: string) {
  return db
    .prepare(
      `SELECT id AS phone_id, user_id, verified, attach_expires_at FROM phones
       WHERE project_id = ?1 AND phone_number = ?2`,
    )
    .bind(projectId, phoneNumber)
}

/**
 * exchange_primary_factor: replaces the user's phone `oldPhoneId` by a new, unverified phone row
 * for `phoneNumber` (a new phone id, so no code sent to the old number can ever verify the new one;
 * the old gate goes with the old row). Every write is conditional on the old phone still being the
 * user's and on nobody holding the number once an unverified attachment of it has been released,
 * so the batch either exchanges or changes nothing. The new row exists afterwards iff it worked.
 * `release` and `insert` come first; the old gate (deleteExchangedCodeStatement in
 * src/db/otp-codes.ts) and then `removeOld` go once the new row exists.
 */
export function exchangePhoneStatements(
  db: D1Database,
  args: { projectId: string; userId: string; oldPhoneId: string; newPhoneId: string; phoneNumber: string; at: number },
): { release: D1PreparedStatement; insert: D1PreparedStatement; removeOld: D1PreparedStatement } {
  const { projectId, userId, oldPhoneId, newPhoneId, phoneNumber, at } = args
  const stillTheUsers = 'EXISTS (SELECT 1 FROM phones WHERE id = ?3 AND project_id = ?1 AND user_id = ?2)'
  return {
    release: db
      .prepare(
        `DELETE FROM phones WHERE project_id = ?1 AND phone_number = ?4 AND NOT ${ownsNumber()} AND ${stillTheUsers}`,
      )
      .bind(projectId, userId, oldPhoneId, phoneNumber),
    insert: db
      .prepare(
        `INSERT INTO phones (id, project_id, user_id, phone_number, verified, created_at)
         SELECT ?5, ?1, ?2, ?4, 0, ?6 WHERE ${stillTheUsers}
           AND NOT EXISTS (SELECT 1 FROM phones WHERE project_id = ?1 AND phone_number = ?4)`,
      )
      .bind(projectId, userId, oldPhoneId, phoneNumber, newPhoneId, at),
    removeOld: db
      .prepare('DELETE FROM phones WHERE project_id = ?1 AND id = ?2 AND EXISTS (SELECT 1 FROM phones WHERE id = ?3)')
      .bind(projectId, oldPhoneId, newPhoneId),
  }
}

export interface PhoneOwnerRow {
  phone_id: string
  user_id: string
  status: UserStatus
  verified: number
  user_created: number
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

/** The user holding the phone `phoneId` in the project, whatever the phone's state. */
export function phoneUserStatement(db: D1Database, projectId: string, phoneId: string): D1PreparedStatement {
  return db.prepare('SELECT user_id FROM phones WHERE id = ?2 AND project_id = ?1').bind(projectId, phoneId)
}
