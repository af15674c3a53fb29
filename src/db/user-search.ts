import { fromBase64Url, toBase64Url } from '../crypto'
import { StytchError } from '../errors'
import { parseId } from '../ids'
import type { SearchOperandInput, SearchUsersInput, UserStatus } from '../schemas'
import { type PhoneRow, visiblePhone } from './phones'
import { USER_COLUMNS } from './users'

/**
 * The query compiler of POST /v1/users/search (src/users/search.ts): SQL text built from the
 * request's filters, over users and phones together, so it has a module of its own rather than a
 * place in users.ts or phones.ts.
 *
 * The query is first reduced to its distinct conditions (reduceQuery), so that repeating a filter
 * costs nothing: a condition is evaluated per user walked, and twenty copies of one would be twenty
 * evaluations. Then it compiles to the page (keyset-paginated on (created_at, id) over
 * users_project_created, so a page costs the same however deep it is; the cursor is that position,
 * opaque to callers) and, on a query's first page only, the total, counted up to SEARCH_TOTAL_CAP
 * users and carried in the cursor to the later pages. The phones of a page are read afterwards, bound
 * to the page's user ids (pagePhonesSql), never by running the page again. Each filter is one indexed
 * lookup or an index-ordered walk of the project's users (test/users-search-plan.test.ts holds
 * SQLite's query plans to this):
 * - phone_number: phones UNIQUE (project_id, phone_number); phone_id: the phones primary key;
 *   user_id: the users primary key (an external id there goes through users_external_id); the
 *   users they name are then read by primary key;
 * - created_at_*: a range of users_project_created;
 * - status: checked on each user while walking users_project_created;
 * - phone_verified: a semi-join on phones_verified (project_id, verified, user_id), one key lookup
 *   per user walked.
 * Attachments whose window passed are invisible here as everywhere.
 */

export interface Sql {
  sql: string
  params: unknown[]
}

/**
 * `total` counts the matching users up to this many. When more match it is -1, the value Stytch
 * returns when totals are not computed: counting further would walk the whole project on every query.
 */
export const SEARCH_TOTAL_CAP = 10_000

type ListFilter = 'user_id' | 'phone_number' | 'phone_id'

/** One condition of a reduced query. `created_at` is after < created_at < before (null: unbounded). */
export type SearchTerm =
  | { kind: ListFilter; values: string[] }
  | { kind: 'phone_verified'; values: boolean[] }
  | { kind: 'status'; value: UserStatus }
  | { kind: 'created_at'; after: number | null; before: number | null }

/**
 * A query as distinct conditions joined by one operator. No terms: AND is every user, OR is none
 * (the empty conjunction and disjunction).
 */
export interface ReducedQuery {
  operator: 'AND' | 'OR'
  terms: SearchTerm[]
}

const EVERY_USER: ReducedQuery = { operator: 'AND', terms: [] }
const NO_USER: ReducedQuery = { operator: 'OR', terms: [] }

const isListFilter = (name: string): name is ListFilter =>
  name === 'user_id' || name === 'phone_number' || name === 'phone_id'
const distinct = <T>(values: Iterable<T>) => [...new Set(values)].sort()
const ms = (rfc3339: string) => Date.parse(rfc3339)
// No whole millisecond lies strictly between them: created_at (integer ms) cannot match.
const emptyRange = (after: number | null, before: number | null) =>
  after !== null && before !== null && before - after <= 1

/**
 * The query's distinct conditions, meaning exactly what the operands mean (Stytch's semantics):
 * - an operand repeated (same filter, same values) counts once, under either operator;
 * - under OR, the lists of user_id, phone_number and phone_id operands merge into one list each (any
 *   of A or any of B is any of A ∪ B); the phone_verified values merge into one lookup (a verified
 *   or an unverified number: one index lookup for either); `created_at_greater_than` keeps its
 *   earliest bound and `created_at_less_than` its latest. Both statuses, or a greater-than bound
 *   before a less-than bound, match every user, so the whole query does;
 * - under AND, list operands that differ stay separate (a user with a number in A and another in B
 *   matches both, so the lists do not intersect); phone_verified true and false stay two conditions
 *   (a user may hold a verified and an unverified number), each at most once; the created_at bounds
 *   intersect into one range. Two different statuses, or an empty range, match no user.
 */
export function reduceQuery(query: SearchUsersInput['query']): ReducedQuery {
  const operands = query?.operands ?? []
  if (operands.length === 0) return EVERY_USER
  return query?.operator === 'OR' ? reduceOr(operands) : reduceAnd(operands)
}

function reduceAnd(operands: SearchOperandInput[]): ReducedQuery {
  const lists = new Map<string, SearchTerm>()
  const verified = new Set<boolean>()
  const statuses = new Set<UserStatus>()
  const afters: number[] = []
  const befores: number[] = []
  for (const o of operands) {
    if (isListFilter(o.filter_name)) {
      const values = distinct(o.filter_value as string[])
      lists.set(JSON.stringify([o.filter_name, values]), { kind: o.filter_name, values })
    } else if (o.filter_name === 'phone_verified') verified.add(o.filter_value)
    else if (o.filter_name === 'status') statuses.add(o.filter_value)
    else if (o.filter_name === 'created_at_greater_than') afters.push(ms(o.filter_value))
    else if (o.filter_name === 'created_at_less_than') befores.push(ms(o.filter_value))
    else if (o.filter_name === 'created_at_between') {
      afters.push(ms(o.filter_value.greater_than))
      befores.push(ms(o.filter_value.less_than))
    }
  }
  const after = afters.length > 0 ? Math.max(...afters) : null
  const before = befores.length > 0 ? Math.min(...befores) : null
  const [status, ...others] = statuses
  if (others.length > 0 || emptyRange(after, before)) return NO_USER
  const terms: SearchTerm[] = [...lists.values()]
  for (const v of distinct(verified)) terms.push({ kind: 'phone_verified', values: [v] })
  if (status) terms.push({ kind: 'status', value: status })
  if (after !== null || before !== null) terms.push({ kind: 'created_at', after, before })
  return { operator: 'AND', terms }
}

function reduceOr(operands: SearchOperandInput[]): ReducedQuery {
  const lists = new Map<ListFilter, Set<string>>()
  const verified = new Set<boolean>()
  const statuses = new Set<UserStatus>()
  const afters: number[] = []
  const befores: number[] = []
  const ranges = new Map<string, SearchTerm>()
  for (const o of operands) {
    if (isListFilter(o.filter_name)) {
      const list = lists.get(o.filter_name) ?? new Set()
      for (const v of o.filter_value as string[]) list.add(v)
      lists.set(o.filter_name, list)
    } else if (o.filter_name === 'phone_verified') verified.add(o.filter_value)
    else if (o.filter_name === 'status') statuses.add(o.filter_value)
    else if (o.filter_name === 'created_at_greater_than') afters.push(ms(o.filter_value))
    else if (o.filter_name === 'created_at_less_than') befores.push(ms(o.filter_value))
    else if (o.filter_name === 'created_at_between') {
      const after = ms(o.filter_value.greater_than)
      const before = ms(o.filter_value.less_than)
      // An empty range matches no user: it adds nothing to an OR.
      if (!emptyRange(after, before)) ranges.set(`${after}:${before}`, { kind: 'created_at', after, before })
    }
  }
  // The widest of each one-sided bound; a later bound than an earlier one leaves no instant out.
  const after = afters.length > 0 ? Math.min(...afters) : null
  const before = befores.length > 0 ? Math.max(...befores) : null
  if (statuses.size > 1 || (after !== null && before !== null && after < before)) return EVERY_USER
  const terms: SearchTerm[] = [...lists].map(([kind, values]) => ({ kind, values: distinct(values) }))
  if (verified.size > 0) terms.push({ kind: 'phone_verified', values: distinct(verified) })
  for (const value of statuses) terms.push({ kind: 'status', value })
  if (after !== null) terms.push({ kind: 'created_at', after, before: null })
  if (before !== null) terms.push({ kind: 'created_at', after: null, before })
  terms.push(...ranges.values())
  return { operator: 'OR', terms }
}

function condition(term: SearchTerm, param: (value: unknown) => string, at: () => string): string {
  const isVisible = () => visiblePhone(at())
  switch (term.kind) {
    case 'user_id': {
      const ids = term.values.filter((v) => parseId('user', v) !== null)
      const external = term.values.filter((v) => parseId('user', v) === null)
      return `(u.id IN (SELECT value FROM json_each(${param(JSON.stringify(ids))}))
        OR u.id IN (SELECT id FROM users WHERE project_id = ?1
          AND external_id IN (SELECT value FROM json_each(${param(JSON.stringify(external))}))))`
    }
    case 'phone_number':
      return `u.id IN (SELECT p.user_id FROM phones p WHERE p.project_id = ?1
        AND p.phone_number IN (SELECT value FROM json_each(${param(JSON.stringify(term.values))})) AND ${isVisible()})`
    case 'phone_id':
      return `u.id IN (SELECT p.user_id FROM phones p WHERE +p.project_id = ?1
        AND p.id IN (SELECT value FROM json_each(${param(JSON.stringify(term.values))})) AND ${isVisible()})`
    case 'phone_verified': {
      const values = term.values.map((v) => param(v ? 1 : 0)).join(', ')
      return `EXISTS (SELECT 1 FROM phones p WHERE p.project_id = ?1 AND p.verified IN (${values})
        AND p.user_id = u.id AND ${isVisible()})`
    }
    case 'status':
      return `u.status = ${param(term.value)}`
    case 'created_at': {
      const bounds: string[] = []
      if (term.after !== null) bounds.push(`u.created_at > ${param(term.after)}`)
      if (term.before !== null) bounds.push(`u.created_at < ${param(term.before)}`)
      return `(${bounds.join(' AND ')})`
    }
  }
}

/** The WHERE clause over `users u` for the query (without pagination); ?1 is the project id. */
function whereClause(query: ReducedQuery, at: number, projectId: string): Sql {
  const params: unknown[] = [projectId]
  const param = (value: unknown) => {
    params.push(value)
    return `?${params.length}`
  }
  let atRef: string | undefined
  const atParam = () => (atRef ??= param(at))
  const { operator, terms } = query
  const conditions = terms.map((t) => condition(t, param, atParam))
  const joined = conditions.length > 0 ? conditions.join(` ${operator} `) : operator === 'OR' ? '0' : '1'
  // When the query is narrowed to listed ids or numbers, the users primary key must drive it, not a
  // walk of the project's users in page order: the unary + keeps SQLite off the project index.
  const narrowing = terms.map((t) => isListFilter(t.kind))
  const narrowed = operator === 'OR' ? narrowing.length > 0 && narrowing.every(Boolean) : narrowing.some(Boolean)
  return { sql: `${narrowed ? '+' : ''}u.project_id = ?1 AND (${joined})`, params }
}

/** Where a query's next page starts, and the total its first page counted. */
interface Cursor {
  createdAt: number
  userId: string
  /** Absent in cursors made before totals were carried: the total is then counted again. */
  total: number | null
}

/**
 * The cursor: the last returned user's position and the query's total, base64url of
 * "<created_at>.<user id>.<total>".
 */
export function encodeCursor(user: { created_at: number; user_id: string }, total: number): string {
  return toBase64Url(new TextEncoder().encode(`${user.created_at}.${user.user_id}.${total}`))
}

function decodeCursor(cursor: string): Cursor {
  let text = ''
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(fromBase64Url(cursor))
  } catch {
    // falls through to the refusal below
  }
  const m = /^(\d{1,15})\.([^.]+)(?:\.(-1|\d{1,15}))?$/.exec(text)
  const total = m?.[3] === undefined ? null : Number(m[3])
  if (!m || parseId('user', m[2] ?? '') === null || (total !== null && total > SEARCH_TOTAL_CAP)) {
    throw new StytchError('bad_request', { message: 'The submitted request is invalid: cursor is not a next_cursor.' })
  }
  return { createdAt: Number(m[1]), userId: m[2] ?? '', total }
}

/**
 * A search's statements as SQL and parameters: the page (one user more than the limit, to tell
 * whether another page follows) and, unless the cursor carries it, the total: the matching users
 * counted up to one more than SEARCH_TOTAL_CAP (totalOf reads it). `total` is the carried one.
 */
export function searchSql(
  projectId: string,
  input: SearchUsersInput,
  at: number,
): { page: Sql; count: Sql | null; total: number | null } {
  const where = whereClause(reduceQuery(input.query), at, projectId)
  const after = input.cursor ? decodeCursor(input.cursor) : null
  const n = where.params.length
  const total = after?.total ?? null
  return {
    page: {
      sql: `SELECT ${USER_COLUMNS} FROM users u WHERE ${where.sql}
        ${after ? `AND (u.created_at, u.id) > (?${n + 1}, ?${n + 2})` : ''}
        ORDER BY u.created_at, u.id LIMIT ?${n + (after ? 3 : 1)}`,
      params: [...where.params, ...(after ? [after.createdAt, after.userId] : []), input.limit + 1],
    },
    count:
      total === null
        ? {
            sql: `SELECT COUNT(*) AS total FROM (SELECT 1 FROM users u WHERE ${where.sql} LIMIT ?${n + 1})`,
            params: [...where.params, SEARCH_TOTAL_CAP + 1],
          }
        : null,
    total,
  }
}

/** The `total` of a search whose count statement returned `counted`: -1 past SEARCH_TOTAL_CAP. */
export const totalOf = (counted: number) => (counted > SEARCH_TOTAL_CAP ? -1 : counted)

/** The visible phones of the listed users (a page's), oldest first, through phones_user. */
export function pagePhonesSql(projectId: string, userIds: string[], at: number): Sql {
  return {
    sql: `SELECT p.user_id, p.id AS phone_id, p.phone_number, p.verified FROM phones p
      WHERE +p.project_id = ?1 AND p.user_id IN (SELECT value FROM json_each(?2)) AND ${visiblePhone('?3')}
      ORDER BY p.created_at, p.rowid`,
    params: [projectId, JSON.stringify(userIds), at],
  }
}

/** A page's phone, with the user it belongs to. */
export interface SearchPhoneRow extends PhoneRow {
  user_id: string
}

const prepare = (db: D1Database, s: Sql) => db.prepare(s.sql).bind(...s.params)

/** The statements of searchSql, prepared, for one batch. */
export function searchStatements(
  db: D1Database,
  projectId: string,
  input: SearchUsersInput,
  at: number,
): { page: D1PreparedStatement; count: D1PreparedStatement | null; total: number | null } {
  const sql = searchSql(projectId, input, at)
  return { page: prepare(db, sql.page), count: sql.count && prepare(db, sql.count), total: sql.total }
}

/** pagePhonesSql, prepared. */
export function pagePhonesStatement(db: D1Database, projectId: string, userIds: string[], at: number) {
  return prepare(db, pagePhonesSql(projectId, userIds, at))
}
