import { StytchError } from '../errors'

/**
 * A user's trusted_metadata and untrusted_metadata: JSON objects stored as text. Each is capped at
 * MAX_METADATA_BYTES (serialised, UTF-8), checked on the request and again on the merged result,
 * which D1 computes inside the update itself (src/db/users.ts) so concurrent updates cannot lose keys.
 */
export const MAX_METADATA_BYTES = 4_096

/** A metadata object from a request as the JSON text bound to D1; over the cap is metadata_too_large. */
export function metadataJson(value: Record<string, unknown> | undefined): string | null {
  if (value === undefined) return null
  const json = JSON.stringify(value)
  if (new TextEncoder().encode(json).byteLength > MAX_METADATA_BYTES) throw new StytchError('metadata_too_large')
  return json
}
