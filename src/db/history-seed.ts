import { BUCKET_MS } from './limit-counters'

/**
 * The benchmark's seed, written in bulk by SQL rather than request by request: limit_counters rows
 * for the history scenario (src/bench/history.ts), what a project's counters hold after many sends to
 * distinct US numbers, each creating a user, over the last hour; and the users and phones of the
 * search scenario (src/bench/search.ts).
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

/** When the search scenario's first user was created; user i was created i ms later. */
export const SEARCH_SEED_EPOCH = Date.parse('2026-01-01T00:00:00Z')

// A random id in the shape of newId's (`<prefix>-test-<uuid v4>`), made by SQLite.
const randomId = (prefix: string) =>
  `printf('${prefix}-test-%s-%s-4%s-%s%s-%s', lower(hex(randomblob(4))), lower(hex(randomblob(2))),
    substr(lower(hex(randomblob(2))), 2), substr('89ab', 1 + abs(random() % 4), 1),
    substr(lower(hex(randomblob(2))), 2), lower(hex(randomblob(6))))`

/**
 * Users `from` … `total` - 1 of the search scenario, each active with one number (+1 400 000 0000 + i),
 * verified for odd i: two statements (the users, then their phones), for one batch. User i was
 * created at SEARCH_SEED_EPOCH + i, which is also how its phone finds it.
 */
export function searchUsersStatements(
  db: D1Database,
  projectId: string,
  from: number,
  total: number,
): D1PreparedStatement[] {
  return [
    db
      .prepare(
        `WITH RECURSIVE s(i) AS (SELECT ?2 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ?3)
         INSERT INTO users (id, project_id, status, created_at)
         SELECT ${randomId('user')}, ?1, 'active', ?4 + i FROM s WHERE ?2 < ?3`,
      )
      .bind(projectId, from, total, SEARCH_SEED_EPOCH),
    db
      .prepare(
        `INSERT INTO phones (id, project_id, user_id, phone_number, verified, created_at)
         SELECT ${randomId('phone-number')}, ?1, u.id, '+1' || (4000000000 + u.created_at - ?4),
           (u.created_at - ?4) % 2, u.created_at
         FROM users u WHERE u.project_id = ?1 AND u.created_at >= ?4 + ?2 AND u.created_at < ?4 + ?3`,
      )
      .bind(projectId, from, total, SEARCH_SEED_EPOCH),
  ]
}
