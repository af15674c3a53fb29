import { IsolateCache } from '../cache'
import { fromHex } from '../crypto'
import { type ProjectEnv } from '../ids'
import { type ProjectSettings, parseSettings } from '../settings'

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
// still hashed and compared on every request); entries expire so a rotated secret or changed
// settings take effect within PROJECT_CACHE_TTL_MS. Misses are not cached.
const PROJECT_CACHE_TTL_MS = 30_000
const PROJECT_CACHE_MAX = 1_000
const cache = new IsolateCache<Project>(PROJECT_CACHE_TTL_MS, PROJECT_CACHE_MAX)

export async function findProject(db: D1Database, id: string, nowMs: number): Promise<Project | null> {
  const hit = cache.get(id, nowMs)
  if (hit) return hit
  const row = await db
    .prepare('SELECT id, env, name, secret_hash, settings FROM projects WHERE id = ?1')
    .bind(id)
    .first<ProjectRow>()
  if (!row) {
    cache.delete(id)
    return null
  }
  const project: Project = {
    id: row.id,
    env: row.env,
    name: row.name,
    secretHash: fromHex(row.secret_hash) ?? new Uint8Array(0),
    settings: parseSettings(row.settings),
  }
  cache.set(id, project, nowMs)
  return project
}

/** Drops cached projects (tests change settings between cases). */
export function clearProjectCache(): void {
  cache.clear()
}
