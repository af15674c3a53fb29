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
} from '../schemas'
import { RouteGroup } from './group'

/** The OTP API: send a WhatsApp code (creating the user, or to a user's number) and check it. */
export const otpRoutes = new RouteGroup('/v1/otps')

const OTP_SEND_ERRORS = ['invalid_phone_number', 'invalid_phone_number_country_code', 'too_many_requests'] as const

otpRoutes.add(
  {
    method: 'post',
    path: '/whatsapp/login_or_create',
    operationId: 'otpsWhatsappLoginOrCreate',
    summary: 'Send a WhatsApp code, creating the user if no user has the number',
    tag: 'OTP',
    auth: 'project',
    body: LoginOrCreateRequest,
    response: LoginOrCreateResponse,
    errors: OTP_SEND_ERRORS,
  },
  async (c) => {
    const result = await loginOrCreate(c.env, c.var.project, c.req.valid('json'))
    return c.json({ request_id: c.var.requestId, ...result, status_code: 200 as const })
  },
)

otpRoutes.add(
  {
    method: 'post',
    path: '/whatsapp/send',
    operationId: 'otpsWhatsappSend',
    summary: "Send a WhatsApp code to an existing user's number, or attach a new number to user_id",
    tag: 'OTP',
    auth: 'project',
    body: SendRequest,
    response: SendResponse,
    errors: [
      ...OTP_SEND_ERRORS,
      'phone_number_not_found',
      'user_not_found',
      'duplicate_phone_number',
      'session_not_found',
      'too_many_session_arguments',
      'user_id_mismatch',
    ],
  },
  async (c) => {
    const result = await sendCode(c.env, c.var.project, c.req.valid('json'))
    return c.json({ request_id: c.var.requestId, ...result, status_code: 200 } satisfies z.infer<typeof SendResponse>)
  },
)

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
