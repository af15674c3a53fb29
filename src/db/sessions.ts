import { otpSucceededSql } from './otp-codes'
import { completesExchangeSql, type SuccessParams } from './phones'
import { USER_COLUMNS } from './users'

/**
 * D1 statements for sessions and their authentication factors. Builders return prepared statements
 * so callers can put them in one batch (one round trip, one transaction), e.g. the OTP authenticate
 * batch that consumes the code. A session row holds only the SHA-256 of its token; revoking a
 * session deletes it (its factors go with it by cascade), and so does deleting its user.
 */

/** A session row (times in ms since the epoch; custom_claims is a JSON object). */
export interface SessionRow {
  id: string
  user_id: string
  started_at: number
  last_accessed_at: number
  expires_at: number
  /** The attributes in clear, as sessions stored them before they were sealed; '' since. */
  ip_address: string
  user_agent: string
  custom_claims: string
  /** The token sealed (src/sessions/sealing.ts); null for sessions started before it was kept. */
  token_iv: string | null
  token_ct: string | null
  /** The attributes (IP address, user agent) sealed; null for sessions that kept them in clear. */
  attributes_iv: string | null
  attributes_ct: string | null
  /** Fingerprint of the SESSION_KEY_ENCRYPTION_KEY that sealed the row; null before it was recorded. */
  sealed_with: string | null
}

/** What a session row keeps sealed (src/sessions/sealing.ts). */
export interface SealedSession {
  /** The token; null to leave the stored one as it is (a re-seal that could not read it). */
  token: { iv: string; ct: string } | null
  attributes: { iv: string; ct: string }
  sealedWith: string
}

/** One authentication factor of a session: today always a WhatsApp OTP on a phone. */
export interface FactorRow {
  session_id: string
  type: string
  delivery_method: string
  phone_id: string
  phone_number: string
  created_at: number
  last_authenticated_at: number
  updated_at: number
}

/** Which session: by its token's hash, or by id (a JWT also names the user, which must match). */
export type SessionSelector = { tokenHash: string } | { sessionId: string; userId?: string }

/**
 * Makes a write conditional on the OTP success decided earlier in the same batch: this request
 * consumed the phone's code, or the phone is the sandbox number (otpSucceededSql in
 * src/db/otp-codes.ts, the condition of successStatements too).
 */
export interface OtpSuccessGate {
  phoneId: string
  requestId: string
  sandboxNumber: string | null
}

const COLUMNS = [
  'id',
  'user_id',
  'started_at',
  'last_accessed_at',
  'expires_at',
  'ip_address',
  'user_agent',
  'custom_claims',
  'token_iv',
  'token_ct',
  'attributes_iv',
  'attributes_ct',
  'sealed_with',
]
const SESSION_COLUMNS = COLUMNS.map((c) => `s.${c}`).join(', ')
// RETURNING cannot name the table's alias.
const RETURNED_COLUMNS = COLUMNS.join(', ')
const FACTOR_COLUMNS = [
  'session_id',
  'type',
  'delivery_method',
  'phone_id',
  'phone_number',
  'created_at',
  'last_authenticated_at',
  'updated_at',
]
  .map((c) => `f.${c}`)
  .join(', ')

// ?1 project id, ?2 token hash or session id, ?3 user id ('' = any), ?4 now. A session is live
// until expires_at.
function where(selector: SessionSelector) {
  const column = 'tokenHash' in selector ? 's.token_hash' : 's.id'
  const sql = `s.project_id = ?1 AND ${column} = ?2 AND (?3 = '' OR s.user_id = ?3) AND s.expires_at > ?4`
  const key = 'tokenHash' in selector ? selector.tokenHash : selector.sessionId
  const userId = 'tokenHash' in selector ? '' : (selector.userId ?? '')
  return { sql, params: [key, userId] as const }
}

// The gate's parameters are appended after a statement's own, numbered from `first`; `project` is
// the placeholder already holding the project id.
function gateSql(project: string, first: number): string {
  return otpSucceededSql({
    phoneId: `?${first}`,
    projectId: project,
    requestId: `?${first + 1}`,
    sandboxNumber: `?${first + 2}`,
  })
}
const gateParams = (gate: OtpSuccessGate) => [gate.phoneId, gate.requestId, gate.sandboxNumber] as const

/** The live session, if any. */
export function sessionStatement(db: D1Database, projectId: string, selector: SessionSelector, at: number) {
  const w = where(selector)
  return db.prepare(`SELECT ${SESSION_COLUMNS} FROM sessions s WHERE ${w.sql}`).bind(projectId, ...w.params, at)
}

/** The factors of the live session, oldest first. */
export function factorsStatement(db: D1Database, projectId: string, selector: SessionSelector, at: number) {
  const w = where(selector)
  return db
    .prepare(
      `SELECT ${FACTOR_COLUMNS} FROM session_factors f JOIN sessions s ON s.id = f.session_id
       WHERE ${w.sql} ORDER BY f.created_at, f.phone_id`,
    )
    .bind(projectId, ...w.params, at)
}

/** The live session's user (UserRow columns, src/db/users.ts). */
export function sessionUserStatement(db: D1Database, projectId: string, selector: SessionSelector, at: number) {
  const w = where(selector)
  return db
    .prepare(`SELECT ${USER_COLUMNS} FROM sessions s JOIN users u ON u.id = s.user_id WHERE ${w.sql}`)
    .bind(projectId, ...w.params, at)
}

/**
 * Marks the live session accessed now and returns it; `expiresAt` replaces its expiry (extension
 * or shortening, as session_duration_minutes asks) and `customClaims` its claims (JSON).
 */
export function touchStatement(
  db: D1Database,
  projectId: string,
  selector: SessionSelector,
  at: number,
  changes: { expiresAt?: number | undefined; customClaims?: string | undefined } = {},
  gate?: OtpSuccessGate,
) {
  const w = where(selector)
  return db
    .prepare(
      `UPDATE sessions AS s SET last_accessed_at = ?4, expires_at = coalesce(?5, s.expires_at),
         custom_claims = coalesce(?6, s.custom_claims)
       WHERE ${w.sql}${gate ? ` AND ${gateSql('?1', 7)}` : ''} RETURNING ${RETURNED_COLUMNS}`,
    )
    .bind(
      projectId,
      ...w.params,
      at,
      changes.expiresAt ?? null,
      changes.customClaims ?? null,
      ...(gate ? gateParams(gate) : []),
    )
}

/** Deletes the session (revocation); `meta.changes` is 1 when there was a live one. */
export function deleteStatement(db: D1Database, projectId: string, selector: SessionSelector, at: number) {
  const w = where(selector)
  return db.prepare(`DELETE FROM sessions AS s WHERE ${w.sql}`).bind(projectId, ...w.params, at)
}

/** The user's live sessions, newest first, and their factors. */
export function userSessionsStatements(db: D1Database, projectId: string, userId: string, at: number) {
  const live = 's.project_id = ?1 AND s.user_id = ?2 AND s.expires_at > ?3'
  return {
    sessions: db
      .prepare(`SELECT ${SESSION_COLUMNS} FROM sessions s WHERE ${live} ORDER BY s.started_at DESC, s.id`)
      .bind(projectId, userId, at),
    factors: db
      .prepare(
        `SELECT ${FACTOR_COLUMNS} FROM session_factors f JOIN sessions s ON s.id = f.session_id
         WHERE ${live} ORDER BY f.created_at, f.phone_id`,
      )
      .bind(projectId, userId, at),
  }
}

/**
 * A success that completes a pending exchange changes the user's primary factor: every session of
 * the phone's user except `keepSessionId` (the one the authenticate extends or starts; NULL: none) is
 * deleted, i.e. revoked, so its token and its JWTs stop working here at once. Written only when
 * `succeeded` (over SuccessParams' placeholders) holds, and before the success verifies the phone,
 * while it still reads as a pending exchange (completesExchangeSql in src/db/phones.ts).
 */
export function revokeOnExchangeStatement(
  db: D1Database,
  params: SuccessParams,
  succeeded: string,
  keepSessionId: string | null,
): D1PreparedStatement {
  return db
    .prepare(
      `DELETE FROM sessions WHERE project_id = ?2 AND id IS NOT ?5
         AND user_id = (SELECT user_id FROM phones WHERE id = ?1 AND project_id = ?2)
         AND ${completesExchangeSql('?1', '?2')} AND ${succeeded}`,
    )
    .bind(...params, keepSessionId)
}

/**
 * Deletes the expired sessions of the owner of `phoneId`, so dead rows do not pile up. It rides in
 * the batch that starts a session for that user, gated like the start (a refused request changes
 * nothing).
 */
export function purgeExpiredStatement(
  db: D1Database,
  projectId: string,
  phoneId: string,
  at: number,
  gate: OtpSuccessGate,
) {
  return db
    .prepare(
      `DELETE FROM sessions WHERE project_id = ?1 AND expires_at <= ?3
         AND user_id = (SELECT user_id FROM phones WHERE id = ?2 AND project_id = ?1) AND ${gateSql('?1', 4)}`,
    )
    .bind(projectId, phoneId, at, ...gateParams(gate))
}

export interface NewSession {
  id: string
  projectId: string
  tokenHash: string
  at: number
  expiresAt: number
  customClaims: string
  /** The token and the attributes sealed for this session (sealSession); the clear columns stay ''. */
  sealed: SealedSession & { token: { iv: string; ct: string } }
}

/**
 * Starts a session for the owner of `phoneId`, only if `gate` holds (the OTP succeeded in this
 * batch). `meta.changes` is 1 when it was created.
 */
export function insertForPhoneStatement(db: D1Database, s: NewSession, phoneId: string, gate: OtpSuccessGate) {
  const { token, attributes, sealedWith } = s.sealed
  return db
    .prepare(
      `INSERT INTO sessions (id, project_id, user_id, token_hash, started_at, last_accessed_at, expires_at,
         custom_claims, token_iv, token_ct, attributes_iv, attributes_ct, sealed_with)
       SELECT ?1, ?2, p.user_id, ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11 FROM phones p
       WHERE p.id = ?12 AND p.project_id = ?2 AND ${gateSql('?2', 13)}`,
    )
    .bind(
      s.id,
      s.projectId,
      s.tokenHash,
      s.at,
      s.expiresAt,
      s.customClaims,
      token.iv,
      token.ct,
      attributes.iv,
      attributes.ct,
      sealedWith,
      phoneId,
      ...gateParams(gate),
    )
}

/** One session to seal anew: its seals under the current key, if it is still sealed with `was`. */
export interface Reseal {
  projectId: string
  sessionId: string
  sealed: SealedSession
  was: string | null
}

/**
 * Stores sessions' seals anew (under the current key) and clears their clear attributes, each only
 * if the row is still sealed with its `was` (a concurrent re-seal wins harmlessly). A null token
 * leaves the stored one as it is. One statement whatever the number of rows: they travel as one
 * JSON parameter, so a list or a run of hundreds stays within D1's queries per invocation.
 */
export function resealStatement(db: D1Database, rows: readonly Reseal[]): D1PreparedStatement {
  const values = rows.map((r) => ({
    project_id: r.projectId,
    id: r.sessionId,
    token_iv: r.sealed.token?.iv ?? null,
    token_ct: r.sealed.token?.ct ?? null,
    attributes_iv: r.sealed.attributes.iv,
    attributes_ct: r.sealed.attributes.ct,
    sealed_with: r.sealed.sealedWith,
    was: r.was,
  }))
  return db
    .prepare(
      `UPDATE sessions AS s SET token_iv = coalesce(v.token_iv, s.token_iv),
         token_ct = coalesce(v.token_ct, s.token_ct), attributes_iv = v.attributes_iv,
         attributes_ct = v.attributes_ct, sealed_with = v.sealed_with, ip_address = '', user_agent = ''
       FROM (SELECT value ->> '$.project_id' AS project_id, value ->> '$.id' AS id,
               value ->> '$.token_iv' AS token_iv, value ->> '$.token_ct' AS token_ct,
               value ->> '$.attributes_iv' AS attributes_iv, value ->> '$.attributes_ct' AS attributes_ct,
               value ->> '$.sealed_with' AS sealed_with, value ->> '$.was' AS was
             FROM json_each(?1)) AS v
       WHERE s.project_id = v.project_id AND s.id = v.id AND s.sealed_with IS v.was`,
    )
    .bind(JSON.stringify(values))
}

/** A live session left sealed under another key (or in clear), with its project, for the sealing run. */
export type UnsealedSessionRow = SessionRow & { project_id: string }

/**
 * Up to `limit` live sessions of any project sealed before fingerprints were recorded (NULL, which
 * includes every row that kept its attributes in clear) or under the key with fingerprint `previous`.
 * Both are lookups on sessions_sealed_with.
 */
export function unsealedSessionsStatement(
  db: D1Database,
  at: number,
  previous: string | null,
  limit: number,
): D1PreparedStatement {
  return db
    .prepare(
      `SELECT ${SESSION_COLUMNS}, s.project_id FROM sessions s
       WHERE (s.sealed_with IS NULL OR s.sealed_with = ?2) AND s.expires_at > ?1 LIMIT ?3`,
    )
    .bind(at, previous, limit)
}

// The factor's delivery method: 'sms' when an SMS carried the phone's code (an SMS route, or the SMS
// fallback of a WhatsApp message), otherwise 'whatsapp' (the sandbox number has no code row).
const DELIVERY_METHOD = `COALESCE((SELECT 'sms' FROM otp_codes c WHERE c.phone_id = p.id AND c.sms_sent_at IS NOT NULL),
  'whatsapp')`

/**
 * Records (or refreshes) the OTP factor for `phoneId` on a live session of the phone's own
 * user, only if `gate` holds. A session of another user never gets the factor.
 */
export function upsertPhoneFactorStatement(
  db: D1Database,
  projectId: string,
  sessionId: string,
  phoneId: string,
  at: number,
  gate: OtpSuccessGate,
) {
  return db
    .prepare(
      `INSERT INTO session_factors (session_id, type, delivery_method, phone_id, phone_number, created_at,
         last_authenticated_at, updated_at)
       SELECT s.id, 'otp', ${DELIVERY_METHOD}, p.id, p.phone_number, ?4, ?4, ?4
       FROM sessions s JOIN phones p ON p.id = ?3 AND p.project_id = ?1 AND p.user_id = s.user_id
       WHERE s.id = ?2 AND s.project_id = ?1 AND s.expires_at > ?4 AND ${gateSql('?1', 5)}
       ON CONFLICT (session_id, type, delivery_method, phone_id) DO UPDATE SET
         phone_number = excluded.phone_number, last_authenticated_at = excluded.last_authenticated_at,
         updated_at = excluded.updated_at`,
    )
    .bind(projectId, sessionId, phoneId, at, ...gateParams(gate))
}
