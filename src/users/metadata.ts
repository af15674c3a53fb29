import { StytchError } from '../errors'
import { logEvent } from '../log'

/**
 * A user's trusted_metadata and untrusted_metadata: JSON objects stored as text. Each is capped at
 * MAX_METADATA_BYTES (serialised, UTF-8), checked on the request and again on the merged result,
 * which D1 computes inside the update itself (src/db/users.ts) so concurrent updates cannot lose keys.
 */
export const MAX_METADATA_BYTES = 4_096

/** A stored metadata column as an object; an unreadable value is logged and read as empty. */
export function parseMetadata(json: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(json)
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>
  } catch {
    // Only src/db/users.ts writes the columns, always from a JSON object.
  }
  logEvent('error', 'user_metadata_unreadable')
  return {}
}

/** A metadata object from a request as the JSON text bound to D1; over the cap is metadata_too_large. */
export function metadataJson(value: Record<string, unknown> | undefined): string | null {
  if (value === undefined) return null
  const json = JSON.stringify(value)
  if (new TextEncoder().encode(json).byteLength > MAX_METADATA_BYTES) throw new StytchError('metadata_too_large')
  return json
}
