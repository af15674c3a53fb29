// The configuration list (src/config.ts) against everything outside the Worker that must agree with
// it: wrangler.toml's required secrets in every environment, .dev.vars.example, the README's table and
// deploy steps, and `npm run doctor` as an operator runs it.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { describe, it } from 'node:test'
import { unstable_readConfig } from 'wrangler'
import { configTable, limitsTable, readmeWithTables } from '../../scripts/readme-tables.mjs'
import { CONFIG, REQUIRED_SECRETS, requiredSecrets } from '../../src/config.ts'

const readme = readFileSync('README.md', 'utf8')

function doctor(...args) {
  const run = spawnSync(process.execPath, ['scripts/doctor.mjs', ...args], {
    encoding: 'utf8',
    env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' },
  })
  return { status: run.status, out: run.stdout + run.stderr }
}

/** The README section that starts with `heading`, up to the next second-level heading. */
function section(heading) {
  const start = readme.indexOf(`\n${heading}\n`)
  assert.ok(start >= 0, `README has no "${heading}"`)
  const end = readme.indexOf('\n## ', start + heading.length + 2)
  return readme.slice(start, end < 0 ? undefined : end)
}

describe('configuration outside the Worker', () => {
  for (const env of [undefined, 'staging', 'production']) {
    it(`wrangler.toml ${env ? `[env.${env}]` : 'top level'} requires exactly the list's secrets and sets every var`, () => {
      const config = unstable_readConfig({ config: 'wrangler.toml', env })
      assert.deepEqual([...(config.secrets?.required ?? [])].sort(), requiredSecrets(config.vars).sort())
      // The deployed default sends no SMS, so Twilio's secrets are not required until it is turned on.
      assert.equal(config.vars.SMS_PROVIDER, 'none')
      for (const entry of CONFIG.filter((e) => e.kind === 'var')) {
        assert.ok(entry.name in config.vars, `${entry.name} missing from the vars`)
      }
      assert.deepEqual(config.triggers.crons, ['17 * * * *'])
      // Two D1 shards everywhere (DB: the directory and shard 0; DB_1), migrated alike.
      assert.deepEqual(
        config.d1_databases.map((d) => [d.binding, d.migrations_dir]),
        [
          ['DB', 'migrations'],
          ['DB_1', 'migrations'],
        ],
      )
    })
  }

  it('.dev.vars.example gives every required secret a local value', () => {
    const example = readFileSync('.dev.vars.example', 'utf8')
    for (const name of REQUIRED_SECRETS) assert.match(example, new RegExp(`^${name}=`, 'm'), name)
  })

  it("the README's configuration and limits tables are the ones built from the code", () => {
    assert.equal(readme, readmeWithTables(readme), 'run `npm run docs:tables`')
    assert.ok(readme.includes(configTable()) && readme.includes(limitsTable()))
  })

  it('the README deploy steps set every required secret and the phone-number id, in order', () => {
    const deploy = section('## Deploy to Cloudflare')
    for (const name of REQUIRED_SECRETS) assert.match(deploy, new RegExp(`^${name}=`, 'm'), `${name} is never set`)
    assert.match(deploy, /WHATSAPP_PHONE_NUMBER_ID \(required/)
    const order = [
      'npx wrangler d1 create',
      'npx wrangler kv namespace create',
      'npx wrangler queues create',
      '.secrets.production <<',
      'npm run db:migrate -- --remote --env production',
      'npx wrangler deploy --env production --secrets-file',
      'npm run project:create -- --env live',
      'webhooks/whatsapp',
      'npm run doctor -- --remote --env production',
    ].map((step) => /** @type {[string, number]} */ ([step, deploy.indexOf(step)]))
    for (const [step, at] of order) assert.ok(at >= 0, `missing step: ${step}`)
    const positions = order.map(([, at]) => at)
    assert.deepEqual(
      positions,
      [...positions].sort((a, b) => a - b),
      'steps out of order',
    )
  })

  it('npm run doctor fails on a fresh clone without .dev.vars and names what is missing', () => {
    const { status, out } = doctor('--dev-vars', 'no-such-dev-vars-file')
    assert.equal(status, 1, out)
    for (const name of [...REQUIRED_SECRETS, 'WHATSAPP_PHONE_NUMBER_ID']) {
      assert.match(out, new RegExp(`FAIL  ${name} is not set`), name)
    }
  })

  it('npm run doctor passes the local development configuration (.dev.vars as npm run dev creates it)', () => {
    const { status, out } = doctor('--dev-vars', '.dev.vars.example')
    assert.equal(status, 0, out)
    assert.match(out, /No problems found/)
    // Each shard's migration state is checked (local state: `npm run dev` applies what is missing).
    for (const binding of ['DB', 'DB_1']) assert.match(out, new RegExp(`(ok  |warn)  D1 ${binding} has `))
    // Names only: no value of the file is printed.
    for (const line of readFileSync('.dev.vars.example', 'utf8').split('\n')) {
      const value = line.split('=')[1]
      if (value && value.length >= 16) assert.ok(!out.includes(value), 'a value was printed')
    }
  })
})
