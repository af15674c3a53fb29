// npm run project:create / project:show / project:update against local D1 state of the test's own
// (--persist-to): the public token is printed at creation and by show, rotated on request, and the
// frontend SDK settings are parsed and validated like the others. (Shard placement and project:move:
// project-move-script.test.mjs.)
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { scriptState } from './script-state.mjs'

const { script, project } = scriptState('project-script-')

const PUBLIC_TOKEN = /^public-token-live-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

describe('project scripts and public tokens', () => {
  let id
  let token

  it('create prints the secret and the public token; show prints the token again, never the secret', async () => {
    const created = await project('create', '--env', 'live', '--name', 'Shop')
    assert.match(created.public_token, PUBLIC_TOKEN)
    assert.match(created.secret, /^secret-live-/)
    id = created.project_id
    token = created.public_token
    const shown = await project('show', '--id', id)
    assert.deepEqual(
      { ...shown, created_at: undefined },
      { project_id: id, env: 'live', name: 'Shop', public_token: token, created_at: undefined, shard: 0, settings: {} },
    )
    assert.ok(!JSON.stringify(shown).includes(created.secret))
  })

  it('update sets the SDK settings and rotates the public token', async () => {
    const updated = await project(
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
    const shown = await project('show', '--id', id)
    assert.equal(shown.public_token, updated.public_token)
    assert.deepEqual(shown.settings, {
      sdk_authorized_origins: ['https://app.example.com', 'https://www.example.com'],
      sdk_http_only_cookies: true,
      sdk_max_session_minutes: 1440,
    })
  })

  it('refuses an origin that is not exactly one, and changes nothing', async () => {
    const run = await script(
      'scripts/project.mjs',
      'update',
      '--id',
      id,
      '--set',
      'sdk_authorized_origins=https://app.example.com/login',
    )
    assert.equal(run.status, 2)
    assert.match(run.stderr, /sdk_authorized_origins/)
    assert.deepEqual((await project('show', '--id', id)).settings.sdk_authorized_origins, [
      'https://app.example.com',
      'https://www.example.com',
    ])
  })
})
