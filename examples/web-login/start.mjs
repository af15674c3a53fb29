// `npm run example`: the whatsapp-otp service (as `npm run dev` runs it, on :8787, console provider and
// dev outbox) and the example app (on :8788) together, each in its own `wrangler dev`, joined by a dev
// registry of this checkout's own, so the Service Binding never reaches another checkout's service.
// Ctrl-C stops both.
import { spawn } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'

const registry = resolve('.wrangler/registry-web-login')
mkdirSync(registry, { recursive: true })
const env = { ...process.env, WRANGLER_REGISTRY_PATH: registry }
const children = [
  spawn(process.execPath, ['scripts/dev.mjs', '--port', '8787'], { stdio: 'inherit', env }),
  spawn(process.execPath, ['examples/web-login/dev.mjs', '--port', '8788'], { stdio: 'inherit', env }),
]
console.log('\n  web-login example: http://localhost:8788   (service: http://localhost:8787)\n')
let stopping = false
function stopAll(signal) {
  if (stopping) return
  stopping = true
  for (const child of children) if (child.exitCode === null) child.kill(signal)
}
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => stopAll(signal))
for (const child of children) {
  child.on('exit', (code) => {
    stopAll('SIGTERM')
    if (children.every((c) => c.exitCode !== null || c.signalCode !== null)) process.exit(code ?? 0)
  })
}
