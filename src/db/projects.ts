import { IsolateCache } from '../cache'
import { fromHex } from '../crypto'
import type { ProjectEnv } from '../ids'
import { PROJECT_CACHE_TTL_MS, type ProjectSettings, parseSettings } from '../settings'

export interface Project {
  id: string
  env: ProjectEnv
  name: string
  /** SHA-256 of the secret, raw bytes. */
  secretHash: Uint8Array
  settings: ProjectSettings
  /** What the frontend SDKs present to /sdk/v1 (not a secret); null for a project that has none. */
  publicToken: string | null
  /** The D1 shard holding the project's data (src/db/shard.ts). */
  shard: number
  /** A move to another shard under way (src/shards/move.ts), or null. */
  move: ProjectMove | null
}

/** A move between shards as the directory records it (schema.sql, projects.move_*). */
export interface ProjectMove {
  from: number
  to: number
  /** The last step done. */
  step: string
  /** When the pause starts (the project is answered 503 from then until the flip), once announced. */
  pauseAt: number | null
  /** When projects.shard was switched to `to`. */
  flippedAt: number | null
  /** Until when the run of the move that holds it keeps it (another run waits until then). */
  ownerUntil: number | null
}

interface ProjectRow {
  id: string
  env: ProjectEnv
  name: string
  secret_hash: string
  settings: string
  public_token: string | null
  shard: number
  move_from: number | null
  move_to: number | null
  move_step: string | null
  move_pause_at: number | null
  move_flipped_at: number | null
  move_owner_until: number | null
}

const PROJECT_COLUMNS =
  'id, env, name, secret_hash, settings, public_token, shard, move_from, move_to, move_step, move_pause_at, move_flipped_at, move_owner_until'

// Warm isolates authenticate without touching D1. Only the stored record is cached (the secret is
// still hashed and compared on every request); entries expire so changed settings take effect within
// PROJECT_CACHE_TTL_MS. A rotated secret is accepted sooner: a credential that does not match a
// cached record re-reads it (rereadProject), so the new secret works at once and, in that isolate,
// the old one stops with that read. An isolate that has not seen the new secret keeps accepting the
// old one until its copy expires, so the old secret is refused everywhere within PROJECT_CACHE_TTL_MS
// (which is what `npm run project:update` says). Ids that name no project are remembered for
// UNKNOWN_PROJECT_TTL_MS in a cache of their own, so repeating one costs no D1 read and spraying
// unknown ids never evicts a real project.
const PROJECT_CACHE_MAX = 1_000
/** A failed credential re-reads a project's record only if it was read at least this long ago. */
export const PROJECT_REREAD_MIN_MS = 1_000
/** How long an isolate answers "no such project" for an id without asking D1 again. */
export const UNKNOWN_PROJECT_TTL_MS = 10_000
const cache = new IsolateCache<Project>(PROJECT_CACHE_TTL_MS, PROJECT_CACHE_MAX)
const unknown = new IsolateCache<true>(UNKNOWN_PROJECT_TTL_MS, PROJECT_CACHE_MAX)
// Public tokens are looked up the same way: the token names a project id, whose record is the one
// cached above, so a rotated token is seen as soon as that record is read again.
const projectIdByToken = new IsolateCache<string>(PROJECT_CACHE_TTL_MS, PROJECT_CACHE_MAX)
const unknownTokens = new IsolateCache<true>(UNKNOWN_PROJECT_TTL_MS, PROJECT_CACHE_MAX)

/** The project `id` from the isolate cache, else D1; null when there is no such project. */
export function findProject(db: D1Database, id: string, nowMs: number): Promise<Project | null> {
  return lookup(db, id, nowMs, PROJECT_CACHE_TTL_MS)
}

/**
 * The project `id` after a presented credential did not match what findProject returned: read again
 * from D1 unless this isolate read it less than PROJECT_REREAD_MIN_MS ago. Wrong secrets sent in a
 * flood therefore cost at most one D1 read per project per second in each isolate, while a secret
 * rotated in D1 is picked up by the first request that presents it.
 */
export function rereadProject(db: D1Database, id: string, nowMs: number): Promise<Project | null> {
  return lookup(db, id, nowMs, PROJECT_REREAD_MIN_MS)
}

async function lookup(db: D1Database, id: string, nowMs: number, maxAgeMs: number): Promise<Project | null> {
  // A project in its pause waits for the flip of its move, which ends the pause: its record is read
  // again at most once a second, so the pause ends everywhere within a second of the flip.
  const cached = cache.peek(id)
  const hit = cache.get(id, nowMs, cached && isPaused(cached, nowMs) ? PROJECT_REREAD_MIN_MS : maxAgeMs)
  if (hit) return hit
  if (unknown.get(id, nowMs, maxAgeMs)) return null
  const row = await db.prepare(`SELECT ${PROJECT_COLUMNS} FROM projects WHERE id = ?1`).bind(id).first<ProjectRow>()
  if (!row) {
    cache.delete(id)
    unknown.set(id, true, nowMs)
    return null
  }
  return remember(row, nowMs)
}

function remember(row: ProjectRow, nowMs: number): Project {
  const project = toProject(row)
  unknown.delete(project.id)
  cache.set(project.id, project, nowMs)
  if (project.publicToken) {
    unknownTokens.delete(project.publicToken)
    projectIdByToken.set(project.publicToken, project.id, nowMs)
  }
  return project
}

function toProject(row: ProjectRow): Project {
  return {
    id: row.id,
    env: row.env,
    name: row.name,
    secretHash: fromHex(row.secret_hash) ?? new Uint8Array(0),
    settings: parseSettings(row.settings),
    publicToken: row.public_token,
    shard: row.shard,
    move:
      row.move_from === null || row.move_to === null
        ? null
        : {
            from: row.move_from,
            to: row.move_to,
            step: row.move_step ?? '',
            pauseAt: row.move_pause_at,
            flippedAt: row.move_flipped_at,
            ownerUntil: row.move_owner_until,
          },
  }
}

/**
 * The project whose public token is `token`, from the isolate cache, else D1 (its unique index);
 * null when no project has it. A cached record that no longer carries the token (rotated since) is
 * read again, at most once a second per token and isolate: after a rotation the new token works at
 * once, and the old one stops when the record is read again (at the latest after the cache lifetime,
 * at once in an isolate that has seen the new token).
 */
export async function findProjectByPublicToken(db: D1Database, token: string, nowMs: number): Promise<Project | null> {
  const id = projectIdByToken.get(token, nowMs)
  const cached = id ? await findProject(db, id, nowMs) : null
  if (cached?.publicToken === token) return cached
  if (unknownTokens.get(token, nowMs, cached ? PROJECT_REREAD_MIN_MS : UNKNOWN_PROJECT_TTL_MS)) return null
  const row = await db
    .prepare(`SELECT ${PROJECT_COLUMNS} FROM projects WHERE public_token = ?1`)
    .bind(token)
    .first<ProjectRow>()
  if (!row) {
    projectIdByToken.delete(token)
    unknownTokens.set(token, true, nowMs)
    return null
  }
  return remember(row, nowMs)
}

/** True while the project's move pauses it: from the announced start of the pause until the flip. */
export function isPaused(project: Pick<Project, 'move'>, nowMs: number): boolean {
  const pauseAt = project.move?.pauseAt
  return pauseAt !== null && pauseAt !== undefined && nowMs >= pauseAt
}

// Whether any project is moving between shards: the status webhooks then apply each status on every
// shard (a moving project's rows are in two). Remembered like a project record: a move announces its
// pause a cache lifetime before the pause starts, so every isolate knows of it before its final copy.
const movesCache = new IsolateCache<boolean>(PROJECT_CACHE_TTL_MS, 1)

/** True when some project's move between shards is under way (from its start until its purge). */
export async function movesUnderWay(db: D1Database, nowMs: number): Promise<boolean> {
  const hit = movesCache.get('moves', nowMs)
  if (hit !== undefined) return hit
  const row = await db.prepare('SELECT 1 AS moving FROM projects WHERE move_to IS NOT NULL LIMIT 1').first()
  const moving = row !== null
  movesCache.set('moves', moving, nowMs)
  return moving
}

/** Drops cached projects (tests change settings between cases). */
export function clearProjectCache(): void {
  cache.clear()
  unknown.clear()
  projectIdByToken.clear()
  unknownTokens.clear()
  movesCache.clear()
}

/**
 * The directory's side of a move between shards (src/shards/move.ts): each statement records one
 * step on the project's row and is idempotent, so a move stopped anywhere resumes from what the row says.
 */

/** The project's directory row with its move, read fresh (never cached): the move's own view. */
export async function readProjectForMove(db: D1Database, id: string): Promise<Project | null> {
  const row = await db.prepare(`SELECT ${PROJECT_COLUMNS} FROM projects WHERE id = ?1`).bind(id).first<ProjectRow>()
  return row ? toProject(row) : null
}

/**
 * Records the start of a move from `from` to `to` (only when no other move of the project is under
 * way), held by the run `owner` until `ownerUntil`.
 */
export function startMoveStatement(
  db: D1Database,
  id: string,
  move: { from: number; to: number; owner: string; ownerUntil: number },
): D1PreparedStatement {
  return db
    .prepare(
      `UPDATE projects SET move_from = ?2, move_to = ?3, move_step = 'starting', move_pause_at = NULL,
         move_flipped_at = NULL, move_owner = ?4, move_owner_until = ?5
       WHERE id = ?1 AND shard = ?2 AND move_to IS NULL`,
    )
    .bind(id, move.from, move.to, move.owner, move.ownerUntil)
}

/**
 * Takes or renews the lease on the project's move for the run `owner`, until `until`: granted when
 * the move is free, already this run's, or its holder's lease ended at or before `at` (that run died).
 * Changes one row when granted.
 */
export function claimMoveStatement(
  db: D1Database,
  id: string,
  owner: string,
  at: number,
  until: number,
): D1PreparedStatement {
  return db
    .prepare(
      `UPDATE projects SET move_owner = ?2, move_owner_until = ?4
       WHERE id = ?1 AND move_to IS NOT NULL
         AND (move_owner IS NULL OR move_owner = ?2 OR move_owner_until <= ?3)`,
    )
    .bind(id, owner, at, until)
}

/** Gives the lease back (a run that stopped): the next run may take the move at once. */
export function releaseMoveStatement(db: D1Database, id: string, owner: string): D1PreparedStatement {
  return db
    .prepare('UPDATE projects SET move_owner = NULL, move_owner_until = NULL WHERE id = ?1 AND move_owner = ?2')
    .bind(id, owner)
}

/** Records the last step done. */
export function moveStepStatement(db: D1Database, id: string, step: string): D1PreparedStatement {
  return db.prepare('UPDATE projects SET move_step = ?2 WHERE id = ?1 AND move_to IS NOT NULL').bind(id, step)
}

/** Announces the pause: it starts at `pauseAt`, unless an earlier run of the move announced it already. */
export function announcePauseStatement(db: D1Database, id: string, pauseAt: number): D1PreparedStatement {
  return db
    .prepare(
      `UPDATE projects SET move_pause_at = COALESCE(move_pause_at, ?2)
       WHERE id = ?1 AND move_to IS NOT NULL AND move_flipped_at IS NULL`,
    )
    .bind(id, pauseAt)
}

/** Ends the pause of a move that will not flip (it is being abandoned). */
export function liftPauseStatement(db: D1Database, id: string): D1PreparedStatement {
  return db.prepare('UPDATE projects SET move_pause_at = NULL WHERE id = ?1 AND move_flipped_at IS NULL').bind(id)
}

/** The flip: the project's shard becomes the move's target and its pause ends. */
export function flipStatement(db: D1Database, id: string, at: number): D1PreparedStatement {
  return db
    .prepare(
      `UPDATE projects SET shard = move_to, move_pause_at = NULL, move_flipped_at = COALESCE(move_flipped_at, ?2),
         move_step = 'flipped'
       WHERE id = ?1 AND move_to IS NOT NULL`,
    )
    .bind(id, at)
}

/** Ends the record of a move: done (after the purge), or abandoned before its flip. */
export function endMoveStatement(db: D1Database, id: string): D1PreparedStatement {
  return db
    .prepare(
      `UPDATE projects SET move_from = NULL, move_to = NULL, move_step = NULL, move_pause_at = NULL,
         move_flipped_at = NULL, move_owner = NULL, move_owner_until = NULL
       WHERE id = ?1`,
    )
    .bind(id)
}

/**
 * The project's row in a shard other than the directory: the anchor its rows' foreign keys point at.
 * It carries no secret, settings or token (the directory's row is the one read); `shard` is its own.
 */
export function anchorStatement(db: D1Database, project: Project, shard: number, createdAt: number) {
  return db
    .prepare(
      `INSERT INTO projects (id, env, name, secret_hash, settings, created_at, shard)
       VALUES (?1, ?2, ?3, '', '{}', ?4, ?5)
       ON CONFLICT (id) DO NOTHING`,
    )
    .bind(project.id, project.env, project.name, createdAt, shard)
}

/** Deletes the project's anchor row from a shard other than the directory. */
export function deleteAnchorStatement(db: D1Database, id: string): D1PreparedStatement {
  return db.prepare('DELETE FROM projects WHERE id = ?1').bind(id)
}
