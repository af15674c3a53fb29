/**
 * Retention's deletes (src/retention.ts decides what is purged and the cut-offs): for each table,
 * which rows count as older than a cut-off, and the statement that deletes a bounded number of
 * them, oldest first.
 */

/** The tables retention purges. */
export type PurgeTable = 'otp_codes' | 'deliveries' | 'session_factors' | 'sessions' | 'limit_counters' | 'dev_outbox'

// Per table: the rows at or before the cut-off ?1, the order in which they go (oldest first), and
// what names a row: its rowid, or its primary key. The gates and the counters are WITHOUT ROWID
// tables (migrations 0016 and 0017), which have no rowid, so they are named by key.
const OLDER_THAN: Record<PurgeTable, { where: string; order: string; key?: readonly string[] }> = {
  otp_codes: { where: 'expires_at <= ?1', order: 'expires_at', key: ['phone_id'] },
  deliveries: { where: 'created_at <= ?1', order: 'created_at' },
  // Deleted apart from their sessions: the cascade would delete them too, but D1 would then count
  // them as sessions.
  session_factors: { where: 'session_id IN (SELECT id FROM sessions WHERE expires_at <= ?1)', order: 'rowid' },
  sessions: { where: 'expires_at <= ?1', order: 'expires_at' },
  limit_counters: { where: 'expires_at <= ?1', order: 'expires_at', key: ['project_id', 'kind', 'subject', 'bucket'] },
  dev_outbox: { where: 'created_at <= ?1', order: 'created_at' },
}

/** Deletes up to `limit` of the table's rows older than `cutoff` (epoch ms), oldest first. */
export function purgeStatement(db: D1Database, table: PurgeTable, cutoff: number, limit: number): D1PreparedStatement {
  const { where, order, key = ['rowid'] } = OLDER_THAN[table]
  const row = key.join(', ')
  return db
    .prepare(
      `DELETE FROM ${table} WHERE (${row}) IN (SELECT ${row} FROM ${table} WHERE ${where} ORDER BY ${order} LIMIT ?2)`,
    )
    .bind(cutoff, limit)
}
