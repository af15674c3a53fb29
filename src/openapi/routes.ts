import { devRoutes } from '../routes/dev'
import { RouteGroup } from '../routes/group'
import { otpRoutes } from '../routes/otps'
import { phoneFrameRoutes } from '../routes/phone-frame'
import { sdkRoutes } from '../routes/sdk'
import { serviceRoutes } from '../routes/service'
import { sessionRoutes } from '../routes/sessions'
import { userRoutes } from '../routes/users'
import { webhookRoutes } from '../routes/webhooks'
import { OpenApiResponse } from '../schemas'
import { openApiDocument } from './document'

/**
 * The route registry: every route group the app mounts (src/app.ts mounts exactly these), each route
 * declared once in its src/routes/*.ts with the very zod schemas its validators use. The OpenAPI
 * document is generated from it, and test/openapi*.test.ts check it against `app.routes` and against
 * real replies.
 */

/** GET /openapi.json: the API description, public. */
export const openApiRoutes = new RouteGroup('/')

openApiRoutes.add(
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
  (c) => c.json(openApiDocument(ROUTES)),
)

/** In the document's order (its paths, and the names of schemas that serve several routes, follow it). */
export const ROUTE_GROUPS: readonly RouteGroup[] = [
  otpRoutes,
  userRoutes,
  sessionRoutes,
  sdkRoutes,
  phoneFrameRoutes,
  webhookRoutes,
  serviceRoutes,
  openApiRoutes,
  devRoutes,
]

export const ROUTES = ROUTE_GROUPS.flatMap((group) => group.docs)
