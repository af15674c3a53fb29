import type { Project } from '../db/projects'
import { StytchError } from '../errors'

/**
 * Who may call /sdk/v1 for a project: the frontend SDKs run in web pages, so the request's origin
 * (which a browser sets and a page cannot change) decides, against the project's exact list. A test
 * project also accepts local development pages, on any port, as Stytch's test environment does.
 */

/** `public-token-test-<uuid>` / `public-token-live-<uuid>`. */
const PUBLIC_TOKEN = /^public-token-(test|live)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** The environment a well-formed public token names, or null when it is not one. */
export function publicTokenEnv(token: string): 'test' | 'live' | null {
  const m = PUBLIC_TOKEN.exec(token)
  return m ? (m[1] as 'test' | 'live') : null
}

/** A page served from this machine: http://localhost or http://127.0.0.1, any port. */
export function isLocalDevOrigin(origin: string): boolean {
  return /^http:\/\/(localhost|127\.0\.0\.1)(:[0-9]{1,5})?$/.test(origin)
}

/**
 * The origin of the page that sent the request: its Origin header; for a same-origin GET, which
 * carries none, the request's own origin when the browser says so (Sec-Fetch-Site). Null for a
 * request that names no page (not sent by a browser), which no project authorizes.
 */
export function requestOrigin(request: Request): string | null {
  const origin = request.headers.get('origin')
  if (origin !== null) return origin === 'null' ? null : origin
  if (request.headers.get('sec-fetch-site') === 'same-origin') return new URL(request.url).origin
  return null
}

/**
 * Refuses a call the project does not allow from `origin`: the SDK switched off (sdk_enabled false:
 * 401 endpoint_not_authorized_for_sdk, as Stytch answers an SDK route a project has not enabled), a
 * live project that lists no origin yet (its SDK stays off until one is set), or an origin it does
 * not list (403 origin_not_authorized). Each message says what to configure.
 */
export function assertOriginAuthorized(project: Project, origin: string | null): void {
  const origins = project.settings.sdk_authorized_origins
  if (project.settings.sdk_enabled === false) {
    throw new StytchError('endpoint_not_authorized_for_sdk', {
      message: 'The frontend SDKs are switched off for this project (sdk_enabled is false).',
    })
  }
  if (project.env === 'live' && origins.length === 0) {
    throw new StytchError('origin_not_authorized', {
      message:
        'This live project authorizes no origin for the frontend SDKs: list the origins of your web app in ' +
        'sdk_authorized_origins (npm run project:update -- --id <project id> --set ' +
        'sdk_authorized_origins=https://app.example.com --remote).',
    })
  }
  if (origin !== null && (origins.includes(origin) || (project.env === 'test' && isLocalDevOrigin(origin)))) return
  throw new StytchError('origin_not_authorized', {
    message:
      origin === null
        ? 'The frontend SDK routes answer web pages only: the request has no Origin.'
        : `The origin ${origin} is not in this project's sdk_authorized_origins.`,
  })
}
