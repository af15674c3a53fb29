import { HealthResponse } from '../schemas'
import { RouteGroup } from './group'

/** Routes about the service itself rather than its API (the OpenAPI document is in src/openapi/routes.ts). */
export const serviceRoutes = new RouteGroup('/')

// Liveness: answers from the isolate alone (no D1, KV or Queue access), so it is also the baseline
// route of the benchmark.
serviceRoutes.add(
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
  (c) => c.json({ request_id: c.var.requestId, status: 'ok', status_code: 200 as const }),
)
