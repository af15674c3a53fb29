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
  ...OTP_SEND_ERRORS,
  'phone_number_not_found',
  'user_not_found',
  'duplicate_phone_number',
  'session_not_found',
  'too_many_session_arguments',
  'user_id_mismatch',
] as const
// SMS: a deployment without an SMS provider answers 503; enable_autofill without the project's domain is 400.
const SMS_ERRORS = ['service_unavailable', 'bad_request'] as const

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
    errors: SEND_ERRORS,
  },
  async (c) => {
    const result = await sendCode(c.env, c.var.project, c.req.valid('json'))
    return c.json({ request_id: c.var.requestId, ...result, status_code: 200 } satisfies z.infer<typeof SendResponse>)
  },
)

otpRoutes.add(
  {
    method: 'post',
    path: '/sms/login_or_create',
    operationId: 'otpsSmsLoginOrCreate',
    summary: 'Send an SMS code, creating the user if no user has the number',
    description:
      'The same user, phone and code as the WhatsApp route, delivered by SMS; the SMS allowlists and limits ' +
      '(sms_allowed_countries, sms_allowed_line_types, the per-country SMS cap and pumping breaker) apply.',
    tag: 'OTP',
    auth: 'project',
    body: SmsLoginOrCreateRequest,
    response: LoginOrCreateResponse,
    errors: [...OTP_SEND_ERRORS, ...SMS_ERRORS],
  },
  async (c) => {
    const result = await loginOrCreate(c.env, c.var.project, c.req.valid('json'), 'sms')
    return c.json({ request_id: c.var.requestId, ...result, status_code: 200 as const })
  },
)

otpRoutes.add(
  {
    method: 'post',
    path: '/sms/send',
    operationId: 'otpsSmsSend',
    summary: "Send an SMS code to an existing user's number, or attach a new number to user_id",
    tag: 'OTP',
    auth: 'project',
    body: SmsSendRequest,
    response: SendResponse,
    errors: [...SEND_ERRORS, ...SMS_ERRORS],
  },
  async (c) => {
    const result = await sendCode(c.env, c.var.project, c.req.valid('json'), 'sms')
    return c.json({ request_id: c.var.requestId, ...result, status_code: 200 } satisfies z.infer<typeof SendResponse>)
  },
)

otpRoutes.add(
  {
    method: 'post',
    path: '/authenticate',
    operationId: 'otpsAuthenticate',
    summary: 'Check a code; optionally start a session',
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
