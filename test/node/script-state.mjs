// Local D1 state of a test file's own for the operator scripts (`--persist-to`), and a runner for
// them. Shared by the Node-side tests of `npm run project:*` and `npm run project:move`; `firstJson` also
// by the SMS test, which runs `npm run project:create` against its server's state.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after } from 'node:test'
import { d1MigrationsEnsureLocal } from '../../scripts/d1.mjs'

/**
 * A new state directory, migrated as the scripts migrate it (removed after the file's tests), the
 * environment the scripts run with, and two runners on that state: `script(path, ...args)` runs a
 * script and resolves with its exit status and output; `project(...args)` runs scripts/project.mjs,
 * expects success and returns the JSON document it prints first. They do not block the event loop
 * (a test may hold connections open meanwhile, such as a platform proxy's).
 * @param {string} prefix
 */
export function scriptState(prefix) {
  const state = mkdtempSync(join(tmpdir(), prefix))
  after(() => rmSync(state, { recursive: true, force: true }))
  const env = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' }
  d1MigrationsEnsureLocal({ persistTo: state, env })
  /**
   * @param {string} path
   * @param {string[]} args
   * @returns {Promise<{ status: number, stdout: string, stderr: string }>}
   */
  const script = (path, ...args) =>
    new Promise((resolve) => {
      execFile(
        process.execPath,
        [path, ...args, '--persist-to', state],
        { encoding: 'utf8', env },
        (err, stdout, stderr) => resolve({ status: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
      )
    })
  /** @param {string[]} args */
  const project = async (...args) => {
    const run = await script('scripts/project.mjs', ...args)
    assert.equal(run.status, 0, run.stdout + run.stderr)
    return firstJson(run.stdout)
  }
  return { state, env, script, project }
}

/**
 * The first JSON document a script printed (an object whose braces start and end a line).
 * @param {string} out
 */
export function firstJson(out) {
  const start = out.indexOf('{\n')
  const end = out.indexOf('\n}', start)
  assert.ok(start >= 0 && end > start, out)
  return JSON.parse(out.slice(start, end + 2))
}
