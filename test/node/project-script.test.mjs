// npm run project:create / project:show / project:update against local D1 state of the test's own
// (--persist-to): the public token is printed at creation and by show, rotated on request, and the
// frontend SDK settings are parsed and validated like the others.
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'

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
      { project_id: id, env: 'live', name: 'Shop', public_token: token, created_at: undefined, settings: {} },
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
