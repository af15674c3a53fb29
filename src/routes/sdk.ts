import type { Context } from 'hono'
import type { z } from 'zod'
import { now } from '../clock'
import type { AppEnv } from '../env'
import { StytchError } from '../errors'
import { authenticateCode } from '../otp/authenticate'
import { loginOrCreate } from '../otp/login-or-create'
import { sendCode } from '../otp/send'
import {
  PhoneIdParam,
  SdkAckResponse,
  SdkAuthenticateRequest,
  SdkAuthenticateResponse,
  SdkBootstrapParams,
  SdkBootstrapResponse,
  SdkDeletePhoneNumberResponse,
  SdkEventsRequest,
  SdkGetUserResponse,
  SdkLoginOrCreateRequest,
  SdkOtpSendResponse,
  SdkSendRequest,
  SdkSessionsAuthenticateRequest,
  SdkSessionsAuthenticateResponse,
  SdkSmsLoginOrCreateRequest,
  SdkSmsSendRequest,
} from '../schemas'
import { requestOrigin } from '../sdk/access'
import { requestAttributes, sdkSessionMinutes } from '../sdk/browser'
import { clearSessionCookies, setSessionCookies } from '../sdk/session-cookies'
import type { SessionCredential } from '../sessions/credentials'
import { authenticateSession, revokeSession, sessionUserId } from '../sessions/service'
import { deletePhoneNumber, getUser } from '../users/service'
import { RouteGroup } from './group'

/**
 * /sdk/v1: the API Stytch's frontend SDKs call from web pages (`${baseURL}/sdk/v1${path}`). Every
 * route is a thin mapping onto the same domain functions /v1 uses, called with what a browser may
 * ask: attributes read from the request, no pending users, no custom claims, a capped session, the
 * session taken from the credentials. Replies are wrapped as { "data": … }; errors are the flat
 * Stytch error JSON. src/app.ts puts the CORS and public-token middleware in front of the group
 * (src/middleware/sdk.ts); any path not declared here is 401 endpoint_not_authorized_for_sdk.
 */
export const sdkRoutes = new RouteGroup('/sdk/v1')

type Ctx = Context<AppEnv>

/** The logged-in user's session, which the route needs (401 unauthorized_credentials without one). */
function loggedIn(c: Ctx): SessionCredential {
  const session = c.var.sdkSession
  if (!session) {
    throw new StytchError('unauthorized_credentials', {
      message: "This call needs a logged-in user: the Basic password must be the user's session token.",
    })
  }
  return session
}

/** A credential as the /v1 request fields that carry one. */
const sessionFields = (session: SessionCredential | null) => ({
  session_token: session && 'token' in session ? session.token : undefined,
  session_jwt: session && 'jwt' in session ? session.jwt : undefined,
})

/**
 * The session tokens of an authenticate reply: in the body, or in HttpOnly mode as the service's own
 * cookies and left out of the body (the SDK then keeps the session in its state and sends no token).
 */
function deliverTokens(c: Ctx, tokens: { session_token: string; session_jwt: string; expiresAt: string }) {
  if (!c.var.project.settings.sdk_http_only_cookies) {
    return { session_token: tokens.session_token, session_jwt: tokens.session_jwt }
  }
  setSessionCookies(c, tokens)
  return {}
}

/** In HttpOnly mode, a session that is gone also takes its cookies with it. */
async function clearingDeadSession<T>(c: Ctx, run: () => Promise<T>): Promise<T> {
  try {
    return await run()
  } catch (err) {
    const dead = err instanceof StytchError && err.errorType === 'session_not_found'
    if (dead && c.var.project.settings.sdk_http_only_cookies) clearSessionCookies(c)
    throw err
  }
}

const common = (c: Ctx) => ({ request_id: c.var.requestId, status_code: 200 as const })

sdkRoutes.add(
  {
    method: 'get',
    path: '/projects/bootstrap/:public_token',
    operationId: 'sdkProjectsBootstrap',
    summary: 'The project settings the SDK reads at start-up (CAPTCHA, PKCE, RBAC, watermark and fingerprinting off)',
    tag: 'Frontend SDK',
    auth: 'public_token',
    params: SdkBootstrapParams,
    response: SdkBootstrapResponse,
    errors: [],
  },
  (c) => {
    const { project } = c.var
    if (c.req.valid('param').public_token !== project.publicToken) throw new StytchError('unauthorized_credentials')
    return c.json({
      data: {
        ...common(c),
        project_name: project.name,
        vertical: 'CONSUMER',
        disable_sdk_watermark: true,
        captcha_settings: { enabled: false },
        cname_domain: null,
        email_domains: [],
        pkce_required_for_email_magic_links: false,
        pkce_required_for_password_resets: false,
        pkce_required_for_oauth: false,
        pkce_required_for_sso: false,
        slug_pattern: null,
        create_organization_enabled: false,
        password_config: null,
        dfp_protected_auth_enabled: false,
        dfp_protected_auth_mode: null,
        rbac_policy: { roles: [], resources: [], scopes: [] },
        siwe_required_for_crypto_wallets: false,
      },
    } satisfies z.infer<typeof SdkBootstrapResponse>)
  },
)

const OTP_SEND_ERRORS = ['invalid_phone_number', 'invalid_phone_number_country_code', 'too_many_requests'] as const

/**
 * The OTP channels the SDK routes serve, each by the functions its /v1 routes run: the SDK's
 * `otps.<channel>.loginOrCreate` and `otps.<channel>.send` call the same paths under
 * `/otps/<channel>/`, so another channel is one more entry here.
 */
const OTP_CHANNELS = [
  {
    channel: 'whatsapp',
    code: 'a WhatsApp code',
    id: 'WhatsApp',
    loginOrCreateBody: SdkLoginOrCreateRequest,
    sendBody: SdkSendRequest,
    errors: [],
  },
  {
    channel: 'sms',
    code: 'an SMS code',
    id: 'Sms',
    loginOrCreateBody: SdkSmsLoginOrCreateRequest,
    sendBody: SdkSmsSendRequest,
    // 503 on a deployment without an SMS provider; 400 for enable_autofill without the project's domain.
    errors: ['service_unavailable', 'bad_request'],
  },
] as const

for (const otp of OTP_CHANNELS) {
  const { channel } = otp
  sdkRoutes.add(
    {
      method: 'post',
      path: `/otps/${channel}/login_or_create`,
      operationId: `sdkOtps${otp.id}LoginOrCreate`,
      summary: `Send ${otp.code}, creating the user if no user has the number`,
      description:
        'The reply has the method_id (phone_id) only, never the user_id or whether a user was created, so the ' +
        'route cannot tell which numbers have accounts.',
      tag: 'Frontend SDK',
      auth: 'public_token',
      body: otp.loginOrCreateBody,
      response: SdkOtpSendResponse,
      errors: [...OTP_SEND_ERRORS, ...otp.errors],
    },
    async (c) => {
      const { dfp_telemetry_id: _dfp, captcha_token: _captcha, ...body } = c.req.valid('json')
      const input = { ...body, attributes: requestAttributes(c.req.raw), create_user_as_pending: false }
      const { phone_id } = await loginOrCreate(c.env, c.var.project, input, channel)
      return c.json({ data: { ...common(c), method_id: phone_id } } satisfies z.infer<typeof SdkOtpSendResponse>)
    },
  )

  for (const which of ['primary', 'secondary'] as const) {
    sdkRoutes.add(
      {
        method: 'post',
        path: `/otps/${channel}/send/${which}`,
        operationId: `sdkOtps${otp.id}Send${which === 'primary' ? 'Primary' : 'Secondary'}`,
        summary:
          which === 'primary'
            ? `Send ${otp.code} to a number that belongs to a user (logged out)`
            : `Add a number to the logged-in user and send it ${otp.code}`,
        description:
          which === 'primary'
            ? 'As /v1 send without user_id: a number no user has is 404 phone_number_not_found.'
            : 'As /v1 send with the session: the number is attached to the session’s user, unverified, and ' +
              'kept if its code is authenticated within 5 minutes; a number another user holds is refused.',
        tag: 'Frontend SDK',
        auth: 'public_token',
        body: otp.sendBody,
        response: SdkOtpSendResponse,
        errors: [
          ...OTP_SEND_ERRORS,
          ...otp.errors,
          'phone_number_not_found',
          ...(which === 'secondary' ? (['duplicate_phone_number', 'session_not_found'] as const) : []),
        ],
      },
      async (c) => {
        const { phone_number, expiration_minutes, locale, ...rest } = c.req.valid('json')
        const session = which === 'secondary' ? loggedIn(c) : null
        const input = {
          phone_number,
          expiration_minutes,
          locale,
          attributes: requestAttributes(c.req.raw),
          user_id: undefined,
          ...('enable_autofill' in rest ? { enable_autofill: rest.enable_autofill } : {}),
          ...sessionFields(session),
        }
        const { phone_id } = await sendCode(c.env, c.var.project, input, channel)
        return c.json({ data: { ...common(c), method_id: phone_id } } satisfies z.infer<typeof SdkOtpSendResponse>)
      },
    )
  }
}

sdkRoutes.add(
  {
    method: 'post',
    path: '/otps/authenticate',
    operationId: 'sdkOtpsAuthenticate',
    summary: 'Check a code and start a session (or add the factor to the logged-in session)',
    tag: 'Frontend SDK',
    auth: 'public_token',
    body: SdkAuthenticateRequest,
    response: SdkAuthenticateResponse,
    errors: [
      'otp_code_not_found',
      'unable_to_auth_otp_code',
      'phone_number_not_found',
      'user_lock_limit_reached',
      'too_many_requests',
      'session_not_found',
      'user_id_mismatch',
      'invalid_session_duration',
    ],
  },
  async (c) => {
    const { project } = c.var
    const body = c.req.valid('json')
    const session = c.var.sdkSession
    const result = await clearingDeadSession(c, () =>
      authenticateCode(c.env, project, c.var.requestId, {
        method_id: body.method_id,
        code: body.token,
        attributes: requestAttributes(c.req.raw),
        options: undefined,
        ...sessionFields(session),
        session_duration_minutes: sdkSessionMinutes(project, body.session_duration_minutes, session === null),
        session_custom_claims: undefined,
        telemetry_id: undefined,
      }),
    )
    const started = result.session
    if (!started) throw new Error('an SDK authenticate always has a session')
    const tokens = deliverTokens(c, { ...result, expiresAt: started.expires_at })
    return c.json({
      data: {
        ...common(c),
        method_id: result.method_id,
        user_id: result.user_id,
        user: result.user,
        session: started,
        reset_sessions: false,
        ...tokens,
      },
    } satisfies z.infer<typeof SdkAuthenticateResponse>)
  },
)

sdkRoutes.add(
  {
    method: 'post',
    path: '/sessions/authenticate',
    operationId: 'sdkSessionsAuthenticate',
    summary: 'Check the logged-in session, optionally extend it, and get a fresh JWT',
    tag: 'Frontend SDK',
    auth: 'public_token',
    body: SdkSessionsAuthenticateRequest,
    response: SdkSessionsAuthenticateResponse,
    errors: ['session_not_found', 'invalid_session_duration'],
  },
  async (c) => {
    const { project } = c.var
    const session = loggedIn(c)
    const minutes = sdkSessionMinutes(project, c.req.valid('json').session_duration_minutes, false)
    const result = await clearingDeadSession(c, () =>
      authenticateSession(c.env, project, {
        ...sessionFields(session),
        session_duration_minutes: minutes,
        session_custom_claims: undefined,
        authorization_check: undefined,
      }),
    )
    const tokens = deliverTokens(c, { ...result, expiresAt: result.session.expires_at })
    return c.json({
      data: { ...common(c), user_id: result.user.user_id, user: result.user, session: result.session, ...tokens },
    } satisfies z.infer<typeof SdkSessionsAuthenticateResponse>)
  },
)

sdkRoutes.add(
  {
    method: 'post',
    path: '/sessions/revoke',
    operationId: 'sdkSessionsRevoke',
    summary: 'Log out: revoke the logged-in session (and, in HttpOnly mode, clear its cookies)',
    description: 'The SDK sends no body.',
    tag: 'Frontend SDK',
    auth: 'public_token',
    response: SdkAckResponse,
    errors: ['session_not_found'],
  },
  async (c) => {
    const session = loggedIn(c)
    await clearingDeadSession(c, () =>
      revokeSession(c.env, c.var.project, { session_id: undefined, ...sessionFields(session) }),
    )
    if (c.var.project.settings.sdk_http_only_cookies) clearSessionCookies(c)
    return c.json({ data: common(c) } satisfies z.infer<typeof SdkAckResponse>)
  },
)

sdkRoutes.add(
  {
    method: 'get',
    path: '/users/me',
    operationId: 'sdkUsersMe',
    summary: 'The logged-in user',
    tag: 'Frontend SDK',
    auth: 'public_token',
    response: SdkGetUserResponse,
    errors: ['session_not_found', 'user_not_found'],
  },
  async (c) => {
    const { project } = c.var
    const userId = await clearingDeadSession(c, () => sessionUserId(c.env, project.id, loggedIn(c), now()))
    const user = await getUser(c.env, project, userId)
    return c.json({ data: { ...user, ...common(c) } } satisfies z.infer<typeof SdkGetUserResponse>)
  },
)

sdkRoutes.add(
  {
    method: 'delete',
    path: '/users/phone_numbers/:phone_id',
    operationId: 'sdkUsersDeletePhoneNumber',
    summary: "Remove one of the logged-in user's phone numbers",
    description: "Another user's phone_id is 404 phone_number_not_found, as an unknown one is.",
    tag: 'Frontend SDK',
    auth: 'public_token',
    params: PhoneIdParam,
    response: SdkDeletePhoneNumberResponse,
    errors: ['session_not_found', 'phone_number_not_found'],
  },
  async (c) => {
    const { project } = c.var
    const userId = await clearingDeadSession(c, () => sessionUserId(c.env, project.id, loggedIn(c), now()))
    const user = await deletePhoneNumber(c.env, project, c.req.valid('param').phone_id, userId)
    return c.json({
      data: { ...common(c), user_id: user.user_id, __user: user },
    } satisfies z.infer<typeof SdkDeletePhoneNumberResponse>)
  },
)

sdkRoutes.add(
  {
    method: 'post',
    path: '/events',
    operationId: 'sdkEvents',
    summary: "The SDK's telemetry: accepted and dropped",
    description:
      'Sent without credentials. The body is never read: nothing is stored or logged, so nothing about the ' +
      'person using the page is kept.',
    tag: 'Frontend SDK',
    auth: 'none',
    body: SdkEventsRequest,
    validated: false,
    response: SdkAckResponse,
    errors: [],
  },
  (c) => {
    // No credentials and nothing read: the reply only has to reach the page without a CORS error.
    c.set('sdkOrigin', requestOrigin(c.req.raw) ?? undefined)
    return c.json({ data: common(c) } satisfies z.infer<typeof SdkAckResponse>)
  },
)

// Registered last: a path no route above serves is refused as Stytch refuses an SDK route a project
// cannot use. It is not a route of its own (no method), so the OpenAPI document does not list it.
sdkRoutes.app.all('/*', () => {
  throw new StytchError('endpoint_not_authorized_for_sdk')
})
