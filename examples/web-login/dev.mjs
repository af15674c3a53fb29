// The example app alone under `wrangler dev` (local workerd), on http://localhost:8788 by default.
// Its AUTH Service Binding reaches the whatsapp-otp service when that runs in another `wrangler dev`
// sharing the same dev registry (WRANGLER_REGISTRY_PATH); `npm run example` starts both.
//   node examples/web-login/dev.mjs [--port 8788] [--persist-to DIR] [--var NAME:VALUE ...]
// Run from the repository root with node_modules/.bin on PATH (as `npm run` does).
import { spawn } from 'node:child_process'
import { parseArgs } from 'node:util'
import { ensureDevVars } from '../../scripts/dev-setup.mjs'

const HERE = 'examples/web-login'
const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8788' },
    'persist-to': { type: 'string' },
    var: { type: 'string', multiple: true, default: [] },
  },
})

ensureDevVars(HERE)
// No outbound calls from local development (wrangler's Request.cf placeholder and metrics).
const env = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' }
const args = ['dev', '-c', `${HERE}/wrangler.toml`, '--port', values.port, '--ip', '127.0.0.1']
args.push('--show-interactive-dev-session=false')
// The inspector port is left to wrangler's free-port search, so two dev servers never collide.
if (values['persist-to']) args.push('--persist-to', values['persist-to'])
for (const v of values.var) args.push('--var', v)
const child = spawn('wrangler', args, { stdio: 'inherit', env })
for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) process.on(signal, () => child.kill(signal))
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
