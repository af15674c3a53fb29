import { fromBase64Url, toBase64Url } from '../crypto'
import { StytchError } from '../errors'
import { parseId } from '../ids'
import type { SearchOperandInput, SearchUsersInput } from '../schemas'
import { type PhoneRow, visiblePhone } from './phones'
import { USER_COLUMNS } from './users'

/**
 * The query compiler of POST /v1/users/search (src/users/search.ts): SQL text built from the
 * request's filters, over users and phones together, so it has a module of its own rather than a
 * place in users.ts or phones.ts. It returns the page, the phones of its users and the total as
 * three statements over the same query, run in one D1 batch.
 *
 * Pages are keyset-paginated on (created_at, id) over users_project_created, so a page costs the
 * same however deep it is; the cursor is that position, opaque to callers. Each filter is one
 * indexed lookup or an index-ordered walk of the project's users (test/users-search-plan.test.ts
 * holds SQLite's query plans to this):
 * - phone_number: phones UNIQUE (project_id, phone_number); phone_id: the phones primary key;
 *   user_id: the users primary key (an external id there goes through users_external_id); the
 *   users they name are then read by primary key;
 * - created_at_*: a range of users_project_created;
 * - status, phone_verified: checked per user while walking users_project_created (phones_user for
 *   phone_verified), the only filters that do not narrow the walk by themselves.
 * The phones of a page are read through phones_user. Attachments whose window passed are invisible
 * here as everywhere.
 */

export interface Sql {
  sql: string
  params: unknown[]
}

function condition(operand: SearchOperandInput, param: (value: unknown) => string, at: () => string): string {
  const isVisible = () => visiblePhone(at())
  switch (operand.filter_name) {
    case 'user_id': {
      const ids = operand.filter_value.filter((v) => parseId('user', v) !== null)
      const external = operand.filter_value.filter((v) => parseId('user', v) === null)
      return `(u.id IN (SELECT value FROM json_each(${param(JSON.stringify(ids))}))
        OR u.id IN (SELECT id FROM users WHERE project_id = ?1
          AND external_id IN (SELECT value FROM json_each(${param(JSON.stringify(external))}))))`
    }
    case 'phone_number':
      return `u.id IN (SELECT p.user_id FROM phones p WHERE p.project_id = ?1
        AND p.phone_number IN (SELECT value FROM json_each(${param(JSON.stringify(operand.filter_value))})) AND ${isVisible()})`
    case 'phone_id':
      return `u.id IN (SELECT p.user_id FROM phones p WHERE +p.project_id = ?1
        AND p.id IN (SELECT value FROM json_each(${param(JSON.stringify(operand.filter_value))})) AND ${isVisible()})`
    case 'phone_verified':
      return `EXISTS (SELECT 1 FROM phones p WHERE p.user_id = u.id AND p.verified = ${param(operand.filter_value ? 1 : 0)}
        AND ${isVisible()})`
    case 'status':
      return `u.status = ${param(operand.filter_value)}`
    case 'created_at_greater_than':
      return `u.created_at > ${param(Date.parse(operand.filter_value))}`
    case 'created_at_less_than':
      return `u.created_at < ${param(Date.parse(operand.filter_value))}`
    case 'created_at_between':
      return `(u.created_at > ${param(Date.parse(operand.filter_value.greater_than))}
        AND u.created_at < ${param(Date.parse(operand.filter_value.less_than))})`
  }
}

// Filters naming the users they match (ids, numbers): they select by index lookups, never a walk.
const NARROWING = new Set<SearchOperandInput['filter_name']>(['user_id', 'phone_number', 'phone_id'])

/** The WHERE clause over `users u` for the query (without pagination); ?1 is the project id. */
function whereClause(query: SearchUsersInput['query'], at: number, projectId: string): Sql {
  const params: unknown[] = [projectId]
  const param = (value: unknown) => {
    params.push(value)
    return `?${params.length}`
  }
  let atRef: string | undefined
  const atParam = () => (atRef ??= param(at))
  const operands = query?.operands ?? []
  const conditions = operands.map((o) => condition(o, param, atParam))
  const joined = conditions.length === 0 ? '1' : conditions.join(query?.operator === 'OR' ? ' OR ' : ' AND ')
  // When the query is narrowed to listed ids or numbers, the users primary key must drive it, not a
  // walk of the project's users in page order: the unary + keeps SQLite off the project index.
  const narrowing = operands.map((o) => NARROWING.has(o.filter_name))
  const narrowed = query?.operator === 'OR' ? narrowing.length > 0 && narrowing.every(Boolean) : narrowing.some(Boolean)
  return { sql: `${narrowed ? '+' : ''}u.project_id = ?1 AND (${joined})`, params }
}

/** The cursor: the last returned user's position, base64url of "<created_at>.<user id>". */
export function encodeCursor(user: { created_at: number; user_id: string }): string {
  return toBase64Url(new TextEncoder().encode(`${user.created_at}.${user.user_id}`))
}

function decodeCursor(cursor: string): { createdAt: number; userId: string } {
  let text = ''
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(fromBase64Url(cursor))
  } catch {
    // falls through to the refusal below
  }
  const m = /^(\d{1,15})\.(.+)$/.exec(text)
  if (!m || parseId('user', m[2] ?? '') === null) {
    throw new StytchError('bad_request', { message: 'The submitted request is invalid: cursor is not a next_cursor.' })
  }
  return { createdAt: Number(m[1]), userId: m[2] ?? '' }
}

/**
 * The three statements of a search, as SQL and parameters: the page (one user more than the limit,
 * to tell whether another page follows), the phones of the page's users, and the total.
 */
export function searchSql(
  projectId: string,
  input: SearchUsersInput,
  at: number,
): { page: Sql; phones: Sql; count: Sql } {
  const where = whereClause(input.query, at, projectId)
  const after = input.cursor ? decodeCursor(input.cursor) : null
  const n = where.params.length
  const pageSql = `SELECT ${USER_COLUMNS} FROM users u WHERE ${where.sql}
    ${after ? `AND (u.created_at, u.id) > (?${n + 1}, ?${n + 2})` : ''}
    ORDER BY u.created_at, u.id LIMIT ?${n + (after ? 3 : 1)}`
  const pageParams = [...where.params, ...(after ? [after.createdAt, after.userId] : []), input.limit + 1]
  return {
    page: { sql: pageSql, params: pageParams },
    phones: {
      sql: `SELECT p.user_id, p.id AS phone_id, p.phone_number, p.verified FROM phones p
       WHERE +p.project_id = ?1 AND ${visiblePhone(`?${pageParams.length + 1}`)}
         AND p.user_id IN (SELECT user_id FROM (${pageSql}))
       ORDER BY p.created_at, p.rowid`,
      params: [...pageParams, at],
    },
    count: { sql: `SELECT COUNT(*) AS total FROM users u WHERE ${where.sql}`, params: where.params },
  }
}

/** A page's phone, with the user it belongs to. */
export interface SearchPhoneRow extends PhoneRow {
  user_id: string
}

/** The statements of searchSql, prepared, for one batch. */
export function searchStatements(
  db: D1Database,
  projectId: string,
  input: SearchUsersInput,
  at: number,
): { page: D1PreparedStatement; phones: D1PreparedStatement; count: D1PreparedStatement } {
  const sql = searchSql(projectId, input, at)
  const prepare = (s: Sql) => db.prepare(s.sql).bind(...s.params)
  return { page: prepare(sql.page), phones: prepare(sql.phones), count: prepare(sql.count) }
}
