import * as z from 'zod'
import { isExternalId, parseId } from './ids'
import { REFUSED_FIELD } from './middleware/validate'

/**
 * Request and response schemas of every route: the one source for validation and for the OpenAPI
 * document. Optional fields accept `null` as "absent" (several Stytch SDKs send nulls for unset fields).
 */

export const LOCALES = ['en', 'es', 'fr', 'pt-br'] as const
export type Locale = (typeof LOCALES)[number]

const optional = <T extends z.ZodType>(schema: T) => schema.nullish().transform((v) => v ?? undefined)

/**
 * A field this route does not accept: any value but null is refused, as 400 bad_request with
 * `reason` (REFUSED_FIELD marks the issue, so a field that has an error type of its own elsewhere,
 * such as user_id, is not reported as malformed).
 */
const refused = (reason: string) =>
  optional(z.unknown().refine(() => false, { message: reason, params: { [REFUSED_FIELD]: true } }))

export const Attributes = z
  .object({
    ip_address: optional(z.union([z.ipv4(), z.ipv6()])),
    user_agent: optional(z.string().max(1_024)),
  })
  .describe('Provided attributes to help with fraud detection.')

export type AttributesInput = z.infer<typeof Attributes>

const PhoneNumber = z
  .string()
  .max(32)
  .describe('E.164 phone number, e.g. +12025550123. +10000000000 is the sandbox number in test projects.')

const ExpirationMinutes = z.number().int().min(1).max(10).describe('Code lifetime in minutes, 1-10, default 2.')

const Locale = z.enum(LOCALES).describe('Message language, default en.')

export const LoginOrCreateRequest = z.object({
  phone_number: PhoneNumber,
  expiration_minutes: optional(ExpirationMinutes).transform((v) => v ?? 2),
  attributes: optional(Attributes),
  create_user_as_pending: optional(z.boolean()).transform((v) => v ?? false),
  locale: optional(Locale).transform((v) => v ?? 'en'),
})
export type LoginOrCreateInput = z.infer<typeof LoginOrCreateRequest>

const EnableAutofill = optional(z.boolean())
  .transform((v) => v ?? false)
  .describe(
    'SMS only: end the message with the line "@<sms_autofill_domain> #<code>" (the origin-bound one-time-code ' +
      "format browsers and iOS fill in on that domain only). Needs the project's sms_autofill_domain.",
  )

/** POST /v1/otps/sms/login_or_create: login_or_create's fields, plus enable_autofill. */
export const SmsLoginOrCreateRequest = LoginOrCreateRequest.extend({ enable_autofill: EnableAutofill })
export type SmsLoginOrCreateInput = z.infer<typeof SmsLoginOrCreateRequest>

export const LoginOrCreateResponse = z.object({
  request_id: z.string(),
  user_id: z.string(),
  phone_id: z.string(),
  user_created: z.boolean(),
  status_code: z.literal(200),
})

export const ErrorResponse = z.object({
  status_code: z.number().int(),
  request_id: z.string(),
  error_type: z.string(),
  error_message: z.string(),
  error_url: z.string(),
  error_details: z.record(z.string(), z.unknown()).optional(),
})

/** GET /health. */
export const HealthResponse = z.object({
  request_id: z.string(),
  status: z.literal('ok'),
  status_code: z.literal(200),
})

/** A bare acknowledgement (the WhatsApp status webhook). */
export const AckResponse = z.object({ request_id: z.string(), status_code: z.literal(200) })

/** A user's external id: letters, digits, `.`, `_`, `-`, `|`; at most 128; never shaped like our ids. */
export const ExternalId = z
  .string()
  .max(128)
  .refine(isExternalId, 'expected an external id: 1-128 of A-Z a-z 0-9 . _ - |, not shaped like a user-test-… id')
  .describe('Your own id for the user (1-128 of A-Z a-z 0-9 . _ - |), unique in the project.')

/** Where a user is named: its user id, or the external id set for it. */
export const UserId = z
  .string()
  .max(128)
  .refine(
    (id) => parseId('user', id) !== null || isExternalId(id),
    'expected a user id such as user-test-<uuid>, or an external id',
  )
  .describe('The user id (`user-test-…` / `user-live-…`); an external_id set for the user is accepted too.')

const PhoneId = z
  .string()
  .max(100)
  .refine((id) => parseId('phone', id) !== null, 'expected a phone id such as phone-number-test-<uuid>')
  .describe('The phone id (`phone-number-test-…` / `phone-number-live-…`).')

/** Session tokens are 44 base64url characters; anything else cannot name a session. */
export const SessionToken = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[A-Za-z0-9_-]+$/, 'expected a session token')
  .describe('An opaque session token returned when the session was started.')

export const SessionJwt = z
  .string()
  .max(16_384)
  .regex(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, 'expected a compact JWT')
  .describe('A session JWT; an expired one is accepted while its signature and its session are valid.')

export const SessionDurationMinutes = z
  .number()
  .int()
  .min(5)
  .max(527_040)
  .describe('Set the session to expire this many minutes from now (5-527040, i.e. up to 366 days).')

export const SessionCustomClaims = z
  .record(z.string(), z.unknown())
  .describe(
    'Claims added to the session and its JWTs (top level). A null value deletes a claim. Reserved claims ' +
      '(iss, sub, aud, exp, nbf, iat, jti, https://stytch.com/...) are ignored; at most 4 KB in all.',
  )

const Timestamp = z.string().describe('RFC 3339 UTC, e.g. 2021-12-29T12:33:09Z.')

export const AuthenticationFactor = z.object({
  type: z.literal('otp'),
  delivery_method: z.enum(['whatsapp', 'sms']).describe('How the code reached the user: sms when an SMS carried it.'),
  last_authenticated_at: Timestamp,
  created_at: Timestamp,
  updated_at: Timestamp,
  phone_number_factor: z.object({ phone_id: z.string(), phone_number: z.string() }),
})
export type StytchAuthenticationFactor = z.infer<typeof AuthenticationFactor>

/** Stytch's Session object (api_session_v1_Session). */
export const Session = z.object({
  session_id: z.string(),
  user_id: z.string(),
  started_at: Timestamp,
  last_accessed_at: Timestamp,
  expires_at: Timestamp,
  attributes: z.object({ ip_address: z.string(), user_agent: z.string() }),
  authentication_factors: z.array(AuthenticationFactor),
  custom_claims: z.record(z.string(), z.unknown()),
  roles: z.array(z.string()),
})
export type StytchSession = z.infer<typeof Session>

export const SendRequest = z.object({
  phone_number: PhoneNumber,
  expiration_minutes: optional(ExpirationMinutes).transform((v) => v ?? 2),
  attributes: optional(Attributes),
  locale: optional(Locale).transform((v) => v ?? 'en'),
  user_id: optional(UserId).describe(
    'Attach the number, unverified, to this user (kept if verified within 5 minutes).',
  ),
  session_token: optional(SessionToken),
  session_jwt: optional(SessionJwt),
})
export type SendInput = z.infer<typeof SendRequest>

/** POST /v1/otps/sms/send: send's fields, plus enable_autofill. */
export const SmsSendRequest = SendRequest.extend({ enable_autofill: EnableAutofill })
export type SmsSendInput = z.infer<typeof SmsSendRequest>

export const SendResponse = z.object({
  request_id: z.string(),
  user_id: z.string(),
  phone_id: z.string(),
  status_code: z.literal(200),
})

export const AuthenticateOptions = z
  .object({
    ip_match_required: optional(z.boolean()).transform((v) => v ?? false),
    user_agent_match_required: optional(z.boolean()).transform((v) => v ?? false),
  })
  .describe('Require the IP address / user agent of this request to equal those given when the code was sent.')

export const AuthenticateRequest = z.object({
  method_id: PhoneId.describe('The phone_id returned by login_or_create or send.'),
  code: z
    .string()
    .regex(/^[0-9]{6}$/, 'expected 6 digits')
    .describe('The 6-digit code. 000000 authenticates the sandbox number in test projects.'),
  attributes: optional(Attributes),
  options: optional(AuthenticateOptions),
  session_token: optional(SessionToken).describe('Add the OTP factor to this live session instead.'),
  session_jwt: optional(SessionJwt).describe('Add the OTP factor to this live session instead.'),
  session_duration_minutes: optional(SessionDurationMinutes).describe(
    'Start a session lasting this many minutes (5-527040), or set a presented session to expire then.',
  ),
  session_custom_claims: optional(SessionCustomClaims),
  telemetry_id: optional(z.string().max(1_024)).describe('Accepted and ignored (no device fingerprinting).'),
})
export type AuthenticateInput = z.infer<typeof AuthenticateRequest>

const none = (what: string) => z.array(z.unknown()).max(0).describe(`Always empty: this service has no ${what}.`)

/** A user's status: pending until its first code is authenticated (create_user_as_pending), else active. */
export const UserStatus = z.enum(['active', 'pending'])
export type UserStatus = z.infer<typeof UserStatus>

export const UserPhoneNumber = z.object({ phone_id: z.string(), phone_number: z.string(), verified: z.boolean() })

/** Stytch's User object (api_user_v1_User): every always-present array, empty where there is no such factor. */
export const User = z.object({
  user_id: z.string(),
  emails: none('emails'),
  status: UserStatus,
  phone_numbers: z.array(UserPhoneNumber),
  webauthn_registrations: none('WebAuthn'),
  providers: none('OAuth providers'),
  totps: none('TOTPs'),
  crypto_wallets: none('crypto wallets'),
  biometric_registrations: none('biometrics'),
  is_locked: z.boolean(),
  roles: z.array(z.string()),
  name: z.object({ first_name: z.string(), middle_name: z.string(), last_name: z.string() }),
  created_at: z.string().describe('RFC 3339 UTC, e.g. 2021-12-29T12:33:09Z.'),
  trusted_metadata: z.record(z.string(), z.unknown()),
  untrusted_metadata: z.record(z.string(), z.unknown()),
  external_id: z.string().optional().describe('Only when one is set.'),
  lock_created_at: z.string().optional().describe('Only while the user is locked.'),
  lock_expires_at: z.string().optional().describe('Only while the user is locked.'),
})
export type StytchUser = z.infer<typeof User>

export const AuthenticateResponse = z.object({
  request_id: z.string(),
  status_code: z.literal(200),
  user_id: z.string(),
  method_id: z.string(),
  user: User,
  reset_sessions: z.literal(false),
  session_token: z
    .string()
    .describe("The session's token (also when it was presented by its JWT), or '' without a session."),
  session_jwt: z.string().describe("A fresh JWT for the session, or '' when there is none."),
  session: Session.nullable().describe('Null unless a session was started or presented.'),
})

export const UserIdParam = z.object({ user_id: UserId })
export const PhoneIdParam = z.object({ phone_id: PhoneId })

export const GetUserResponse = User.extend({ request_id: z.string(), status_code: z.literal(200) })

export const DeleteUserResponse = z.object({ request_id: z.string(), user_id: z.string(), status_code: z.literal(200) })

export const DeletePhoneNumberResponse = z.object({
  request_id: z.string(),
  user_id: z.string(),
  user: User,
  status_code: z.literal(200),
})

const NamePart = optional(z.string().max(256))
export const UserName = z
  .object({ first_name: NamePart, middle_name: NamePart, last_name: NamePart })
  .describe('Name parts; a part left out is unchanged on update (empty on create).')

/**
 * How deep a metadata object may nest, the object itself being level 1. D1 merges metadata with
 * SQLite's JSON functions, which refuse JSON nested past 1,000 levels; no application needs more than a
 * few, so the cap is far below that and a deep document is a clear 400, never a database error.
 */
export const MAX_METADATA_DEPTH = 32

/** Whether `value` nests at most `levels` levels of arrays and objects (a scalar is level 0). */
function nestsWithin(value: unknown, levels: number): boolean {
  if (value === null || typeof value !== 'object') return true
  if (levels === 0) return false
  return Object.values(value).every((member) => nestsWithin(member, levels - 1))
}

const Metadata = (which: 'trusted' | 'untrusted') =>
  z
    .record(z.string(), z.unknown())
    .refine((value) => nestsWithin(value, MAX_METADATA_DEPTH), `nested more than ${MAX_METADATA_DEPTH} levels deep`)
    .describe(
      which === 'trusted'
        ? `Application data about the user for your backend (at most 4 KB of JSON, nested at most ${MAX_METADATA_DEPTH} levels). On update it is merged ` +
            'as a JSON Merge Patch: keys given replace, null removes a key.'
        : `Application data the user may edit, not to be trusted (at most 4 KB of JSON nested at most ${MAX_METADATA_DEPTH} levels; merged on update as ` +
            'trusted_metadata is).',
    )

// No RBAC: only "no roles" is accepted, so a caller assigning roles is told rather than ignored.
const NoRoles = optional(z.array(z.string()).max(0, 'roles are not supported (no RBAC)')).describe(
  'Not supported: only an empty list or null is accepted.',
)

export const CreateUserRequest = z.object({
  phone_number: PhoneNumber.describe('E.164 number for WhatsApp codes; required (this service has no email).'),
  email: refused('email is not supported: this service has phone numbers only'),
  name: optional(UserName),
  attributes: optional(Attributes),
  create_user_as_pending: optional(z.boolean()).transform((v) => v ?? false),
  trusted_metadata: optional(Metadata('trusted')),
  untrusted_metadata: optional(Metadata('untrusted')),
  external_id: optional(ExternalId),
  roles: NoRoles,
})
export type CreateUserInput = z.infer<typeof CreateUserRequest>

export const CreateUserResponse = z.object({
  request_id: z.string(),
  user_id: z.string(),
  email_id: z.literal('').describe('Always empty: this service has no emails.'),
  status: UserStatus,
  phone_id: z.string(),
  user: User,
  status_code: z.literal(200),
})

export const UpdateUserRequest = z.object({
  name: optional(UserName),
  attributes: optional(Attributes),
  trusted_metadata: optional(Metadata('trusted')),
  untrusted_metadata: optional(Metadata('untrusted')),
  external_id: optional(ExternalId).describe('Set or change the external id (remove it with DELETE …/external_id).'),
  roles: NoRoles,
})
export type UpdateUserInput = z.infer<typeof UpdateUserRequest>

export const UpdateUserResponse = z.object({
  request_id: z.string(),
  user_id: z.string(),
  emails: none('emails'),
  phone_numbers: z.array(UserPhoneNumber),
  crypto_wallets: none('crypto wallets'),
  user: User,
  status_code: z.literal(200),
})

export const ExchangePrimaryFactorRequest = z.object({
  email_address: optional(z.string().max(320)).describe('Not supported: this service has no emails.'),
  phone_number: optional(PhoneNumber).describe('The new number; replaces the user’s only one, unverified.'),
})
export type ExchangePrimaryFactorInput = z.infer<typeof ExchangePrimaryFactorRequest>

/** The reply of the user-changing routes that return only the user (exchange, delete external id). */
export const UserChangeResponse = z.object({
  request_id: z.string(),
  user_id: z.string(),
  user: User,
  status_code: z.literal(200),
})

/** The largest page users.search returns, and the default (Stytch's bounds). */
export const SEARCH_MAX_LIMIT = 1_000
export const SEARCH_DEFAULT_LIMIT = 100
const MAX_FILTER_VALUES = 100

const Values = <T extends z.ZodType>(item: T) => z.array(item).min(1).max(MAX_FILTER_VALUES)
const RfcTime = z.iso.datetime({ offset: true }).describe('RFC 3339, e.g. 2021-12-29T12:33:09Z.')

export const SearchOperand = z.discriminatedUnion('filter_name', [
  z.object({ filter_name: z.literal('user_id'), filter_value: Values(UserId) }),
  z.object({ filter_name: z.literal('phone_number'), filter_value: Values(PhoneNumber) }),
  z.object({ filter_name: z.literal('phone_id'), filter_value: Values(PhoneId) }),
  z.object({ filter_name: z.literal('phone_verified'), filter_value: z.boolean() }),
  z.object({ filter_name: z.literal('status'), filter_value: UserStatus }),
  z.object({ filter_name: z.literal('created_at_greater_than'), filter_value: RfcTime }),
  z.object({ filter_name: z.literal('created_at_less_than'), filter_value: RfcTime }),
  z.object({
    filter_name: z.literal('created_at_between'),
    filter_value: z.object({ greater_than: RfcTime, less_than: RfcTime }),
  }),
])
export type SearchOperandInput = z.infer<typeof SearchOperand>

export const SearchUsersRequest = z.object({
  cursor: optional(z.string().max(512)).describe('next_cursor of the previous page.'),
  limit: optional(z.number().int().min(1).max(SEARCH_MAX_LIMIT))
    .transform((v) => v ?? SEARCH_DEFAULT_LIMIT)
    .describe('Users per page, 1-1000, default 100.'),
  query: optional(
    z.object({
      operator: z.enum(['AND', 'OR']),
      operands: z.array(SearchOperand).max(20).describe('No operands: every user.'),
    }),
  ).describe('No query: every user of the project.'),
})
export type SearchUsersInput = z.infer<typeof SearchUsersRequest>

export const SearchUsersResponse = z.object({
  request_id: z.string(),
  results: z.array(User),
  results_metadata: z.object({
    next_cursor: z.string().nullable().describe('Pass as cursor for the next page; null on the last page.'),
    total: z
      .number()
      .int()
      .describe(
        "How many users match the query in all, as counted on the query's first page; -1 when more than 10,000 do.",
      ),
  }),
  status_code: z.literal(200),
})

// Sessions API (Stytch's /v1/sessions/*).

const SessionId = z
  .string()
  .max(100)
  .refine((id) => parseId('session', id) !== null, 'expected a session id such as session-test-<uuid>')

// RBAC is not implemented: a caller asking for an authorization check must not get a silent "yes".
const AuthorizationCheck = refused('authorization checks (RBAC) are not supported').describe(
  'Not supported: any value other than null is rejected.',
)

export const SessionsAuthenticateRequest = z.object({
  session_token: optional(SessionToken),
  session_jwt: optional(SessionJwt),
  session_duration_minutes: optional(SessionDurationMinutes),
  session_custom_claims: optional(SessionCustomClaims),
  authorization_check: AuthorizationCheck,
})
export type SessionsAuthenticateInput = z.infer<typeof SessionsAuthenticateRequest>

export const SessionsRevokeRequest = z.object({
  session_id: optional(SessionId),
  session_token: optional(SessionToken),
  session_jwt: optional(SessionJwt),
})
export type SessionsRevokeInput = z.infer<typeof SessionsRevokeRequest>

export const SessionsGetQuery = z.object({ user_id: UserId })

export const SessionsAuthenticateResponse = z.object({
  request_id: z.string(),
  session: Session,
  session_token: z
    .string()
    .describe(
      "The session's token, also when the session was named by a JWT ('' only for a session started before tokens were kept sealed).",
    ),
  session_jwt: z.string().describe('A fresh JWT (five minutes, never past the session).'),
  user: User,
  status_code: z.literal(200),
})

export const SessionsGetResponse = z.object({
  request_id: z.string(),
  sessions: z.array(Session),
  status_code: z.literal(200),
})

export const SessionsRevokeResponse = z.object({ request_id: z.string(), status_code: z.literal(200) })

// Documentation only: the JWKS handler reads its path parameter itself (any project id, no credentials).
export const JwksParams = z.object({
  project_id: z.string().describe('The project whose public signing keys to list.'),
})

export const Jwk = z.object({
  kty: z.literal('RSA'),
  use: z.literal('sig'),
  key_ops: z.tuple([z.literal('verify')]),
  alg: z.literal('RS256'),
  kid: z.string(),
  n: z.string(),
  e: z.string(),
})

export const JwksResponse = z.object({ keys: z.array(Jwk), request_id: z.string(), status_code: z.literal(200) })

// Meta's WhatsApp webhook. Documentation only: both handlers read their input themselves (the
// handshake answers 403 to anything else; a notification is checked against its signature first).

export const WebhookVerifyQuery = z.object({
  'hub.mode': z.literal('subscribe'),
  'hub.verify_token': z.string().describe('WHATSAPP_VERIFY_TOKEN, as configured in the Meta app.'),
  'hub.challenge': z.string().describe('Echoed back as the plain-text body.'),
})

export const MetaNotification = z
  .record(z.string(), z.unknown())
  .describe(
    "Meta's webhook notification, signed with the app secret (X-Hub-Signature-256: sha256=<hex HMAC of the raw body>).",
  )

// Twilio's SMS status callback. Documentation only: the handler checks X-Twilio-Signature over the
// URL and the form parameters before it reads them.
export const TwilioStatusCallback = z
  .object({
    MessageSid: z.string().describe('The SMS (SM…) the status is about.'),
    MessageStatus: z.string().describe('queued, sent, delivered, undelivered, failed, …'),
    ErrorCode: z.string().optional().describe("Twilio's error code when undelivered or failed."),
  })
  .describe(
    "Twilio's status callback (application/x-www-form-urlencoded), signed with the account's auth token (X-Twilio-Signature).",
  )

// Service routes.

export const OpenApiResponse = z.record(z.string(), z.unknown()).describe('This OpenAPI 3.1 document.')

// Local development: the console provider's outbox.

/** The outbox filter (query string). */
export const OutboxQuery = z.object({
  // In a query string an unencoded '+' arrives as a space, so `?phone_number=+1202…` as typed works.
  phone_number: z
    .string()
    .max(32)
    .transform((v) => v.trim().replace(/^(?=[0-9])/, '+'))
    .pipe(z.string().regex(/^\+[1-9][0-9]{1,14}$/))
    .optional(),
  limit: z.coerce.number().int().min(1).max(100).default(50),
})

/** What the outbox lists: each message as a console provider "sent" it. */
export const OutboxResponse = z.object({
  messages: z.array(
    z.object({
      id: z.string().describe('The delivery id.'),
      channel: z.enum(['whatsapp', 'sms']).describe('The channel the message went out on.'),
      phone_number: z.string(),
      code: z.string(),
      locale: z.string(),
      text: z.string().describe('The message as WhatsApp or the SMS would show it.'),
      created_at: z.string().describe('RFC 3339 UTC.'),
    }),
  ),
})

// The frontend SDK API (/sdk/v1), called from web pages by Stytch's @stytch/vanilla-js, @stytch/react
// and @stytch/nextjs. A page is less trusted than a backend: the fields a backend may set about the
// end user or the session (attributes, pending users, custom claims, a session named in the body)
// are refused here, and every 2xx reply is wrapped as { "data": … }, as the SDK reads it.

/** A 2xx reply of /sdk/v1: the SDK reads `(await resp.json()).data`. */
export const SdkReply = <T extends z.ZodType>(data: T) => z.object({ data })

const SdkCommon = { request_id: z.string(), status_code: z.literal(200) }

/** What the SDK adds to each OTP call: accepted and ignored (no device fingerprinting, no CAPTCHA here). */
const SdkTelemetry = {
  dfp_telemetry_id: optional(z.string().max(1_024)).describe('Accepted and ignored (no device fingerprinting).'),
  captcha_token: optional(z.string().max(4_096)).describe('Accepted and ignored (no CAPTCHA).'),
}

const FromRequest = refused(
  'attributes cannot be set from the browser: the IP address and user agent are read from the request itself',
).describe("Refused: the end user's IP address (CF-Connecting-IP) and user agent (User-Agent) come from the request.")
const SessionFromCredentials = (field: string) =>
  refused(`${field} cannot be sent in the body: the session is the Basic password (or the HttpOnly cookie)`).describe(
    'Refused: the session is the one in the Basic password (or the HttpOnly cookie).',
  )

export const SdkLoginOrCreateRequest = z.object({
  phone_number: PhoneNumber,
  expiration_minutes: optional(ExpirationMinutes).transform((v) => v ?? 2),
  locale: optional(Locale).transform((v) => v ?? 'en'),
  create_user_as_pending: optional(z.boolean())
    .refine((v) => v !== true, 'create_user_as_pending cannot be set from the browser')
    .describe('Refused when true: only a backend may create pending users.'),
  attributes: FromRequest,
  ...SdkTelemetry,
})

export const SdkSendRequest = z.object({
  phone_number: PhoneNumber,
  expiration_minutes: optional(ExpirationMinutes).transform((v) => v ?? 2),
  locale: optional(Locale).transform((v) => v ?? 'en'),
  attributes: FromRequest,
  user_id: refused('user_id cannot be sent from the browser: the logged-in user is the session’s').describe(
    'Refused: send/secondary adds the number to the logged-in user.',
  ),
  session_token: SessionFromCredentials('session_token'),
  session_jwt: SessionFromCredentials('session_jwt'),
  ...SdkTelemetry,
})

/** The SMS routes of the SDK: the same fields, plus enable_autofill (the SDK's OTPCodeSMSOptions). */
export const SdkSmsLoginOrCreateRequest = SdkLoginOrCreateRequest.extend({ enable_autofill: EnableAutofill })
export const SdkSmsSendRequest = SdkSendRequest.extend({ enable_autofill: EnableAutofill })

/** login_or_create and send: the phone_id as method_id, and no user_id, so the reply tells no account apart. */
export const SdkOtpSendResponse = SdkReply(
  z.object({ ...SdkCommon, method_id: z.string().describe('The phone_id: pass it to otps.authenticate.') }),
)

const SdkSessionDuration = optional(SessionDurationMinutes).describe(
  "Session lifetime in minutes (5 to the project's sdk_max_session_minutes). Without it authenticate starts " +
    'a 30-minute session (or extends nothing of a session already logged in).',
)

const NoCustomClaims = refused('session_custom_claims can only be set by a backend').describe(
  'Refused: custom claims can only be set by a backend.',
)

export const SdkAuthenticateRequest = z.object({
  token: z
    .string()
    .regex(/^[0-9]{6}$/, 'expected 6 digits')
    .describe('The 6-digit code (the SDK sends it as token).'),
  method_id: PhoneId.describe('The method_id returned by login_or_create or send.'),
  session_duration_minutes: SdkSessionDuration,
  attributes: FromRequest,
  options: refused('options (attribute matching) cannot be set from the browser').describe(
    'Refused: attribute matching is for backends, which pass the end user’s attributes.',
  ),
  session_token: SessionFromCredentials('session_token'),
  session_jwt: SessionFromCredentials('session_jwt'),
  session_custom_claims: NoCustomClaims,
  ...SdkTelemetry,
})

/** The session fields of an SDK reply; in HttpOnly mode the tokens are cookies and absent here. */
const SdkSessionTokens = {
  session_token: z.string().optional().describe('Absent in HttpOnly mode (the stytch_session cookie holds it).'),
  session_jwt: z.string().optional().describe('Absent in HttpOnly mode (the stytch_session_jwt cookie holds it).'),
}

export const SdkAuthenticateResponse = SdkReply(
  z.object({
    ...SdkCommon,
    method_id: z.string(),
    user_id: z.string(),
    user: User,
    session: Session,
    reset_sessions: z.literal(false),
    ...SdkSessionTokens,
  }),
)

export const SdkSessionsAuthenticateRequest = z.object({
  session_duration_minutes: optional(SessionDurationMinutes).describe(
    "Extend the session to expire this many minutes from now (5 to the project's sdk_max_session_minutes).",
  ),
  session_token: SessionFromCredentials('session_token'),
  session_jwt: SessionFromCredentials('session_jwt'),
  session_custom_claims: NoCustomClaims,
  authorization_check: AuthorizationCheck,
})

export const SdkSessionsAuthenticateResponse = SdkReply(
  z.object({ ...SdkCommon, user_id: z.string(), user: User, session: Session, ...SdkSessionTokens }),
)

export const SdkAckResponse = SdkReply(z.object(SdkCommon))

export const SdkGetUserResponse = SdkReply(User.extend(SdkCommon))

/** The SDK reads the changed user from `__user` (and strips it before returning the reply). */
export const SdkDeletePhoneNumberResponse = SdkReply(z.object({ ...SdkCommon, user_id: z.string(), __user: User }))

export const SdkBootstrapParams = z.object({
  public_token: z.string().max(100).describe('The public token the client was created with.'),
})

/** The project settings the SDK reads at start-up (BootstrapDataManager): everything it needs off. */
export const SdkBootstrapResponse = SdkReply(
  z.object({
    ...SdkCommon,
    project_name: z.string(),
    vertical: z.literal('CONSUMER'),
    disable_sdk_watermark: z.literal(true),
    captcha_settings: z.object({ enabled: z.literal(false) }),
    cname_domain: z.null(),
    email_domains: z.array(z.string()).max(0),
    pkce_required_for_email_magic_links: z.literal(false),
    pkce_required_for_password_resets: z.literal(false),
    pkce_required_for_oauth: z.literal(false),
    pkce_required_for_sso: z.literal(false),
    slug_pattern: z.null(),
    create_organization_enabled: z.literal(false),
    password_config: z.null(),
    dfp_protected_auth_enabled: z.literal(false),
    dfp_protected_auth_mode: z.null(),
    rbac_policy: z
      .object({ roles: z.array(z.never()), resources: z.array(z.never()), scopes: z.array(z.never()) })
      .describe('An empty policy: no RBAC, so no role has a permission (null would make the SDK log an error).'),
    siwe_required_for_crypto_wallets: z.literal(false),
  }),
)

/** The SDK's telemetry batch: documentation only, the route never reads it. */
export const SdkEventsRequest = z
  .array(z.unknown())
  .describe('A batch of { telemetry, event } objects, sent without credentials; not read, not stored.')

// The phone-number frame (clientside-services), parsing numbers for the prebuilt UI's phone field.

export const ParsePhoneNumberRequest = z.object({
  phoneNumber: z.string().max(64).describe('What the person typed so far, or an E.164 number.'),
  regionCode: optional(z.string().regex(/^[A-Z]{2}$/)).describe('The country picked beside the field (ISO 3166-1).'),
})

export const ParsePhoneNumberResponse = z.object({
  isValid: z.boolean().describe('A complete, valid number (libphonenumber, full metadata).'),
  number: z.string().describe('E.164 when the number parses; else what was typed.'),
  national: z.string().describe('A valid number in national format; else what was typed.'),
})

export const ExamplePhoneNumberQuery = z.object({
  regionCode: z
    .string()
    .regex(/^[A-Z]{2}$/)
    .describe('ISO 3166-1 alpha-2 country.'),
})

export const ExamplePhoneNumberResponse = z.object({
  phoneNumber: z
    .string()
    .optional()
    .describe('An example mobile number in national format; absent for an unknown country.'),
})
