import { AsyncLocalStorage } from 'node:async_hooks'

/**
 * Delivery and conversion metrics in Workers Analytics Engine (binding METRICS).
 *
 * A data point is written by the log line of the event it counts (logEvent hands every line to
 * recordFromLog), so a metric can never drift from the logging of the same event: a send, a
 * provider result, an authenticate outcome, a tripped limit. The dimensions the line does not
 * carry (project, destination country, message locale) come from the scope the request or queue
 * message runs in (withMetrics, setMetricDimensions).
 *
 * Layout of a data point (the SQL queries in docs/operations.md read these positions):
 *   index1  project id (Analytics Engine samples per index value)
 *   blob1   kind: send | provider | authenticate | limit | fallback | breaker
 *   blob2   outcome: send queued/undone; provider accepted/retry/failed/delivered/read;
 *           authenticate success or the Stytch error_type; limit = the limit's name;
 *           fallback queued/unavailable/refused/limited/too_late/failed; breaker tripped
 *   blob3   project id   blob4 country (ISO code, '001' non-geographic, '' unknown)
 *   blob5   locale       blob6 detail (our label for an error)   blob7 the provider's error code
 *   blob8   channel: whatsapp | sms ('' when not known, e.g. authenticate)
 *   double1 1 (a count; weight with _sample_interval)
 *   double2 latency in ms (provider results: since the code was issued), else 0
 *   double3 delivery attempts so far (provider results), else 0
 * Only labels go in: never a phone number, a code, an IP address or Meta's free text.
 */

export type MetricKind = 'send' | 'provider' | 'authenticate' | 'limit' | 'fallback' | 'breaker'

/** The dimensions every data point carries besides its kind and outcome. */
export interface MetricDimensions {
  project: string
  country: string
  locale: string
  channel: string
}

/** One data point before it is laid out for Analytics Engine. */
export interface Metric extends MetricDimensions {
  kind: MetricKind
  outcome: string
  detail: string
  errorCode: string
  latencyMs: number
  attempts: number
}

interface Scope {
  dataset: AnalyticsEngineDataset | undefined
  dims: MetricDimensions
}

const scopes = new AsyncLocalStorage<Scope>()

/**
 * Runs `fn` with the metrics binding of `env` and the given dimensions. Every request and every
 * queue message gets a scope of its own, so concurrent work never mixes dimensions.
 */
export function withMetrics<T>(env: Env, dims: Partial<MetricDimensions>, fn: () => T): T {
  const dataset = (env as Partial<Env>).METRICS
  return scopes.run({ dataset, dims: { project: '', country: '', locale: '', channel: '', ...dims } }, fn)
}

/** Adds dimensions to the current scope once they are known (the project after auth, the country after parsing). */
export function setMetricDimensions(dims: Partial<MetricDimensions>): void {
  const scope = scopes.getStore()
  if (scope) Object.assign(scope.dims, dims)
}

type Fields = Record<string, string | number | boolean | null>

const text = (value: Fields[string] | undefined): string =>
  typeof value === 'string' || typeof value === 'number' ? String(value) : ''
const count = (value: Fields[string] | undefined): number =>
  typeof value === 'number' && Number.isFinite(value) ? Math.max(0, value) : 0

type EventMetric = (f: Fields) => { kind: MetricKind; outcome: string } | null

/** The provider results of a channel (whatsapp.sent, sms.failed, …), counted alike on both. */
const providerMetrics = (channel: 'whatsapp' | 'sms'): Record<string, EventMetric> => ({
  [`${channel}.sent`]: () => ({ kind: 'provider', outcome: 'accepted' }),
  [`${channel}.retry`]: () => ({ kind: 'provider', outcome: 'retry' }),
  [`${channel}.failed`]: () => ({ kind: 'provider', outcome: 'failed' }),
  [`${channel}.status`]: (f) => ({ kind: 'provider', outcome: text(f.status) }),
  // Only a dead letter that ended a pending delivery is a result; one for a finished delivery is not.
  [`${channel}.dead_letter`]: (f) => (f.recorded === true ? { kind: 'provider', outcome: 'failed' } : null),
})

/** How a log event becomes a data point: its kind and outcome, or null when that line counts nothing. */
const EVENT_METRICS: Readonly<Record<string, EventMetric>> = {
  'otp.sent': () => ({ kind: 'send', outcome: 'queued' }),
  'otp.send_undone': () => ({ kind: 'send', outcome: 'undone' }),
  ...providerMetrics('whatsapp'),
  ...providerMetrics('sms'),
  'otp.authenticate': (f) => (f.sandbox === true ? null : { kind: 'authenticate', outcome: text(f.outcome) }),
  'otp.fallback': (f) => ({ kind: 'fallback', outcome: text(f.outcome) }),
  'sms.breaker_tripped': () => ({ kind: 'breaker', outcome: 'tripped' }),
  limit_tripped: (f) => ({ kind: 'limit', outcome: text(f.limit) }),
}

/** The data point a log line stands for, with the scope's dimensions, or null. */
export function metricFromLog(event: string, fields: Fields): Metric | null {
  const rule = EVENT_METRICS[event]
  const base = rule?.(fields)
  if (!base) return null
  const dims = scopes.getStore()?.dims ?? { project: '', country: '', locale: '', channel: '' }
  return {
    ...base,
    project: text(fields.project_id) || dims.project,
    country: text(fields.country) || dims.country,
    locale: text(fields.locale) || dims.locale,
    channel: text(fields.channel) || dims.channel,
    detail: text(fields.detail) || (event.endsWith('.dead_letter') ? 'retries_exhausted' : ''),
    errorCode: text(fields.error_code),
    latencyMs: count(fields.latency_ms),
    attempts: count(fields.attempts),
  }
}

// Labels only: ids, ISO codes, locales, snake_case names, numeric error codes (at most 7 digits).
// Anything else (which no caller passes) is dropped rather than written, so a mistake cannot put a
// phone number or free text in.
const LABEL = /^[A-Za-z0-9_.-]{0,96}$/
const label = (value: string): string => (LABEL.test(value) && !/^[0-9]{8,}$/.test(value) ? value : '')

/** The Analytics Engine data point for `m`. */
export function dataPoint(m: Metric): AnalyticsEngineDataPoint {
  return {
    indexes: [label(m.project)],
    blobs: [m.kind, m.outcome, m.project, m.country, m.locale, m.detail, m.errorCode, m.channel].map(label),
    doubles: [1, m.latencyMs, m.attempts],
  }
}

/**
 * Writes the data point of a log line, if it stands for one. Fire-and-forget and never throws:
 * without a METRICS binding (tests, local runs without it) or outside a scope nothing happens, and a
 * failing write never fails the request it counts.
 */
export function recordFromLog(event: string, fields: Fields): void {
  const dataset = scopes.getStore()?.dataset
  if (!dataset || typeof dataset.writeDataPoint !== 'function') return
  const metric = metricFromLog(event, fields)
  if (!metric) return
  try {
    dataset.writeDataPoint(dataPoint(metric))
  } catch {
    // Metrics are best effort: the log line already records the event.
  }
}
