import { now } from '../clock'
import { Batch } from '../db/batch'
import type { PhoneRow } from '../db/phones'
import type { Project } from '../db/projects'
import { encodeCursor, pagePhonesStatement, type SearchPhoneRow, searchStatements, totalOf } from '../db/user-search'
import type { UserRow } from '../db/users'
import { runWithLimits, searchBudgetStatements, searchCostStatements } from '../limits'
import type { SearchUsersInput, StytchUser } from '../schemas'
import { userObject } from './user-object'

/**
 * POST /v1/users/search: the project's users matching the query, oldest first, a page at a time
 * (src/db/user-search.ts compiles the query and describes the indexes each filter uses).
 *
 * Two round trips. The first batch checks the project's search budget and reserves its least
 * charge (src/limits.ts), then reads the page and, on a query's first page, the total, counted up to
 * SEARCH_TOTAL_CAP and carried in the cursor from then on. The second reads the phones of the page's
 * users, bound to their ids, and charges the rows the first batch read beyond the reservation.
 */

export interface SearchResult {
  results: StytchUser[]
  next_cursor: string | null
  total: number
}

export async function searchUsers(env: Env, project: Project, input: SearchUsersInput): Promise<SearchResult> {
  const at = now()
  const statements = searchStatements(env.DB, project.id, input, at)
  const search = new Batch()
  search.addAll(searchBudgetStatements(env.DB, project.id, project.settings, at))
  const page = search.add<UserRow>(statements.page)
  const count = statements.count ? search.add<{ total: number }>(statements.count) : null
  await runWithLimits(env.DB, search, project.id)
  const rows = page.rows()
  const shown = rows.slice(0, input.limit)
  const total = count ? totalOf(Number(count.first()?.total ?? 0)) : (statements.total ?? 0)

  const after = new Batch()
  const phones =
    shown.length > 0
      ? after.add<SearchPhoneRow>(
          pagePhonesStatement(
            env.DB,
            project.id,
            shown.map((u) => u.user_id),
            at,
          ),
        )
      : null
  after.addAll(searchCostStatements(env.DB, project.id, at, search.rowsRead))
  await after.run(env.DB)
  const byUser = new Map<string, PhoneRow[]>()
  for (const p of phones?.rows() ?? []) {
    const list = byUser.get(p.user_id) ?? []
    list.push({ phone_id: p.phone_id, phone_number: p.phone_number, verified: p.verified })
    byUser.set(p.user_id, list)
  }
  const last = shown.at(-1)
  return {
    results: shown.map((u) => userObject(u, byUser.get(u.user_id) ?? [], at)),
    next_cursor: rows.length > input.limit && last ? encodeCursor(last, total) : null,
    total,
  }
}
