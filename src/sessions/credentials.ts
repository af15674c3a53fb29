import { randomToken, sha256, toHex } from '../crypto'
import type { Project } from '../db/projects'
import type { SessionSelector } from '../db/sessions'
import { StytchError } from '../errors'
import type { StytchSession } from '../schemas'
import { decodeJwt, issuerFor, JWT_LIFETIME_MS, SESSION_CLAIM, signJwt, verifySignature } from './jwt'
import { type SigningKey, signingKey, verificationKey } from './keys'

/**
 * The two credentials of a session: the opaque token (looked up by its hash, kept otherwise only
 * sealed: ./sealing.ts) and short-lived JWTs signed with the project's key.
 */

/** A new session token: 33 random bytes, 44 base64url characters (the length of Stytch's). */
export const newSessionToken = () => randomToken(33)

/** What the sessions table looks a token up by. */
export const hashSessionToken = async (token: string) => toHex(await sha256(token))

/** A session credential as a request carries it. */
export type SessionCredential = { token: string } | { jwt: string }

/** Fields of a request that may carry a session credential (absent or null: undefined). */
export interface CredentialFields {
  session_token?: string | undefined
  session_jwt?: string | undefined
}

/** How many of `values` were given. */
export const countGiven = (...values: unknown[]) => values.filter((v) => v !== undefined).length

/**
 * The credential in `fields`, or null when there is none. A request with both is refused as Stytch
 * refuses it (`too_many_session_arguments`).
 */
export function credentialOf(fields: CredentialFields): SessionCredential | null {
  if (countGiven(fields.session_token, fields.session_jwt) > 1) throw new StytchError('too_many_session_arguments')
  if (fields.session_token !== undefined) return { token: fields.session_token }
  if (fields.session_jwt !== undefined) return { jwt: fields.session_jwt }
  return null
}

/**
 * Which session a credential names. A token selects by hash. A JWT selects by its session id and
 * user only if this project signed it (a trusted kid, a valid RS256 signature, our issuer and
 * audience); otherwise the session is not found. An expired JWT still names its session, as with
 * Stytch: whether that session is live is decided by the query, never by the JWT.
 */
export async function sessionSelector(
  env: Env,
  projectId: string,
  credential: SessionCredential,
  at: number,
): Promise<SessionSelector> {
  if ('token' in credential) return { tokenHash: await hashSessionToken(credential.token) }
  const jwt = decodeJwt(credential.jwt)
  if (!jwt) throw new StytchError('invalid_session_jwt')
  const key = await verificationKey(env, projectId, jwt.kid, at)
  if (!key || !(await verifySignature(key, jwt))) throw new StytchError('session_not_found')
  const { iss, aud, sub } = jwt.payload
  const claim = jwt.payload[SESSION_CLAIM]
  const audiences: unknown[] = Array.isArray(aud) ? aud : [aud]
  const sessionId = claim !== null && typeof claim === 'object' && 'id' in claim ? claim.id : undefined
  if (
    iss !== issuerFor(projectId) ||
    !audiences.includes(projectId) ||
    typeof sub !== 'string' ||
    typeof sessionId !== 'string'
  ) {
    throw new StytchError('session_not_found')
  }
  return { sessionId, userId: sub }
}

/** The project's current signing key (see src/sessions/keys.ts). */
export const projectSigningKey = (env: Env, project: Project, at: number): Promise<SigningKey> =>
  signingKey(env, project.id, project.env, at)

/**
 * A fresh JWT for `session`, in the claim layout Stytch's SDKs read: registered claims, the session
 * under "https://stytch.com/session", custom claims at the top level. It lives five minutes, but
 * never past the session's own expiry, so a local verifier cannot accept it for a dead session.
 */
export async function sessionJwt(
  key: SigningKey,
  projectId: string,
  session: StytchSession,
  at: number,
): Promise<string> {
  const iat = Math.floor(at / 1000)
  const exp = Math.min(iat + JWT_LIFETIME_MS / 1000, Math.floor(Date.parse(session.expires_at) / 1000))
  return signJwt(key.privateKey, key.kid, {
    ...session.custom_claims,
    aud: [projectId],
    exp,
    [SESSION_CLAIM]: {
      id: session.session_id,
      started_at: session.started_at,
      last_accessed_at: session.last_accessed_at,
      expires_at: session.expires_at,
      attributes: session.attributes,
      authentication_factors: session.authentication_factors,
      roles: session.roles,
    },
    iat,
    iss: issuerFor(projectId),
    nbf: iat,
    sub: session.user_id,
  })
}
