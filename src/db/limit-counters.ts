import { otpSucceededSql, recheckPendingSql, wrongAttemptCountedSql } from './otp-codes'

/**
 * Storage of the abuse limits (the policy, which limits apply and with what settings, is src/limits.ts):
 * the statements that count events in limit_counters and the guard that trips a limit. Rows that have
 * left every window are purged by the hourly retention run (src/db/purge.ts), never in a request.
 *
 * A counter row is (project, kind, subject, bucket) → n. A window sums the rows of its counter from a
 * start time on, so a check reads at most (window / bucket width) + 1 rows whatever the traffic:
 *  - exact counters (the per-phone ones) use the event's own millisecond as the bucket, so their
 *    windows are exact sliding windows; they are small by nature (a number gets a handful of sends
 *    before its own limits refuse more, and a refused send's event is rolled back with its batch);
 *  - bucketed counters (per IP, per country, per project) use BUCKET_MS buckets: a window of W sums
 *    the current bucket and the W / BUCKET_MS before it, i.e. it covers between W and W + BUCKET_MS.
 *    It can only over-count: never more than the limit passes in any window of W, and at worst events
 *    up to one bucket older than W still count (see bucketedFrom).
 * Recording is one upsert (`ON CONFLICT ... DO UPDATE SET n = n + excluded.n`: the event's weight,
 * 1 for a counted event, the rows read for a cost budget). The guard is an INSERT into limit_guard
 * selecting a row only when a sum is over its limit; the row violates the named CHECK of that
 * limit's column, the statement fails and D1 rolls the whole batch back (a batch is one
 * transaction). D1 runs statements one at a time, so concurrent batches see each other's counts and
 * exactly as many pass as a limit allows.
 */

/** Width of a bucket of the bucketed counters. */
export const BUCKET_MS = 60_000

/** One event to count: its counter and how long its row matters. */
export interface CounterEvent {
  kind: string
  subject: string
  /** True: the event's own millisecond is its bucket (exact windows); false: BUCKET_MS buckets. */
  exact: boolean
  /** The longest window the row is read by, in ms. */
  windowMs: number
  /** How much the event adds to its counter: 1 unless it measures a cost (rows read, say). */
  weight?: number
}

/** One window check: trips `name` when the counter's sum since `from` is over the threshold. */
export interface CounterCheck {
  /** The limit_guard column (its constraint is limit_<name>). */
  name: string
  kind: string
  subject: string
  /** Rows with bucket > from are summed (exactFrom / bucketedFrom). */
  from: number
  /** The limit: see guardStatement for how the sum is compared with it. */
  limit: number
}

/**
 * A check as the guard runs it: with an extra SQL condition (over the statement's placeholders), or
 * none; and a lower limit that applies instead while the guard's `tightenWhen` condition holds.
 */
interface GuardCheck extends CounterCheck {
  when?: string
  tightened?: number
}

/** Start of the bucket `at` falls in. */
export const bucketOf = (at: number) => at - (at % BUCKET_MS)

/** `from` for an exact sliding window of `windowMs` ending at `at`: events after at - windowMs. */
export const exactFrom = (at: number, windowMs: number) => at - windowMs

/**
 * `from` for a bucketed window of `windowMs` ending at `at`: the current bucket and the
 * windowMs / BUCKET_MS buckets before it (so between windowMs and windowMs + BUCKET_MS of history).
 */
export const bucketedFrom = (at: number, windowMs: number) => bucketOf(at) - windowMs - BUCKET_MS

/** The sum of a counter's rows from `from` on, as SQL (`projectRef`: the placeholder of the project id). */
const counterSumSql = (projectRef: string, kind: string, subject: string, from: string) =>
  `(SELECT COALESCE(SUM(n), 0) FROM limit_counters
     WHERE project_id = ${projectRef} AND kind = ${kind} AND subject = ${subject} AND bucket > ${from})`

/** A constant counter name or subject as an SQL literal (lower-case names and '' only). */
function nameLiteral(text: string): string {
  if (!/^[a-z0-9_]*$/.test(text)) throw new Error(`not a counter name: ${text}`)
  return `'${text}'`
}

/** A whole number as an SQL literal. */
function intLiteral(n: number): string {
  if (!Number.isSafeInteger(n)) throw new Error(`not a whole number: ${n}`)
  return String(n)
}

/**
 * SQL: the counter has reached its limit, i.e. its sum from `check.from` on is at least
 * `check.limit`, as a condition other statements can carry (over the placeholder `projectRef` of the
 * project id; the rest is written into the SQL). Used for the failed-authentication brake.
 */
export function counterReachedSql(projectRef: string, check: Omit<CounterCheck, 'name'>): string {
  const sum = counterSumSql(projectRef, nameLiteral(check.kind), nameLiteral(check.subject), intLiteral(check.from))
  return `(${sum} >= ${intLiteral(check.limit)})`
}

/**
 * Upserts one row per event at time `at`, only where `condition` (SQL over ?-numbered placeholders
 * the caller binds first, `argCount` of them) holds. Returns the SQL and its arguments.
 */
function recordSql(
  events: CounterEvent[],
  at: number,
  firstArg: number,
  condition: string,
): { sql: string; args: (string | number)[] } {
  const args: (string | number)[] = []
  const rows = events.map((e) => {
    const bucket = e.exact ? at : bucketOf(at)
    const expires = bucket + e.windowMs + (e.exact ? 0 : BUCKET_MS)
    const i = firstArg + args.length
    args.push(e.kind, e.subject, bucket, expires, e.weight ?? 1)
    return `SELECT ?${i} AS kind, ?${i + 1} AS subject, ?${i + 2} AS bucket, ?${i + 3} AS expires_at, ?${i + 4} AS n`
  })
  return {
    sql: `SELECT kind, subject, bucket, expires_at, n FROM (${rows.join(' UNION ALL ')}) WHERE ${condition}`,
    args,
  }
}

/**
 * Groups of events, each recorded only where its SQL condition holds, as one upsert statement.
 * `projectId` is ?1; `shared` are bound as ?2… and may be referenced by the conditions.
 */
function recordStatement(
  db: D1Database,
  projectId: string,
  at: number,
  shared: (string | number | null)[],
  groups: { events: CounterEvent[]; condition: string }[],
): D1PreparedStatement | null {
  const args: (string | number | null)[] = [projectId, ...shared]
  const selects: string[] = []
  for (const g of groups) {
    if (g.events.length === 0) continue
    const part = recordSql(g.events, at, args.length + 1, g.condition)
    args.push(...part.args)
    selects.push(part.sql)
  }
  if (selects.length === 0) return null
  return db
    .prepare(
      `INSERT INTO limit_counters (project_id, kind, subject, bucket, n, expires_at)
       SELECT ?1, kind, subject, bucket, n, expires_at FROM (${selects.join(' UNION ALL ')}) WHERE true
       ON CONFLICT (project_id, kind, subject, bucket) DO UPDATE SET n = n + excluded.n`,
    )
    .bind(...args)
}

/**
 * The guard: one INSERT into limit_guard that fails with the named CHECK of the first check over its
 * limit. `after: true` checks run after the batch recorded its own event (tripped when sum > limit);
 * otherwise before (tripped when sum >= limit, i.e. the limit is already used up). While
 * `tightenWhen` (SQL, evaluated once) holds, a check with a `tightened` limit is held to that one.
 * `projectId` is ?1; `shared` are bound as ?2… for the checks' `when` conditions and `tightenWhen`.
 */
function guardStatement(
  db: D1Database,
  projectId: string,
  shared: (string | number | null)[],
  checks: GuardCheck[],
  after: boolean,
  tightenWhen?: string,
): D1PreparedStatement | null {
  if (checks.length === 0) return null
  const args: (string | number | null)[] = [projectId, ...shared]
  const columns: string[] = []
  const exprs = checks.map((c, n) => {
    const i = args.length + 1
    args.push(c.kind, c.subject, c.from, c.limit)
    columns.push(c.name)
    let limit = `?${i + 3}`
    if (tightenWhen !== undefined && c.tightened !== undefined) {
      args.push(c.tightened)
      limit = `CASE WHEN tightened THEN ?${i + 4} ELSE ?${i + 3} END`
    }
    const sum = counterSumSql('?1', `?${i}`, `?${i + 1}`, `?${i + 2}`)
    return `(${c.when ?? 'true'}) AND ${sum} ${after ? '>' : '>='} ${limit} AS c${n}`
  })
  const from = tightenWhen === undefined ? '' : ` FROM (SELECT (${tightenWhen}) AS tightened)`
  // LIMIT -1 (no limit) keeps SQLite from pushing the outer WHERE down into the inner SELECT: pushed
  // down, every check's sum is compiled a second time into that WHERE, which doubles the statement's
  // bytecode and about doubles the time D1 spends preparing it on every send. Either way each sum
  // runs once when no limit trips, the case that matters.
  return db
    .prepare(
      `INSERT INTO limit_guard (${columns.join(', ')})
       SELECT * FROM (SELECT ${exprs.join(', ')}${from} LIMIT -1) WHERE ${checks.map((_, n) => `c${n}`).join(' OR ')}`,
    )
    .bind(...args)
}

/**
 * Takes back one event per listed counter at time `at` (a send whose batch committed but whose code
 * never went out); a row left at 0 is swept like any other.
 */
export function refundStatement(
  db: D1Database,
  projectId: string,
  at: number,
  events: CounterEvent[],
): D1PreparedStatement | null {
  if (events.length === 0) return null
  const args: (string | number)[] = [projectId]
  const rows = events.map((e) => {
    const i = args.length + 1
    args.push(e.kind, e.subject, e.exact ? at : bucketOf(at))
    return `(kind = ?${i} AND subject = ?${i + 1} AND bucket = ?${i + 2})`
  })
  return db
    .prepare(`UPDATE limit_counters SET n = n - 1 WHERE project_id = ?1 AND n > 0 AND (${rows.join(' OR ')})`)
    .bind(...args)
}

const present = (statements: (D1PreparedStatement | null)[]) =>
  statements.filter((x): x is D1PreparedStatement => x !== null)

/** What one send counts, as the policy (src/limits.ts) decided it. */
export interface SendCounting {
  /**
   * The delivery (= code) id the batch inserts when it issues a code: the send events count only if
   * that row exists by then. Null when no code is issued at all (sandbox): they always count.
   */
  deliveryId: string | null
  /** The user id the batch mints if the number is new; `newUser` counts only if that user exists by then. */
  mintedUserId: string | null
  sendEvents: CounterEvent[]
  sendChecks: CounterCheck[]
  newUser: CounterEvent
  newUserCheck: CounterCheck
}

/**
 * A send's statements for the caller's batch, after its writes: record the send's events (only if
 * the batch issued the code) and the new user (only if this very batch created it), and trip the
 * guard if any limit is now exceeded (counts include the events just recorded). Rows that have left
 * every window are deleted by the hourly retention run (src/retention.ts), not in the request.
 */
export function sendCountStatements(
  db: D1Database,
  projectId: string,
  at: number,
  c: SendCounting,
): D1PreparedStatement[] {
  // ?2 = the delivery id, ?3 = the minted user id.
  const shared = [c.deliveryId, c.mintedUserId]
  const sent = '(?2 IS NULL OR EXISTS (SELECT 1 FROM deliveries WHERE id = ?2))'
  const created = '(?3 IS NOT NULL AND EXISTS (SELECT 1 FROM users WHERE id = ?3))'
  const record = recordStatement(db, projectId, at, shared, [
    { events: c.sendEvents, condition: sent },
    { events: [c.newUser], condition: created },
  ])
  const guard = guardStatement(db, projectId, shared, [...c.sendChecks, { ...c.newUserCheck, when: created }], true)
  return present([record, guard])
}

/** What one authenticate attempt counts, as the policy decided it, and how its batch tells success. */
export interface FailedAuthCounting {
  phoneId: string
  /** This request's id: the gates mark the code with it when they consume it or count a wrong attempt. */
  requestId: string
  /** The sandbox number when the sandbox code was presented in a test project, else null. */
  sandboxNumber: string | null
  /**
   * In authenticate's first batch: the code id of the KV record the code was judged against (null
   * without one) and otp_max_attempts; the per-IP failure is then not recorded while a second batch
   * will judge the attempt again (recheckPendingSql). Absent: the attempt's verdict is final.
   */
  recheck: { checkedCodeId: string | null; maxAttempts: number } | undefined
  /** Per end-user IP scope: every attempt that did not succeed counts. */
  ipEvents: CounterEvent[]
  /** Their limits, and the tighter ones that apply while the brake is engaged. */
  ipChecks: (CounterCheck & { tightened: number })[]
  /** The project's count: only a wrong attempt counted against a live code (wrongAttemptCountedSql). */
  projectEvent: CounterEvent
  /**
   * Whether the batch presents a wrong code, i.e. its gate statements can count a wrong attempt:
   * only then can the project's count move, so only then is it recorded and read back.
   */
  wrongCode: boolean
  /** The brake: the project's count has reached its limit (counterReachedSql of projectEvent). */
  brake: Omit<CounterCheck, 'name'>
}

/** The project's failure count after an attempt, and whether this attempt added to it. */
export interface BrakeRow {
  counted: number
  failures: number
}

/**
 * An authenticate attempt's statements, after its gate statements: the guard first trips if a per-IP
 * counter already holds its limit (whatever this attempt's outcome; the tighter limit while the
 * brake is engaged), then the attempt is recorded per IP as a failure unless the OTP succeeded in
 * this batch (otpSucceededSql) or a recheck is pending, and per project only if the gate counted it
 * as a wrong attempt on the live code. The project count has no guard of its own: reaching its limit
 * engages the brake, it never refuses an attempt. `brake` reads back the count (BrakeRow); place it
 * after the statements. A statement that could do nothing is left out: the record without an IP
 * scope or a wrong code, the read-back without a wrong code (null).
 */
export function failedAuthCountStatements(
  db: D1Database,
  projectId: string,
  at: number,
  a: FailedAuthCounting,
): { statements: D1PreparedStatement[]; brake: D1PreparedStatement | null } {
  const recheckPending = recheckPendingSql({
    phoneId: '?2',
    projectId: '?1',
    at: '?7',
    checkedCodeId: '?6',
    maxAttempts: '?5',
  })
  const succeeded = otpSucceededSql({ phoneId: '?2', projectId: '?1', requestId: '?3', sandboxNumber: '?4' })
  const counted = wrongAttemptCountedSql({ phoneId: '?2', projectId: '?1', requestId: '?3' })
  // ?2 phone id, ?3 request id, ?4 sandbox number, ?5 max attempts, ?6 checked code id, ?7 now, ?8 recheck.
  const shared = [
    a.phoneId,
    a.requestId,
    a.sandboxNumber,
    a.recheck?.maxAttempts ?? 0,
    a.recheck?.checkedCodeId ?? null,
    at,
    a.recheck ? 1 : 0,
  ]
  const failed = `NOT ${succeeded} AND NOT (?8 = 1 AND ${recheckPending})`
  const { kind, subject, from } = a.brake
  const brake = a.wrongCode
    ? db
        .prepare(`SELECT ${counted} AS counted, ${counterSumSql('?1', '?4', '?5', '?6')} AS failures`)
        .bind(projectId, a.phoneId, a.requestId, kind, subject, from)
    : null
  return {
    statements: present([
      guardStatement(db, projectId, shared, a.ipChecks, false, counterReachedSql('?1', a.brake)),
      recordStatement(db, projectId, at, shared, [
        { events: a.ipEvents, condition: failed },
        { events: a.wrongCode ? [a.projectEvent] : [], condition: counted },
      ]),
    ]),
    brake,
  }
}

/**
 * A cost budget's statements for the caller's batch, before the work they pay for: the guard trips
 * when the counter has already reached its limit, then `reserve` (the least the work is charged) is
 * recorded. Batches run one at a time, so concurrent work sees every earlier reservation. What the
 * work cost beyond it is added afterwards (costStatement).
 */
export function budgetStatements(
  db: D1Database,
  projectId: string,
  at: number,
  reserve: CounterEvent,
  check: CounterCheck,
): D1PreparedStatement[] {
  return present([
    guardStatement(db, projectId, [], [check], false),
    recordStatement(db, projectId, at, [], [{ events: [reserve], condition: 'true' }]),
  ])
}

/** Records `event` (its weight: a cost beyond the reservation) in its counter at `at`. */
export function costStatement(db: D1Database, projectId: string, at: number, event: CounterEvent): D1PreparedStatement {
  const record = recordStatement(db, projectId, at, [], [{ events: [event], condition: 'true' }])
  if (!record) throw new Error('a cost statement records one event')
  return record
}

/** A conversion breaker's trip, as the policy (src/limits.ts) configures it. */
export interface BreakerTrip {
  /** The send the batch issues: the trip is only judged if that delivery row exists (null: always). */
  deliveryId: string | null
  /** The trip row: its counter (the bucket is the trip's millisecond) and when it may be swept. */
  trip: { kind: string; subject: string; expiresAt: number }
  /** The counters of sends and of conversions, bucketed by the send's minute. */
  sendsKind: string
  conversionsKind: string
  /** Buckets in (from, to] are judged; those up to the previous trip never are. */
  from: number
  to: number
  /** At least this many sends, and conversions below this percentage of them. */
  floor: number
  percent: number
}

/**
 * Records a breaker trip when, over the judged buckets, the sends reach the floor and the
 * conversions are below the percentage; RETURNING says whether it did. Buckets up to the newest trip
 * of the same counter are not judged, so a trip that has cooled down is not re-tripped by the very
 * sends that tripped it. Goes after the batch's own counting, so it judges this send too.
 */
export function breakerTripStatement(
  db: D1Database,
  projectId: string,
  at: number,
  b: BreakerTrip,
): D1PreparedStatement {
  const judged = `project_id = ?1 AND subject = ?3 AND bucket > ?8 AND bucket <= ?9
    AND bucket > COALESCE((SELECT MAX(bucket) FROM limit_counters WHERE project_id = ?1 AND kind = ?2 AND subject = ?3), 0)`
  return db
    .prepare(
      `INSERT INTO limit_counters (project_id, kind, subject, bucket, n, expires_at)
       SELECT ?1, ?2, ?3, ?4, 1, ?5 FROM (SELECT
         (SELECT COALESCE(SUM(n), 0) FROM limit_counters WHERE kind = ?6 AND ${judged}) AS sends,
         (SELECT COALESCE(SUM(n), 0) FROM limit_counters WHERE kind = ?7 AND ${judged}) AS conversions)
       WHERE (?12 IS NULL OR EXISTS (SELECT 1 FROM deliveries WHERE id = ?12))
         AND sends >= ?10 AND conversions * 100 < ?11 * sends
       ON CONFLICT (project_id, kind, subject, bucket) DO NOTHING
       RETURNING bucket`,
    )
    .bind(
      projectId,
      b.trip.kind,
      b.trip.subject,
      at,
      b.trip.expiresAt,
      b.sendsKind,
      b.conversionsKind,
      b.from,
      b.to,
      b.floor,
      b.percent,
      b.deliveryId,
    )
}

/**
 * One conversion, when `requestId` consumed the phone's code and an SMS carried it: counted under the
 * SMS's destination country, in the bucket of the minute the SMS was sent (otp_codes.sms_country and
 * sms_sent_at), so it pairs with that send. For authenticate's batch, after its consume.
 */
export function conversionStatement(
  db: D1Database,
  projectId: string,
  c: { phoneId: string; requestId: string; kind: string; windowMs: number },
): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO limit_counters (project_id, kind, subject, bucket, n, expires_at)
       SELECT ?1, ?4, sms_country, sms_sent_at - (sms_sent_at % ?6), 1, sms_sent_at - (sms_sent_at % ?6) + ?5 + ?6
       FROM otp_codes
       WHERE phone_id = ?2 AND project_id = ?1 AND consumed_by = ?3
         AND sms_country IS NOT NULL AND sms_sent_at IS NOT NULL
       ON CONFLICT (project_id, kind, subject, bucket) DO UPDATE SET n = n + 1`,
    )
    .bind(projectId, c.phoneId, c.requestId, c.kind, c.windowMs, BUCKET_MS)
}
