import { Hono } from 'hono'
import type { z } from 'zod'
import type { AppEnv } from '../env'
import { jsonBody, validate } from '../middleware/validate'
import {
  CreateUserRequest,
  type CreateUserResponse,
  type DeletePhoneNumberResponse,
  type DeleteUserResponse,
  ExchangePrimaryFactorRequest,
  type GetUserResponse,
  PhoneIdParam,
  SearchUsersRequest,
  type SearchUsersResponse,
  UpdateUserRequest,
  type UpdateUserResponse,
  type UserChangeResponse,
  UserIdParam,
} from '../schemas'
import { searchUsers } from '../users/search'
import {
  createUser,
  deleteExternalId,
  deletePhoneNumber,
  deleteUser,
  exchangePrimaryFactor,
  getUser,
  updateUser,
} from '../users/service'

/**
 * The Users API: create, read, update, search and delete users, exchange a user's phone number,
 * remove an external id or a phone number. Wherever a user_id is in the path, the external_id set
 * for the user is accepted too.
 */
export const userRoutes = new Hono<AppEnv>()

userRoutes.post('/', jsonBody(), validate('json', CreateUserRequest), async (c) => {
  const { user, phoneId } = await createUser(c.env, c.var.project, c.req.valid('json'))
  return c.json({
    request_id: c.var.requestId,
    user_id: user.user_id,
    email_id: '',
    status: user.status,
    phone_id: phoneId,
    user,
    status_code: 200,
  } satisfies z.infer<typeof CreateUserResponse>)
})

userRoutes.post('/search', jsonBody(), validate('json', SearchUsersRequest), async (c) => {
  const { results, next_cursor, total } = await searchUsers(c.env, c.var.project, c.req.valid('json'))
  return c.json({
    request_id: c.var.requestId,
    results,
    results_metadata: { next_cursor, total },
    status_code: 200,
  } satisfies z.infer<typeof SearchUsersResponse>)
})

userRoutes.get('/:user_id', validate('param', UserIdParam), async (c) => {
  const user = await getUser(c.env, c.var.project, c.req.valid('param').user_id)
  return c.json({ request_id: c.var.requestId, ...user, status_code: 200 } satisfies z.infer<typeof GetUserResponse>)
})

userRoutes.put(
  '/:user_id',
  jsonBody(),
  validate('param', UserIdParam),
  validate('json', UpdateUserRequest),
  async (c) => {
    const user = await updateUser(c.env, c.var.project, c.req.valid('param').user_id, c.req.valid('json'))
    return c.json({
      request_id: c.var.requestId,
      user_id: user.user_id,
      emails: [],
      phone_numbers: user.phone_numbers,
      crypto_wallets: [],
      user,
      status_code: 200,
    } satisfies z.infer<typeof UpdateUserResponse>)
  },
)

userRoutes.put(
  '/:user_id/exchange_primary_factor',
  jsonBody(),
  validate('param', UserIdParam),
  validate('json', ExchangePrimaryFactorRequest),
  async (c) => {
    const user = await exchangePrimaryFactor(c.env, c.var.project, c.req.valid('param').user_id, c.req.valid('json'))
    return c.json({ request_id: c.var.requestId, user_id: user.user_id, user, status_code: 200 } satisfies z.infer<
      typeof UserChangeResponse
    >)
  },
)

userRoutes.delete('/phone_numbers/:phone_id', validate('param', PhoneIdParam), async (c) => {
  const user = await deletePhoneNumber(c.env, c.var.project, c.req.valid('param').phone_id)
  return c.json({
    request_id: c.var.requestId,
    user_id: user.user_id,
    user,
    status_code: 200,
  } satisfies z.infer<typeof DeletePhoneNumberResponse>)
})

userRoutes.delete('/:user_id/external_id', validate('param', UserIdParam), async (c) => {
  const user = await deleteExternalId(c.env, c.var.project, c.req.valid('param').user_id)
  return c.json({ request_id: c.var.requestId, user_id: user.user_id, user, status_code: 200 } satisfies z.infer<
    typeof UserChangeResponse
  >)
})

userRoutes.delete('/:user_id', validate('param', UserIdParam), async (c) => {
  const userId = await deleteUser(c.env, c.var.project, c.req.valid('param').user_id)
  return c.json({ request_id: c.var.requestId, user_id: userId, status_code: 200 } satisfies z.infer<
    typeof DeleteUserResponse
  >)
})
