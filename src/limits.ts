import { recheckPendingSql } from './db/otp-gate'
import { StytchError } from './errors'
import { logEvent } from './log'
import type { ParsedPhone } from './phone'
import type { ProjectSettings } from './settings'

/**
 * Abuse limits that ride in the caller's D1 batch, so an allowed request costs no extra round trip.
 *
 * Each counted event is a row in limit_events; every window is a sliding window over those rows
 * (`at > now - window`), which is exact, unlike fixed buckets that let 2x through at a boundary.
 * A send's batch first records its events, then runs one guard INSERT into limit_guard that
 * selects a row only when a count is over its limit. That row violates a named CHECK constraint, the
 * statement fails, and D1 rolls back the whole batch (a batch is one transaction): the user, phone,
 * code, delivery and the events themselves are all undone. D1 runs statements one at a time, so
 * concurrent batches see each other's events and exactly as many pass as the limits allow.
 * The constraint's name in the error says which limit tripped (trippedLimit, batchWithLimits).
 */

const HOUR_MS = 3_600_000
const DAY_MS = 86_400_000

/** Expired event rows deleted per batch: more than a batch records, so the table cannot grow. */
const SWEEP_ROWS = 32

/**
 * The region key of numbers without one (libphonenumber's "001": +800, +808, +870, +881-+883, +888,
 * +979). They are favourites of toll-fraud pumping, so only allowed_countries "*" lets them through.
 */
export const NON_GEOGRAPHIC = '001'

/** Every limit the guard can trip: the limit_guard column (its constraint is `limit_<name>`) and why. */
export const LIMITS = {
  phone_cooldown: 'A code was sent to this phone number moments ago; wait before sending another.',
  phone_sends_per_hour: 'Too many codes were sent to this phone number in the last hour.',
  phone_sends_per_day: 'Too many codes were sent to this phone number in the last 24 hours.',
  ip_sends_per_hour: 'Too many codes were requested from this IP address in the last hour.',
  country_sends_per_hour: "Too many codes were sent to this phone number's country in the last hour.",
  new_users_per_hour: 'Too many users were created in this project in the last hour.',
  ip_failed_auths_per_hour: 'Too many failed authentications from this IP address in the last hour.',
} as const

export type LimitName = keyof typeof LIMITS

/** What a send is counted against. A null phone number is exempt from the per-phone limits. */
export interface SendSubject {
  projectId: string
  settings: ProjectSettings
  /** E.164 number, or null for the sandbox number (exempt from per-phone limits). */
  phoneNumber: string | null
  /** Destination region (sendCountry), or null when no code goes to a real country (sandbox). */
  country: string | null
  /** attributes.ip_address; no per-IP limit applies without it. */
  ipAddress: string | undefined
  /** The user id this batch mints if the number is new; counted only if that user is created. */
  mintedUserId: string | null
  /**
   * The delivery (= code) id the batch inserts when it issues a code: the send counts only if that
   * row exists by then, so a send the caller's own conditions refuse (unknown number, number of
   * another user) counts nothing. Null when no code is issued at all (sandbox): always counts.
   */
  deliveryId: string | null
  now: number
}

/** The region a code is sent to: the ISO country, or NON_GEOGRAPHIC for numbers without one. */
export function sendCountry(phone: ParsedPhone): string {
  return phone.country ?? NON_GEOGRAPHIC
}

/**
 * The project's country allowlist (Stytch's default: US and CA). Called before anything is written;
 * outside the list is `400 invalid_phone_number_country_code`.
 */
export function assertCountryAllowed(settings: ProjectSettings, country: string): void {
  const allowed = settings.allowed_countries
  if (allowed === '*' || allowed.includes(country)) return
  throw new StytchError('invalid_phone_number_country_code')
}

/**
 * The key an end-user IP is counted under: an IPv4 address as is, an IPv6 address by its /64
 * (one subscriber usually holds a whole /64, so counting single addresses would be trivial to
 * dodge). IPv4-mapped IPv6 addresses count as their IPv4 address. Input is a valid IP (zod).
 */
export function ipSubject(ip: string): string {
  if (!ip.includes(':')) return ip
  const groups = ipv6Groups(ip.toLowerCase())
  if (!groups) return ip.toLowerCase()
  const [a = 0, b = 0, c = 0, d = 0, e = 0, f = 0, g = 0, h = 0] = groups
  if (a === 0 && b === 0 && c === 0 && d === 0 && e === 0 && f === 0xffff) {
    return [g >> 8, g & 0xff, h >> 8, h & 0xff].join('.')
  }
  return `${[a, b, c, d].map((n) => n.toString(16)).join(':')}::/64`
}

function ipv6Groups(ip: string): number[] | null {
  let text = ip
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text)
  if (dotted) {
    const [, p = '0', q = '0', r = '0', s = '0'] = dotted
    const hex = (x: string, y: string) => ((Number(x) << 8) | Number(y)).toString(16)
    text = `${text.slice(0, dotted.index)}${hex(p, q)}:${hex(r, s)}`
  }
  const halves = text.split('::')
  if (halves.length > 2) return null
  const part = (s: string | undefined) => (s ? s.split(':').map((g) => Number.parseInt(g, 16)) : [])
  const head = part(halves[0])
  const tail = part(halves[1])
  const fill = halves.length === 2 ? 8 - head.length - tail.length : 0
  const groups = [...head, ...Array<number>(Math.max(0, fill)).fill(0), ...tail]
  return groups.length === 8 && groups.every((n) => Number.isInteger(n) && n >= 0 && n <= 0xffff) ? groups : null
}

/**
 * Statements for one send (login_or_create or /send), to go into the caller's batch after its
 * writes: record the send's events, trip the guard if any limit is now exceeded, and sweep a few
 * expired events. The events are recorded only when the batch issued the code (`deliveryId`) and
 * the new-user event only when `mintedUserId` exists by then, i.e. this very batch created the user;
 * so place these after the find-or-create and code statements.
 */
export function sendLimitStatements(db: D1Database, s: SendSubject): D1PreparedStatement[] {
  const ip = s.ipAddress === undefined ? null : ipSubject(s.ipAddress)
  const sent = '(?7 IS NULL OR EXISTS (SELECT 1 FROM deliveries WHERE id = ?7))'
  const record = db
    .prepare(
      `INSERT INTO limit_events (project_id, kind, subject, at, expires_at)
       SELECT ?1, 'phone', ?3, ?2, ?2 + ${DAY_MS} WHERE ?3 IS NOT NULL AND ${sent}
       UNION ALL SELECT ?1, 'ip_send', ?4, ?2, ?2 + ${HOUR_MS} WHERE ?4 IS NOT NULL AND ${sent}
       UNION ALL SELECT ?1, 'country', ?5, ?2, ?2 + ${HOUR_MS} WHERE ?5 IS NOT NULL AND ${sent}
       UNION ALL SELECT ?1, 'new_user', '', ?2, ?2 + ${HOUR_MS}
         WHERE ?6 IS NOT NULL AND EXISTS (SELECT 1 FROM users WHERE id = ?6)`,
    )
    .bind(s.projectId, s.now, s.phoneNumber, ip, s.country, s.mintedUserId, s.deliveryId)
  // Counts include the events just recorded, hence "> limit" (and "> 1" for the cooldown).
  const count = (kind: string, subject: string, window: string) =>
    `(SELECT COUNT(*) FROM limit_events WHERE project_id = ?1 AND kind = '${kind}' AND subject = ${subject}
      AND at > ?2 - ${window})`
  const { settings } = s
  const guard = db
    .prepare(
      `INSERT INTO limit_guard (phone_cooldown, phone_sends_per_hour, phone_sends_per_day, ip_sends_per_hour,
         country_sends_per_hour, new_users_per_hour)
       SELECT * FROM (SELECT
         ?3 IS NOT NULL AND ?7 > 0 AND ${count('phone', '?3', '?7')} > 1 AS a,
         ?3 IS NOT NULL AND ${count('phone', '?3', String(HOUR_MS))} > ?8 AS b,
         ?3 IS NOT NULL AND ${count('phone', '?3', String(DAY_MS))} > ?9 AS c,
         ?4 IS NOT NULL AND ${count('ip_send', '?4', String(HOUR_MS))} > ?10 AS d,
         ?5 IS NOT NULL AND ${count('country', '?5', String(HOUR_MS))} > ?11 AS e,
         ?6 IS NOT NULL AND EXISTS (SELECT 1 FROM users WHERE id = ?6)
           AND ${count('new_user', "''", String(HOUR_MS))} > ?12 AS f
       ) WHERE a OR b OR c OR d OR e OR f`,
    )
    .bind(
      s.projectId,
      s.now,
      s.phoneNumber,
      ip,
      s.country,
      s.mintedUserId,
      settings.phone_send_cooldown_seconds * 1_000,
      settings.phone_sends_per_hour,
      settings.phone_sends_per_day,
      settings.ip_sends_per_hour,
      settings.country_sends_per_hour,
      settings.new_users_per_hour,
    )
  return [record, guard, sweepStatement(db, s.now)]
}

/**
 * Takes back the send events sendLimitStatements recorded for `s` (one row per kind, matched by
 * subject and time), for a send whose batch committed but whose code never went out. The new-user
 * event stays: that user was created.
 */
export function refundSendStatement(db: D1Database, s: SendSubject): D1PreparedStatement {
  const ip = s.ipAddress === undefined ? null : ipSubject(s.ipAddress)
  const one = (kind: string, subject: string) =>
    `SELECT r FROM (SELECT rowid AS r FROM limit_events
       WHERE project_id = ?1 AND kind = '${kind}' AND subject = ${subject} AND at = ?2 LIMIT 1)`
  return db
    .prepare(
      `DELETE FROM limit_events WHERE rowid IN
         (${one('phone', '?3')} UNION ALL ${one('ip_send', '?4')} UNION ALL ${one('country', '?5')})`,
    )
    .bind(s.projectId, s.now, s.phoneNumber, ip, s.country)
}

/** What an authenticate attempt is counted against, and how its batch tells success. */
export interface AuthSubject {
  projectId: string
  settings: ProjectSettings
  /** attributes.ip_address; no per-IP limit applies without it. */
  ipAddress: string | undefined
  /** The method_id presented. */
  phoneId: string
  /** This request's id: the gate records it in otp_codes.consumed_by when the code is consumed. */
  requestId: string
  /** The sandbox number when the sandbox code was presented in a test project, else null. */
  sandboxNumber: string | null
  now: number
  /**
   * In authenticate's first batch: the code id of the KV record the code was judged against (null
   * without one) and otp_max_attempts. A failure is then not recorded when the gate is live and
   * names another code (gateToRecheck): authenticate runs the attempt again against D1's hash and
   * that batch records it, so one attempt is one failure. Absent: the attempt's verdict is final.
   */
  recheck?: { checkedCodeId: string | null; maxAttempts: number } | undefined
}

/**
 * Per-IP failed authentications, for authenticate's one batch, after its gate statements: the guard
 * first trips if the IP already has `ip_failed_auths_per_hour` failures in the last hour, whatever
 * this attempt's outcome (so a 429 tells nothing about the code and, rolling the batch back, counts
 * no attempt on it); then the attempt is recorded as a failure unless the batch consumed the code
 * for this request or authenticated the sandbox number, or (`recheck`) authenticate's second batch
 * will judge it again. Batches run one at a time, so parallel guesses from one IP get exactly the
 * allowed number of verdicts. No statements without an IP.
 */
export function failedAuthStatements(db: D1Database, a: AuthSubject): D1PreparedStatement[] {
  if (a.ipAddress === undefined) return []
  const ip = ipSubject(a.ipAddress)
  const recheckPending = recheckPendingSql({
    phoneId: '?4',
    projectId: '?1',
    at: '?3',
    checkedCodeId: '?8',
    maxAttempts: '?9',
  })
  return [
    db
      .prepare(
        `INSERT INTO limit_guard (ip_failed_auths_per_hour) SELECT 1 WHERE
           (SELECT COUNT(*) FROM limit_events WHERE project_id = ?1 AND kind = 'ip_fail' AND subject = ?2
             AND at > ?3 - ${HOUR_MS}) >= ?4`,
      )
      .bind(a.projectId, ip, a.now, a.settings.ip_failed_auths_per_hour),
    db
      .prepare(
        `INSERT INTO limit_events (project_id, kind, subject, at, expires_at)
         SELECT ?1, 'ip_fail', ?2, ?3, ?3 + ${HOUR_MS}
         WHERE NOT EXISTS (SELECT 1 FROM otp_codes WHERE phone_id = ?4 AND project_id = ?1 AND consumed_by = ?5)
           AND NOT EXISTS (SELECT 1 FROM phones WHERE id = ?4 AND project_id = ?1 AND phone_number = ?6)
           AND NOT (?7 = 1 AND ${recheckPending})`,
      )
      .bind(
        a.projectId,
        ip,
        a.now,
        a.phoneId,
        a.requestId,
        a.sandboxNumber,
        a.recheck ? 1 : 0,
        a.recheck?.checkedCodeId ?? null,
        a.recheck?.maxAttempts ?? 0,
      ),
    sweepStatement(db, a.now),
  ]
}

/**
 * Deletes a bounded number of events that have left every window. It rides in batches that also
 * record events, so cleanup needs no round trip of its own and the table stays at about one day
 * of traffic. A rejected batch rolls its sweep back too, which is harmless.
 */
function sweepStatement(db: D1Database, now: number): D1PreparedStatement {
  return db
    .prepare(
      `DELETE FROM limit_events WHERE rowid IN
         (SELECT rowid FROM limit_events WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ${SWEEP_ROWS})`,
    )
    .bind(now)
}

/**
 * The limit a failed D1 call tripped, read from the constraint name in its message (workerd and
 * D1 both report SQLite's text, e.g. "D1_ERROR: CHECK constraint failed: limit_phone_cooldown:
 * SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_CHECK)"), or null for any other error.
 */
export function trippedLimit(err: unknown): LimitName | null {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 3; e = e.cause, depth++) {
    const match = /CHECK constraint failed: limit_([a-z_]+)/.exec(e.message)
    const name = match?.[1]
    if (name && Object.hasOwn(LIMITS, name)) return name as LimitName
  }
  return null
}

/**
 * Runs a batch that carries limit statements: a tripped limit becomes `429 too_many_requests`
 * (logged with its name, so a pumping wave is visible); every other failure is rethrown unchanged.
 */
export async function batchWithLimits(
  db: D1Database,
  statements: D1PreparedStatement[],
  projectId: string,
): Promise<D1Result[]> {
  try {
    return await db.batch(statements)
  } catch (err) {
    const limit = trippedLimit(err)
    if (!limit) throw err
    logEvent('info', 'limit_tripped', { limit, project_id: projectId })
    throw new StytchError('too_many_requests', { message: LIMITS[limit] })
  }
}
