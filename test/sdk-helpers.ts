import { expect } from 'vitest'
import { type CallOptions, callJson, issueCode, LENIENT_LIMITS, newProject, type TestProject } from './helpers'

/**
 * Calling /sdk/v1 as Stytch's frontend SDK does (@stytch/vanilla-js NetworkClient): HTTP Basic
 * public_token:(session_token or public_token), a JSON content type on every call, the page's
 * origin, the SDK's telemetry headers.
 */

export type SdkProject = TestProject & { publicToken: string }

/** The page origin the tests call from unless they say otherwise (a test project authorizes it). */
export const PAGE_ORIGIN = 'http://localhost:3000'

/** A fresh project (lenient limits unless `settings` say otherwise) with a public token. */
export const sdkProject = (settings: Record<string, unknown> = {}, projectEnv: 'test' | 'live' = 'test') =>
  newProject(projectEnv, { ...LENIENT_LIMITS, ...settings })

export interface SdkCall {
  /** The logged-in user's session token (the Basic password), if any. */
  session?: string
  origin?: string | null
  headers?: Record<string, string>
  body?: unknown
  env?: Env
}

/** The headers the SDK sends. */
export function sdkHeaders(p: { publicToken: string }, options: SdkCall = {}): Record<string, string> {
  const headers: Record<string, string> = {
    authorization: `Basic ${btoa(`${p.publicToken}:${options.session ?? p.publicToken}`)}`,
    'content-type': 'application/json',
    'x-sdk-client': btoa(JSON.stringify({ sdk: { identifier: 'Stytch.js Javascript SDK' } })),
    ...options.headers,
  }
  const origin = options.origin === undefined ? PAGE_ORIGIN : options.origin
  if (origin !== null) {
    headers.origin = origin
    headers['x-sdk-parent-host'] = origin
  }
  return headers
}

export function sdkCall(method: string, path: string, p: { publicToken: string }, options: SdkCall = {}) {
  const init: CallOptions = { project: null, headers: sdkHeaders(p, options) }
  if (options.body !== undefined) init.body = options.body
  if (options.env) init.env = options.env
  return callJson(method, `/sdk/v1${path}`, init)
}

/** The `data` of a 200 reply (failing the test with the reply otherwise). */
export function dataOf(res: { status: number; body: Record<string, unknown> }): Record<string, unknown> {
  expect(res.status, JSON.stringify(res.body)).toBe(200)
  expect(Object.keys(res.body)).toEqual(['data'])
  return res.body.data as Record<string, unknown>
}

/** Sends a code through an SDK OTP route (login_or_create unless `path` says) and returns it with its method_id. */
export async function sdkLoginCode(
  p: SdkProject,
  phoneNumber: string,
  options: SdkCall & {
    path?: 'login_or_create' | 'send/primary' | 'send/secondary'
    channel?: 'whatsapp' | 'sms'
  } = {},
) {
  const route = `/sdk/v1/otps/${options.channel ?? 'whatsapp'}/${options.path ?? 'login_or_create'}` as const
  return issueCode(
    p,
    { phone_number: phoneNumber, ...(options.body as object) },
    { path: route, headers: sdkHeaders(p, options) },
  )
}

/** A full SDK login: login_or_create, then otps/authenticate with the code; the session and tokens. */
export async function sdkLogin(p: SdkProject, phoneNumber: string, minutes = 60) {
  const { code, phoneId } = await sdkLoginCode(p, phoneNumber)
  const res = await sdkCall('POST', '/otps/authenticate', p, {
    body: { token: code, method_id: phoneId, session_duration_minutes: minutes },
  })
  const data = dataOf(res)
  return {
    phoneId,
    userId: String(data.user_id),
    token: String(data.session_token),
    jwt: String(data.session_jwt),
    data,
    headers: res.headers,
  }
}
