import { env } from 'cloudflare:workers'

/**
 * Helpers for the tests of projects on several D1 shards (DB is shard 0 and the directory, DB_1 is
 * shard 1): bindings that record the SQL each database is given, and the tables a project's rows live in.
 */

/** Every table holding a project's rows (src/db/shard-move.ts moves the same ones). */
export const PROJECT_TABLES = [
  'users',
  'phones',
  'otp_codes',
  'sessions',
  'session_signing_keys',
  'deliveries',
  'limit_counters',
] as const

/** A D1 binding that records the SQL of every statement prepared on it, and the bindings of `base` with two of them. */
export function recordingDb(base: D1Database): { db: D1Database; sql: string[] } {
  const sql: string[] = []
  const db = new Proxy(base, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver)
      if (typeof value !== 'function') return value
      if (prop === 'prepare' || prop === 'exec') {
        return (query: string) => {
          sql.push(query.replace(/\s+/g, ' ').trim())
          return (value as (q: string) => unknown).call(target, query)
        }
      }
      return value.bind(target)
    },
  })
  return { db, sql }
}

/** The test bindings with DB and DB_1 recording what each is given. */
export function recordingShards(base: Env = env): { env: Env; shard0: string[]; shard1: string[] } {
  const zero = recordingDb(base.DB)
  const one = recordingDb(base.DB_1)
  return { env: { ...base, DB: zero.db, DB_1: one.db }, shard0: zero.sql, shard1: one.sql }
}

/** The statements a project on another shard may give the directory: reading its own record. */
export const DIRECTORY_READ = /^SELECT [^;]* FROM projects WHERE (id|public_token) = \?1$/

/** The project's row count per table (PROJECT_TABLES) in `db`. */
export async function projectCounts(db: D1Database, projectId: string): Promise<Record<string, number>> {
  const results = await db.batch(
    PROJECT_TABLES.map((t) => db.prepare(`SELECT COUNT(*) AS n FROM ${t} WHERE project_id = ?1`).bind(projectId)),
  )
  return Object.fromEntries(
    PROJECT_TABLES.map((t, i) => [t, Number((results[i]?.results[0] as { n: number } | undefined)?.n ?? 0)]),
  )
}
