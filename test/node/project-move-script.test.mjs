// npm run project:create places a project on a D1 shard (the one with the fewest projects, or
// --shard N), and npm run project:move moves one to another shard in two runs (stopped after its
// copy, then finished) or abandons the move, against local D1 state of the test's own (--persist-to).
// The move itself, stopped after every step and resumed, is tested in workerd (test/project-move.test.ts).
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { getPlatformProxy } from 'wrangler'
import { firstJson, scriptState } from './script-state.mjs'

const { state, script, project } = scriptState('project-move-script-')

// The test reads and writes the state's databases itself through one platform proxy (wrangler's
// local D1 in this process), between the scripts' runs: a `wrangler d1 execute` per check would start
// wrangler each time.
/** @type {{ env: Record<string, D1Database>, dispose: () => Promise<void> }} */
let proxy
before(async () => {
  proxy = await getPlatformProxy({
    configPath: 'wrangler.toml',
    persist: { path: join(state, 'v3') },
    remoteBindings: false,
  })
})
after(() => proxy?.dispose())
/** @param {string} binding */
const db = (binding) => /** @type {D1Database} */ (proxy.env[binding])

/** Runs `npm run project:move` on the test's state (no Worker serves it: --offline); its JSON result. */
async function move(...args) {
  const run = await script('scripts/project-move.mjs', ...args, '--offline')
  assert.equal(run.status, 0, run.stdout + run.stderr)
  return firstJson(run.stdout)
}

/**
 * @param {string} binding
 * @param {string} projectId
 */
function rows(binding, projectId) {
  const tables = ['users', 'phones', 'sessions', 'session_signing_keys', 'deliveries']
  return db(binding)
    .prepare(`SELECT ${tables.map((t) => `(SELECT COUNT(*) FROM ${t} WHERE project_id = ?1) AS ${t}`).join(', ')}`)
    .bind(projectId)
    .first()
}

/** @param {string} projectId */
const directory = (projectId) =>
  db('DB').prepare('SELECT shard, move_to, move_step FROM projects WHERE id = ?1').bind(projectId).first()

/**
 * A project on shard 0 with a user, a phone, a session, a signing key and a delivery, written straight
 * into the state (one batch); its id and its key's id.
 */
async function projectWithRows() {
  const projectId = `project-test-${randomUUID()}`
  const kid = `jwk-test-${randomUUID()}`
  const t = Date.now()
  const user = `user-test-${randomUUID()}`
  const phone = `phone-number-test-${randomUUID()}`
  const DB = db('DB')
  await DB.batch([
    DB.prepare(
      `INSERT INTO projects (id, env, name, secret_hash, settings, created_at, shard) VALUES (?1, 'test', 'rows', 'ab', '{}', ?2, 0)`,
    ).bind(projectId, t),
    DB.prepare(`INSERT INTO users (id, project_id, status, created_at) VALUES (?1, ?2, 'active', ?3)`).bind(
      user,
      projectId,
      t,
    ),
    DB.prepare(
      `INSERT INTO phones (id, project_id, user_id, phone_number, verified, created_at) VALUES (?1, ?2, ?3, '+12025550123', 1, ?4)`,
    ).bind(phone, projectId, user, t),
    DB.prepare(
      `INSERT INTO sessions (id, project_id, user_id, token_hash, started_at, last_accessed_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6)`,
    ).bind(`session-test-${randomUUID()}`, projectId, user, randomUUID(), t, t + 3_600_000),
    DB.prepare(
      `INSERT INTO session_signing_keys (kid, project_id, public_jwk, private_key_iv, private_key_ct, created_at) VALUES (?1, ?2, '{}', 'iv', 'ct', ?3)`,
    ).bind(kid, projectId, t),
    DB.prepare(
      `INSERT INTO deliveries (id, project_id, phone_id, status, expires_at, created_at, updated_at) VALUES (?1, ?2, ?3, 'sent', ?4, ?4, ?4)`,
    ).bind(randomUUID(), projectId, phone, t),
  ])
  return { id: projectId, kid }
}

/** The number of projects per shard in the directory, and the shard holding the fewest (the lowest of equals). */
async function fewest() {
  const counts = [0, 0]
  const { results } = await db('DB').prepare('SELECT shard, COUNT(*) AS n FROM projects GROUP BY shard').all()
  for (const r of results) counts[Number(r.shard)] = Number(r.n)
  return counts[1] < counts[0] ? 1 : 0
}

describe('shards: placement and project:move', () => {
  const ONE_EACH = { users: 1, phones: 1, sessions: 1, session_signing_keys: 1, deliveries: 1 }
  const NONE = { users: 0, phones: 0, sessions: 0, session_signing_keys: 0, deliveries: 0 }

  it('create places a project on the shard with the fewest projects, or on --shard N', async () => {
    // Twice, so that the second project goes where the first made the count lower.
    for (let i = 0; i < 2; i++) {
      const expected = await fewest()
      assert.equal((await project('create', '--env', 'test')).shard, expected)
    }
    const placed = await project('create', '--env', 'test', '--shard', '1')
    assert.equal(placed.shard, 1)
    // On shard 1 the project has an anchor row for its foreign keys, without secret or settings.
    const { results: anchor } = await db('DB_1')
      .prepare('SELECT secret_hash, settings, shard FROM projects WHERE id = ?1')
      .bind(placed.project_id)
      .all()
    assert.deepEqual(anchor, [{ secret_hash: '', settings: '{}', shard: 1 }])
    const refused = await script('scripts/project.mjs', 'create', '--env', 'test', '--shard', '2')
    assert.equal(refused.status, 2)
    assert.match(refused.stderr, /--shard must be a shard of this deployment: 0 to 1/)
  })

  it('move copies in a first run (--until copy), finishes in a second, and leaves nothing behind', async () => {
    const { id, kid } = await projectWithRows()
    const first = await move('--id', id, '--to', '1', '--until', 'copy')
    assert.deepEqual([first.steps, first.done], [['start', 'copy'], false])
    assert.deepEqual(await directory(id), { shard: 0, move_to: 1, move_step: 'copied' })
    assert.deepEqual(await rows('DB_1', id), ONE_EACH)

    const second = await move('--id', id, '--to', '1')
    assert.deepEqual([second.steps, second.done], [['pause', 'catch_up', 'flip', 'purge'], true])
    assert.deepEqual(await directory(id), { shard: 1, move_to: null, move_step: null })
    assert.deepEqual(await rows('DB_1', id), ONE_EACH)
    assert.deepEqual(await rows('DB', id), NONE)

    // npm run session-keys:rotate finds the project's key in its shard now.
    const rotation = await script('scripts/session-keys.mjs', 'rotate', '--id', id)
    assert.equal(rotation.status, 0, rotation.stdout + rotation.stderr)
    const rotated = firstJson(rotation.stdout)
    assert.deepEqual(rotated.retired, [{ project_id: id, kid }])
  })

  it('move --abort abandons a move before its flip: the project stays, the copy goes', async () => {
    const { id } = await projectWithRows()
    await move('--id', id, '--to', '1', '--until', 'pause')
    assert.deepEqual(await directory(id), { shard: 0, move_to: 1, move_step: 'paused' })
    assert.deepEqual(await move('--id', id, '--abort'), { projectId: id, shard: 0 })
    assert.deepEqual(await directory(id), { shard: 0, move_to: null, move_step: null })
    assert.deepEqual(await rows('DB', id), ONE_EACH)
    assert.deepEqual(await rows('DB_1', id), NONE)
  })
})
