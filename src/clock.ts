/**
 * The service's only source of time. Everything that compares or stores a time calls `now()` and
 * passes the value into SQL, so tests can move the clock (vi.setSystemTime) without sleeping.
 */
export function now(): number {
  return Date.now()
}

/** RFC 3339 UTC without milliseconds, as Stytch formats timestamps (`2021-12-29T12:33:09Z`). */
export function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')
}
