import { StytchError } from '../errors'

/**
 * The session half of the OTP endpoints, in one place for the sessions work (issue 8). Today no
 * session is ever started: authenticate answers as Stytch does when session_duration_minutes is
 * absent, and an existing session cannot be presented.
 */
export interface SessionResult {
  session_token: string
  session_jwt: string
  session: null
}

/** The session fields of an authenticate response: no session was started. */
export function sessionResult(): SessionResult {
  return { session_token: '', session_jwt: '', session: null }
}

/**
 * A session_token or session_jwt names a session this service cannot have issued. Refused clearly
 * (400) rather than answered as an unknown session, so callers see that the feature is missing.
 */
export function rejectSessionCredentials(input: {
  session_token?: string | undefined
  session_jwt?: string | undefined
}) {
  const given =
    input.session_token !== undefined ? 'session_token' : input.session_jwt !== undefined ? 'session_jwt' : null
  if (given) {
    throw new StytchError('bad_request', {
      message: `Sessions are not enabled on this service, so ${given} cannot be used. Omit it.`,
    })
  }
}
