/**
 * One structured log line per event (Workers Logs indexes JSON lines). Callers pass ids,
 * counts, Meta error codes and our labels only: never a code, a phone number, a token or Meta's free
 * text, which can echo request parameters.
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
}

/** An unexpected error as a log field: its name and message, without the stack. */
export function errorName(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`.slice(0, 300)
  return String(err).slice(0, 300)
}
