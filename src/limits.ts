import { convertIPv6BinaryToString } from 'hono/utils/ipaddr'
import { hmacSha256, toBase64Url } from './crypto'
import type { Batch } from './db/batch'
import {
  type BrakeRow,
  BUCKET_MS,
  breakerTripStatement,
  bucketedFrom,
  budgetStatements,
  type CounterCheck,
  type CounterEvent,
  conversionStatement,
  costStatement,
  counterReachedSql,
  exactFrom,
  failedAuthCountStatements,
  refundStatement,
  sendCountStatements,
} from './db/limit-counters'
import type { AttemptBrake } from './db/otp-codes'
import { requireSecret } from './env'
import { StytchError } from './errors'
import { parseIp } from './ip'
import { logEvent } from './log'
import { type ParsedPhone, parsePhone } from './phone'
import type { ProjectSettings } from './settings'

/**
 * Abuse-limit policy: which limits a send or an authentication is counted against, with which
 * settings, and how a tripped limit becomes an error. The counting itself (SQL, buckets, the guard
 * that rolls a batch back) is src/db/limit-counters.ts. Every statement rides in the caller's own D1
 * batch, so an allowed request costs no extra round trip and a refused one changes nothing.
 *
 * Per-phone limits are exact sliding windows. The high-volume counters (per IP, per country, per
 * project) are summed over one-minute buckets: their cost per request is bounded (at most 61 rows
 * per counter) whatever the traffic, and they can only refuse early, never let more than the limit
 * through in a window (README, "Abuse limits").
 */

const MINUTE_MS = 60_000
const HOUR_MS = 3_600_000
const DAY_MS = 86_400_000

/**
 * The region key of numbers without one (libphonenumber's "001": +800, +808, +870, +881-+883, +888,
 * +979). They are favourites of toll-fraud pumping, so only allowed_countries "*" lets them through.
 */
export const NON_GEOGRAPHIC = '001'

/**
 * Every limit the guard can trip: the limit_guard column (its constraint is `limit_<name>`), which for
 * the bucketed ones is also the counter's kind and the setting's name, and the reply's message.
 */
export const LIMITS = {
  phone_cooldown: 'A code was sent to this phone number moments ago; wait before sending another.',
  phone_sends_per_hour: 'Too many codes were sent to this phone number in the last hour.',
  phone_sends_per_day: 'Too many codes were sent to this phone number in the last 24 hours.',
  ip_sends_per_hour: 'Too many codes were requested from this IP address in the last hour.',
  ipv6_56_sends_per_hour: 'Too many codes were requested from this IPv6 network (/56) in the last hour.',
  ipv6_48_sends_per_hour: 'Too many codes were requested from this IPv6 network (/48) in the last hour.',
  country_sends_per_hour: "Too many codes were sent to this phone number's country in the last hour.",
  new_users_per_hour: 'Too many users were created in this project in the last hour.',
  ip_failed_auths_per_hour: 'Too many failed authentications from this IP address in the last hour.',
  ipv6_56_failed_auths_per_hour: 'Too many failed authentications from this IPv6 network (/56) in the last hour.',
  ipv6_48_failed_auths_per_hour: 'Too many failed authentications from this IPv6 network (/48) in the last hour.',
  search_rows_per_minute: "This project's user searches read too many rows in the last minute; retry in a minute.",
  sms_country_sends_per_hour: "Too many SMS codes were sent to this phone number's country in the last hour.",
  sms_country_paused:
    "SMS codes to this phone number's country are paused for this project: too few of the recent ones were used (SMS pumping breaker). WhatsApp codes are not affected.",
} as const

export type LimitName = keyof typeof LIMITS

/** Limits whose trip is an operator alert (an attack on the whole project), not just a refused client. */
const ALERT_LIMITS: ReadonlySet<LimitName> = new Set(['country_sends_per_hour', 'sms_country_sends_per_hour'])

/**
 * The network scopes an end-user IP is counted in: an IPv4 address alone; an IPv6 address by its /64
 * (one subscriber usually holds a whole /64), and also by its /56 and /48, the sizes ISPs delegate to
 * a home or a site, each with a higher cap, so a holder of many /64s does not get a budget per /64.
 */
export type IpScope = 'ip' | 'ipv6_56' | 'ipv6_48'

/** One scope of an end-user IP, in canonical text (`2001:db8:1::/56`), before hashing. */
export interface IpPrefix {
  scope: IpScope
  prefix: string
}

const V6_SCOPES: [IpScope, bigint][] = [
  ['ip', 64n],
  ['ipv6_56', 56n],
  ['ipv6_48', 48n],
]

/**
 * The scopes `ip` (a valid address, zod-checked) is counted in. IPv4-mapped IPv6 addresses count as
 * their IPv4 address. Parsing and canonical forms come from hono's ipaddr helpers.
 */
export function ipPrefixes(ip: string): IpPrefix[] {
  const parsed = parseIp(ip)
  // Not parseable despite the schema's check: counted as its own text.
  if (!parsed) return [{ scope: 'ip', prefix: ip.toLowerCase() }]
  if ('v4' in parsed) return [{ scope: 'ip', prefix: parsed.v4 }]
  return V6_SCOPES.map(([scope, length]) => {
    const host = 128n - length
    return { scope, prefix: `${convertIPv6BinaryToString((parsed.v6 >> host) << host)}/${length}` }
  })
}

/** An IP scope as counters store it: a keyed hash of the prefix, so no IP is kept in clear. */
export interface IpKey {
  scope: IpScope
  key: string
}

/**
 * The counter keys of attributes.ip_address: HMAC-SHA-256 with the pepper over each scope's prefix,
 * truncated to 128 bits (base64url). None without an IP: then no per-IP limit applies.
 */
export async function ipKeys(env: Env, ip: string | undefined): Promise<IpKey[]> {
  if (ip === undefined) return []
  const pepper = requireSecret(env, 'OTP_PEPPER')
  return Promise.all(
    ipPrefixes(ip).map(async ({ scope, prefix }) => ({
      scope,
      key: toBase64Url((await hmacSha256(pepper, `limit:ip:v1:${prefix}`)).subarray(0, 16)),
    })),
  )
}

/** What a send is counted against. A null phone number is exempt from the per-phone limits. */
export interface SendSubject {
  projectId: string
  settings: ProjectSettings
  /** E.164 number, or null for the sandbox number (exempt from per-phone limits). */
  phoneNumber: string | null
  /**
   * Destination region (sendCountry) for the per-country limit, or null when no code goes to a real
   * country (sandbox) or the send was counted there already (an SMS fallback of a WhatsApp send).
   */
  country: string | null
  /** The destination region when the code goes by SMS: counted against the SMS cap and breaker. */
  smsCountry?: string | null
  /** The keys of attributes.ip_address (ipKeys); empty without an IP. */
  ip: IpKey[]
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
 * The sendCountry of a stored E.164 number, for the metrics: `kept` when the issue recorded it with
 * the code (KV record, queue job), else the number parsed again (null when there is no number or it
 * does not parse).
 */
export function storedNumberCountry(phoneNumber: string | null, kept?: string | null): string | null {
  if (kept) return kept
  const phone = phoneNumber ? parsePhone(phoneNumber) : null
  return phone ? sendCountry(phone) : null
}

const sendsPerHour = (scope: IpScope) => `${scope}_sends_per_hour` as const
const failedAuthsPerHour = (scope: IpScope) => `${scope}_failed_auths_per_hour` as const

/** The counters a send is recorded in (besides new_users_per_hour, which counts a created user). */
function sendEvents(s: SendSubject): CounterEvent[] {
  const events: CounterEvent[] = []
  if (s.phoneNumber !== null) events.push({ kind: 'phone', subject: s.phoneNumber, exact: true, windowMs: DAY_MS })
  for (const ip of s.ip) events.push({ kind: sendsPerHour(ip.scope), subject: ip.key, exact: false, windowMs: HOUR_MS })
  if (s.country !== null) {
    events.push({ kind: 'country_sends_per_hour', subject: s.country, exact: false, windowMs: HOUR_MS })
  }
  if (s.smsCountry) events.push(smsSendEvent(s.smsCountry))
  return events
}

const NEW_USER: CounterEvent = { kind: 'new_users_per_hour', subject: '', exact: false, windowMs: HOUR_MS }

/**
 * Statements for one send (login_or_create or /send), to go into the caller's batch after its
 * writes: record the send's events and trip the guard if any limit is now exceeded. The send is
 * recorded only when the batch issued the code (`deliveryId`) and the new user only when
 * `mintedUserId` exists by then, i.e. this very batch created the user; so place these after the
 * find-or-create and code statements.
 */
export function sendLimitStatements(db: D1Database, s: SendSubject): D1PreparedStatement[] {
  const { settings, now } = s
  const hourly = bucketedFrom(now, HOUR_MS)
  const checks: CounterCheck[] = []
  if (s.phoneNumber !== null) {
    const phone = { kind: 'phone', subject: s.phoneNumber }
    // Counts include the event just recorded, hence "over 1" for the cooldown.
    const cooldownMs = settings.phone_send_cooldown_seconds * 1_000
    if (cooldownMs > 0) checks.push({ name: 'phone_cooldown', ...phone, from: exactFrom(now, cooldownMs), limit: 1 })
    checks.push({
      name: 'phone_sends_per_hour',
      ...phone,
      from: exactFrom(now, HOUR_MS),
      limit: settings.phone_sends_per_hour,
    })
    checks.push({
      name: 'phone_sends_per_day',
      ...phone,
      from: exactFrom(now, DAY_MS),
      limit: settings.phone_sends_per_day,
    })
  }
  for (const ip of s.ip) {
    const name = sendsPerHour(ip.scope)
    checks.push({ name, kind: name, subject: ip.key, from: hourly, limit: settings[name] })
  }
  if (s.country !== null) {
    const name = 'country_sends_per_hour'
    checks.push({ name, kind: name, subject: s.country, from: hourly, limit: settings[name] })
  }
  if (s.smsCountry) checks.push(...smsChecks(settings, s.smsCountry, now))
  return sendCountStatements(db, s.projectId, now, {
    deliveryId: s.deliveryId,
    mintedUserId: s.mintedUserId,
    sendEvents: sendEvents(s),
    sendChecks: checks,
    newUser: NEW_USER,
    newUserCheck: {
      name: NEW_USER.kind,
      kind: NEW_USER.kind,
      subject: NEW_USER.subject,
      from: hourly,
      limit: settings.new_users_per_hour,
    },
  })
}

/*
 * SMS pumping defence. Toll-fraud rings request codes for numbers whose owners are paid per message
 * received, and never enter them. Besides the SMS allowlists (countries, line types), two limits
 * apply per project and destination country, to SMS only:
 *  - sms_country_sends_per_hour (or a per-country value of sms_sends_per_hour_by_country): a cap;
 *  - the conversion breaker: once at least sms_breaker_min_sends SMS went to a country in the last
 *    hour and fewer than sms_breaker_min_conversion_percent of them were authenticated, SMS to that
 *    country pause for sms_breaker_cooldown_minutes. Real users enter most of their codes; pumping
 *    enters none, so a low share over enough sends is its signature.
 * SMS sends count in 'sms_country_sends_per_hour' buckets; an authenticated SMS code counts in
 * 'sms_conversions', in the bucket of the minute its SMS was sent, so both sides of the ratio cover
 * the same sends. Sends of the last BREAKER_GRACE_MS are left out of the ratio (their users are still
 * typing), and so are sends from before the last trip: after a cool-down the breaker starts afresh.
 * The trip itself is a counter row (kind 'sms_breaker', bucket = the trip's millisecond); a send
 * finding one younger than the cool-down is refused (429, sms_country_paused). The send whose batch
 * trips the breaker still goes out: its batch cannot both record the trip and be refused.
 */

/** Sends younger than this are left out of the conversion ratio: their codes may not be entered yet. */
export const BREAKER_GRACE_MS = 5 * 60_000

const SMS_SENDS = 'sms_country_sends_per_hour'
const SMS_CONVERSIONS = 'sms_conversions'
const SMS_BREAKER = 'sms_breaker'

const smsSendEvent = (country: string): CounterEvent => ({
  kind: SMS_SENDS,
  subject: country,
  exact: false,
  windowMs: HOUR_MS,
})

/** The project's SMS cap for one country an hour: its own entry, else the general one. */
export function smsCountryCap(settings: ProjectSettings, country: string): number {
  return settings.sms_sends_per_hour_by_country[country] ?? settings.sms_country_sends_per_hour
}

/** The cap, and the pause a tripped breaker holds: no SMS while a trip is younger than the cool-down. */
function smsChecks(settings: ProjectSettings, country: string, now: number): CounterCheck[] {
  return [
    {
      name: 'sms_country_paused',
      kind: SMS_BREAKER,
      subject: country,
      from: now - settings.sms_breaker_cooldown_minutes * 60_000,
      limit: 0,
    },
    {
      name: SMS_SENDS,
      kind: SMS_SENDS,
      subject: country,
      from: bucketedFrom(now, HOUR_MS),
      limit: smsCountryCap(settings, country),
    },
  ]
}

/**
 * The breaker's trip for an SMS send, to go into the send's batch after sendLimitStatements: it
 * records a trip (and returns its row) when, counting this send, the conversion of the country's SMS
 * is below the threshold over at least the floor of sends. Null when the send is not an SMS or the
 * breaker is off (threshold 0).
 */
export function smsBreakerTripStatement(db: D1Database, s: SendSubject): D1PreparedStatement | null {
  const { settings, now, smsCountry } = s
  if (!smsCountry || settings.sms_breaker_min_conversion_percent === 0) return null
  const cooldownMs = settings.sms_breaker_cooldown_minutes * 60_000
  return breakerTripStatement(db, s.projectId, now, {
    deliveryId: s.deliveryId,
    trip: { kind: SMS_BREAKER, subject: smsCountry, expiresAt: now + cooldownMs + HOUR_MS },
    sendsKind: SMS_SENDS,
    conversionsKind: SMS_CONVERSIONS,
    // Whole buckets from the hour's window up to the newest one entirely older than the grace.
    from: bucketedFrom(now, HOUR_MS),
    to: now - BREAKER_GRACE_MS - BUCKET_MS,
    floor: settings.sms_breaker_min_sends,
    percent: settings.sms_breaker_min_conversion_percent,
  })
}

/**
 * The alert of a trip (and its metric): SMS to the country are paused for the project. Sends made
 * while it lasts are refused and logged as limit_tripped sms_country_paused.
 */
export function logBreakerTrip(s: SendSubject): void {
  const { settings } = s
  logEvent('error', 'sms.breaker_tripped', {
    project_id: s.projectId,
    country: s.smsCountry ?? null,
    min_sends: settings.sms_breaker_min_sends,
    min_conversion_percent: settings.sms_breaker_min_conversion_percent,
    paused_until: new Date(s.now + settings.sms_breaker_cooldown_minutes * 60_000).toISOString(),
    alert: true,
  })
}

/**
 * For authenticate's batch, after the consume: when this request consumed a code an SMS carried, one
 * conversion in its country, in the minute the SMS was sent (the breaker's numerator).
 */
export function smsConversionStatement(
  db: D1Database,
  a: { projectId: string; phoneId: string; requestId: string },
): D1PreparedStatement {
  return conversionStatement(db, a.projectId, { ...a, kind: SMS_CONVERSIONS, windowMs: HOUR_MS })
}

/**
 * Takes back the send events sendLimitStatements recorded for `s`, for a send whose batch committed
 * but whose code never went out. The new-user count stays: that user was created.
 */
export function refundSendStatements(db: D1Database, s: SendSubject): D1PreparedStatement[] {
  const refund = refundStatement(db, s.projectId, s.now, sendEvents(s))
  return refund ? [refund] : []
}

/** What an authenticate attempt is counted against, and how its batch tells success. */
export interface AuthSubject {
  projectId: string
  settings: ProjectSettings
  /** attributes.ip_address; no per-IP limit applies without it. */
  ipAddress: string | undefined
  /** The method_id presented. */
  phoneId: string
  /** This request's id: the gates mark the code with it when they consume it or count a wrong attempt. */
  requestId: string
  /** The sandbox number when the sandbox code was presented in a test project, else null. */
  sandboxNumber: string | null
  now: number
  /** The batch presents a wrong code (its gate may count a wrong attempt against the project's brake). */
  wrongCode: boolean
  /**
   * In authenticate's first batch: the code id of the KV record the code was judged against (null
   * without one) and otp_max_attempts. A failure is then not recorded per IP when the gate is live
   * and names another code (gateToRecheck): authenticate runs the attempt again against D1's hash and
   * that batch records it, so one attempt is one failure. Absent: the attempt's verdict is final.
   */
  recheck?: { checkedCodeId: string | null; maxAttempts: number } | undefined
}

const PROJECT_FAILURES = { kind: 'failed_auths_per_hour', subject: '' } as const

/**
 * The project-wide failed-authentication brake. It counts wrong attempts against live codes of the
 * project only (a live code: unused, unexpired, with attempts left, its user not locked), so nobody
 * can move it with made-up method_ids or dead codes. Once `failed_auths_per_hour` of them fall in the
 * last hour it is engaged: it refuses nothing, so right codes keep working from every IP, but wrong
 * ones cost more. A code survives at most `brake_otp_max_attempts` wrong guesses (the guess that
 * reaches it uses the code up, so each further guess needs a new send, which the per-phone send
 * limits hold to a few an hour), and each per-IP failed-authentication cap is divided by
 * `brake_ip_divisor`. The attempt that engages it logs an alert.
 */
export function authBrake(
  settings: ProjectSettings,
  now: number,
): AttemptBrake & { check: Omit<CounterCheck, 'name'> } {
  const check = { ...PROJECT_FAILURES, from: bucketedFrom(now, HOUR_MS), limit: settings.failed_auths_per_hour }
  return {
    check,
    engaged: (projectRef) => counterReachedSql(projectRef, check),
    maxAttempts: settings.brake_otp_max_attempts,
  }
}

/**
 * Failed authentications, for authenticate's one batch, after its gate statements: per end-user IP
 * scope (when attributes.ip_address is given) and per project. The guard first trips if a per-IP
 * counter already holds its limit of failures in the last hour (divided by brake_ip_divisor while
 * the brake is engaged), whatever this attempt's outcome (so a 429 tells nothing about the code and,
 * rolling the batch back, counts no attempt on it); then the attempt is recorded per IP unless the
 * batch consumed the code for this request or authenticated the sandbox number, or (`recheck`)
 * authenticate's second batch will judge it again; and per project only if the gate counted it as a
 * wrong attempt on the live code (authBrake). Batches run one at a time, so parallel guesses get
 * exactly the allowed number of verdicts. `brake` reads back the project's count, for noteBrake.
 */
export async function failedAuthStatements(
  db: D1Database,
  env: Env,
  a: AuthSubject,
): Promise<{ statements: D1PreparedStatement[]; brake: D1PreparedStatement | null }> {
  const ip = await ipKeys(env, a.ipAddress)
  const { settings, now } = a
  const hourly = bucketedFrom(now, HOUR_MS)
  const ipEvents: CounterEvent[] = ip.map((k) => ({
    kind: failedAuthsPerHour(k.scope),
    subject: k.key,
    exact: false,
    windowMs: HOUR_MS,
  }))
  const ipChecks = ipEvents.map((e) => {
    const name = e.kind as ReturnType<typeof failedAuthsPerHour>
    const limit = settings[name]
    const tightened = Math.ceil(limit / settings.brake_ip_divisor)
    return { name, kind: e.kind, subject: e.subject, from: hourly, limit, tightened }
  })
  return failedAuthCountStatements(db, a.projectId, now, {
    phoneId: a.phoneId,
    requestId: a.requestId,
    sandboxNumber: a.sandboxNumber,
    recheck: a.recheck,
    wrongCode: a.wrongCode,
    ipEvents,
    ipChecks,
    projectEvent: { ...PROJECT_FAILURES, exact: false, windowMs: HOUR_MS },
    brake: authBrake(settings, now).check,
  })
}

/**
 * After an authenticate batch: the alert when this attempt engaged the brake, i.e. it was counted and
 * brought the project's failures in the window to exactly failed_auths_per_hour (batches run one at a
 * time, so exactly one attempt does, once per engagement).
 */
export function noteBrake(row: BrakeRow | undefined, projectId: string, settings: ProjectSettings): void {
  if (row?.counted !== 1 || row.failures !== settings.failed_auths_per_hour) return
  logEvent('error', 'limit_tripped', {
    limit: PROJECT_FAILURES.kind,
    project_id: projectId,
    action: 'brake',
    alert: true,
  })
}

/**
 * Rows every users search is charged at least, reserved in its own batch before it reads anything:
 * so that searches running at the same time see each other (at most search_rows_per_minute / this
 * many a minute), and to cover the page's phones, read after the charge is settled.
 */
export const SEARCH_MIN_ROWS = 5_000

const searchRows = (weight: number): CounterEvent => ({
  kind: 'search_rows_per_minute',
  subject: '',
  exact: false,
  windowMs: MINUTE_MS,
  weight,
})

/**
 * The per-project search budget, for the start of a search's batch (before the page and the count):
 * refused (429) once the project's searches have read search_rows_per_minute rows in the last minute,
 * else SEARCH_MIN_ROWS reserved. One project's searches therefore cannot keep D1, which runs one
 * query at a time for every project of the database, busy for long.
 */
export function searchBudgetStatements(
  db: D1Database,
  projectId: string,
  settings: ProjectSettings,
  now: number,
): D1PreparedStatement[] {
  const name = 'search_rows_per_minute'
  const check = { name, kind: name, subject: '', from: bucketedFrom(now, MINUTE_MS), limit: settings[name] }
  return budgetStatements(db, projectId, now, searchRows(SEARCH_MIN_ROWS), check)
}

/**
 * What a search cost beyond its reservation: `rowsRead`, the rows D1 reported reading for its batch
 * (D1's own meter, meta.rows_read), less SEARCH_MIN_ROWS. None when the reservation covered it.
 */
export function searchCostStatements(
  db: D1Database,
  projectId: string,
  now: number,
  rowsRead: number,
): D1PreparedStatement[] {
  const extra = Math.ceil(rowsRead) - SEARCH_MIN_ROWS
  return extra > 0 ? [costStatement(db, projectId, now, searchRows(extra))] : []
}

/**
 * The limit a failed D1 call tripped, read from the constraint name in its message (workerd and
 * D1 both report SQLite's text, e.g. "D1_ERROR: CHECK constraint failed: limit_phone_cooldown:
 * SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_CHECK)"), or null for any other error.
 */
export function trippedLimit(err: unknown): LimitName | null {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 3; e = e.cause, depth++) {
    const match = /CHECK constraint failed: limit_([a-z0-9_]+)/.exec(e.message)
    const name = match?.[1]
    if (name && Object.hasOwn(LIMITS, name)) return name as LimitName
  }
  return null
}

/**
 * Runs a batch that carries limit statements: a tripped limit becomes `429 too_many_requests`
 * (logged with its name, so a pumping wave is visible; a project-wide limit as an alert line);
 * every other failure is rethrown unchanged.
 */
export async function runWithLimits(db: D1Database, batch: Batch, projectId: string): Promise<void> {
  try {
    await batch.run(db)
  } catch (err) {
    const limit = trippedLimit(err)
    if (!limit) throw err
    if (ALERT_LIMITS.has(limit)) logEvent('error', 'limit_tripped', { limit, project_id: projectId, alert: true })
    else logEvent('info', 'limit_tripped', { limit, project_id: projectId })
    throw new StytchError('too_many_requests', { message: LIMITS[limit] })
  }
}
