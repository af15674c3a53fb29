import { recordFromLog } from './metrics'

/**
 * One structured log line per event (Workers Logs indexes JSON lines). Callers pass ids,
 * counts, Meta error codes and our labels only: never a code, a phone number, a token or Meta's free
 * text, which can echo request parameters. `alert: true` marks a line an operator must act on (the
 * alert wiring forwards exactly those). A line that counts a send, a provider result, an
 * authenticate outcome or a tripped limit also writes its metrics data point (src/metrics.ts).
 */
export function logEvent(
  level: 'info' | 'warn' | 'error',
  event: string,
  fields: Record<string, string | number | boolean | null> = {},
): void {
  const line = JSON.stringify({ level, event, ...fields })
  if (level === 'error') console.error(line)
  else if (level === 'warn') console.warn(line)
  else console.log(line)
  recordFromLog(event, fields)
}

/** An unexpected error as a log field: its name and message, without the stack. */
export function errorName(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`.slice(0, 300)
  return String(err).slice(0, 300)
}
