import { Batch } from '../db/batch'
import { hourBucketsStatement, phoneHistoryStatement } from '../db/history-seed'
import { bucketOf } from '../db/limit-counters'

/**
 * The bench's history scenario (`npm run bench`): the counters a project would hold after `total`
 * sends to distinct US numbers, each creating a user, spread over the last hour. Reachable only
 * through withStorageCounting, i.e. only in the bench's entry point (src/bench/entry.ts) and only
 * when the dev-only BENCH_COUNT_STORAGE=1 is set.
 *
 * Per-phone rows (one per send, exact windows) are written for sends `from` … `total` - 1, so the
 * history can grow in steps; the per-country and new-user minute buckets of the hour before the
 * current minute are set to their share of `total`.
 */
export const HISTORY_PATH = '/__bench/history'

export async function seedHistory(db: D1Database, projectId: string, from: number, total: number, now: number) {
  const batch = new Batch()
  batch.add(phoneHistoryStatement(db, projectId, from, total, now))
  batch.add(hourBucketsStatement(db, projectId, total, bucketOf(now)))
  await batch.run(db)
}
