import type { z } from 'zod'
import {
  CreateUserRequest,
  CreateUserResponse,
  DeletePhoneNumberResponse,
  DeleteUserResponse,
  ExchangePrimaryFactorRequest,
  GetUserResponse,
  PhoneIdParam,
  SearchUsersRequest,
  SearchUsersResponse,
  UpdateUserRequest,
  UpdateUserResponse,
  UserChangeResponse,
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
import { RouteGroup } from './group'

/**
 * The Users API: create, read, update, search and delete users, exchange a user's phone number,
 * remove an external id or a phone number. Wherever a user_id is in the path, the external_id set
 * for the user is accepted too.
 */
export const userRoutes = new RouteGroup('/v1/users')

userRoutes.add(
  {
    method: 'post',
    path: '/',
    operationId: 'usersCreate',
    summary: 'Create a user with a phone number, name, metadata and external id',
    description:
      'A number whose only claim is an attachment (by /send, or a pending exchange) is released and given to the new user.',
    tag: 'Users',
    auth: 'project',
    body: CreateUserRequest,
    response: CreateUserResponse,
    errors: [
      'invalid_phone_number',
      'invalid_phone_number_country_code',
      'duplicate_phone_number',
      'duplicate_user_external_id',
      'metadata_too_large',
      'too_many_requests',
    ],
  },
  async (c) => {
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
  },
)

userRoutes.add(
  {
    method: 'post',
    path: '/search',
    operationId: 'usersSearch',
    summary: 'Search users by phone number, phone id, user id, verification, status or creation time',
    description:
      'Filters combine with AND or OR; pages of 1-1000 users (default 100), oldest first, continued with next_cursor. ' +
      "A project's searches share a budget of rows read per minute (search_rows_per_minute).",
    tag: 'Users',
    auth: 'project',
    body: SearchUsersRequest,
    response: SearchUsersResponse,
    errors: ['too_many_requests'],
  },
  async (c) => {
    const { results, next_cursor, total } = await searchUsers(c.env, c.var.project, c.req.valid('json'))
    return c.json({
      request_id: c.var.requestId,
      results,
      results_metadata: { next_cursor, total },
      status_code: 200,
    } satisfies z.infer<typeof SearchUsersResponse>)
  },
)

userRoutes.add(
  {
    method: 'get',
    path: '/:user_id',
    operationId: 'usersGet',
    summary: 'Read a user',
    tag: 'Users',
    auth: 'project',
    params: UserIdParam,
    response: GetUserResponse,
    errors: ['user_not_found'],
  },
  async (c) => {
    const user = await getUser(c.env, c.var.project, c.req.valid('param').user_id)
    return c.json({ request_id: c.var.requestId, ...user, status_code: 200 } satisfies z.infer<typeof GetUserResponse>)
  },
)

userRoutes.add(
  {
    method: 'put',
    path: '/:user_id',
    operationId: 'usersUpdate',
    summary: "Update a user's name, metadata (merged) or external id",
    tag: 'Users',
    auth: 'project',
    params: UserIdParam,
    body: UpdateUserRequest,
    response: UpdateUserResponse,
    errors: ['user_not_found', 'duplicate_user_external_id', 'metadata_too_large'],
  },
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

userRoutes.add(
  {
    method: 'put',
    path: '/:user_id/exchange_primary_factor',
    operationId: 'usersExchangePrimaryFactor',
    summary: "Replace a user's only phone number by another, once the user proves the new one",
    description:
      'The new number is added unverified (new phone_id) beside the old one, as an attachment with the 5-minute ' +
      "window of /send and no claim on the number. The user's own code on it (/send with the user_id or a " +
      'session, then authenticate) completes the exchange: the old number and its code are removed and the ' +
      "user's other sessions are revoked. Until then the reply lists both numbers. A number anyone else holds, " +
      'even as an attachment, is duplicate_phone_number.',
    tag: 'Users',
    auth: 'project',
    params: UserIdParam,
    body: ExchangePrimaryFactorRequest,
    response: UserChangeResponse,
    errors: [
      'user_not_found',
      'invalid_phone_number',
      'invalid_phone_number_country_code',
      'invalid_exchange_primary_factor_fields',
      'invalid_exchange_primary_factor_user',
      'duplicate_phone_number',
    ],
  },
  async (c) => {
    const user = await exchangePrimaryFactor(c.env, c.var.project, c.req.valid('param').user_id, c.req.valid('json'))
    return c.json({ request_id: c.var.requestId, user_id: user.user_id, user, status_code: 200 } satisfies z.infer<
      typeof UserChangeResponse
    >)
  },
)

// Registered before DELETE /:user_id/external_id, which matches /phone_numbers/external_id too:
// the route registered first answers.
userRoutes.add(
  {
    method: 'delete',
    path: '/phone_numbers/:phone_id',
    operationId: 'usersDeletePhoneNumber',
    summary: 'Remove a phone number from its user',
    tag: 'Users',
    auth: 'project',
    params: PhoneIdParam,
    response: DeletePhoneNumberResponse,
    errors: ['phone_number_not_found'],
  },
  async (c) => {
    const user = await deletePhoneNumber(c.env, c.var.project, c.req.valid('param').phone_id)
    return c.json({
      request_id: c.var.requestId,
      user_id: user.user_id,
      user,
      status_code: 200,
    } satisfies z.infer<typeof DeletePhoneNumberResponse>)
  },
)

userRoutes.add(
  {
    method: 'delete',
    path: '/:user_id/external_id',
    operationId: 'usersDeleteExternalId',
    summary: "Remove a user's external id",
    tag: 'Users',
    auth: 'project',
    params: UserIdParam,
    response: UserChangeResponse,
    errors: ['user_not_found'],
  },
  async (c) => {
    const user = await deleteExternalId(c.env, c.var.project, c.req.valid('param').user_id)
    return c.json({ request_id: c.var.requestId, user_id: user.user_id, user, status_code: 200 } satisfies z.infer<
      typeof UserChangeResponse
    >)
  },
)

userRoutes.add(
  {
    method: 'delete',
    path: '/:user_id',
    operationId: 'usersDelete',
    summary: 'Delete a user, its phone numbers, codes and sessions',
    tag: 'Users',
    auth: 'project',
    params: UserIdParam,
    response: DeleteUserResponse,
    errors: ['user_not_found'],
  },
  async (c) => {
    const userId = await deleteUser(c.env, c.var.project, c.req.valid('param').user_id)
    return c.json({ request_id: c.var.requestId, user_id: userId, status_code: 200 } satisfies z.infer<
      typeof DeleteUserResponse
    >)
  },
)
