/**
 * Local verification of the service's session JWTs (RS256) against its JWKS, the check an app runs on
 * every request instead of calling the API: signature by `kid`, issuer `stytch.com/<project_id>`,
 * audience `<project_id>`, and the time window.
 */

export interface SessionClaims {
  userId: string
  sessionId: string
  expiresAt: string
}

export type JwtVerdict =
  | { kind: 'valid'; claims: SessionClaims }
  /** Signed by the service but past `exp`: the session may still live; ask the API for a fresh JWT. */
  | { kind: 'expired'; sessionId: string | undefined }
  | { kind: 'invalid' }

const SESSION_CLAIM = 'https://stytch.com/session'
const KEYS_TTL_MS = 10 * 60_000
/** An unknown kid refetches the JWKS (keys rotate), but not more often than this. */
const REFETCH_GAP_MS = 30_000
const CLOCK_SKEW_S = 30

interface KeySet {
  keys: Map<string, CryptoKey>
  fetchedAt: number
}

/** JWKS per project, kept per isolate. */
const keySets = new Map<string, KeySet>()

async function loadKeys(projectId: string, fetchJwks: () => Promise<{ keys: JsonWebKey[] }>): Promise<KeySet> {
  const { keys } = await fetchJwks()
  const imported = new Map<string, CryptoKey>()
  for (const jwk of keys) {
    const kid = (jwk as JsonWebKey & { kid?: string }).kid
    if (jwk.kty !== 'RSA' || jwk.alg !== 'RS256' || !kid) continue
    const { n, e } = jwk
    imported.set(
      kid,
      await crypto.subtle.importKey(
        'jwk',
        { kty: 'RSA', n, e, alg: 'RS256', ext: true },
        { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
        false,
        ['verify'],
      ),
    )
  }
  const set = { keys: imported, fetchedAt: Date.now() }
  keySets.set(projectId, set)
  return set
}

async function keyFor(
  projectId: string,
  kid: string,
  fetchJwks: () => Promise<{ keys: JsonWebKey[] }>,
): Promise<CryptoKey | undefined> {
  let set = keySets.get(projectId)
  if (!set || Date.now() - set.fetchedAt > KEYS_TTL_MS) set = await loadKeys(projectId, fetchJwks)
  const key = set.keys.get(kid)
  if (key || Date.now() - set.fetchedAt < REFETCH_GAP_MS) return key
  return (await loadKeys(projectId, fetchJwks)).keys.get(kid)
}

function decodePart(part: string): Record<string, unknown> | null {
  try {
    const json: unknown = JSON.parse(new TextDecoder().decode(base64UrlBytes(part)))
    return json && typeof json === 'object' && !Array.isArray(json) ? (json as Record<string, unknown>) : null
  } catch {
    return null
  }
}

function base64UrlBytes(text: string): Uint8Array {
  const b64 = text.replace(/-/g, '+').replace(/_/g, '/')
  const binary = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4))
  return Uint8Array.from(binary, (ch) => ch.charCodeAt(0))
}

export async function verifySessionJwt(
  token: string,
  projectId: string,
  fetchJwks: () => Promise<{ keys: JsonWebKey[] }>,
  nowMs = Date.now(),
): Promise<JwtVerdict> {
  const parts = token.split('.')
  if (parts.length !== 3 || !parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p))) return { kind: 'invalid' }
  const [header64 = '', payload64 = '', signature64 = ''] = parts
  const header = decodePart(header64)
  const payload = decodePart(payload64)
  if (!header || !payload || header.alg !== 'RS256' || typeof header.kid !== 'string') return { kind: 'invalid' }
  const key = await keyFor(projectId, header.kid, fetchJwks)
  if (!key) return { kind: 'invalid' }
  const signed = await crypto.subtle.verify(
    'RSASSA-PKCS1-v1_5',
    key,
    base64UrlBytes(signature64),
    new TextEncoder().encode(`${header64}.${payload64}`),
  )
  if (!signed) return { kind: 'invalid' }
  const audience = Array.isArray(payload.aud) ? payload.aud : [payload.aud]
  if (payload.iss !== `stytch.com/${projectId}` || !audience.includes(projectId)) return { kind: 'invalid' }
  const now = Math.floor(nowMs / 1000)
  if (typeof payload.nbf === 'number' && payload.nbf > now + CLOCK_SKEW_S) return { kind: 'invalid' }
  if (typeof payload.exp !== 'number') return { kind: 'invalid' }
  const session = payload[SESSION_CLAIM] as Record<string, unknown> | undefined
  if (payload.exp <= now)
    return { kind: 'expired', sessionId: typeof session?.id === 'string' ? session.id : undefined }
  if (typeof payload.sub !== 'string' || !session || typeof session.id !== 'string') return { kind: 'invalid' }
  return {
    kind: 'valid',
    claims: {
      userId: payload.sub,
      sessionId: session.id,
      expiresAt: String(session.expires_at),
    },
  }
}
