import { Batch } from './batch'

/**
 * The statements that move one project's rows from one D1 shard to another (the procedure is
 * src/shards/move.ts). They copy every table holding a project's rows, so this module owns no table
 * but shard_move_log; what it writes in the others is the project's rows exactly as the source has
 * them, never a value of its own (besides the stand-ins `freeUniqueStatement` writes for an instant
 * inside a transaction). Columns are read from the database itself (pragma_table_info), so a column
 * added by a later migration is moved without a change here; the shards must be at the same migration.
 *
 * Every write is an upsert keyed by the table's primary key, so copying a row twice is harmless and a
 * move stopped anywhere can be run again. Rows are carried as one JSON array per statement
 * (json_each), one bound parameter whatever the number of rows.
 */

/** A table holding a project's rows, as the move copies it. */
export interface MovedTable {
  table: string
  /** The primary key's columns, in order (pages are read in this order). */
  key: readonly string[]
  /** Which rows are the project's (?1 = project id), for a row aliased `t`. */
  scope: string
  /** The trigger-side test of the same thing for the row `NEW` or `OLD` (`R`), with the id inlined. */
  rowScope: (row: 'NEW' | 'OLD', projectLiteral: string) => string
  /** The parent row an incoming row (`v`, its JSON) needs, per foreign key: a condition. */
  parent?: string
  /**
   * Gives up, in the target, the unique values the incoming rows (?1, JSON) carry, wherever the
   * project's rows there hold them: an incoming row gets its value back from the upsert that follows
   * in the same transaction, and any other holder changed in the source since it was copied, so the
   * change log names it and its own copy follows. Without this, a value that moved from one row to
   * another during the move (a rotated signing key, external ids swapped between users) would make
   * the upsert fail on the unique index.
   */
  freeUnique?: string
}

const byProject = (row: 'NEW' | 'OLD', project: string) => `${row}.project_id = ${project}`
/** The values of `column` the incoming rows (?1, JSON) carry. */
const incoming = (column: string) => `SELECT json_extract(value, '$.${column}') FROM json_each(?1)`

/**
 * Parents before children: a row's parent is written before it, and deleted after it. dev_outbox
 * (local development's console messages) belongs to the project through its delivery's id. Not
 * moved: limit_events, which no Worker reads or writes any more (its rows expire within a day and the
 * retention purge deletes them where they are), and limit_guard, which never holds a row.
 */
export const MOVED_TABLES: readonly MovedTable[] = [
  {
    table: 'users',
    key: ['id'],
    scope: 't.project_id = ?1',
    rowScope: byProject,
    freeUnique: `UPDATE users SET external_id = NULL WHERE project_id = ?2 AND external_id IN (${incoming('external_id')})`,
  },
  {
    table: 'phones',
    key: ['id'],
    scope: 't.project_id = ?1',
    rowScope: byProject,
    parent: `EXISTS (SELECT 1 FROM users WHERE users.id = json_extract(value, '$.user_id'))`,
    freeUnique: `UPDATE phones SET phone_number = '~' || id
      WHERE project_id = ?2 AND phone_number IN (${incoming('phone_number')})`,
  },
  {
    table: 'otp_codes',
    key: ['phone_id'],
    scope: 't.project_id = ?1',
    rowScope: byProject,
    parent: `EXISTS (SELECT 1 FROM phones WHERE phones.id = json_extract(value, '$.phone_id'))`,
  },
  {
    table: 'sessions',
    key: ['id'],
    scope: 't.project_id = ?1',
    rowScope: byProject,
    parent: `EXISTS (SELECT 1 FROM users WHERE users.id = json_extract(value, '$.user_id'))`,
    freeUnique: `UPDATE sessions SET token_hash = '~' || id WHERE project_id = ?2 AND token_hash IN (${incoming('token_hash')})`,
  },
  {
    table: 'session_factors',
    key: ['session_id', 'type', 'delivery_method', 'phone_id'],
    scope: 't.session_id IN (SELECT id FROM sessions WHERE project_id = ?1)',
    rowScope: (row, project) =>
      `EXISTS (SELECT 1 FROM sessions WHERE sessions.id = ${row}.session_id AND sessions.project_id = ${project})`,
    parent: `EXISTS (SELECT 1 FROM sessions WHERE sessions.id = json_extract(value, '$.session_id'))`,
  },
  {
    table: 'session_signing_keys',
    key: ['kid'],
    scope: 't.project_id = ?1',
    rowScope: byProject,
    // One active key per project: a key the source retired since it was copied gives way to its successor.
    freeUnique: `UPDATE session_signing_keys SET retired_at = 0
      WHERE project_id = ?2 AND retired_at IS NULL
        AND EXISTS (SELECT 1 FROM json_each(?1) WHERE json_extract(value, '$.retired_at') IS NULL)`,
  },
  {
    table: 'deliveries',
    key: ['id'],
    scope: 't.project_id = ?1',
    rowScope: byProject,
    freeUnique: `UPDATE deliveries SET fallback_of = NULL WHERE project_id = ?2 AND fallback_of IN (${incoming('fallback_of')})`,
  },
  {
    table: 'limit_counters',
    key: ['project_id', 'kind', 'subject', 'bucket'],
    scope: 't.project_id = ?1',
    rowScope: byProject,
  },
  {
    table: 'dev_outbox',
    key: ['id'],
    scope: 't.id IN (SELECT id FROM deliveries WHERE project_id = ?1)',
    rowScope: (row, project) =>
      `EXISTS (SELECT 1 FROM deliveries WHERE deliveries.id = ${row}.id AND deliveries.project_id = ${project})`,
  },
]

export type MovedTableName = (typeof MOVED_TABLES)[number]['table']

/** A row as D1 returns it. */
export type Row = Record<string, unknown>

const PROJECT_ID = /^project-(test|live)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** The project id as a SQL literal, for the triggers (which take no parameters); only a well-formed id. */
function projectLiteral(projectId: string): string {
  if (!PROJECT_ID.test(projectId)) throw new Error(`not a project id: ${projectId}`)
  return `'${projectId}'`
}

/** The triggers' names for one project: its id's hex digits keep them apart from another move's. */
const triggerName = (projectId: string, table: string, op: string) =>
  `shard_move_${projectId.replace(/[^0-9a-f]/g, '')}_${table}_${op}`

const OPS = [
  { op: 'insert', event: 'INSERT', row: 'NEW' },
  { op: 'update', event: 'UPDATE', row: 'NEW' },
  { op: 'delete', event: 'DELETE', row: 'OLD' },
] as const

/**
 * Starts logging, in the source shard, the key of every row of the project inserted, updated or
 * deleted from now on (shard_move_log): one trigger per table and operation, for this project only.
 * Deletes a foreign key cascades fire them too. Idempotent.
 */
export function captureStatements(db: D1Database, projectId: string): D1PreparedStatement[] {
  const project = projectLiteral(projectId)
  return MOVED_TABLES.flatMap(({ table, key, rowScope }) =>
    OPS.map(({ op, event, row }) =>
      db.prepare(
        `CREATE TRIGGER IF NOT EXISTS ${triggerName(projectId, table, op)} AFTER ${event} ON ${table}
         WHEN ${rowScope(row, project)}
         BEGIN
           INSERT INTO shard_move_log (project_id, tbl, row_key)
           VALUES (${project}, '${table}', json_array(${key.map((k) => `${row}.${k}`).join(', ')}));
         END`,
      ),
    ),
  )
}

/** Stops the logging captureStatements started. Idempotent. */
export function dropCaptureStatements(db: D1Database, projectId: string): D1PreparedStatement[] {
  projectLiteral(projectId)
  return MOVED_TABLES.flatMap(({ table }) =>
    OPS.map(({ op }) => db.prepare(`DROP TRIGGER IF EXISTS ${triggerName(projectId, table, op)}`)),
  )
}

/** Whether the capture triggers of the project exist in this shard. */
export async function captureInstalled(db: D1Database, projectId: string): Promise<boolean> {
  const row = await db
    .prepare(`SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'trigger' AND name LIKE ?1`)
    .bind(`${triggerName(projectId, '', '').replace(/__$/, '')}%`)
    .first<{ n: number }>()
  return (row?.n ?? 0) === MOVED_TABLES.length * OPS.length
}

/** Each moved table's columns in this database (a shard must be at the same migration as the other). */
export async function tableColumns(db: D1Database): Promise<Record<string, string[]>> {
  const batch = new Batch()
  const handles = MOVED_TABLES.map(
    ({ table }) =>
      [table, batch.add<{ name: string }>(db.prepare('SELECT name FROM pragma_table_info(?1)').bind(table))] as const,
  )
  await batch.run(db)
  return Object.fromEntries(handles.map(([table, h]) => [table, h.rows().map((r) => r.name)]))
}

function spec(table: string): MovedTable {
  const found = MOVED_TABLES.find((t) => t.table === table)
  if (!found) throw new Error(`not a moved table: ${table}`)
  return found
}

const keyOrder = (key: readonly string[]) => key.map((k) => `t.${k}`).join(', ')

/** Up to `limit` of the project's rows in key order, after the key `after` (a JSON array) when given. */
export function pageStatement(
  db: D1Database,
  table: string,
  projectId: string,
  after: unknown[] | null,
  limit: number,
): D1PreparedStatement {
  const { key, scope } = spec(table)
  const cursor = after
    ? ` AND (${keyOrder(key)}) > (${key.map((_, i) => `json_extract(?2, '$[${i}]')`).join(', ')})`
    : ''
  return db
    .prepare(`SELECT t.* FROM ${table} t WHERE ${scope}${cursor} ORDER BY ${keyOrder(key)} LIMIT ?3`)
    .bind(projectId, JSON.stringify(after ?? []), limit)
}

/** A row's key, as a JSON array (the form shard_move_log keeps). */
export function rowKey(table: string, row: Row): string {
  return JSON.stringify(spec(table).key.map((k) => row[k]))
}

/**
 * A row's primary key as a row value, `(a, b)`: what names a row in the deletes. Not the rowid,
 * which a WITHOUT ROWID table (limit_counters, otp_codes) does not have.
 */
const keyTuple = (key: readonly string[]) => `(${key.join(', ')})`
const keyJoin = (key: readonly string[]) => key.map((k, i) => `t.${k} = json_extract(k.value, '$[${i}]')`).join(' AND ')

/** The rows named by `keys` (JSON arrays) that exist in this database. */
export function rowsByKeyStatement(db: D1Database, table: string, keys: readonly string[]): D1PreparedStatement {
  const { key } = spec(table)
  return db
    .prepare(`SELECT t.* FROM ${table} t JOIN json_each(?1) k ON ${keyJoin(key)}`)
    .bind(JSON.stringify(keys.map((k) => JSON.parse(k))))
}

/** Deletes the rows named by `keys` (JSON arrays). */
export function deleteByKeyStatement(db: D1Database, table: string, keys: readonly string[]): D1PreparedStatement {
  const { key } = spec(table)
  return db
    .prepare(
      `DELETE FROM ${table} WHERE ${keyTuple(key)} IN (SELECT ${keyOrder(key)} FROM ${table} t JOIN json_each(?1) k ON ${keyJoin(key)})`,
    )
    .bind(JSON.stringify(keys.map((k) => JSON.parse(k))))
}

/**
 * Writes `rows` of one table of the project as they are: first gives up the unique values they carry
 * where another of the project's rows holds them (MovedTable.freeUnique), then upserts them by
 * primary key. With `skipOrphans`, a row whose parent is not there yet is left out instead of failing
 * the batch: while the bulk copy runs, such a row was written after its parent's table was copied, so
 * the change log names both and the catch-up copies them in order. `columns`: the table's columns.
 */
export function writeStatements(
  db: D1Database,
  table: string,
  projectId: string,
  columns: readonly string[],
  rows: readonly Row[],
  { skipOrphans }: { skipOrphans: boolean },
): D1PreparedStatement[] {
  if (rows.length === 0) return []
  const { key, parent, freeUnique } = spec(table)
  const json = JSON.stringify(rows.map((row) => Object.fromEntries(columns.map((c) => [c, row[c] ?? null]))))
  const values = columns.map((c) => `json_extract(value, '$.${c}')`).join(', ')
  const updates = columns.filter((c) => !key.includes(c)).map((c) => `${c} = excluded.${c}`)
  const onConflict = updates.length > 0 ? `DO UPDATE SET ${updates.join(', ')}` : 'DO NOTHING'
  const upsert = db
    .prepare(
      `INSERT INTO ${table} (${columns.join(', ')})
       SELECT ${values} FROM json_each(?1) WHERE ${skipOrphans && parent ? parent : 'true'}
       ON CONFLICT (${key.join(', ')}) ${onConflict}`,
    )
    .bind(json)
  return freeUnique ? [db.prepare(freeUnique).bind(json, projectId), upsert] : [upsert]
}

/** Deletes up to `limit` of the project's rows of `table` (a purge of one copy goes child tables first). */
export function purgeProjectStatement(
  db: D1Database,
  table: string,
  projectId: string,
  limit: number,
): D1PreparedStatement {
  const { scope, key } = spec(table)
  return db
    .prepare(
      `DELETE FROM ${table} WHERE ${keyTuple(key)} IN (SELECT ${keyOrder(key)} FROM ${table} t WHERE ${scope} LIMIT ?2)`,
    )
    .bind(projectId, limit)
}

/** The project's row count in `table`. */
export function countStatement(db: D1Database, table: string, projectId: string): D1PreparedStatement {
  return db.prepare(`SELECT COUNT(*) AS n FROM ${table} t WHERE ${spec(table).scope}`).bind(projectId)
}

/** A change-log entry: which row of which table was written (its key as a JSON array). */
export interface LogEntry {
  id: number
  tbl: string
  row_key: string
}

/** The project's oldest `limit` change-log entries. */
export function logEntriesStatement(db: D1Database, projectId: string, limit: number): D1PreparedStatement {
  return db
    .prepare('SELECT id, tbl, row_key FROM shard_move_log WHERE project_id = ?1 ORDER BY id LIMIT ?2')
    .bind(projectId, limit)
}

/** Forgets the project's change-log entries up to `upTo` (all of them without it). */
export function clearLogStatement(db: D1Database, projectId: string, upTo?: number): D1PreparedStatement {
  return db
    .prepare('DELETE FROM shard_move_log WHERE project_id = ?1 AND id <= ?2')
    .bind(projectId, upTo ?? Number.MAX_SAFE_INTEGER)
}
