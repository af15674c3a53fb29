import type { Project } from '../db/projects'
import { StytchError } from '../errors'
import { canonicalIp, parseIp } from '../ip'
import type { AttributesInput } from '../schemas'

/**
 * What a browser's SDK call may not choose for itself, decided here from the request and the
 * project: the end user's IP address and user agent, and how long a session lasts.
 */

/** The longest user agent kept (the /v1 attributes limit); a longer one is cut, not refused. */
const MAX_USER_AGENT = 1_024

/**
 * The end user's attributes as the request itself shows them: the connecting IP that Cloudflare's
 * edge puts in CF-Connecting-IP (a client cannot set it there: the edge overwrites it) and the
 * User-Agent header. So the per-IP abuse limits count the browser's real address, which a page
 * could never choose, and a session records where it was started.
 */
export function requestAttributes(request: Request): AttributesInput {
  const ip = request.headers.get('cf-connecting-ip')?.trim()
  const userAgent = request.headers.get('user-agent')?.slice(0, MAX_USER_AGENT)
  return {
    ip_address: ip && parseIp(ip) ? canonicalIp(ip) : undefined,
    user_agent: userAgent || undefined,
  }
}

/** The SDK's own default for session_duration_minutes (its DEFAULT_SESSION_DURATION_MINUTES). */
export const SDK_DEFAULT_SESSION_MINUTES = 30

/**
 * session_duration_minutes for an SDK call: at most the project's sdk_max_session_minutes (more is
 * 400 invalid_session_duration, Stytch's error for it). Without a value, an authenticate that has no
 * session yet starts one of the SDK's default length (never past the cap), and one that has a session
 * leaves its expiry alone.
 */
export function sdkSessionMinutes(
  project: Project,
  requested: number | undefined,
  startsSession: boolean,
): number | undefined {
  const max = project.settings.sdk_max_session_minutes
  if (requested === undefined) return startsSession ? Math.min(SDK_DEFAULT_SESSION_MINUTES, max) : undefined
  if (requested > max) {
    throw new StytchError('invalid_session_duration', {
      message: `session_duration_minutes may be at most ${max} for the frontend SDKs (sdk_max_session_minutes).`,
    })
  }
  return requested
}
