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
}

interface ProjectRow {
  id: string
  env: ProjectEnv
  name: string
  secret_hash: string
  settings: string
}

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
  const row = await db
    .prepare('SELECT id, env, name, secret_hash, settings FROM projects WHERE id = ?1')
    .bind(id)
    .first<ProjectRow>()
  if (!row) {
    cache.delete(id)
    unknown.set(id, true, nowMs)
    return null
  }
  const project: Project = {
    id: row.id,
    env: row.env,
    name: row.name,
    secretHash: fromHex(row.secret_hash) ?? new Uint8Array(0),
    settings: parseSettings(row.settings),
  }
  unknown.delete(id)
  cache.set(id, project, nowMs)
  return project
}

/** Drops cached projects (tests change settings between cases). */
export function clearProjectCache(): void {
  cache.clear()
  unknown.clear()
}
