import * as z from 'zod'
import { parseId } from '../ids'
import {
  Session,
  SessionCustomClaims,
  SessionDurationMinutes,
  SessionJwt,
  SessionToken,
  User,
  UserId,
} from '../schemas'

/**
 * Request and response schemas of the sessions API (Stytch's /v1/sessions/*). The session fields the
 * OTP endpoints share and the Session object are in src/schemas.ts (this module imports from there,
 * never the reverse). Optional fields accept `null` as absent, as there.
 */

const optional = <T extends z.ZodType>(schema: T) => schema.nullish().transform((v) => v ?? undefined)

const SessionId = z
  .string()
  .max(100)
  .refine((id) => parseId('session', id) !== null, 'expected a session id such as session-test-<uuid>')

// RBAC is not implemented: a caller asking for an authorization check must not get a silent "yes".
const AuthorizationCheck = optional(
  z.unknown().refine(() => false, 'authorization checks (RBAC) are not supported'),
).describe('Not supported: any value other than null is rejected.')

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
