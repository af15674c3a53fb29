import type { UserStatus } from '../schemas'
import {
  insertPhoneStatement,
  phoneOwnerStatement,
  releaseAttachmentByNumber,
  type SuccessParams,
  visiblePhone,
} from './phones'

/**
 * D1 statements over the users table: creating a user (with its first phone), reading, updating and
 * deleting one. Statement builders return prepared statements so callers can put them into one batch
 * (one round trip, one transaction).
 */

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

/** The UserRow columns of `users u`. */
export const USER_COLUMNS = `u.id AS user_id, u.status, u.created_at, u.lock_created_at, u.locked_until,
  u.first_name, u.middle_name, u.last_name, u.trusted_metadata, u.untrusted_metadata, u.external_id`

/** True while the user's lock is in force; an expired lock is just history. */
export function isLocked(user: Pick<UserRow, 'locked_until'>, at: number): boolean {
  return user.locked_until !== null && user.locked_until > at
}

/**
 * Find-or-create for (project, phone number), race-safe inside one batch: D1 runs a batch as one
 * transaction and serialises statements, so of N concurrent batches for the same new number exactly
 * one inserts; the others see the row and insert nothing. `owner` reads the owner back, with the
 * phone's live code (unconsumed, unexpired at `now`), which a new code replaces: put it before the
 * code's statements. An attachment of the number (by /send, or a pending exchange) is released
 * first, inside its window or not: an attachment is no claim on the number (src/db/phones.ts), so its
 * real owner is found or created instead.
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
      insertPhoneStatement(db, { projectId, phoneNumber, phoneId, userId, at: now }),
    ],
    owner: phoneOwnerStatement(db, projectId, phoneNumber, { mintedUserId: userId, claims: 'owner', liveCodeAt: now }),
  }
}

/** What users.create stores besides the phone. Metadata is JSON text ('{}' when not given). */
export interface NewUser {
  projectId: string
  userId: string
  phoneId: string
  phoneNumber: string
  status: UserStatus
  at: number
  name: { first_name?: string | undefined; middle_name?: string | undefined; last_name?: string | undefined }
  trustedMetadata: string | null
  untrustedMetadata: string | null
  externalId: string | null
}

/**
 * users.create with a phone number, race-safe in one batch like find-or-create: the user and its
 * (unverified) phone are inserted only if no one in the project holds the number. A number whose
 * only claim is an attachment (by /send, or a pending exchange) is released first, so it never makes
 * the number another user's. A taken external_id fails the batch on users_external_id (nothing is
 * written). Metadata goes through json_patch, so null members are dropped exactly as an update drops
 * them.
 */
export function createUserStatements(db: D1Database, u: NewUser): D1PreparedStatement[] {
  return [
    releaseAttachmentByNumber(db, u.projectId, u.phoneNumber),
    db
      .prepare(
        `INSERT INTO users (id, project_id, status, created_at, first_name, middle_name, last_name,
           trusted_metadata, untrusted_metadata, external_id)
         SELECT ?3, ?1, ?4, ?5, ?6, ?7, ?8, json_patch('{}', ?9), json_patch('{}', ?10), ?11
         WHERE NOT EXISTS (SELECT 1 FROM phones WHERE project_id = ?1 AND phone_number = ?2)`,
      )
      .bind(
        u.projectId,
        u.phoneNumber,
        u.userId,
        u.status,
        u.at,
        u.name.first_name ?? '',
        u.name.middle_name ?? '',
        u.name.last_name ?? '',
        u.trustedMetadata ?? '{}',
        u.untrustedMetadata ?? '{}',
        u.externalId,
      ),
    insertPhoneStatement(db, u),
  ]
}

/** A users.update: name parts and external_id given replace; metadata is merged (JSON Merge Patch). */
export interface UserChanges {
  name?: { first_name?: string | undefined; middle_name?: string | undefined; last_name?: string | undefined }
  trustedMetadata: string | null
  untrustedMetadata: string | null
  externalId?: string | null | undefined
  /** True removes the external id (DELETE …/external_id). */
  clearExternalId?: boolean
}

/**
 * Applies `changes` to the user in one statement. The metadata merge happens in D1 (json_patch) so
 * two concurrent updates cannot lose each other's keys, and the statement changes nothing when a
 * merged object would exceed `maxMetadataBytes`: `meta.changes` is then 0 although the user exists.
 */
export function updateUserStatement(
  db: D1Database,
  projectId: string,
  userId: string,
  changes: UserChanges,
  maxMetadataBytes: number,
): D1PreparedStatement {
  const name = changes.name ?? {}
  return db
    .prepare(
      `UPDATE users SET first_name = coalesce(?3, first_name), middle_name = coalesce(?4, middle_name),
         last_name = coalesce(?5, last_name),
         trusted_metadata = json_patch(trusted_metadata, ?6), untrusted_metadata = json_patch(untrusted_metadata, ?7),
         external_id = CASE WHEN ?9 THEN NULL ELSE coalesce(?8, external_id) END
       WHERE project_id = ?1 AND id = ?2
         AND length(CAST(json_patch(trusted_metadata, ?6) AS BLOB)) <= ?10
         AND length(CAST(json_patch(untrusted_metadata, ?7) AS BLOB)) <= ?10`,
    )
    .bind(
      projectId,
      userId,
      name.first_name ?? null,
      name.middle_name ?? null,
      name.last_name ?? null,
      changes.trustedMetadata ?? '{}',
      changes.untrustedMetadata ?? '{}',
      changes.externalId ?? null,
      changes.clearExternalId ? 1 : 0,
      maxMetadataBytes,
    )
}

/** The user id holding `externalId` in the project, if any (users_external_id). */
export function userByExternalIdStatement(db: D1Database, projectId: string, externalId: string) {
  return db.prepare('SELECT id FROM users WHERE project_id = ?1 AND external_id = ?2').bind(projectId, externalId)
}

/** True when a D1 error is the users_external_id uniqueness (another user has the external id). */
export function isDuplicateExternalId(err: unknown): boolean {
  return err instanceof Error && /UNIQUE constraint failed: users\.project_id, users\.external_id/.test(err.message)
}

/** 1 when the user exists in the project. */
export function userExistsStatement(db: D1Database, projectId: string, userId: string): D1PreparedStatement {
  return db.prepare('SELECT 1 AS found FROM users WHERE id = ?2 AND project_id = ?1').bind(projectId, userId)
}

/** The user (UserRow columns) by id. */
export function userByIdStatement(db: D1Database, projectId: string, userId: string): D1PreparedStatement {
  return db.prepare(`SELECT ${USER_COLUMNS} FROM users u WHERE u.id = ?2 AND u.project_id = ?1`).bind(projectId, userId)
}

/** The owner of a phone (UserRow columns), if the phone is visible. */
export function userByPhoneStatement(
  db: D1Database,
  projectId: string,
  phoneId: string,
  at: number,
): D1PreparedStatement {
  return db
    .prepare(
      `SELECT ${USER_COLUMNS} FROM phones p JOIN users u ON u.id = p.user_id
       WHERE p.id = ?2 AND p.project_id = ?1 AND ${visiblePhone('?3')}`,
    )
    .bind(projectId, phoneId, at)
}

/**
 * Deletes a user; `meta.changes` is 1 when the user existed. Its gates and phones go first, in the
 * same batch (deleteUserCodesStatement, deleteUserPhonesStatement), explicitly rather than through
 * ON DELETE CASCADE so the order is visible.
 */
export function deleteUserStatement(db: D1Database, projectId: string, userId: string): D1PreparedStatement {
  return db.prepare('DELETE FROM users WHERE project_id = ?1 AND id = ?2').bind(projectId, userId)
}

/**
 * A success's effect on the user: a pending user becomes active, and the consecutive failures and any
 * lock are cleared. Written only when `succeeded` (over SuccessParams' placeholders) holds, and only
 * when it changes something: an active user without failures (most logins) is left unwritten.
 */
export function userSucceededStatement(db: D1Database, params: SuccessParams, succeeded: string): D1PreparedStatement {
  return db
    .prepare(
      `UPDATE users SET status = 'active', failed_authentications = 0, lock_created_at = NULL, locked_until = NULL
       WHERE id = (SELECT user_id FROM phones WHERE id = ?1 AND project_id = ?2)
         AND NOT (status = 'active' AND failed_authentications = 0 AND lock_created_at IS NULL AND locked_until IS NULL)
         AND ${succeeded}`,
    )
    .bind(...params)
}

/**
 * A wrong code's effect on the user: one more consecutive failure. Written only when `counted` (SQL
 * over the placeholders ?1 phone id, ?2 project id, ?4 request id) holds, i.e. the attempt was counted
 * against the phone's live code earlier in this batch (a used, expired, used-up or replaced code, or
 * a stale KV record, proves nothing), and the user is not locked; reaching `lockThreshold` locks the
 * user for `lockMs`. After an expired lock the count starts again at 1.
 */
export function failedAuthenticationStatement(
  db: D1Database,
  a: { phoneId: string; projectId: string; at: number; requestId: string; lockThreshold: number; lockMs: number },
  counted: string,
): D1PreparedStatement {
  const failures = 'CASE WHEN locked_until IS NULL THEN failed_authentications + 1 ELSE 1 END'
  // ?1 phone id, ?2 project id, ?3 now, ?4 request id, ?5 threshold, ?6 lock length.
  return db
    .prepare(
      `UPDATE users SET failed_authentications = ${failures},
         lock_created_at = CASE WHEN ${failures} >= ?5 THEN ?3 END,
         locked_until = CASE WHEN ${failures} >= ?5 THEN ?3 + ?6 END
       WHERE id = (SELECT user_id FROM phones WHERE id = ?1 AND project_id = ?2)
         AND (locked_until IS NULL OR locked_until <= ?3) AND ${counted}`,
    )
    .bind(a.phoneId, a.projectId, a.at, a.requestId, a.lockThreshold, a.lockMs)
}
