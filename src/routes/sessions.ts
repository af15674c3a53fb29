import { Hono } from 'hono'
import type { z } from 'zod'
import { projectEnv } from '../db/shard'
import type { AppEnv } from '../env'
import { jsonBody, validate } from '../middleware/validate'
import {
  type JwksResponse,
  SessionsAuthenticateRequest,
  type SessionsAuthenticateResponse,
  SessionsGetQuery,
  type SessionsGetResponse,
  SessionsRevokeRequest,
  type SessionsRevokeResponse,
} from '../schemas'
import { authenticateSession, listSessions, projectJwks, revokeSession } from '../sessions/service'

/**
 * The sessions API. Everything but the JWKS requires project credentials (src/app.ts): the JWKS is
 * public, as Stytch's is, because verifiers fetch it without a secret.
 */
export const sessionRoutes = new Hono<AppEnv>()

sessionRoutes.get('/', validate('query', SessionsGetQuery), async (c) => {
  const sessions = await listSessions(c.env, c.var.project, c.req.valid('query').user_id)
  return c.json({ request_id: c.var.requestId, sessions, status_code: 200 } satisfies z.infer<
    typeof SessionsGetResponse
  >)
})

sessionRoutes.post('/authenticate', jsonBody(), validate('json', SessionsAuthenticateRequest), async (c) => {
  const result = await authenticateSession(c.env, c.var.project, c.req.valid('json'))
  return c.json({
    request_id: c.var.requestId,
    ...result,
    status_code: 200,
  } satisfies z.infer<typeof SessionsAuthenticateResponse>)
})

sessionRoutes.post('/revoke', jsonBody(), validate('json', SessionsRevokeRequest), async (c) => {
  await revokeSession(c.env, c.var.project, c.req.valid('json'))
  return c.json({ request_id: c.var.requestId, status_code: 200 } satisfies z.infer<typeof SessionsRevokeResponse>)
})

sessionRoutes.get('/jwks/:project_id', async (c) => {
  const projectId = c.req.param('project_id')
  const keys = await projectJwks(projectEnv(c.env, projectId), projectId)
  return c.json({ keys, request_id: c.var.requestId, status_code: 200 } satisfies z.infer<typeof JwksResponse>)
})
