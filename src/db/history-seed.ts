import { BUCKET_MS } from './limit-counters'

/**
 * limit_counters rows for the bench's history scenario (src/bench/history.ts): what a project's
 * counters hold after many sends to distinct US numbers, each creating a user, over the last hour.
 */

const HOUR_MS = 3_600_000
const DAY_MS = 86_400_000
const BUCKETS = HOUR_MS / BUCKET_MS

/**
 * One per-phone row (exact window) for each send `from` … `total` - 1, to the numbers +13000000000
 * onwards, spread over the hour before `now`; rows already there are kept.
 */
export function phoneHistoryStatement(
  db: D1Database,
  projectId: string,
  from: number,
  total: number,
  now: number,
): D1PreparedStatement {
  return db
    .prepare(
      `WITH RECURSIVE s(i) AS (SELECT ?3 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ?4)
       INSERT INTO limit_counters (project_id, kind, subject, bucket, n, expires_at)
       SELECT ?1, 'phone', '+1' || (3000000000 + i), ?2 - 1 - (i % ${HOUR_MS}), 1, ?2 - 1 - (i % ${HOUR_MS}) + ${DAY_MS}
       FROM s WHERE ?3 < ?4
       ON CONFLICT (project_id, kind, subject, bucket) DO NOTHING`,
    )
    .bind(projectId, now, from, total)
}

/**
 * The US per-country and the new-user minute buckets of the hour before the bucket `current`, each
 * set to its share of `total`.
 */
export function hourBucketsStatement(
  db: D1Database,
  projectId: string,
  total: number,
  current: number,
): D1PreparedStatement {
  return db
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
    .bind(projectId, current, total)
}
