import type { UserStatus } from '../schemas'

/**
 * D1 statements over the phones table: numbers, their owners, attachments, and the deletion or
 * exchange of a number. Like src/db/users.ts, builders return prepared statements so callers can
 * batch them.
 *
 * The claim rule, the one place that decides whose a number is (ownsNumber). A verified number is
 * its user's. An unverified number is an owner claim only on the user that login_or_create or
 * users.create minted for it, in the batch that created that user (insertPhoneStatement). Every other
 * path that puts an unproven number on an existing user (/send with a user or a session, and so the
 * frontend SDK's send for a logged-in user; exchange_primary_factor) makes an attachment
 * (attachStatements): attach_expires_at set, and no claim on the number against anyone but the
 * attaching flow itself. Whoever attaches a number cannot receive that number's logins:
 * login_or_create and users.create release it on the spot and find or create the number's real owner;
 * /send without a user treats the number as unknown; another user cannot attach or exchange to it
 * while it is in its window. Only the attaching user's own code, authenticated inside the window,
 * makes it a verified number (verifyPhoneStatement); once the window has passed it is released:
 * deleted on every write path that touches it, and left out of every read. Otherwise an account could
 * put a victim's number on itself and collect the victim's login (a pre-account takeover).
 *
 * An exchange's attachment also names the phone it replaces (replaces_phone_id, a pending exchange):
 * the success that verifies it removes that phone in the same batch (removeReplacedPhoneStatement).
 */

/** How long an attached number stays on the user without a successful authenticate. */
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
 * SQL over a `phones` row (optionally qualified, e.g. 'p.'): the claim rule. The row is the number's
 * real owner, i.e. verified, or minted for the number by login_or_create / users.create (the only rows
 * written unverified without an attach window), rather than an attachment.
 */
export const ownsNumber = (p = '') => `(${p}verified = 1 OR ${p}attach_expires_at IS NULL)`

/** SQL over a `phones` row: a pending exchange, an unverified attachment that replaces another phone. */
const pendingExchange = (p = '') => `(${p}verified = 0 AND ${p}replaces_phone_id IS NOT NULL)`

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
 * never resolve a number to a user whose only claim on it is an attachment, and for users.create,
 * which must never treat such a number as another user's.
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
 * the attach window; a user of the same project that already holds it as an attachment gets a fresh
 * window. With `replaces` (exchange_primary_factor) the attachment is a pending exchange of that
 * phone, written only while the phone is still the user's; without it (/send) a pending exchange
 * being refreshed stays one.
 */
export function attachStatements(
  db: D1Database,
  args: { projectId: string; phoneNumber: string; phoneId: string; userId: string; at: number; replaces?: string },
): D1PreparedStatement[] {
  const { projectId, phoneNumber, phoneId, userId, at } = args
  const replaces = args.replaces ?? null
  // ?6 the replaced phone or NULL: when given, it must still be the user's.
  const replacing = '(?6 IS NULL OR EXISTS (SELECT 1 FROM phones WHERE id = ?6 AND project_id = ?1 AND user_id = ?4))'
  return [
    db
      .prepare(
        `INSERT INTO phones (id, project_id, user_id, phone_number, verified, attach_expires_at, created_at,
           replaces_phone_id)
         SELECT ?3, ?1, ?4, ?2, 0, ?5 + ?7, ?5, ?6
         WHERE EXISTS (SELECT 1 FROM users WHERE id = ?4 AND project_id = ?1) AND ${replacing}
           AND NOT EXISTS (SELECT 1 FROM phones WHERE project_id = ?1 AND phone_number = ?2)`,
      )
      .bind(projectId, phoneNumber, phoneId, userId, at, replaces, ATTACH_WINDOW_MS),
    db
      .prepare(
        `UPDATE phones SET attach_expires_at = ?5 + ?7, replaces_phone_id = coalesce(?6, replaces_phone_id)
         WHERE project_id = ?1 AND phone_number = ?2 AND user_id = ?4 AND verified = 0
           AND attach_expires_at IS NOT NULL AND ${replacing}`,
      )
      .bind(projectId, phoneNumber, phoneId, userId, at, replaces, ATTACH_WINDOW_MS),
  ]
}

/**
 * exchange_primary_factor: releases the user's pending exchanges to any number but `keepNumber` (a
 * new exchange replaces a pending one; exchanging to the current number cancels it), with their gates
 * (by cascade). Written only while `oldPhoneId` is still the user's and no other user holds
 * `keepNumber`, the conditions the exchange's own attachment is written under, so a refused exchange
 * changes nothing. Returns the released phones' ids (for their KV records).
 */
export function releasePendingExchangesStatement(
  db: D1Database,
  args: { projectId: string; userId: string; oldPhoneId: string; keepNumber: string },
): D1PreparedStatement {
  return db
    .prepare(
      `DELETE FROM phones WHERE project_id = ?1 AND user_id = ?2 AND phone_number <> ?4 AND ${pendingExchange()}
         AND EXISTS (SELECT 1 FROM phones WHERE id = ?3 AND project_id = ?1 AND user_id = ?2)
         AND NOT EXISTS (SELECT 1 FROM phones WHERE project_id = ?1 AND phone_number = ?4 AND user_id <> ?2)
       RETURNING id AS phone_id`,
    )
    .bind(args.projectId, args.userId, args.oldPhoneId, args.keepNumber)
}

/** The ids of the user's pending exchanges (its phones exchange_primary_factor added, not yet proven). */
export function pendingExchangesStatement(db: D1Database, projectId: string, userId: string): D1PreparedStatement {
  return db
    .prepare(`SELECT id AS phone_id FROM phones WHERE project_id = ?1 AND user_id = ?2 AND ${pendingExchange()}`)
    .bind(projectId, userId)
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

/**
 * SQL: a user's visible phones as a JSON array of PhoneRow objects, in the order they were added, for
 * a statement that reads the user anyway (`userRef`, `projectRef` and `at` are SQL expressions or
 * placeholders), so the User object costs no statement of its own.
 */
export function userPhonesJsonSql(userRef: string, projectRef: string, at: string): string {
  return `(SELECT json_group_array(json_object('phone_id', p.id, 'phone_number', p.phone_number, 'verified', p.verified))
    FROM (SELECT p.id, p.phone_number, p.verified FROM phones p
      WHERE p.project_id = ${projectRef} AND p.user_id = ${userRef} AND ${visiblePhone(at)}
      ORDER BY p.created_at, p.rowid) p)`
}

/** The PhoneRow objects of a userPhonesJsonSql column. */
export function phonesFromJson(json: string | null | undefined): PhoneRow[] {
  return json ? (JSON.parse(json) as PhoneRow[]) : []
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
 * A success's effect on the phone: verified, and no longer an attachment that could lapse nor a
 * pending exchange. Written only when `succeeded` holds, and only when it changes something: the
 * phone of a returning user is already all that, and rewriting its row would be a D1 row written
 * (and billed) on every login for nothing.
 */
export function verifyPhoneStatement(db: D1Database, params: SuccessParams, succeeded: string): D1PreparedStatement {
  return db
    .prepare(
      `UPDATE phones SET verified = 1, attach_expires_at = NULL, replaces_phone_id = NULL
       WHERE id = ?1 AND project_id = ?2
         AND NOT (verified = 1 AND attach_expires_at IS NULL AND replaces_phone_id IS NULL) AND ${succeeded}`,
    )
    .bind(...params)
}

/**
 * SQL: the phone (placeholders of its id and project) is a pending exchange, i.e. a success on it
 * changes its user's primary factor. True only before verifyPhoneStatement ran in the batch.
 */
export const completesExchangeSql = (phoneId: string, projectId: string) =>
  `EXISTS (SELECT 1 FROM phones WHERE id = ${phoneId} AND project_id = ${projectId} AND ${pendingExchange()})`

/**
 * A success on a pending exchange: the phone it replaces leaves the user (its gate goes with it by
 * cascade), only when `succeeded` holds. Goes before verifyPhoneStatement, which ends the pending
 * state. Returns the removed phone's id (for its KV record).
 */
export function removeReplacedPhoneStatement(
  db: D1Database,
  params: SuccessParams,
  succeeded: string,
): D1PreparedStatement {
  return db
    .prepare(
      `DELETE FROM phones WHERE project_id = ?2
         AND id = (SELECT replaces_phone_id FROM phones WHERE id = ?1 AND project_id = ?2 AND ${pendingExchange()})
         AND user_id = (SELECT user_id FROM phones WHERE id = ?1 AND project_id = ?2) AND ${succeeded}
       RETURNING id AS phone_id`,
    )
    .bind(...params)
}

/** The ids of a user's phones (for their KV keys). */
export function phoneIdsStatement(db: D1Database, projectId: string, userId: string): D1PreparedStatement {
  return db.prepare('SELECT id FROM phones WHERE project_id = ?1 AND user_id = ?2').bind(projectId, userId)
}

export interface PhoneOwnerRow {
  phone_id: string
  user_id: string
  status: UserStatus
  verified: number
  user_created: number
  /** 1 when the row is an unverified attachment rather than the number's owner (ownsNumber). */
  attachment: number
}

/**
 * The phone's owner; `user_created` is 1 when the owner is the user id this request minted,
 * `attachment` 1 when the row is an attachment (only with claims 'any'). With
 * `claims: 'owner'` a number held only by an unverified attachment has no owner (/send without a
 * user must not route a login into the attaching account); 'any' also returns the attaching user.
 */
export function phoneOwnerStatement(
  db: D1Database,
  projectId: string,
  phoneNumber: string,
  options: { mintedUserId?: string; claims: 'owner' | 'any'; liveCodeAt?: number },
): D1PreparedStatement {
  const claim = options.claims === 'owner' ? `AND ${ownsNumber('p.')}` : ''
  // With liveCodeAt, also the phone's live code (otp_codes: unconsumed, unexpired then) or NULLs.
  const live = options.liveCodeAt !== undefined
  return db
    .prepare(
      `SELECT p.id AS phone_id, p.user_id, u.status, p.verified, (p.user_id = ?3) AS user_created,
         (NOT ${ownsNumber('p.')}) AS attachment${live ? ', c.code_id, c.expires_at' : ''}
       FROM phones p JOIN users u ON u.id = p.user_id
       ${live ? 'LEFT JOIN otp_codes c ON c.phone_id = p.id AND c.consumed_at IS NULL AND c.expires_at > ?4' : ''}
       WHERE p.project_id = ?1 AND p.phone_number = ?2 ${claim}`,
    )
    .bind(projectId, phoneNumber, options.mintedUserId ?? '', ...(live ? [options.liveCodeAt] : []))
}

/** The user holding the phone `phoneId` in the project, whatever the phone's state. */
export function phoneUserStatement(db: D1Database, projectId: string, phoneId: string): D1PreparedStatement {
  return db.prepare('SELECT user_id FROM phones WHERE id = ?2 AND project_id = ?1').bind(projectId, phoneId)
}
