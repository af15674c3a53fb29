/**
 * Stytch-style identifiers: `<prefix>-<test|live>-<uuid v4>`. The infix is the project's environment.
 */
export type ProjectEnv = 'test' | 'live'

export const ID_PREFIXES = {
  user: 'user',
  phone: 'phone-number',
  request: 'request-id',
  session: 'session',
  project: 'project',
  /** A session JWT signing key's kid, as in Stytch's JWKS. */
  signingKey: 'jwk',
} as const

export type IdKind = keyof typeof ID_PREFIXES

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}'
const patterns = new Map<IdKind, RegExp>(
  (Object.keys(ID_PREFIXES) as IdKind[]).map((kind) => [
    kind,
    new RegExp(`^${ID_PREFIXES[kind]}-(test|live)-${UUID}$`),
  ]),
)

export function newId(kind: IdKind, env: ProjectEnv): string {
  return `${ID_PREFIXES[kind]}-${env}-${crypto.randomUUID()}`
}

/** The environment encoded in a well-formed id of `kind`, or null when the id is malformed. */
export function parseId(kind: IdKind, id: string): ProjectEnv | null {
  const m = patterns.get(kind)?.exec(id)
  return m ? (m[1] as ProjectEnv) : null
}

/** Stytch's external id alphabet: letters, digits, `.`, `_`, `-` and `|`, at most 128 characters. */
const EXTERNAL_ID = /^[A-Za-z0-9._|-]{1,128}$/
// Anything shaped like one of our ids (`user-test-…`, `phone-number-live-…`) is never an external id,
// so a value given where a user_id is accepted names exactly one kind of id.
const SERVICE_ID = /^[a-z]+(-[a-z]+)*-(test|live)-/

/** True for a well-formed external id (the caller's own id for a user). */
export function isExternalId(value: string): boolean {
  return EXTERNAL_ID.test(value) && !SERVICE_ID.test(value)
}
