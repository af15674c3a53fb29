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
 * only claim is an unverified /send attachment is released first, so it never makes the number
 * another user's. A taken external_id fails the batch on users_external_id (nothing is written).
 * Metadata goes through json_patch, so null members are dropped exactly as an update drops them.
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
    db
      .prepare(
        `INSERT INTO phones (id, project_id, user_id, phone_number, verified, created_at)
         SELECT ?3, ?1, ?4, ?2, 0, ?5 WHERE EXISTS (SELECT 1 FROM users WHERE id = ?4 AND project_id = ?1)`,
      )
      .bind(u.projectId, u.phoneNumber, u.phoneId, u.userId, u.at),
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
