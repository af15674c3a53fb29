import type { ContentfulStatusCode } from 'hono/utils/http-status'

/**
 * The one error catalogue. Every non-2xx reply of the service is built from an entry here, so the
 * wire shape is always Stytch's: `{ status_code, request_id, error_type, error_message, error_url }`.
 * Messages follow Stytch's published error texts where they are known, so SDK users see familiar messages.
 */
export const ERRORS = {
  bad_request: [400, 'The submitted request is invalid.'],
  invalid_phone_number: [400, 'Phone number format is invalid. Ensure the phone number is in the E.164 format.'],
  invalid_phone_number_country_code: [400, "The phone number's country code is invalid, unsupported, or disabled."],
  invalid_expiration_otp: [400, 'expiration_minutes is invalid, should be between 1 and 10 minutes.'],
  invalid_locale: [400, 'locale is invalid.'],
  invalid_ip_address: [400, 'ip_address is invalid.'],
  invalid_user_agent: [400, 'user_agent is invalid.'],
  invalid_method_id: [400, 'method_id format is invalid.'],
  invalid_code: [400, 'Code format is invalid.'],
  invalid_user_id: [400, 'user_id format is invalid.'],
  invalid_phone_id: [400, 'phone_id format is invalid.'],
  invalid_session_duration_minutes: [
    400,
    'session_duration_minutes is invalid, should be between 5 to 527040 minutes.',
  ],
  invalid_session_duration: [
    400,
    'The submitted session duration exceeds the maximum session duration allowed for this project.',
  ],
  invalid_session_token: [400, 'session_token format is invalid.'],
  invalid_session_jwt: [400, 'session_jwt format is invalid.'],
  invalid_session_custom_claims: [400, 'session_custom_claims is invalid.'],
  invalid_session_id: [400, 'session_id format is invalid.'],
  too_many_session_arguments: [400, 'Only one of session_token and session_jwt may be provided.'],
  no_session_arguments: [400, 'One of session_token or session_jwt is required.'],
  too_many_session_revoke_arguments: [400, 'Only one of session_id, session_token and session_jwt may be provided.'],
  no_session_revoke_arguments: [400, 'One of session_id, session_token or session_jwt is required.'],
  custom_claims_too_large: [400, 'Total custom claims size cannot exceed four kilobytes.'],
  user_id_mismatch: [400, 'The session belongs to a different user.'],
  metadata_too_large: [400, 'trusted_metadata and untrusted_metadata may each be at most 4 KB of JSON.'],
  metadata_invalid_format: [
    400,
    'trusted_metadata and untrusted_metadata must be JSON objects nested at most 32 levels deep.',
  ],
  invalid_exchange_primary_factor_fields: [
    400,
    'Exactly one of email_address and phone_number is required; this service exchanges phone numbers only.',
  ],
  invalid_exchange_primary_factor_user: [400, 'The user must have exactly one factor to exchange it.'],
  duplicate_phone_number: [409, 'A user with the specified phone number already exists for this project.'],
  duplicate_user_external_id: [409, 'A user with the specified external_id already exists for this project.'],
  unauthorized_credentials: [401, 'Unauthorized credentials.'],
  endpoint_not_authorized_for_sdk: [401, 'This endpoint is not available to the frontend SDKs.'],
  unable_to_auth_otp_code: [
    401,
    'The passcode could not be authenticated because it was either already used or expired. Send another passcode to this user.',
  ],
  attribute_mismatch: [401, "Unable to authenticate because attributes on request don't match stored attributes."],
  invalid_webhook_signature: [401, 'The webhook signature is missing or invalid.'],
  forbidden: [403, 'The request is not allowed.'],
  origin_not_authorized: [403, "The request's origin is not authorized for this project's frontend SDK."],
  route_not_found: [404, 'The requested route does not exist.'],
  otp_code_not_found: [
    404,
    'The passcode was incorrect and could not be authenticated, encourage the user to try inputting the passcode again or send another passcode.',
  ],
  phone_number_not_found: [404, 'Phone Number could not be found.'],
  user_not_found: [404, 'User could not be found.'],
  session_not_found: [404, 'Session could not be found.'],
  method_not_allowed: [405, 'The HTTP method is not allowed on this route.'],
  request_too_large: [413, 'The request body is too large.'],
  unsupported_media_type: [415, 'The request body must be JSON sent with Content-Type: application/json.'],
  too_many_requests: [429, 'Too many requests have been made.'],
  user_lock_limit_reached: [
    429,
    'The user has been locked out due to too many failed authentication attempts. Please try again later.',
  ],
  internal_server_error: [
    500,
    'Oops, something seems to have gone wrong, please reach out to support@stytch.com to let us know what went wrong.',
  ],
  service_unavailable: [503, 'The service is not configured to handle this request.'],
} as const satisfies Record<string, readonly [ContentfulStatusCode, string]>

export type ErrorType = keyof typeof ERRORS

export interface StytchErrorBody {
  status_code: number
  request_id: string
  error_type: ErrorType
  error_message: string
  error_url: string
  error_details?: Record<string, unknown>
}

/**
 * Thrown anywhere in request handling; `app.onError` turns it into the Stytch error body.
 * `message` overrides the catalogue text when a more precise, safe-to-show reason exists
 * (e.g. which field was invalid). Internal details never go here: log them instead.
 */
export class StytchError extends Error {
  readonly errorType: ErrorType
  readonly status: ContentfulStatusCode
  readonly details: Record<string, unknown> | undefined
  readonly headers: Record<string, string> | undefined

  constructor(
    errorType: ErrorType,
    options: { message?: string; details?: Record<string, unknown>; headers?: Record<string, string> } = {},
  ) {
    const [status, defaultMessage] = ERRORS[errorType]
    super(options.message ?? defaultMessage)
    this.name = 'StytchError'
    this.errorType = errorType
    this.status = status
    this.details = options.details
    this.headers = options.headers
  }
}

export function errorBody(err: StytchError, requestId: string): StytchErrorBody {
  const body: StytchErrorBody = {
    status_code: err.status,
    request_id: requestId,
    error_type: err.errorType,
    error_message: err.message,
    error_url: `https://stytch.com/docs/api/errors/${err.status}#${err.errorType}`,
  }
  if (err.details) body.error_details = err.details
  return body
}
