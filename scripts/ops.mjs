// Delivery and conversion figures from the tables the service keeps (deliveries, phones, otp_codes,
// and the SMS pumping breaker's trips in limit_counters), for `npm run stats` and `npm run deliveries`.
// Local D1 state by default, the deployed databases with --remote (of the wrangler environment
// --wrangler-env, when given). Every shard is read (DB, DB_1, …: each holds its projects' rows), and
// a row counts only from the shard its project's directory record names, so a project in the middle
// of a move between shards, whose rows are in two, is counted once. Phone numbers are read only to
// derive the country and are printed masked, never whole.
import { parsePhoneNumberFromString } from 'libphonenumber-js/max'
import { d1Execute, lit, shardBindings } from './d1.mjs'

const DAY_MS = 86_400_000
// A breaker trip row is kept this long past the end of its pause (src/limits.ts, smsBreakerTripStatement).
const HOUR_MS = 3_600_000

/** Common flags of both commands. */
export const COMMON_OPTIONS = /** @type {const} */ ({
  remote: { type: 'boolean', default: false },
  'wrangler-env': { type: 'string' },
  'persist-to': { type: 'string' },
  project: { type: 'string' },
  days: { type: 'string', default: '7' },
  json: { type: 'boolean', default: false },
})

/** Checked common flags, or throws an Error saying which flag is wrong. */
export function commonArgs(values) {
  const days = Number(values.days)
  if (!Number.isInteger(days) || days < 1 || days > 366) throw new Error('--days must be an integer from 1 to 366')
  if (values.project !== undefined && !/^project-(test|live)-[0-9a-f-]{36}$/.test(values.project)) {
    throw new Error('--project must be a project id')
  }
  return {
    remote: values.remote,
    configEnv: values['wrangler-env'],
    persistTo: values['persist-to'],
    project: values.project,
    days,
    json: values.json,
  }
}

/** ISO country of an E.164 number; '001' for numbers without one; '??' when unknown (phone deleted). */
export function countryOf(phoneNumber) {
  if (!phoneNumber) return '??'
  const parsed = parsePhoneNumberFromString(phoneNumber)
  if (!parsed) return '??'
  return parsed.country ?? '001'
}

/** A number with only its calling code and last two digits shown: +44 ••••••••56. */
export function maskNumber(phoneNumber) {
  if (!phoneNumber) return '(deleted)'
  const parsed = parsePhoneNumberFromString(phoneNumber)
  const callingCode = parsed?.countryCallingCode ?? ''
  const rest = phoneNumber.replace(/^\+/, '').slice(callingCode.length)
  if (rest.length <= 2) return `+${callingCode} ••`
  return `+${callingCode} ${'•'.repeat(rest.length - 2)}${rest.slice(-2)}`
}

/**
 * The codes of the last `days` days (one delivery each: WhatsApp or SMS), newest first, with the
 * recipient's number, the code's SMS fallback if it had one (a second delivery naming it), and, while
 * the code is still the phone's current one, when it was used to log in. otp_codes keeps one row per
 * phone, so a code replaced by a newer one no longer shows whether it was used: such codes count as
 * not authenticated.
 * @param {{ remote?: boolean, configEnv?: string, persistTo?: string, project?: string, days: number,
 *   failedOnly?: boolean, limit?: number, now?: number }} options
 */
export function loadDeliveries(options) {
  const [rows] = queryShards([deliveriesQuery(options)], options)
  return rows
}

/**
 * What `npm run stats` reads, the deliveries loadDeliveries reads and the SMS pumping breaker's trips
 * (breakerTripsQuery), in one wrangler run per shard.
 * @param {{ remote?: boolean, configEnv?: string, persistTo?: string, project?: string, days: number,
 *   now?: number }} options
 */
export function loadStatsInputs(options) {
  const [deliveries, trips] = queryShards([deliveriesQuery(options), breakerTripsQuery(options)], options)
  return { deliveries, trips }
}

/**
 * A read of every shard: its SQL, and what turns the rows of all shards into the result.
 * @typedef {{ sql: string, finish: (rows: any[]) => any[] }} ShardQuery
 */

/**
 * @param {{ project?: string, days: number, failedOnly?: boolean, limit?: number, now?: number }} options
 * @returns {ShardQuery}
 */
function deliveriesQuery({ project, days, failedOnly = false, limit, now = Date.now() }) {
  const since = now - days * DAY_MS
  const where = [`d.created_at >= ${since}`, 'd.fallback_of IS NULL']
  if (project) where.push(`d.project_id = ${lit(project)}`)
  if (failedOnly) where.push(`d.status = 'failed'`)
  const sql = `SELECT d.id, d.project_id, d.channel, d.status, d.provider, d.attempts, d.error_code, d.error_detail,
      d.created_at, d.updated_at, p.phone_number,
      f.id AS fallback_id, f.status AS fallback_status, f.error_code AS fallback_error_code,
      f.error_detail AS fallback_detail,
      CASE WHEN c.code_id = COALESCE(d.code_id, d.id) THEN c.consumed_at END AS authenticated_at
    FROM deliveries d
    LEFT JOIN phones p ON p.id = d.phone_id
    LEFT JOIN otp_codes c ON c.phone_id = d.phone_id
    LEFT JOIN deliveries f ON f.fallback_of = d.id
    WHERE ${where.join(' AND ')}
    ORDER BY d.created_at DESC, d.id${limit ? ` LIMIT ${Number(limit)}` : ''}`
  return {
    sql,
    finish: (rows) => {
      rows.sort((a, b) => b.created_at - a.created_at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      return limit ? rows.slice(0, Number(limit)) : rows
    },
  }
}

/**
 * The SMS pumping breaker's trips still on record (a trip row stays an hour past its pause), newest
 * first: per project and country, when it tripped and until when SMS there are (or were) paused.
 * @param {{ project?: string, now?: number }} options
 * @returns {ShardQuery}
 */
function breakerTripsQuery({ project, now = Date.now() }) {
  const where = [`kind = 'sms_breaker'`]
  if (project) where.push(`project_id = ${lit(project)}`)
  const sql = `SELECT project_id, subject AS country, bucket AS tripped_at, expires_at FROM limit_counters
     WHERE ${where.join(' AND ')} ORDER BY bucket DESC`
  const finish = (/** @type {any[]} */ rows) => {
    rows.sort((a, b) => b.tripped_at - a.tripped_at)
    return rows.map((r) => {
      const pausedUntil = r.expires_at - HOUR_MS
      return {
        project_id: r.project_id,
        country: r.country,
        tripped_at: new Date(r.tripped_at).toISOString(),
        paused_until: new Date(pausedUntil).toISOString(),
        paused: pausedUntil > now,
      }
    })
  }
  return { sql, finish }
}

/**
 * Runs `queries` (rows with a project_id) on every shard, one wrangler run per shard, each row kept
 * only from the shard its project's directory record names (read in shard 0's run, the directory's;
 * a row of a project without a record counts on shard 0). Returns each query's result, in order.
 * @param {ShardQuery[]} queries
 * @param {{ remote?: boolean, configEnv?: string, persistTo?: string }} target
 */
function queryShards(queries, { remote, configEnv, persistTo }) {
  const bindings = shardBindings(configEnv)
  const sqls = queries.map((q) => q.sql)
  const [directory = [], ...first] = query(['SELECT id, shard FROM projects', ...sqls], {
    remote,
    configEnv,
    persistTo,
  })
  const home = new Map(directory.map((p) => [p.id, p.shard]))
  const perShard = [
    first,
    ...bindings.slice(1).map((binding) => query(sqls, { remote, configEnv, persistTo, binding })),
  ]
  return queries.map((q, i) =>
    q.finish(
      perShard.flatMap((results, shard) =>
        (results[i] ?? []).filter((row) => (home.get(row.project_id) ?? 0) === shard),
      ),
    ),
  )
}

/**
 * The statements `sqls` in one wrangler run; each one's rows, in order.
 * @param {string[]} sqls
 * @param {{ remote?: boolean, configEnv?: string, persistTo?: string, binding?: string }} target
 */
function query(sqls, { remote, configEnv, persistTo, binding }) {
  /** @type {any[]} */
  let results
  try {
    const sql = sqls.map((q) => q.replace(/\s+/g, ' ')).join('; ')
    results = d1Execute({ sql, remote, configEnv, persistTo, binding, json: true })
  } catch {
    // wrangler has printed its own error above (no local state yet, not logged in, …).
    throw new Error(
      remote
        ? 'could not read the deployed database (see the wrangler error above)'
        : 'could not read the local database: start the service once with `npm run dev` (see the wrangler error above)',
    )
  }
  return sqls.map((_, i) => results[i]?.results ?? [])
}

const SENT = new Set(['sent', 'delivered', 'read'])
// How a failure reported by a provider's status, after it accepted the message, is labelled.
const REPORTED_FAILED = new Set(['meta_status_failed', 'twilio_status_failed'])

function median(values) {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** Why a delivery failed: Meta's error code when there is one, else our label (retries_exhausted, …). */
const failureReason = (row) =>
  row.error_code !== null && row.error_code !== undefined ? String(row.error_code) : (row.error_detail ?? 'unknown')

/**
 * Per-country figures for `rows` (loadDeliveries), busiest country first, then a TOTAL row:
 * codes issued, accepted by the provider (sent), delivered (incl. read), read, failed by reason,
 * expired unsent, codes sent on an SMS route (sms), WhatsApp codes that fell back to SMS (fallbacks,
 * and of those the ones the SMS provider accepted), authenticated, conversion (authenticated / codes)
 * and the median seconds from issue to login.
 */
export function computeStats(rows) {
  const groups = new Map()
  const add = (key, row) => {
    let g = groups.get(key)
    if (!g) {
      g = {
        country: key,
        codes: 0,
        sent: 0,
        delivered: 0,
        read: 0,
        failed: 0,
        failed_by_reason: {},
        expired: 0,
        sms: 0,
        fallbacks: 0,
        fallbacks_sent: 0,
        authenticated: 0,
        seconds: [],
      }
      groups.set(key, g)
    }
    g.codes += 1
    // A failure the provider reported after accepting the message was sent all the same.
    if (SENT.has(row.status) || (row.status === 'failed' && REPORTED_FAILED.has(row.error_detail))) g.sent += 1
    if (row.status === 'delivered' || row.status === 'read') g.delivered += 1
    if (row.status === 'read') g.read += 1
    if (row.status === 'failed') {
      g.failed += 1
      const reason = failureReason(row)
      g.failed_by_reason[reason] = (g.failed_by_reason[reason] ?? 0) + 1
    }
    if (row.status === 'expired') g.expired += 1
    if (row.channel === 'sms') g.sms += 1
    if (row.fallback_id) {
      g.fallbacks += 1
      if (SENT.has(row.fallback_status) || REPORTED_FAILED.has(row.fallback_detail)) g.fallbacks_sent += 1
    }
    if (row.authenticated_at !== null && row.authenticated_at !== undefined) {
      g.authenticated += 1
      g.seconds.push((row.authenticated_at - row.created_at) / 1000)
    }
  }
  for (const row of rows) {
    add(countryOf(row.phone_number), row)
    add('TOTAL', row)
  }
  const finish = ({ seconds, ...g }) => ({
    ...g,
    conversion: g.codes === 0 ? null : g.authenticated / g.codes,
    median_seconds_to_authenticate: median(seconds),
  })
  const total = groups.get('TOTAL')
  groups.delete('TOTAL')
  const countries = [...groups.values()].sort((a, b) => b.codes - a.codes || a.country.localeCompare(b.country))
  return [...countries, ...(total ? [total] : [])].map(finish)
}

/** A plain-text table: the header row, then one row per entry, columns padded to fit (numbers right). */
export function table(header, rows, numeric = []) {
  const all = [header, ...rows]
  const widths = header.map((_, i) => Math.max(...all.map((r) => String(r[i]).length)))
  const right = (i) => numeric.includes(i)
  const format = (r) =>
    r
      .map((cell, i) => (right(i) ? String(cell).padStart(widths[i]) : String(cell).padEnd(widths[i])))
      .join('  ')
      .trimEnd()
  return [format(header), format(widths.map((w) => '-'.repeat(w))), ...rows.map(format)].join('\n')
}

export function statsTable(stats) {
  const percent = (x) => (x === null ? '-' : `${(x * 100).toFixed(1)}%`)
  const seconds = (x) => (x === null ? '-' : `${x.toFixed(1)} s`)
  const reasons = (g) =>
    Object.entries(g.failed_by_reason)
      .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
      .map(([reason, n]) => `${reason}×${n}`)
      .join(', ')
  return table(
    [
      'country',
      'codes',
      'sent',
      'delivered',
      'read',
      'failed',
      'expired',
      'sms',
      'fallbacks',
      'authenticated',
      'conversion',
      'median to login',
      'failures by reason',
    ],
    stats.map((g) => [
      g.country,
      g.codes,
      g.sent,
      g.delivered,
      g.read,
      g.failed,
      g.expired,
      g.sms,
      g.fallbacks === g.fallbacks_sent ? g.fallbacks : `${g.fallbacks_sent}/${g.fallbacks}`,
      g.authenticated,
      percent(g.conversion),
      seconds(g.median_seconds_to_authenticate),
      reasons(g) || '-',
    ]),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
  )
}

/** The breaker's trips as lines: the ones still pausing SMS first. */
export function breakerLines(trips) {
  return trips.map(
    (t) =>
      `${t.country}: SMS ${t.paused ? 'paused' : 'were paused'} until ${t.paused_until} (breaker tripped ${t.tripped_at}, ${t.project_id})`,
  )
}

/**
 * A delivery's chain, when its code fell back to SMS: "whatsapp failed 131026 → sms sent" (the error
 * is the provider's code, or our label without one).
 */
export function chainOf(r) {
  if (!r.fallback_id) return null
  const first = [r.channel, r.status, r.error_code ?? r.error_detail].filter((x) => x !== null && x !== undefined)
  const then = [
    'sms',
    r.fallback_status,
    r.fallback_status === 'failed' ? (r.fallback_error_code ?? r.fallback_detail) : null,
  ]
  return `${first.join(' ')} → ${then.filter((x) => x !== null && x !== undefined).join(' ')}`
}

/** Rows of `npm run deliveries`: the number masked, the rest as stored (error_detail is our label). */
export function deliveryRows(rows) {
  return rows.map((r) => ({
    created_at: new Date(r.created_at).toISOString(),
    delivery_id: r.id,
    project_id: r.project_id,
    country: countryOf(r.phone_number),
    phone: maskNumber(r.phone_number),
    channel: r.channel,
    status: r.status,
    error_code: r.error_code ?? null,
    detail: r.error_detail ?? null,
    attempts: r.attempts,
    chain: chainOf(r),
  }))
}

export function deliveriesTable(rows) {
  return table(
    ['created', 'phone', 'country', 'channel', 'status', 'error', 'detail', 'attempts', 'fallback', 'delivery'],
    rows.map((r) => [
      r.created_at,
      r.phone,
      r.country,
      r.channel,
      r.status,
      r.error_code ?? '-',
      r.detail ?? '-',
      r.attempts,
      r.chain ?? '-',
      r.delivery_id,
    ]),
    [5, 7],
  )
}
