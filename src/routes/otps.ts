import { Hono } from 'hono'
import type { z } from 'zod'
import type { AppEnv } from '../env'
import { jsonBody, validate } from '../middleware/validate'
import { authenticateCode } from '../otp/authenticate'
import { loginOrCreate } from '../otp/login-or-create'
import { sendCode } from '../otp/send'
import {
  AuthenticateRequest,
  type AuthenticateResponse,
  LoginOrCreateRequest,
  SendRequest,
  type SendResponse,
} from '../schemas'

export const otpRoutes = new Hono<AppEnv>()

otpRoutes.post('/whatsapp/login_or_create', jsonBody(), validate('json', LoginOrCreateRequest), async (c) => {
  const result = await loginOrCreate(c.env, c.var.project, c.req.valid('json'))
  return c.json({ request_id: c.var.requestId, ...result, status_code: 200 as const })
})

otpRoutes.post('/whatsapp/send', jsonBody(), validate('json', SendRequest), async (c) => {
  const result = await sendCode(c.env, c.var.project, c.req.valid('json'))
  return c.json({ request_id: c.var.requestId, ...result, status_code: 200 } satisfies z.infer<typeof SendResponse>)
})

otpRoutes.post('/authenticate', jsonBody(), validate('json', AuthenticateRequest), async (c) => {
  const result = await authenticateCode(c.env, c.var.project, c.var.requestId, c.req.valid('json'))
  return c.json({
    request_id: c.var.requestId,
    status_code: 200,
    ...result,
    reset_sessions: false,
  } satisfies z.infer<typeof AuthenticateResponse>)
})
