import { parsePhoneNumberFromString } from 'libphonenumber-js/max'
import type { LineType } from './settings'

/** Stytch's sandbox number: valid in test projects only, never delivered to. */
export const SANDBOX_PHONE_NUMBER = '+10000000000'

// E.164: '+', a non-zero country-code digit, at most 15 digits in all. ASCII digits only, so
// look-alike plus signs and non-ASCII digits are rejected before any library sees the input.
const E164 = /^\+[1-9][0-9]{1,14}$/

export interface ParsedPhone {
  /** Canonical E.164, identical to the input. */
  e164: string
  /** ISO 3166-1 alpha-2 region, e.g. "US"; null for the sandbox number. */
  country: string | null
  /** libphonenumber's line type (MOBILE, TOLL_FREE, …); null when unknown or for the sandbox number. */
  type: LineType | null
}

/**
 * Validates a phone number the way the API contract requires: strictly E.164 as written (no
 * spaces, dashes or national formats) and a valid number according to libphonenumber's full
 * metadata. Returns null when either check fails.
 */
export function parsePhone(input: string): ParsedPhone | null {
  if (!E164.test(input)) return null
  const parsed = parsePhoneNumberFromString(input)
  if (!parsed?.isValid() || parsed.number !== input) return null
  return { e164: input, country: parsed.country ?? null, type: parsed.getType() ?? null }
}
