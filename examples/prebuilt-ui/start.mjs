// `npm run example:prebuilt`: the whatsapp-otp service (as `npm run dev` runs it, on localhost:8787,
// console provider and dev outbox) and the prebuilt-UI pages (on 127.0.0.1:8789, a different host so
// the page's cookies never reach the service) together. Ctrl-C stops both.
import { spawn } from 'node:child_process'
import { servePages } from './serve.mjs'

const service = spawn(process.execPath, ['scripts/dev.mjs', '--port', '8787'], { stdio: 'inherit' })
const pages = await servePages({ port: 8789, api: 'http://localhost:8787' })
console.log(
  `\n  prebuilt-ui example: ${pages.url}   headless client: ${pages.url}/headless.html   (service: http://localhost:8787)\n`,
)

let stopping = false
async function stopAll(signal) {
  if (stopping) return
  stopping = true
  if (service.exitCode === null) service.kill(signal)
  await pages.stop()
}
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => stopAll(signal))
service.on('exit', async (code) => {
  await stopAll('SIGTERM')
  process.exit(code ?? 0)
})
