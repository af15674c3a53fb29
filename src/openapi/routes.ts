import type * as z from 'zod'
import type { ErrorType } from '../errors'
import {
  AckResponse,
  AuthenticateRequest,
  AuthenticateResponse,
  CreateUserRequest,
  CreateUserResponse,
  DeletePhoneNumberResponse,
  DeleteUserResponse,
  ExchangePrimaryFactorRequest,
  GetUserResponse,
  HealthResponse,
  JwksParams,
  JwksResponse,
  LoginOrCreateRequest,
  LoginOrCreateResponse,
  MetaNotification,
  OpenApiResponse,
  OutboxQuery,
  OutboxResponse,
  PhoneIdParam,
  SearchUsersRequest,
  SearchUsersResponse,
  SendRequest,
  SendResponse,
  SessionsAuthenticateRequest,
  SessionsAuthenticateResponse,
  SessionsGetQuery,
  SessionsGetResponse,
  SessionsRevokeRequest,
  SessionsRevokeResponse,
  UpdateUserRequest,
  UpdateUserResponse,
  UserChangeResponse,
  UserIdParam,
  WebhookVerifyQuery,
} from '../schemas'

/**
 * The route registry: every route the app serves, with the very zod schemas its validators use.
 * The OpenAPI document (./document.ts) is generated from it, and test/openapi*.test.ts check it
 * against `app.routes` and against real replies, so a route added without an entry fails the tests.
 */

export interface RouteDoc {
  method: 'get' | 'post' | 'put' | 'delete'
  /** The path as Hono registers it (`/v1/users/:user_id`). */
  path: string
  operationId: string
  summary: string
  description?: string
  tag: 'OTP' | 'Users' | 'Sessions' | 'Webhooks' | 'Service' | 'Development'
  /** `project`: HTTP Basic project_id:secret (401 unauthorized_credentials otherwise). */
  auth: 'project' | 'none'
  params?: z.ZodObject
  query?: z.ZodObject
  /** A JSON body read by jsonBody() (415/413/400 before validation). */
  body?: z.ZodType
  /**
   * False when the handler reads its input itself: the schemas above then only describe it, and
   * no validation errors are derived from them.
   */
  validated?: false
  response: z.ZodType | { text: string }
  /** What the handler itself can answer besides validation, auth and 500. */
  errors: readonly ErrorType[]
}

const OTP_SEND_ERRORS = ['invalid_phone_number', 'invalid_phone_number_country_code', 'too_many_requests'] as const

export const ROUTES: readonly RouteDoc[] = [
  {
    method: 'post',
    path: '/v1/otps/whatsapp/login_or_create',
    operationId: 'otpsWhatsappLoginOrCreate',
    summary: 'Send a WhatsApp code, creating the user if no user has the number',
    tag: 'OTP',
    auth: 'project',
    body: LoginOrCreateRequest,
    response: LoginOrCreateResponse,
    errors: OTP_SEND_ERRORS,
  },
  {
    method: 'post',
    path: '/v1/otps/whatsapp/send',
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
  {
    method: 'post',
    path: '/v1/otps/authenticate',
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
  {
    method: 'post',
    path: '/v1/users',
    operationId: 'usersCreate',
    summary: 'Create a user with a phone number, name, metadata and external id',
    description:
      'A number whose only claim is an unverified attachment by /send is released and given to the new user.',
    tag: 'Users',
    auth: 'project',
    body: CreateUserRequest,
    response: CreateUserResponse,
    errors: [
      'invalid_phone_number',
      'invalid_phone_number_country_code',
      'duplicate_phone_number',
      'duplicate_user_external_id',
      'metadata_too_large',
      'too_many_requests',
    ],
  },
  {
    method: 'post',
    path: '/v1/users/search',
    operationId: 'usersSearch',
    summary: 'Search users by phone number, phone id, user id, verification, status or creation time',
    description:
      'Filters combine with AND or OR; pages of 1-1000 users (default 100), oldest first, continued with next_cursor.',
    tag: 'Users',
    auth: 'project',
    body: SearchUsersRequest,
    response: SearchUsersResponse,
    errors: [],
  },
  {
    method: 'get',
    path: '/v1/users/:user_id',
    operationId: 'usersGet',
    summary: 'Read a user',
    tag: 'Users',
    auth: 'project',
    params: UserIdParam,
    response: GetUserResponse,
    errors: ['user_not_found'],
  },
  {
    method: 'put',
    path: '/v1/users/:user_id',
    operationId: 'usersUpdate',
    summary: "Update a user's name, metadata (merged) or external id",
    tag: 'Users',
    auth: 'project',
    params: UserIdParam,
    body: UpdateUserRequest,
    response: UpdateUserResponse,
    errors: ['user_not_found', 'duplicate_user_external_id', 'metadata_too_large'],
  },
  {
    method: 'put',
    path: '/v1/users/:user_id/exchange_primary_factor',
    operationId: 'usersExchangePrimaryFactor',
    summary: "Replace a user's only phone number by another (unverified, with a new phone_id)",
    tag: 'Users',
    auth: 'project',
    params: UserIdParam,
    body: ExchangePrimaryFactorRequest,
    response: UserChangeResponse,
    errors: [
      'user_not_found',
      'invalid_phone_number',
      'invalid_phone_number_country_code',
      'invalid_exchange_primary_factor_fields',
      'invalid_exchange_primary_factor_user',
      'duplicate_phone_number',
    ],
  },
  {
    method: 'delete',
    path: '/v1/users/:user_id/external_id',
    operationId: 'usersDeleteExternalId',
    summary: "Remove a user's external id",
    tag: 'Users',
    auth: 'project',
    params: UserIdParam,
    response: UserChangeResponse,
    errors: ['user_not_found'],
  },
  {
    method: 'delete',
    path: '/v1/users/:user_id',
    operationId: 'usersDelete',
    summary: 'Delete a user, its phone numbers, codes and sessions',
    tag: 'Users',
    auth: 'project',
    params: UserIdParam,
    response: DeleteUserResponse,
    errors: ['user_not_found'],
  },
  {
    method: 'delete',
    path: '/v1/users/phone_numbers/:phone_id',
    operationId: 'usersDeletePhoneNumber',
    summary: 'Remove a phone number from its user',
    tag: 'Users',
    auth: 'project',
    params: PhoneIdParam,
    response: DeletePhoneNumberResponse,
    errors: ['phone_number_not_found'],
  },
  {
    method: 'get',
    path: '/v1/sessions',
    operationId: 'sessionsGet',
    summary: "List a user's live sessions",
    tag: 'Sessions',
    auth: 'project',
    query: SessionsGetQuery,
    response: SessionsGetResponse,
    errors: ['user_not_found'],
  },
  {
    method: 'post',
    path: '/v1/sessions/authenticate',
    operationId: 'sessionsAuthenticate',
    summary: 'Check a session token or JWT; optionally extend it or change its claims',
    tag: 'Sessions',
    auth: 'project',
    body: SessionsAuthenticateRequest,
    response: SessionsAuthenticateResponse,
    errors: ['session_not_found', 'no_session_arguments', 'too_many_session_arguments', 'custom_claims_too_large'],
  },
  {
    method: 'post',
    path: '/v1/sessions/revoke',
    operationId: 'sessionsRevoke',
    summary: 'Revoke a session by id, token or JWT',
    tag: 'Sessions',
    auth: 'project',
    body: SessionsRevokeRequest,
    response: SessionsRevokeResponse,
    errors: ['session_not_found', 'no_session_revoke_arguments', 'too_many_session_revoke_arguments'],
  },
  {
    method: 'get',
    path: '/v1/sessions/jwks/:project_id',
    operationId: 'sessionsGetJwks',
    summary: "The project's public keys for verifying session JWTs (no credentials needed)",
    tag: 'Sessions',
    auth: 'none',
    params: JwksParams,
    validated: false,
    response: JwksResponse,
    errors: [],
  },
  {
    method: 'get',
    path: '/v1/webhooks/whatsapp',
    operationId: 'webhooksWhatsappVerify',
    summary: "Meta's webhook subscription handshake",
    description: 'The one reply that is not JSON: Meta requires hub.challenge echoed back as the plain body.',
    tag: 'Webhooks',
    auth: 'none',
    query: WebhookVerifyQuery,
    validated: false,
    response: { text: 'The hub.challenge value.' },
    errors: ['forbidden', 'service_unavailable'],
  },
  {
    method: 'post',
    path: '/v1/webhooks/whatsapp',
    operationId: 'webhooksWhatsappNotify',
    summary: "Meta's delivery status notifications (authenticated by the payload signature)",
    tag: 'Webhooks',
    auth: 'none',
    body: MetaNotification,
    validated: false,
    response: AckResponse,
    errors: ['invalid_webhook_signature', 'bad_request', 'request_too_large', 'service_unavailable'],
  },
  {
    method: 'get',
    path: '/health',
    operationId: 'health',
    summary: 'Liveness; touches no storage',
    tag: 'Service',
    auth: 'none',
    response: HealthResponse,
    errors: [],
  },
  {
    method: 'get',
    path: '/openapi.json',
    operationId: 'openapi',
    summary: 'This document',
    tag: 'Service',
    auth: 'none',
    response: OpenApiResponse,
    errors: [],
  },
  {
    method: 'get',
    path: '/dev/whatsapp/outbox',
    operationId: 'devWhatsappOutbox',
    summary: 'Local development only: the codes the console provider "sent" for a test project, newest first',
    description:
      'Exists only while WHATSAPP_PROVIDER is "console" (never the deployed default) and only for requests ' +
      'addressed to a loopback host (localhost, 127.0.0.0/8, ::1); otherwise 404 route_not_found. Needs the ' +
      "credentials of a test project (a live project's are refused with 403) and lists only its messages.",
    tag: 'Development',
    auth: 'project',
    query: OutboxQuery,
    response: OutboxResponse,
    errors: ['route_not_found', 'forbidden'],
  },
]
