import { Batch } from './batch'

/**
 * The session_signing_keys table (schema.sql): per-project RS256 keys, the private half sealed. A
 * project has at most one active key (retired_at NULL), enforced by a partial unique index.
 */

/** A session_signing_keys row as the signer reads it. */
export interface KeyRow {
  kid: string
  public_jwk: string
  private_key_iv: string
  private_key_ct: string
  created_at: number
  retired_at: number | null
  /** Fingerprint of the SESSION_KEY_ENCRYPTION_KEY that sealed it; null: sealed before it was recorded. */
  sealed_with: string | null
}

/** A key as the JWKS and the verifier read it. */
export type PublicKeyRow = Pick<KeyRow, 'kid' | 'public_jwk' | 'retired_at'>

/** A new key: the public JWK as JSON and the sealed private key. */
export interface NewKey {
  kid: string
  publicJwk: string
  iv: string
  ct: string
  sealedWith: string
}

const KEY_COLUMNS = 'kid, public_jwk, private_key_iv, private_key_ct, created_at, retired_at, sealed_with'

const activeKeyStatement = (db: D1Database, projectId: string) =>
  db
    .prepare(`SELECT ${KEY_COLUMNS} FROM session_signing_keys WHERE project_id = ?1 AND retired_at IS NULL`)
    .bind(projectId)

/** The project's active key, or null when it has none. */
export function activeKey(db: D1Database, projectId: string): Promise<KeyRow | null> {
  return activeKeyStatement(db, projectId).first<KeyRow>()
}

/**
 * In one batch: retires the active key `retire` (when given and still active), inserts `key` as
 * the active key, and reads back whichever key is active afterwards. The insert loses quietly to a
 * concurrent creator (the partial unique index), so the key returned may be that creator's.
 */
export async function replaceActiveKey(
  db: D1Database,
  projectId: string,
  key: NewKey,
  at: number,
  retire: string | undefined,
): Promise<KeyRow | undefined> {
  const batch = new Batch()
  if (retire) {
    batch.add(
      db
        .prepare(
          `UPDATE session_signing_keys SET retired_at = ?3
           WHERE project_id = ?1 AND kid = ?2 AND retired_at IS NULL`,
        )
        .bind(projectId, retire, at),
    )
  }
  batch.add(
    db
      .prepare(
        `INSERT INTO session_signing_keys
           (kid, project_id, public_jwk, private_key_iv, private_key_ct, created_at, sealed_with)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING`,
      )
      .bind(key.kid, projectId, key.publicJwk, key.iv, key.ct, at, key.sealedWith),
  )
  const winner = batch.add<KeyRow>(activeKeyStatement(db, projectId))
  await batch.run(db)
  return winner.first()
}

/** One key's private half sealed anew, to be stored if it is still sealed as `previousCt`. */
export interface KeyReseal {
  projectId: string
  kid: string
  iv: string
  ct: string
  sealedWith: string
  previousCt: string
}

/**
 * Stores keys' private halves sealed anew (with the fingerprint of the secret that sealed them), each
 * only if it is still sealed as its `previousCt`: a concurrent re-seal by another isolate wins
 * harmlessly. One statement for any number of keys (one JSON parameter).
 */
export async function resealKeys(db: D1Database, keys: readonly KeyReseal[]): Promise<void> {
  if (keys.length === 0) return
  await db
    .prepare(
      `UPDATE session_signing_keys AS k SET private_key_iv = v.iv, private_key_ct = v.ct, sealed_with = v.sealed_with
       FROM (SELECT value ->> '$.projectId' AS project_id, value ->> '$.kid' AS kid, value ->> '$.iv' AS iv,
               value ->> '$.ct' AS ct, value ->> '$.sealedWith' AS sealed_with, value ->> '$.previousCt' AS previous_ct
             FROM json_each(?1)) AS v
       WHERE k.project_id = v.project_id AND k.kid = v.kid AND k.private_key_ct = v.previous_ct`,
    )
    .bind(JSON.stringify(keys))
    .run()
}

/**
 * Up to `limit` active keys of any project sealed before fingerprints were recorded or under the
 * secret with fingerprint `previous`, with their project (retired keys never sign again).
 */
export function unsealedActiveKeysStatement(
  db: D1Database,
  previous: string | null,
  limit: number,
): D1PreparedStatement {
  return db
    .prepare(
      `SELECT ${KEY_COLUMNS}, project_id FROM session_signing_keys
       WHERE retired_at IS NULL AND (sealed_with IS NULL OR sealed_with = ?1) LIMIT ?2`,
    )
    .bind(previous, limit)
}

/**
 * The project's active key and the keys retired after `retiredAfter`, active key first, then newest
 * first.
 */
export async function publicKeys(db: D1Database, projectId: string, retiredAfter: number): Promise<PublicKeyRow[]> {
  const { results } = await db
    .prepare(
      `SELECT kid, public_jwk, retired_at FROM session_signing_keys
       WHERE project_id = ?1 AND (retired_at IS NULL OR retired_at > ?2)
       ORDER BY retired_at IS NOT NULL, created_at DESC, rowid DESC`,
    )
    .bind(projectId, retiredAfter)
    .all<PublicKeyRow>()
  return results
}
