import { Hono } from 'hono'
import type { z } from 'zod'
import type { AppEnv } from '../env'
import { validate } from '../middleware/validate'
import {
  type DeletePhoneNumberResponse,
  type DeleteUserResponse,
  type GetUserResponse,
  PhoneIdParam,
  UserIdParam,
} from '../schemas'
import { deletePhoneNumber, deleteUser, getUser } from '../users/service'

/** The Users API subset: read a user, delete a user, delete one of its phone numbers. */
export const userRoutes = new Hono<AppEnv>()

userRoutes.get('/:user_id', validate('param', UserIdParam), async (c) => {
  const user = await getUser(c.env, c.var.project, c.req.valid('param').user_id)
  return c.json({ request_id: c.var.requestId, ...user, status_code: 200 } satisfies z.infer<typeof GetUserResponse>)
})

userRoutes.delete('/phone_numbers/:phone_id', validate('param', PhoneIdParam), async (c) => {
  const user = await deletePhoneNumber(c.env, c.var.project, c.req.valid('param').phone_id)
  return c.json({
    request_id: c.var.requestId,
    user_id: user.user_id,
    user,
    status_code: 200,
  } satisfies z.infer<typeof DeletePhoneNumberResponse>)
})

userRoutes.delete('/:user_id', validate('param', UserIdParam), async (c) => {
  const userId = await deleteUser(c.env, c.var.project, c.req.valid('param').user_id)
  return c.json({ request_id: c.var.requestId, user_id: userId, status_code: 200 } satisfies z.infer<
    typeof DeleteUserResponse
  >)
})
