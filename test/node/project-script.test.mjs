// npm run project:create / project:show / project:update / project:move against local D1 state of
// the test's own (--persist-to): the public token is printed at creation and by show, rotated on
// request, and the frontend SDK settings are parsed and validated like the others; a project is
// placed on a shard (the one with the fewest projects, or --shard N) and moved to another one, in two
// runs (stopped after its copy, then finished) or abandoned.
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { d1Execute, lit } from '../../scripts/d1.mjs'

const state = mkdtempSync(join(tmpdir(), 'project-script-'))
after(() => rmSync(state, { recursive: true, force: true }))

const env = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' }

/** Runs the script and returns the JSON document it prints first. */
function project(...args) {
  const out = execFileSync(process.execPath, ['scripts/project.mjs', ...args, '--persist-to', state], {
    encoding: 'utf8',
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const start = out.indexOf('{\n')
  const end = out.indexOf('\n}', start)
  assert.ok(start >= 0 && end > start, out)
  return JSON.parse(out.slice(start, end + 2))
}

const PUBLIC_TOKEN = /^public-token-live-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

describe('project scripts and public tokens', () => {
  let id
  let token

  it('create prints the secret and the public token; show prints the token again, never the secret', () => {
    const created = project('create', '--env', 'live', '--name', 'Shop')
    assert.match(created.public_token, PUBLIC_TOKEN)
    assert.match(created.secret, /^secret-live-/)
    id = created.project_id
    token = created.public_token
    const shown = project('show', '--id', id)
    assert.deepEqual(
      { ...shown, created_at: undefined },
      { project_id: id, env: 'live', name: 'Shop', public_token: token, created_at: undefined, shard: 0, settings: {} },
    )
    assert.ok(!JSON.stringify(shown).includes(created.secret))
  })

  it('update sets the SDK settings and rotates the public token', () => {
    const updated = project(
      'update',
      '--id',
      id,
      '--rotate-public-token',
      '--set',
      'sdk_authorized_origins=https://app.example.com, https://www.example.com',
      '--set',
      'sdk_http_only_cookies=true',
      '--set',
      'sdk_max_session_minutes=1440',
    )
    assert.match(updated.public_token, PUBLIC_TOKEN)
    assert.notEqual(updated.public_token, token)
    assert.equal(updated.secret, undefined)
    const shown = project('show', '--id', id)
    assert.equal(shown.public_token, updated.public_token)
    assert.deepEqual(shown.settings, {
      sdk_authorized_origins: ['https://app.example.com', 'https://www.example.com'],
      sdk_http_only_cookies: true,
      sdk_max_session_minutes: 1440,
    })
  })

  it('refuses an origin that is not exactly one, and changes nothing', () => {
    const run = spawnSync(
      process.execPath,
      [
        'scripts/project.mjs',
        'update',
        '--id',
        id,
        '--set',
        'sdk_authorized_origins=https://app.example.com/login',
        '--persist-to',
        state,
      ],
      { encoding: 'utf8', env },
    )
    assert.equal(run.status, 2)
    assert.match(run.stderr, /sdk_authorized_origins/)
    assert.deepEqual(project('show', '--id', id).settings.sdk_authorized_origins, [
      'https://app.example.com',
      'https://www.example.com',
    ])
  })
})

/** Runs `npm run project:move` on the test's state (no Worker serves it: --offline); its JSON result. */
function move(...args) {
  const run = spawnSync(process.execPath, ['scripts/project-move.mjs', ...args, '--offline', '--persist-to', state], {
    encoding: 'utf8',
    env,
  })
  assert.equal(run.status, 0, run.stdout + run.stderr)
  const start = run.stdout.indexOf('{\n')
  return JSON.parse(run.stdout.slice(start, run.stdout.indexOf('\n}', start) + 2))
}

/** The project's rows per table in shard `binding`, and its directory record's shard and move. */
function rows(binding, projectId) {
  const tables = ['users', 'phones', 'sessions', 'session_signing_keys', 'deliveries']
  const [result] = d1Execute({
    persistTo: state,
    env,
    binding,
    json: true,
    sql: `SELECT ${tables.map((t) => `(SELECT COUNT(*) FROM ${t} WHERE project_id = ${lit(projectId)}) AS ${t}`).join(', ')}`,
  })
  return result.results[0]
}

const directory = (projectId) =>
  d1Execute({
    persistTo: state,
    env,
    json: true,
    sql: `SELECT shard, move_to, move_step FROM projects WHERE id = ${lit(projectId)}`,
  })[0].results[0]

/**
 * A project on shard 0 with a user, a phone, a session, a signing key and a delivery, written straight
 * into the state (one wrangler call); its id and its key's id.
 */
function projectWithRows() {
  const projectId = `project-test-${randomUUID()}`
  const kid = `jwk-test-${randomUUID()}`
  const t = Date.now()
  const user = `user-test-${randomUUID()}`
  const phone = `phone-number-test-${randomUUID()}`
  d1Execute({
    persistTo: state,
    env,
    sql: [
      `INSERT INTO projects (id, env, name, secret_hash, settings, created_at, shard) VALUES (${lit(projectId)}, 'test', 'rows', 'ab', '{}', ${t}, 0)`,
      `INSERT INTO users (id, project_id, status, created_at) VALUES (${lit(user)}, ${lit(projectId)}, 'active', ${t})`,
      `INSERT INTO phones (id, project_id, user_id, phone_number, verified, created_at) VALUES (${lit(phone)}, ${lit(projectId)}, ${lit(user)}, '+12025550123', 1, ${t})`,
      `INSERT INTO sessions (id, project_id, user_id, token_hash, started_at, last_accessed_at, expires_at) VALUES (${lit(`session-test-${randomUUID()}`)}, ${lit(projectId)}, ${lit(user)}, ${lit(randomUUID())}, ${t}, ${t}, ${t + 3_600_000})`,
      `INSERT INTO session_signing_keys (kid, project_id, public_jwk, private_key_iv, private_key_ct, created_at) VALUES (${lit(kid)}, ${lit(projectId)}, '{}', 'iv', 'ct', ${t})`,
      `INSERT INTO deliveries (id, project_id, phone_id, status, expires_at, created_at, updated_at) VALUES (${lit(randomUUID())}, ${lit(projectId)}, ${lit(phone)}, 'sent', ${t}, ${t}, ${t})`,
    ].join('; '),
  })
  return { id: projectId, kid }
}

/** The number of projects per shard in the directory, and the shard holding the fewest (the lowest of equals). */
function fewest() {
  const counts = [0, 0]
  for (const r of d1Execute({
    persistTo: state,
    env,
    json: true,
    sql: 'SELECT shard, COUNT(*) AS n FROM projects GROUP BY shard',
  })[0].results) {
    counts[r.shard] = r.n
  }
  return counts[1] < counts[0] ? 1 : 0
}

describe('shards: placement and project:move', () => {
  const ONE_EACH = { users: 1, phones: 1, sessions: 1, session_signing_keys: 1, deliveries: 1 }
  const NONE = { users: 0, phones: 0, sessions: 0, session_signing_keys: 0, deliveries: 0 }

  it('create places a project on the shard with the fewest projects, or on --shard N', () => {
    // Twice, so that the second project goes where the first made the count lower.
    for (let i = 0; i < 2; i++) {
      const expected = fewest()
      assert.equal(project('create', '--env', 'test').shard, expected)
    }
    const placed = project('create', '--env', 'test', '--shard', '1')
    assert.equal(placed.shard, 1)
    // On shard 1 the project has an anchor row for its foreign keys, without secret or settings.
    const anchor = d1Execute({
      persistTo: state,
      env,
      binding: 'DB_1',
      json: true,
      sql: `SELECT secret_hash, settings, shard FROM projects WHERE id = ${lit(placed.project_id)}`,
    })[0].results
    assert.deepEqual(anchor, [{ secret_hash: '', settings: '{}', shard: 1 }])
    const refused = spawnSync(
      process.execPath,
      ['scripts/project.mjs', 'create', '--env', 'test', '--shard', '2', '--persist-to', state],
      { encoding: 'utf8', env },
    )
    assert.equal(refused.status, 2)
    assert.match(refused.stderr, /--shard must be a shard of this deployment: 0 to 1/)
  })

  it('move copies in a first run (--until copy), finishes in a second, and leaves nothing behind', () => {
    const { id, kid } = projectWithRows()
    const first = move('--id', id, '--to', '1', '--until', 'copy')
    assert.deepEqual([first.steps, first.done], [['start', 'copy'], false])
    assert.deepEqual(directory(id), { shard: 0, move_to: 1, move_step: 'copied' })
    assert.deepEqual(rows('DB_1', id), ONE_EACH)

    const second = move('--id', id, '--to', '1')
    assert.deepEqual([second.steps, second.done], [['pause', 'catch_up', 'flip', 'purge'], true])
    assert.deepEqual(directory(id), { shard: 1, move_to: null, move_step: null })
    assert.deepEqual(rows('DB_1', id), ONE_EACH)
    assert.deepEqual(rows('DB', id), NONE)

    // npm run session-keys:rotate finds the project's key in its shard now.
    const out = execFileSync(
      process.execPath,
      ['scripts/session-keys.mjs', 'rotate', '--id', id, '--persist-to', state],
      { encoding: 'utf8', env },
    )
    const rotated = JSON.parse(out.slice(out.indexOf('{\n'), out.indexOf('\n}') + 2))
    assert.deepEqual(rotated.retired, [{ project_id: id, kid }])
  })

  it('move --abort abandons a move before its flip: the project stays, the copy goes', () => {
    const { id } = projectWithRows()
    move('--id', id, '--to', '1', '--until', 'pause')
    assert.deepEqual(directory(id), { shard: 0, move_to: 1, move_step: 'paused' })
    assert.deepEqual(move('--id', id, '--abort'), { projectId: id, shard: 0 })
    assert.deepEqual(directory(id), { shard: 0, move_to: null, move_step: null })
    assert.deepEqual(rows('DB', id), ONE_EACH)
    assert.deepEqual(rows('DB_1', id), NONE)
  })
})
