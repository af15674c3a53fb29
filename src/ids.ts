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
  (Object.keys(ID_PREFIXES) as IdKind[]).map((kind) => [kind, new RegExp(`^${ID_PREFIXES[kind]}-(test|live)-${UUID}$`)]),
)

export function newId(kind: IdKind, env: ProjectEnv): string {
  return `${ID_PREFIXES[kind]}-${env}-${crypto.randomUUID()}`
}

/** The environment encoded in a well-formed id of `kind`, or null when the id is malformed. */
export function parseId(kind: IdKind, id: string): ProjectEnv | null {
  const m = patterns.get(kind)?.exec(id)
  return m ? (m[1] as ProjectEnv) : null
}
