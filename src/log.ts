import { recordFromLog } from './metrics'

type Fields = Record<string, string | number | boolean | null>

/**
 * One structured log line per event (Workers Logs indexes JSON lines). Callers pass ids,
 * counts, Meta error codes and our labels only: never a code, a phone number, a token or Meta's free
 * text, which can echo request parameters. `alert: true` marks a line an operator must act on (the
 * alert wiring forwards exactly those). A line that counts a send, a provider result, an
 * authenticate outcome or a tripped limit also writes its metrics data point (src/metrics.ts).
 * The successful hot paths log nothing: they use recordEvent.
 */
export function logEvent(level: 'info' | 'warn' | 'error', event: string, fields: Fields = {}): void {
  const line = JSON.stringify({ level, event, ...fields })
  if (level === 'error') console.error(line)
  else if (level === 'warn') console.warn(line)
  else console.log(line)
  recordFromLog(event, fields)
}

/**
 * An event of a successful hot path, which happens on every login: a code queued, accepted by the
 * provider, delivered or read, authenticated. It writes its metrics data point, which carries what
 * operators count (project, kind, outcome, country, locale, channel, latency, attempts), and no log
 * line: a line per login costs CPU and log volume on every request, and nothing about a success
 * needs a human (the deliveries table keeps each message's ids and statuses; `npm run deliveries`).
 * Warnings, errors and alerts always go through logEvent.
 */
export function recordEvent(event: string, fields: Fields = {}): void {
  recordFromLog(event, fields)
}

/** An unexpected error as a log field: its name and message, without the stack. */
export function errorName(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`.slice(0, 300)
  return String(err).slice(0, 300)
}
