import { zValidator } from '@hono/zod-validator'
import type { MiddlewareHandler, ValidationTargets } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import type { z } from 'zod'
import type { AppEnv } from '../env'
import { type ErrorType, StytchError } from '../errors'

export const MAX_BODY_BYTES = 16 * 1024

/**
 * The error type for an invalid field, keyed by its dotted path. A field not listed here (or a
 * missing required field) is a generic `bad_request` whose message names the field.
 */
const FIELD_ERROR_TYPES: Record<string, ErrorType> = {
  phone_number: 'invalid_phone_number',
  expiration_minutes: 'invalid_expiration_otp',
  locale: 'invalid_locale',
  'attributes.ip_address': 'invalid_ip_address',
  'attributes.user_agent': 'invalid_user_agent',
  method_id: 'invalid_method_id',
  code: 'invalid_code',
  user_id: 'invalid_user_id',
  phone_id: 'invalid_phone_id',
  session_duration_minutes: 'invalid_session_duration_minutes',
  session_token: 'invalid_session_token',
  session_jwt: 'invalid_session_jwt',
  session_custom_claims: 'invalid_session_custom_claims',
  session_id: 'invalid_session_id',
  trusted_metadata: 'metadata_invalid_format',
  untrusted_metadata: 'metadata_invalid_format',
}

/**
 * The Stytch error type a validation failure at a field answers: the field's own type (by its
 * dotted path, e.g. `attributes.ip_address`) when it has one and was given, `bad_request` otherwise
 * (a field without its own type, or a required field left out). The validator and the OpenAPI
 * document both ask this, so the documented errors are the ones the validator raises.
 */
export function fieldErrorType(path: string, missing = false): ErrorType {
  return (missing ? undefined : FIELD_ERROR_TYPES[path]) ?? 'bad_request'
}

/** Marks the issue of a field a route refuses outright (schemas.ts `refused`): always bad_request. */
export const REFUSED_FIELD = 'refusedField'

/** Turns the first zod issue into the matching Stytch error. */
export function zodToStytchError(error: { issues: readonly z.core.$ZodIssue[] }): StytchError {
  const issue = error.issues[0]
  if (!issue) return new StytchError('bad_request')
  const path = issue.path.map(String).join('.')
  const missing = issue.code === 'invalid_type' && /received undefined/.test(issue.message)
  const refusedField = issue.code === 'custom' && issue.params?.[REFUSED_FIELD] === true
  const errorType = refusedField ? 'bad_request' : fieldErrorType(path, missing)
  if (errorType !== 'bad_request') return new StytchError(errorType)
  const field = path || 'body'
  const reason = missing ? `${field} is required.` : `${field}: ${issue.message}.`
  return new StytchError('bad_request', { message: `The submitted request is invalid: ${reason}` })
}

/** What jsonBody() can answer before validation (the OpenAPI document lists them for every JSON body). */
export const JSON_BODY_ERRORS: readonly ErrorType[] = ['bad_request', 'request_too_large', 'unsupported_media_type']

/**
 * Reads a JSON request body safely before validation: the size is capped (413), the media type
 * must be JSON (415), the text must parse (400) and be a JSON object (400). Hono caches the parsed
 * body, so the validator that follows reads it without a second parse of the stream.
 */
export function jsonBody(): MiddlewareHandler<AppEnv> {
  const limit = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: () => {
      throw new StytchError('request_too_large', {
        message: `The request body is larger than ${MAX_BODY_BYTES} bytes.`,
      })
    },
  })
  return async function requireJsonObject(c, next) {
    const type = c.req.header('content-type') ?? ''
    if (!/^application\/json\s*(;|$)/i.test(type)) throw new StytchError('unsupported_media_type')
    await limit(c, async () => {
      let parsed: unknown
      try {
        parsed = await c.req.json()
      } catch {
        throw new StytchError('bad_request', { message: 'The request body is not valid JSON.' })
      }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new StytchError('bad_request', { message: 'The request body must be a JSON object.' })
      }
      await next()
    })
  }
}

/** zValidator whose failures leave through the error catalogue instead of zod's own 400 body. */
export function validate<T extends z.ZodType, Target extends keyof ValidationTargets>(target: Target, schema: T) {
  return zValidator(target, schema, (result) => {
    if (!result.success) throw zodToStytchError(result.error)
  })
}
