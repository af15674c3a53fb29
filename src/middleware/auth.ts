import type { MiddlewareHandler } from 'hono'
import { now } from '../clock'
import { bytesEqual, sha256 } from '../crypto'
import { findProject, type Project, rereadProject } from '../db/projects'
import { projectEnv } from '../db/shard'
import type { AppEnv } from '../env'
import { StytchError } from '../errors'
import { type ProjectEnv, parseId } from '../ids'
import { setMetricDimensions } from '../metrics'
import { assertNotPaused } from '../shards/pause'

const MAX_AUTHORIZATION_LENGTH = 1_024

/**
 * HTTP Basic `project_id:secret`. The secret is hashed and compared with the stored SHA-256 in
 * constant time; every failure (missing, malformed, unknown project, wrong secret) is the same
 * `401 unauthorized_credentials`, so the reply does not reveal which projects exist.
 */
export function projectAuth(): MiddlewareHandler<AppEnv> {
  return async function projectAuthMiddleware(c, next) {
    const credentials = parseBasic(c.req.header('authorization'))
    if (!credentials) throw new StytchError('unauthorized_credentials')
    const env = parseId('project', credentials.projectId)
    if (!env) throw new StytchError('unauthorized_credentials')
    const at = now()
    const [cached, presented] = await Promise.all([
      findProject(c.env.DB, credentials.projectId, at),
      sha256(credentials.secret),
    ])
    let project = cached
    // A mismatch against a cached record may mean the secret was rotated since it was read: read the
    // record again (at most once a second per project and isolate) before refusing.
    if (project && !matches(project, presented, env)) {
      project = await rereadProject(c.env.DB, credentials.projectId, at)
    }
    // Compare against a dummy hash when the project is unknown so both paths do the same work.
    const ok = project ? matches(project, presented, env) : bytesEqual(presented, new Uint8Array(32)) && false
    if (!ok || !project) throw new StytchError('unauthorized_credentials')
    c.set('project', project)
    setMetricDimensions({ project: project.id })
    // A project moving between shards is paused for a few seconds (503 with Retry-After).
    assertNotPaused(project, at)
    // From here on, DB is the database holding this project's data.
    c.env = projectEnv(c.env, project)
    await next()
  }
}

/** The presented secret hashes to the stored one (constant time) and the id's infix is the project's env. */
function matches(project: Project, presented: Uint8Array, env: ProjectEnv): boolean {
  return bytesEqual(presented, project.secretHash) && project.env === env
}

/** The user name and password of an HTTP Basic header, or null when it is missing or malformed. */
export function parseBasic(header: string | undefined): { projectId: string; secret: string } | null {
  if (!header || header.length > MAX_AUTHORIZATION_LENGTH) return null
  const match = /^Basic ([A-Za-z0-9+/]+={0,2})$/i.exec(header.trim())
  if (!match?.[1]) return null
  let decoded: string
  try {
    decoded = atob(match[1])
  } catch {
    return null
  }
  const colon = decoded.indexOf(':')
  if (colon <= 0 || colon === decoded.length - 1) return null
  return { projectId: decoded.slice(0, colon), secret: decoded.slice(colon + 1) }
}
