import type { Bindings, Config } from './config'

/**
 * The service's API over the Service Binding, with plain fetch. The URL's host is never resolved (a
 * Service Binding goes straight to the bound Worker); it only has to be a valid absolute URL.
 */
const SERVICE_ORIGIN = 'https://whatsapp-otp.internal'

/** A Stytch-shaped error reply, or `service_unreachable` when the call itself failed. */
export class ApiError extends Error {
  constructor(
    readonly errorType: string,
    readonly status: number,
    readonly requestId: string | undefined,
    message: string,
  ) {
    super(message)
    this.name = 'ApiError'
  }
}

export interface Attributes {
  ip_address?: string
  user_agent?: string
}

export interface LoginOrCreateReply {
  user_id: string
  phone_id: string
  user_created: boolean
}

export interface SessionReply {
  session_jwt: string
  session_token: string
}

export interface LiveSessionReply extends SessionReply {
  session: { session_id: string; expires_at: string; authentication_factors: SessionFactor[] }
  user: UserReply
}

export interface SessionFactor {
  delivery_method: string
  last_authenticated_at: string
  phone_number_factor?: { phone_number: string }
}

export interface UserReply {
  user_id: string
  status: 'active' | 'pending'
  phone_numbers: { phone_id: string; phone_number: string; verified: boolean }[]
}

export interface AuthApi {
  loginOrCreate(input: { phone_number: string; locale: string; attributes: Attributes }): Promise<LoginOrCreateReply>
  authenticate(input: { method_id: string; code: string; attributes: Attributes }): Promise<SessionReply>
  /** sessions/authenticate: the live session and its user, with a fresh JWT (also for an expired one). */
  authenticateSession(sessionJwt: string): Promise<LiveSessionReply>
  revokeSession(sessionId: string): Promise<void>
  jwks(): Promise<{ keys: JsonWebKey[] }>
}

export function authApi(env: Bindings, cfg: Config): AuthApi {
  const authorization = `Basic ${btoa(`${cfg.projectId}:${cfg.secret}`)}`
  async function call<T>(method: 'GET' | 'POST', path: string, body?: unknown, auth = true): Promise<T> {
    const headers: Record<string, string> = {}
    if (auth) headers.authorization = authorization
    if (body !== undefined) headers['content-type'] = 'application/json'
    let res: Response
    try {
      res = await env.AUTH.fetch(`${SERVICE_ORIGIN}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      })
    } catch (err) {
      throw new ApiError('service_unreachable', 502, undefined, err instanceof Error ? err.message : String(err))
    }
    const json = (await res.json().catch(() => null)) as Record<string, unknown> | null
    if (!res.ok || json === null) {
      const errorType = typeof json?.error_type === 'string' ? json.error_type : 'service_unreachable'
      const requestId = typeof json?.request_id === 'string' ? json.request_id : undefined
      const message = typeof json?.error_message === 'string' ? json.error_message : `HTTP ${res.status}`
      throw new ApiError(errorType, res.status, requestId, message)
    }
    return json as T
  }

  return {
    loginOrCreate: (input) => call('POST', '/v1/otps/whatsapp/login_or_create', input),
    authenticate: (input) =>
      call('POST', '/v1/otps/authenticate', { ...input, session_duration_minutes: cfg.sessionDurationMinutes }),
    authenticateSession: (sessionJwt) => call('POST', '/v1/sessions/authenticate', { session_jwt: sessionJwt }),
    revokeSession: async (sessionId) => {
      await call('POST', '/v1/sessions/revoke', { session_id: sessionId })
    },
    jwks: () => call('GET', `/v1/sessions/jwks/${encodeURIComponent(cfg.projectId)}`, undefined, false),
  }
}
