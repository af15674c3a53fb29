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
}

interface ProjectRow {
  id: string
  env: ProjectEnv
  name: string
  secret_hash: string
  settings: string
  public_token: string | null
}

const PROJECT_COLUMNS = 'id, env, name, secret_hash, settings, public_token'

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
  const hit = cache.get(id, nowMs, maxAgeMs)
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
  const project: Project = {
    id: row.id,
    env: row.env,
    name: row.name,
    secretHash: fromHex(row.secret_hash) ?? new Uint8Array(0),
    settings: parseSettings(row.settings),
    publicToken: row.public_token,
  }
  unknown.delete(project.id)
  cache.set(project.id, project, nowMs)
  if (project.publicToken) {
    unknownTokens.delete(project.publicToken)
    projectIdByToken.set(project.publicToken, project.id, nowMs)
  }
  return project
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

/** Drops cached projects (tests change settings between cases). */
export function clearProjectCache(): void {
  cache.clear()
  unknown.clear()
  projectIdByToken.clear()
  unknownTokens.clear()
}
