import { fromBase64Url, toBase64Url } from '../crypto'

/**
 * Compact RS256 JWTs with Web Crypto, in the shape the official Stytch SDKs verify locally
 * (`sessions.authenticateJwtLocal`: jose's jwtVerify with typ "JWT", audience = project id, issuer
 * `stytch.com/<project_id>`, key chosen by kid from /v1/sessions/jwks/<project_id>).
 */

/** Session JWTs live five minutes, whatever the session's own duration (as with Stytch). */
export const JWT_LIFETIME_MS = 5 * 60_000

/** The private claim that carries the session, as Stytch names it. */
export const SESSION_CLAIM = 'https://stytch.com/session'

/** Registered claims a caller's custom claims can never set (Stytch ignores them too). */
export const RESERVED_CLAIMS: ReadonlySet<string> = new Set(['iss', 'sub', 'aud', 'exp', 'nbf', 'iat', 'jti'])

/** Claims in Stytch's own namespace are ours alone (the session claim lives there). */
export const isReservedClaim = (name: string) => RESERVED_CLAIMS.has(name) || name.startsWith('https://stytch.com/')

const SIGNATURE = { name: 'RSASSA-PKCS1-v1_5' } as const
const encoder = new TextEncoder()
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false })

/** `stytch.com/<project_id>`: the issuer the SDK accepts besides its own base URL. */
export const issuerFor = (projectId: string) => `stytch.com/${projectId}`

const encodeJson = (value: unknown) => toBase64Url(encoder.encode(JSON.stringify(value)))

/** Signs `payload` with RS256 under `kid`. */
export async function signJwt(privateKey: CryptoKey, kid: string, payload: Record<string, unknown>): Promise<string> {
  const signingInput = `${encodeJson({ alg: 'RS256', kid, typ: 'JWT' })}.${encodeJson(payload)}`
  const signature = await crypto.subtle.sign(SIGNATURE, privateKey, encoder.encode(signingInput))
  return `${signingInput}.${toBase64Url(new Uint8Array(signature))}`
}

export interface DecodedJwt {
  kid: string
  payload: Record<string, unknown>
  signingInput: string
  signature: Uint8Array
}

const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

/**
 * Splits and parses a compact JWT without trusting it: null unless it is three base64url parts,
 * a JSON header with alg RS256, typ JWT (when present) and a kid, and a JSON object payload.
 */
export function decodeJwt(token: string): DecodedJwt | null {
  if (!JWT_SHAPE.test(token)) return null
  const [header64 = '', payload64 = '', signature64 = ''] = token.split('.')
  const header = parseJsonObject(header64)
  const payload = parseJsonObject(payload64)
  if (!header || !payload) return null
  if (header.alg !== 'RS256' || typeof header.kid !== 'string') return null
  if (header.typ !== undefined && header.typ !== 'JWT') return null
  if ('crit' in header) return null
  let signature: Uint8Array
  try {
    signature = fromBase64Url(signature64)
  } catch {
    return null
  }
  return { kid: header.kid, payload, signingInput: `${header64}.${payload64}`, signature }
}

function parseJsonObject(part: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(utf8.decode(fromBase64Url(part)))
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return null
    return value as Record<string, unknown>
  } catch {
    return null
  }
}

/** True when the RS256 signature of `jwt` verifies under `publicKey`. */
export async function verifySignature(publicKey: CryptoKey, jwt: DecodedJwt): Promise<boolean> {
  return crypto.subtle.verify(SIGNATURE, publicKey, jwt.signature, encoder.encode(jwt.signingInput))
}
