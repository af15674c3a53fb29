import { openRotating, type RotatingSecret, type Sealed, sealCurrent, secretFingerprint } from '../crypto'
import {
  type Reseal,
  resealStatement,
  type SealedSession,
  type SessionRow,
  type UnsealedSessionRow,
  unsealedSessionsStatement,
} from '../db/sessions'
import { rotatingSecret } from '../env'
import { logEvent } from '../log'

/**
 * What a session row keeps sealed, and keeping it so across a change of SESSION_KEY_ENCRYPTION_KEY.
 *
 * The token is kept sealed so that every session reply can return it (Stytch does, whichever
 * credential was presented), and the end user's IP address and user agent, which the Session object
 * returns, are kept sealed for the session's life instead of in clear. Each is AES-256-GCM under its
 * own key derived (HKDF-SHA-256) from SESSION_KEY_ENCRYPTION_KEY, with an info string naming the
 * purpose, and bound to project and session id: no further secret is needed, no two purposes share
 * a key, and a leaked database alone yields neither. The signing keys' seal is a third sibling
 * (src/sessions/keys.ts).
 *
 * A row records which secret sealed it (sealed_with, a fingerprint HKDF derives from the secret). A
 * row sealed under another one (the previous value during a rotation), or before fingerprints and
 * sealed attributes existed (NULL; its attributes may be in clear), is sealed anew under the current
 * secret when a request reads it, and by the hourly run (resealSessions) when none does, so removing
 * SESSION_KEY_ENCRYPTION_KEY_PREVIOUS after a complete run loses nothing.
 */

const TOKEN_INFO = 'session-token:v1'
const ATTRIBUTES_INFO = 'session-attributes:v1'
const FINGERPRINT_INFO = 'session-key-fingerprint:v1'

const aad = (info: string, projectId: string, sessionId: string) => `${info}:${projectId}:${sessionId}`

/** The Session object's `attributes`. */
export interface SessionAttributes {
  ip_address: string
  user_agent: string
}

/** SESSION_KEY_ENCRYPTION_KEY (and its previous value) with the fingerprints rows record. */
export interface SessionSecret {
  secret: RotatingSecret
  current: string
  previous: string | null
}

export async function sessionSecret(env: Env): Promise<SessionSecret> {
  const secret = rotatingSecret(env, 'SESSION_KEY_ENCRYPTION_KEY')
  const [current, previous] = await Promise.all([
    secretFingerprint(secret.current, FINGERPRINT_INFO),
    secret.previous ? secretFingerprint(secret.previous, FINGERPRINT_INFO) : null,
  ])
  return { secret, current, previous }
}

/** Seals a session's token and attributes under the current secret. */
export async function sealSession(
  keys: SessionSecret,
  projectId: string,
  sessionId: string,
  token: string,
  attributes: SessionAttributes,
): Promise<SealedSession & { token: Sealed }> {
  const [sealedToken, sealedAttributes] = await Promise.all([
    sealCurrent(keys.secret, token, aad(TOKEN_INFO, projectId, sessionId), TOKEN_INFO),
    sealCurrent(keys.secret, JSON.stringify(attributes), aad(ATTRIBUTES_INFO, projectId, sessionId), ATTRIBUTES_INFO),
  ])
  return { token: sealedToken, attributes: sealedAttributes, sealedWith: keys.current }
}

/** A session row opened: its token ('' when none is readable), its attributes, and whether to re-seal. */
export interface OpenedSession {
  token: string
  attributes: SessionAttributes
  /** Sealed under another secret than the current one, or not (all) sealed: to be sealed anew. */
  stale: boolean
}

/** Opens one sealed value under the current or previous secret, or null (logged) when neither opens it. */
async function openSealed(
  keys: SessionSecret,
  info: string,
  projectId: string,
  row: SessionRow,
  sealed: { iv: string | null; ct: string | null },
): Promise<string | null> {
  if (!sealed.iv || !sealed.ct) return null
  try {
    return (await openRotating(keys.secret, { iv: sealed.iv, ct: sealed.ct }, aad(info, projectId, row.id), info))
      .plaintext
  } catch {
    logEvent('error', 'session_seal_unreadable', { project_id: projectId, session_id: row.id, purpose: info })
    return null
  }
}

function parseAttributes(json: string | null, row: SessionRow): SessionAttributes {
  if (json === null) return { ip_address: row.ip_address, user_agent: row.user_agent }
  const value = JSON.parse(json) as Partial<SessionAttributes>
  return { ip_address: String(value.ip_address ?? ''), user_agent: String(value.user_agent ?? '') }
}

/**
 * Opens a session row. The token is '' when the row has none sealed (sessions started before tokens
 * were kept) or it opens under neither the current nor the previous secret (logged); attributes not
 * yet sealed are read from the clear columns.
 */
export async function openSession(keys: SessionSecret, projectId: string, row: SessionRow): Promise<OpenedSession> {
  const [token, attributes] = await Promise.all([
    openSealed(keys, TOKEN_INFO, projectId, row, { iv: row.token_iv, ct: row.token_ct }),
    openSealed(keys, ATTRIBUTES_INFO, projectId, row, { iv: row.attributes_iv, ct: row.attributes_ct }),
  ])
  return {
    token: token ?? '',
    attributes: parseAttributes(attributes, row),
    stale: row.sealed_with !== keys.current || row.attributes_ct === null,
  }
}

/** `row` sealed anew under the current secret, for resealStatement. */
async function resealOf(
  keys: SessionSecret,
  projectId: string,
  row: SessionRow,
  opened: OpenedSession,
): Promise<Reseal> {
  const sealed: SealedSession = await sealSession(keys, projectId, row.id, opened.token, opened.attributes)
  // A token that could not be read stays as it was rather than becoming an empty one.
  if (opened.token === '') sealed.token = null
  return { projectId, sessionId: row.id, sealed, was: row.sealed_with }
}

/** Seals the stale ones of `opened` rows anew, in one statement; nothing when none is stale. */
async function resealStale(
  db: D1Database,
  keys: SessionSecret,
  opened: readonly { projectId: string; row: SessionRow; opened: OpenedSession }[],
): Promise<void> {
  const stale = opened.filter((o) => o.opened.stale)
  if (stale.length === 0) return
  const rows = await Promise.all(stale.map((o) => resealOf(keys, o.projectId, o.row, o.opened)))
  await resealStatement(db, rows).run()
}

/** openSession, with a token the request presented standing in for one that is missing or unreadable. */
async function openWithKnown(
  keys: SessionSecret,
  projectId: string,
  row: SessionRow,
  knownToken: string | undefined,
): Promise<OpenedSession> {
  const opened = await openSession(keys, projectId, row)
  return knownToken && opened.token === '' ? { ...opened, token: knownToken, stale: true } : opened
}

/**
 * Opens the session row a reply is built from, and seals it anew if it is stale (only then: a row
 * sealed under the current secret costs nothing more). `knownToken` is the plain token the request
 * presented: it stands in for a sealed token that cannot be read or was never kept, and is sealed
 * with the row.
 */
export async function openSessionRow(
  env: Env,
  projectId: string,
  row: SessionRow,
  knownToken?: string,
): Promise<OpenedSession> {
  const keys = await sessionSecret(env)
  const opened = await openWithKnown(keys, projectId, row, knownToken)
  await resealStale(env.DB, keys, [{ projectId, row, opened }])
  return opened
}

/** openSessionRow for the rows of a list, the stale ones sealed anew in one statement. */
export async function openSessionRows<R extends SessionRow>(
  env: Env,
  projectId: string,
  rows: readonly R[],
): Promise<{ row: R; opened: OpenedSession }[]> {
  if (rows.length === 0) return []
  const keys = await sessionSecret(env)
  const all = await Promise.all(
    rows.map(async (row) => ({ projectId, row, opened: await openWithKnown(keys, projectId, row, undefined) })),
  )
  await resealStale(env.DB, keys, all)
  return all
}

/** Rows the sealing run reads (and writes back in one statement) per round. */
export const RESEAL_BATCH_ROWS = 500
/** Rounds per run (two D1 queries each); what is left waits for the next hourly run. */
export const RESEAL_MAX_ROUNDS = 40

/**
 * For the hourly run (src/retention.ts): seals anew, under the current secret, the live sessions
 * still sealed under the previous one or sealed before fingerprints were recorded (sessions that
 * kept their attributes in clear among them), in rounds of `batchRows`, at most `maxRounds`.
 * `complete`: none is left.
 */
export async function resealSessions(
  env: Env,
  at: number,
  { batchRows = RESEAL_BATCH_ROWS, maxRounds = RESEAL_MAX_ROUNDS } = {},
): Promise<{ sessions: number; complete: boolean }> {
  const keys = await sessionSecret(env)
  let sessions = 0
  let rounds = 0
  let more = true
  while (more && rounds < maxRounds) {
    rounds += 1
    const { results } = await unsealedSessionsStatement(env.DB, at, keys.previous, batchRows).all<UnsealedSessionRow>()
    const opened = await Promise.all(
      results.map(async (row) => ({
        projectId: row.project_id,
        row,
        opened: await openSession(keys, row.project_id, row),
      })),
    )
    await resealStale(env.DB, keys, opened)
    sessions += results.length
    more = results.length >= batchRows
  }
  return { sessions, complete: !more }
}
