import { Batch } from '../db/batch'
import { searchUsersStatements } from '../db/history-seed'

/**
 * The bench's search scenario (`npm run bench`): a project holding many users, each with one number,
 * half of them verified, written by SQL in bulk. Reachable only through withStorageCounting, i.e.
 * only in the bench's entry point (src/bench/entry.ts) and only when the dev-only
 * BENCH_COUNT_STORAGE=1 is set. Users `from` … `total` - 1 are written, so the seed can go in chunks.
 */
export const SEARCH_USERS_PATH = '/__bench/users'

export async function seedSearchUsers(db: D1Database, projectId: string, from: number, total: number) {
  const batch = new Batch()
  batch.addAll(searchUsersStatements(db, projectId, from, total))
  await batch.run(db)
}
