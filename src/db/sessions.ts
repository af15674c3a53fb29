import { otpSucceededSql } from './otp-codes'
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
  ip_address: string
  user_agent: string
  custom_claims: string
  /** The token sealed (src/sessions/credentials.ts); null for sessions started before it was kept. */
  token_iv: string | null
  token_ct: string | null
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
  ipAddress: string
  userAgent: string
  customClaims: string
  /** The token sealed for this session (sealSessionToken). */
  sealedToken: { iv: string; ct: string }
}

/**
 * Starts a session for the owner of `phoneId`, only if `gate` holds (the OTP succeeded in this
 * batch). `meta.changes` is 1 when it was created.
 */
export function insertForPhoneStatement(db: D1Database, s: NewSession, phoneId: string, gate: OtpSuccessGate) {
  return db
    .prepare(
      `INSERT INTO sessions (id, project_id, user_id, token_hash, started_at, last_accessed_at, expires_at,
         ip_address, user_agent, custom_claims, token_iv, token_ct)
       SELECT ?1, ?2, p.user_id, ?3, ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10 FROM phones p
       WHERE p.id = ?11 AND p.project_id = ?2 AND ${gateSql('?2', 12)}`,
    )
    .bind(
      s.id,
      s.projectId,
      s.tokenHash,
      s.at,
      s.expiresAt,
      s.ipAddress,
      s.userAgent,
      s.customClaims,
      s.sealedToken.iv,
      s.sealedToken.ct,
      phoneId,
      ...gateParams(gate),
    )
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
