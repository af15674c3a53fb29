import { BUCKET_MS, bucketOf } from '../db/limit-counters'

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

const HOUR_MS = 3_600_000
const DAY_MS = 86_400_000
const BUCKETS = HOUR_MS / BUCKET_MS

export async function seedHistory(db: D1Database, projectId: string, from: number, total: number, now: number) {
  const current = bucketOf(now)
  const statements = [
    db
      .prepare(
        `WITH RECURSIVE s(i) AS (SELECT ?3 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ?4)
         INSERT INTO limit_counters (project_id, kind, subject, bucket, n, expires_at)
         SELECT ?1, 'phone', '+1' || (3000000000 + i), ?2 - 1 - (i % ${HOUR_MS}), 1, ?2 - 1 - (i % ${HOUR_MS}) + ${DAY_MS}
         FROM s WHERE ?3 < ?4
         ON CONFLICT (project_id, kind, subject, bucket) DO NOTHING`,
      )
      .bind(projectId, now, from, total),
    db
      .prepare(
        `WITH RECURSIVE b(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM b WHERE k < ${BUCKETS})
         INSERT INTO limit_counters (project_id, kind, subject, bucket, n, expires_at)
         SELECT ?1, c.kind, c.subject, ?2 - k * ${BUCKET_MS}, ?3 / ${BUCKETS} + (k <= ?3 % ${BUCKETS}),
           ?2 - k * ${BUCKET_MS} + ${HOUR_MS + BUCKET_MS}
         FROM b, (SELECT 'country_sends_per_hour' AS kind, 'US' AS subject
                  UNION ALL SELECT 'new_users_per_hour', '') c
         WHERE true
         ON CONFLICT (project_id, kind, subject, bucket) DO UPDATE SET n = excluded.n`,
      )
      .bind(projectId, current, total),
  ]
  await db.batch(statements)
}
