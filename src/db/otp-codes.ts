import { issuedFor, type SuccessParams, userPhonesJsonSql, verifyPhoneStatement } from './phones'
import { failedAuthenticationStatement, isLocked, USER_COLUMNS, type UserRow, userSucceededStatement } from './users'

/**
 * D1 statements over otp_codes, the phone's current code (its "gate"), and the delivery row issued
 * with it: issuing a code, the authenticate gates, and closing a delivery whose code never went out.
 *
 * The authenticate gates. KV has no compare-and-set, so every decision that must hold under
 * concurrency is a conditional UPDATE here: D1 runs a batch as one transaction and statements one at
 * a time, so of N parallel batches presenting the right code exactly one consumes the gate, and
 * attempt and failure counters never pass their limits.
 *
 * Gate parameters: ?1 phone id, ?2 project id, ?3 now (ms), ?4 request id, ?5 the code_id of the KV
 * record the presented code was checked against (on a recheck, the gate's own: gateToRecheck), ?6 the
 * project's otp_max_attempts.
 */
export interface GateArgs {
  projectId: string
  phoneId: string
  requestId: string
  at: number
  codeId: string
  maxAttempts: number
}

// The gate is open: the code checked is still the phone's current code, unused, unexpired, not
// out of attempts, and its user is not locked.
const GATE_OPEN = `phone_id = ?1 AND project_id = ?2 AND code_id = ?5 AND consumed_at IS NULL
  AND attempts < ?6 AND expires_at > ?3
  AND NOT EXISTS (SELECT 1 FROM phones p JOIN users u ON u.id = p.user_id WHERE p.id = ?1 AND u.locked_until > ?3)`

const gateParams = (a: GateArgs) => [a.phoneId, a.projectId, a.at, a.requestId, a.codeId, a.maxAttempts] as const

/** The presented code matched: consume the gate, marking it with this request's id. */
export function consumeStatement(db: D1Database, a: GateArgs): D1PreparedStatement {
  return db.prepare(`UPDATE otp_codes SET consumed_at = ?3, consumed_by = ?4 WHERE ${GATE_OPEN}`).bind(...gateParams(a))
}

/**
 * The failed-authentication brake as the wrong-attempt gate sees it (src/limits.ts decides it):
 * `engaged(projectRef)` is the SQL condition, over the placeholder holding the project id, that the
 * project's brake is engaged; while it is, a code survives at most `maxAttempts` wrong guesses in all.
 */
export interface AttemptBrake {
  engaged(projectRef: string): string
  maxAttempts: number
}

/**
 * The presented code was wrong: `attempt` counts the attempt on the open gate (`meta.changes` 1 =
 * counted) and marks it with this request's id (attempted_by, read by wrongAttemptCountedSql); while
 * the brake is engaged, the attempt that reaches `brake.maxAttempts` uses the code up. `failure` then
 * counts a consecutive failure on the user, only for an attempt so counted: a code that is used,
 * expired, out of attempts or replaced (or a stale KV record) is no attempt on a live code. The user
 * is locked when the count reaches `lockThreshold`, for `lockMs`; after an expired lock the count
 * starts again at 1.
 */
export function wrongCodeStatements(
  db: D1Database,
  a: GateArgs & { lockThreshold: number; lockMs: number; brake: AttemptBrake },
): { attempt: D1PreparedStatement; failure: D1PreparedStatement } {
  // ?7: the attempts a code survives while the brake is engaged.
  const attempts = `CASE WHEN attempts + 1 >= ?7 AND ${a.brake.engaged('?2')} THEN ?6 ELSE attempts + 1 END`
  const counted = wrongAttemptCountedSql({ phoneId: '?1', projectId: '?2', requestId: '?4' })
  return {
    attempt: db
      .prepare(`UPDATE otp_codes SET attempts = ${attempts}, attempted_by = ?4 WHERE ${GATE_OPEN}`)
      .bind(...gateParams(a), a.brake.maxAttempts),
    failure: failedAuthenticationStatement(db, a, counted),
  }
}

/**
 * SQL: this request's wrong attempt was counted against the phone's live code earlier in this batch
 * (wrongCodeStatements marks it with the request id). The user lock and the project's failure count
 * use this one condition, so they count exactly the attempts the gate counted.
 */
export function wrongAttemptCountedSql(r: { phoneId: string; projectId: string; requestId: string }): string {
  return `EXISTS (SELECT 1 FROM otp_codes WHERE phone_id = ${r.phoneId} AND project_id = ${r.projectId}
      AND attempted_by = ${r.requestId})`
}

/** Placeholders (e.g. '?1') holding the values otpSucceededSql tests. */
export interface OtpSuccessRefs {
  phoneId: string
  projectId: string
  requestId: string
  /** The sandbox number when the sandbox code was presented in a test project, else NULL. */
  sandboxNumber: string
}

/**
 * SQL: the OTP succeeded earlier in this batch, i.e. this request consumed the phone's code
 * (consumeStatement marks it with the request id), or the phone is the sandbox number. Every
 * statement conditioned on the success (its effects, the session writes, the failed-attempt count)
 * uses this one condition, so they cannot disagree about what a success is.
 */
export function otpSucceededSql(r: OtpSuccessRefs): string {
  return `(EXISTS (SELECT 1 FROM otp_codes WHERE phone_id = ${r.phoneId} AND project_id = ${r.projectId}
      AND consumed_by = ${r.requestId})
    OR EXISTS (SELECT 1 FROM phones WHERE id = ${r.phoneId} AND project_id = ${r.projectId}
      AND phone_number = ${r.sandboxNumber}))`
}

/** A success as its effects bind it (SuccessParams) and the condition they are written under. */
export interface SuccessGate {
  params: SuccessParams
  /** otpSucceededSql over the params' placeholders. */
  succeeded: string
}

export function successGate(args: {
  projectId: string
  phoneId: string
  requestId: string
  sandboxNumber: string | null
}): SuccessGate {
  return {
    params: [args.phoneId, args.projectId, args.requestId, args.sandboxNumber],
    succeeded: otpSucceededSql({ phoneId: '?1', projectId: '?2', requestId: '?3', sandboxNumber: '?4' }),
  }
}

/**
 * The effects of a success, in the same batch after consumeStatement: only if this request consumed
 * the gate (or, with `sandbox`, the phone is the sandbox number) the phone becomes verified and stays
 * on its user (no longer an attachment or a pending exchange), a pending user becomes active and the
 * user's failure count and lock are cleared. What completing a pending exchange does besides comes
 * before these (src/otp/authenticate.ts).
 */
export function successStatements(db: D1Database, gate: SuccessGate): D1PreparedStatement[] {
  return [
    verifyPhoneStatement(db, gate.params, gate.succeeded),
    userSucceededStatement(db, gate.params, gate.succeeded),
  ]
}

/** Deletes one phone's gate, before the phone itself (deletePhoneStatement in src/db/phones.ts). */
export function deletePhoneCodeStatement(db: D1Database, projectId: string, phoneId: string): D1PreparedStatement {
  return db.prepare('DELETE FROM otp_codes WHERE project_id = ?1 AND phone_id = ?2').bind(projectId, phoneId)
}

/** Deletes the gates of all of a user's phones, before the phones (deleteUserPhonesStatement). */
export function deleteUserCodesStatement(db: D1Database, projectId: string, userId: string): D1PreparedStatement {
  return db
    .prepare(
      `DELETE FROM otp_codes WHERE project_id = ?1
         AND phone_id IN (SELECT id FROM phones WHERE project_id = ?1 AND user_id = ?2)`,
    )
    .bind(projectId, userId)
}

/**
 * Read back after the gates: the phone, its user, who consumed the gate, and the gate itself (its
 * current code, that code's gate hash and send-time attributes' hashes, and whether it is still usable), so
 * authenticate can tell an attempt judged against a stale KV record. The gate_ columns are null when
 * the phone has no code.
 */
export interface AuthStateRow extends UserRow {
  phone_number: string
  consumed_by: string | null
  gate_code_id: string | null
  gate_mac: string | null
  gate_attempts: number | null
  gate_consumed_at: number | null
  gate_expires_at: number | null
  gate_ip_hash: string | null
  gate_ua_hash: string | null
  /** Clear send-time attributes of a gate written before they were hashed (NULL since). */
  gate_ip_address: string | null
  gate_user_agent: string | null
  /** With `phonesAt`: the user's visible phones (userPhonesJsonSql), for the User object of a success. */
  phones_json?: string | null
}

/**
 * The phone, its user and its gate, read in the authenticate batch after the gates; with `phonesAt`
 * (a possible success) also the user's phones visible then, in the same statement.
 */
export function authStateStatement(
  db: D1Database,
  projectId: string,
  phoneId: string,
  phonesAt?: number,
): D1PreparedStatement {
  const phones = phonesAt === undefined ? '' : `, ${userPhonesJsonSql('u.id', '?2', '?3')} AS phones_json`
  return db
    .prepare(
      `SELECT p.phone_number, c.consumed_by, c.code_id AS gate_code_id, c.mac AS gate_mac,
         c.attempts AS gate_attempts, c.consumed_at AS gate_consumed_at, c.expires_at AS gate_expires_at,
         c.ip_hash AS gate_ip_hash, c.ua_hash AS gate_ua_hash,
         c.ip_address AS gate_ip_address, c.user_agent AS gate_user_agent, ${USER_COLUMNS}${phones}
       FROM phones p JOIN users u ON u.id = p.user_id LEFT JOIN otp_codes c ON c.phone_id = p.id
       WHERE p.id = ?1 AND p.project_id = ?2`,
    )
    .bind(phoneId, projectId, ...(phonesAt === undefined ? [] : [phonesAt]))
}

/** The gate's current code as gateToRecheck hands it over: its id and its gate hash (base64url). */
export interface RecheckGate {
  codeId: string
  mac: string
}

/**
 * After authenticate's first batch: the gate to judge the attempt against again, or null. A gate
 * when the attempt did not succeed, the gate is still usable (unconsumed, unexpired, attempts left,
 * user not locked, a hash stored) and names another code than `checkedCodeId`, the code of the KV
 * record the presented code was judged against (null: no record). That batch then met a stale or
 * missing KV record and, its gates being conditioned on the code id, counted nothing against the
 * current code. The same condition in SQL is recheckPendingSql; the two must agree.
 */
export function gateToRecheck(
  state: AuthStateRow,
  checkedCodeId: string | null,
  at: number,
  maxAttempts: number,
): RecheckGate | null {
  const { gate_code_id: codeId, gate_mac: mac, gate_expires_at: expiresAt, gate_attempts: attempts } = state
  if (codeId === null || codeId === checkedCodeId || mac === null || state.gate_consumed_at !== null) return null
  if (expiresAt === null || expiresAt <= at || attempts === null || attempts >= maxAttempts) return null
  return isLocked(state, at) ? null : { codeId, mac }
}

/**
 * gateToRecheck as an SQL condition over the gate's current row, for statements in the first
 * batch that must leave their effect to the second one (the per-IP failure record). The arguments
 * are the placeholders holding the phone id, project id, now, the checked code id (NULL: no KV
 * record) and otp_max_attempts. Not succeeding is the caller's own condition.
 */
export function recheckPendingSql(p: {
  phoneId: string
  projectId: string
  at: string
  checkedCodeId: string
  maxAttempts: string
}): string {
  return `EXISTS (SELECT 1 FROM otp_codes c WHERE c.phone_id = ${p.phoneId} AND c.project_id = ${p.projectId}
    AND c.code_id IS NOT ${p.checkedCodeId} AND c.mac IS NOT NULL AND c.consumed_at IS NULL
    AND c.expires_at > ${p.at} AND c.attempts < ${p.maxAttempts}
    AND NOT EXISTS (SELECT 1 FROM phones p JOIN users u ON u.id = p.user_id
      WHERE p.id = ${p.phoneId} AND u.locked_until > ${p.at}))`
}

/** A code to store as the phone's current one: its id, gate hash, lifetime and send-time hashes. */
export interface NewCode {
  codeId: string
  /** The code's gate hash, base64url. */
  mac: string
  createdAt: number
  expiresAt: number
  /** Keyed hashes of the send-time IP and user agent, or null without them. */
  ipHash: string | null
  uaHash: string | null
  /** The destination country when the code goes by SMS (sent at createdAt), else null. */
  smsCountry: string | null
}

/**
 * The statement that makes `code` the phone's current code inside the caller's D1 batch: the gate
 * row (attempts reset, not consumed, with the code's gate hash and the send-time attributes' hashes).
 * The phone is addressed by number so the statement works in the same batch that creates it. It
 * writes nothing unless the code may be issued for the number's holder (issuedFor in
 * src/db/phones.ts); the delivery record (src/db/deliveries.ts) is written under the same condition.
 */
export function codeStatement(
  db: D1Database,
  projectId: string,
  phoneNumber: string,
  code: NewCode,
  ownerUserId: string | null = null,
): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO otp_codes (phone_id, project_id, code_id, mac, expires_at, attempts, consumed_at, consumed_by,
           ip_address, user_agent, ip_hash, ua_hash, created_at, attempted_by, sms_country, sms_sent_at)
         SELECT id, ?1, ?3, ?7, ?4, 0, NULL, NULL, NULL, NULL, ?8, ?9, ?5, NULL, ?10, CASE WHEN ?10 IS NULL THEN NULL ELSE ?5 END
         FROM phones
         WHERE project_id = ?1 AND phone_number = ?2 AND ${issuedFor('?6')}
         ON CONFLICT (phone_id) DO UPDATE SET code_id = excluded.code_id, mac = excluded.mac,
           expires_at = excluded.expires_at, attempts = 0, consumed_at = NULL, consumed_by = NULL,
           ip_address = NULL, user_agent = NULL, ip_hash = excluded.ip_hash, ua_hash = excluded.ua_hash,
           created_at = excluded.created_at, attempted_by = NULL, sms_country = excluded.sms_country,
           sms_sent_at = excluded.sms_sent_at`,
    )
    .bind(
      projectId,
      phoneNumber,
      code.codeId,
      code.expiresAt,
      code.createdAt,
      ownerUserId,
      code.mac,
      code.ipHash,
      code.uaHash,
      code.smsCountry,
    )
}

/** The phone's live code as the issuing batch found it before replacing it. */
export interface LiveCodeRow {
  code_id: string
  expires_at: number
}

/**
 * The phone's live code (unconsumed, unexpired) before the batch replaces it; goes right before
 * codeStatement. Only when there is one does the issuer read the old KV record, so a first
 * send never looks up a missing key (KV caches negative lookups).
 */
export function liveCodeStatement(
  db: D1Database,
  projectId: string,
  phoneNumber: string,
  at: number,
): D1PreparedStatement {
  return db
    .prepare(
      `SELECT c.code_id, c.expires_at FROM otp_codes c JOIN phones p ON p.id = c.phone_id
       WHERE p.project_id = ?1 AND p.phone_number = ?2 AND c.consumed_at IS NULL AND c.expires_at > ?3`,
    )
    .bind(projectId, phoneNumber, at)
}

/**
 * The code an SMS fallback delivery `deliveryId` carries, still the phone's current one and unused,
 * went out by SMS at `at` to `country`: written only if that delivery row exists by then, i.e. the
 * same batch wrote it.
 */
export function smsSentStatement(
  db: D1Database,
  a: { phoneId: string; country: string; at: number; deliveryId: string },
): D1PreparedStatement {
  return db
    .prepare(
      `UPDATE otp_codes SET sms_country = ?2, sms_sent_at = ?3
       WHERE phone_id = ?1 AND consumed_at IS NULL
         AND code_id = (SELECT code_id FROM deliveries WHERE id = ?4)`,
    )
    .bind(a.phoneId, a.country, a.at, a.deliveryId)
}
