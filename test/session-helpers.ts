import { expect } from 'vitest'
import { fromBase64Url } from '../src/crypto'
import { type CallOptions, callJson, type TestProject } from './helpers'
import { authenticate, loginCode } from './otp-helpers'

/** Domain helpers for the sessions tests: log in over the real OTP flow and call the sessions API. */

export interface Login {
  userId: string
  phoneId: string
  token: string
  jwt: string
  session: Record<string, unknown> & { session_id: string; expires_at: string }
  body: Record<string, unknown>
}

/** login_or_create + authenticate with session_duration_minutes (default 60): a fresh session. */
export async function login(p: TestProject, phoneNumber: string, extra: Record<string, unknown> = {}): Promise<Login> {
  const { code, phoneId, userId } = await loginCode(p, phoneNumber)
  const res = await authenticate(p, { method_id: phoneId, code, session_duration_minutes: 60, ...extra })
  expect(res.status, JSON.stringify(res.body)).toBe(200)
  const session = res.body.session as Login['session']
  return {
    userId,
    phoneId,
    token: String(res.body.session_token),
    jwt: String(res.body.session_jwt),
    session,
    body: res.body,
  }
}

export const sessionsAuthenticate = (p: TestProject, body: unknown, options: CallOptions = {}) =>
  callJson('POST', '/v1/sessions/authenticate', { ...options, project: p, body })

export const sessionsRevoke = (p: TestProject, body: unknown, options: CallOptions = {}) =>
  callJson('POST', '/v1/sessions/revoke', { ...options, project: p, body })

export const sessionsList = (p: TestProject, userId: string) =>
  callJson('GET', `/v1/sessions?user_id=${encodeURIComponent(userId)}`, { project: p })

export const jwks = (projectId: string) =>
  callJson<{ keys: (JsonWebKey & { kid: string })[] }>('GET', `/v1/sessions/jwks/${projectId}`, { project: null })

/** The three parts of a compact JWT, decoded without verification. */
export function decodeParts(jwt: string): { header: Record<string, unknown>; payload: Record<string, unknown> } {
  const [header = '', payload = ''] = jwt.split('.')
  const json = (part: string) => JSON.parse(new TextDecoder().decode(fromBase64Url(part))) as Record<string, unknown>
  return { header: json(header), payload: json(payload) }
}

const encodeJson = (value: unknown) =>
  btoa(JSON.stringify(value)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')

/** `jwt` with its payload replaced (the signature no longer matches). */
export function withPayload(jwt: string, change: (payload: Record<string, unknown>) => Record<string, unknown>) {
  const [header, , signature] = jwt.split('.')
  return `${header}.${encodeJson(change(decodeParts(jwt).payload))}.${signature}`
}

/** True when `jwt` verifies against the project's published JWKS (RS256, key chosen by kid). */
export async function verifiesWithJwks(projectId: string, jwt: string): Promise<boolean> {
  const { header } = decodeParts(jwt)
  const key = (await jwks(projectId)).body.keys.find((k) => k.kid === header.kid)
  if (!key) return false
  const rs256 = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }
  const publicKey = await crypto.subtle.importKey('jwk', key, rs256, false, ['verify'])
  const [h, p, s = ''] = jwt.split('.')
  return crypto.subtle.verify(rs256, publicKey, fromBase64Url(s), new TextEncoder().encode(`${h}.${p}`))
}

/** RFC 3339 without milliseconds, as the API formats times. */
export const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')
