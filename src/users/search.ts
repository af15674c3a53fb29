import { now } from '../clock'
import { Batch } from '../db/batch'
import type { PhoneRow } from '../db/phones'
import type { Project } from '../db/projects'
import { encodeCursor, type SearchPhoneRow, searchStatements } from '../db/user-search'
import type { UserRow } from '../db/users'
import type { SearchUsersInput, StytchUser } from '../schemas'
import { userObject } from './user-object'

/**
 * POST /v1/users/search: the project's users matching the query, oldest first, a page at a time.
 * One D1 batch: the page, the phones of its users, and the total (all three over the same query,
 * compiled by src/db/user-search.ts, which also describes the indexes each filter uses).
 */

export interface SearchResult {
  results: StytchUser[]
  next_cursor: string | null
  total: number
}

export async function searchUsers(env: Env, project: Project, input: SearchUsersInput): Promise<SearchResult> {
  const at = now()
  const statements = searchStatements(env.DB, project.id, input, at)
  const batch = new Batch()
  const page = batch.add<UserRow>(statements.page)
  const phones = batch.add<SearchPhoneRow>(statements.phones)
  const count = batch.add<{ total: number }>(statements.count)
  await batch.run(env.DB)
  const rows = page.rows()
  const shown = rows.slice(0, input.limit)
  const byUser = new Map<string, PhoneRow[]>()
  for (const p of phones.rows()) {
    const list = byUser.get(p.user_id) ?? []
    list.push({ phone_id: p.phone_id, phone_number: p.phone_number, verified: p.verified })
    byUser.set(p.user_id, list)
  }
  const last = shown.at(-1)
  return {
    results: shown.map((u) => userObject(u, byUser.get(u.user_id) ?? [], at)),
    next_cursor: rows.length > input.limit && last ? encodeCursor(last) : null,
    total: Number(count.first()?.total ?? 0),
  }
}
