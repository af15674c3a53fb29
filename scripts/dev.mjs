// `npm run dev`: prepares local state (scripts/dev-setup.mjs) and runs `wrangler dev` on
// http://localhost:8787 with local D1, KV and Queues. Also used by the SDK end-to-end test and the
// benchmark so they start the service exactly as a developer does.
//   node scripts/dev.mjs [--port 8787] [--persist-to DIR] [--var NAME:VALUE ...] [--entry FILE]
// --entry runs another entry point with the same configuration (wrangler.toml's bindings and vars):
// the benchmark's src/bench/entry.ts, which adds its storage accounting to the production Worker.
import { spawn } from 'node:child_process'
import { parseArgs } from 'node:util'
import { setupLocal } from './dev-setup.mjs'

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '8787' },
    'persist-to': { type: 'string' },
    var: { type: 'string', multiple: true, default: [] },
    entry: { type: 'string' },
  },
})

// No outbound calls from local development: wrangler would otherwise fetch the Request.cf
// placeholder and send metrics.
const env = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' }
setupLocal({ persistTo: values['persist-to'], env })

const args = [
  'dev',
  ...(values.entry ? [values.entry] : []),
  '--port',
  values.port,
  '--ip',
  '127.0.0.1',
  '--show-interactive-dev-session=false',
]
if (values['persist-to']) args.push('--persist-to', values['persist-to'])
for (const v of values.var) args.push('--var', v)
const child = spawn('wrangler', args, { stdio: 'inherit', env })
for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) process.on(signal, () => child.kill(signal))
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)))
