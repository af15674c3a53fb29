import { Hono } from 'hono'
import type { AppEnv } from '../env'
import { jsonBody, validate } from '../middleware/validate'
import { loginOrCreate } from '../otp/login-or-create'
import { LoginOrCreateRequest } from '../schemas'

export const otpRoutes = new Hono<AppEnv>()

otpRoutes.post('/whatsapp/login_or_create', jsonBody(), validate('json', LoginOrCreateRequest), async (c) => {
  const result = await loginOrCreate(c.env, c.var.project, c.req.valid('json'))
  return c.json({ request_id: c.var.requestId, ...result, status_code: 200 as const })
})
