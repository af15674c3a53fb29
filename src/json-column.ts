import { logEvent } from './log'

/**
 * A JSON object kept as text in a D1 column (a user's metadata, a session's custom claims), as an
 * object. Only the column's owner writes it, always from an object; a value that is not one is
 * logged as `unreadableEvent` and read as empty, so one damaged row cannot fail every read of it.
 */
export function parseJsonColumn(json: string, unreadableEvent: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(json)
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>
  } catch {
    // Logged below, like any value that is not an object.
  }
  logEvent('error', unreadableEvent)
  return {}
}
