import type { z } from 'zod'
import { authenticateCode } from '../otp/authenticate'
import { loginOrCreate } from '../otp/login-or-create'
import { sendCode } from '../otp/send'
import {
  AuthenticateRequest,
  AuthenticateResponse,
  LoginOrCreateRequest,
  LoginOrCreateResponse,
  SendRequest,
  SendResponse,
  SmsLoginOrCreateRequest,
  SmsSendRequest,
} from '../schemas'
import { RouteGroup } from './group'

/**
 * The OTP API: send a code by WhatsApp or SMS (creating the user, or to a user's number) and check
 * it. Both channels share one implementation, the channel being its parameter: one user, one phone
 * (one phone_id) and one code model whatever the channel, and /authenticate takes either's code.
 */
export const otpRoutes = new RouteGroup('/v1/otps')

const OTP_SEND_ERRORS = ['invalid_phone_number', 'invalid_phone_number_country_code', 'too_many_requests'] as const
const SEND_ERRORS = [
  'phone_number_not_found',
  'user_not_found',
  'duplicate_phone_number',
  'session_not_found',
  'too_many_session_arguments',
  'user_id_mismatch',
] as const

/**
 * What differs between the channels' routes: their names, the request schemas (SMS adds
 * enable_autofill), and SMS's own errors: 503 on a deployment without an SMS provider, 400 for
 * enable_autofill without the project's domain.
 */
const CHANNEL_ROUTES = [
  {
    channel: 'whatsapp',
    code: 'a WhatsApp code',
    id: 'Whatsapp',
    loginOrCreate: LoginOrCreateRequest,
    send: SendRequest,
    errors: [],
    description: undefined,
  },
  {
    channel: 'sms',
    code: 'an SMS code',
    id: 'Sms',
    loginOrCreate: SmsLoginOrCreateRequest,
    send: SmsSendRequest,
    errors: ['service_unavailable', 'bad_request'],
    description:
      'The same user, phone and code as the WhatsApp route, delivered by SMS; the SMS allowlists and limits ' +
      '(sms_allowed_countries, sms_allowed_line_types, the per-country SMS cap and pumping breaker) apply.',
  },
] as const

for (const route of CHANNEL_ROUTES) {
  const { channel } = route
  otpRoutes.add(
    {
      method: 'post',
      path: `/${channel}/login_or_create`,
      operationId: `otps${route.id}LoginOrCreate`,
      summary: `Send ${route.code}, creating the user if no user has the number`,
      ...(route.description ? { description: route.description } : {}),
      tag: 'OTP',
      auth: 'project',
      body: route.loginOrCreate,
      response: LoginOrCreateResponse,
      errors: [...OTP_SEND_ERRORS, ...route.errors],
    },
    async (c) => {
      const result = await loginOrCreate(c.env, c.var.project, c.req.valid('json'), channel)
      return c.json({ request_id: c.var.requestId, ...result, status_code: 200 as const })
    },
  )

  otpRoutes.add(
    {
      method: 'post',
      path: `/${channel}/send`,
      operationId: `otps${route.id}Send`,
      summary: `Send ${route.code} to an existing user's number, or attach a new number to user_id`,
      tag: 'OTP',
      auth: 'project',
      body: route.send,
      response: SendResponse,
      errors: [...OTP_SEND_ERRORS, ...SEND_ERRORS, ...route.errors],
    },
    async (c) => {
      const result = await sendCode(c.env, c.var.project, c.req.valid('json'), channel)
      return c.json({ request_id: c.var.requestId, ...result, status_code: 200 } satisfies z.infer<typeof SendResponse>)
    },
  )
}

otpRoutes.add(
  {
    method: 'post',
    path: '/authenticate',
    operationId: 'otpsAuthenticate',
    summary: 'Check a code; optionally start a session',
    description:
      'On success the phone is verified. When it is a pending exchange (exchange_primary_factor), the exchange ' +
      "completes in the same transaction: the number it replaces is removed and the user's other sessions are " +
      'revoked (all but the session this request starts or extends).',
    tag: 'OTP',
    auth: 'project',
    body: AuthenticateRequest,
    response: AuthenticateResponse,
    errors: [
      'otp_code_not_found',
      'unable_to_auth_otp_code',
      'attribute_mismatch',
      'phone_number_not_found',
      'user_lock_limit_reached',
      'too_many_requests',
      'session_not_found',
      'too_many_session_arguments',
      'custom_claims_too_large',
      'user_id_mismatch',
    ],
  },
  async (c) => {
    const result = await authenticateCode(c.env, c.var.project, c.var.requestId, c.req.valid('json'))
    return c.json({
      request_id: c.var.requestId,
      status_code: 200,
      ...result,
      reset_sessions: false,
    } satisfies z.infer<typeof AuthenticateResponse>)
  },
)
