import type { z } from 'zod'
import {
  JwksParams,
  JwksResponse,
  SessionsAuthenticateRequest,
  SessionsAuthenticateResponse,
  SessionsGetQuery,
  SessionsGetResponse,
  SessionsRevokeRequest,
  SessionsRevokeResponse,
} from '../schemas'
import { authenticateSession, listSessions, projectJwks, revokeSession } from '../sessions/service'
import { RouteGroup } from './group'

/**
 * The sessions API. Everything but the JWKS requires project credentials (src/app.ts): the JWKS is
 * public, as Stytch's is, because verifiers fetch it without a secret.
 */
export const sessionRoutes = new RouteGroup('/v1/sessions')

sessionRoutes.add(
  {
    method: 'get',
    path: '/',
    operationId: 'sessionsGet',
    summary: "List a user's live sessions",
    tag: 'Sessions',
    auth: 'project',
    query: SessionsGetQuery,
    response: SessionsGetResponse,
    errors: ['user_not_found'],
  },
  async (c) => {
    const sessions = await listSessions(c.env, c.var.project, c.req.valid('query').user_id)
    return c.json({ request_id: c.var.requestId, sessions, status_code: 200 } satisfies z.infer<
      typeof SessionsGetResponse
    >)
  },
)

sessionRoutes.add(
  {
    method: 'post',
    path: '/authenticate',
    operationId: 'sessionsAuthenticate',
    summary: 'Check a session token or JWT; optionally extend it or change its claims',
    tag: 'Sessions',
    auth: 'project',
    body: SessionsAuthenticateRequest,
    response: SessionsAuthenticateResponse,
    errors: ['session_not_found', 'no_session_arguments', 'too_many_session_arguments', 'custom_claims_too_large'],
  },
  async (c) => {
    const result = await authenticateSession(c.env, c.var.project, c.req.valid('json'))
    return c.json({
      request_id: c.var.requestId,
      ...result,
      status_code: 200,
    } satisfies z.infer<typeof SessionsAuthenticateResponse>)
  },
)

sessionRoutes.add(
  {
    method: 'post',
    path: '/revoke',
    operationId: 'sessionsRevoke',
    summary: 'Revoke a session by id, token or JWT',
    tag: 'Sessions',
    auth: 'project',
    body: SessionsRevokeRequest,
    response: SessionsRevokeResponse,
    errors: ['session_not_found', 'no_session_revoke_arguments', 'too_many_session_revoke_arguments'],
  },
  async (c) => {
    await revokeSession(c.env, c.var.project, c.req.valid('json'))
    return c.json({ request_id: c.var.requestId, status_code: 200 } satisfies z.infer<typeof SessionsRevokeResponse>)
  },
)

sessionRoutes.add(
  {
    method: 'get',
    path: '/jwks/:project_id',
    operationId: 'sessionsGetJwks',
    summary: "The project's public keys for verifying session JWTs (no credentials needed)",
    tag: 'Sessions',
    auth: 'none',
    params: JwksParams,
    // Any project id is answered (an unknown one with no keys), so nothing is validated.
    validated: false,
    response: JwksResponse,
    errors: [],
  },
  async (c) => {
    const projectId = c.req.param('project_id')
    const keys = await projectJwks(c.env, projectId)
    return c.json({ keys, request_id: c.var.requestId, status_code: 200 } satisfies z.infer<typeof JwksResponse>)
  },
)
