// The prebuilt-UI example's web app: static pages that use Stytch's own frontend SDK
// (@stytch/vanilla-js, its IIFE bundles served from node_modules, so nothing comes from Stytch's
// hosts) against this service. Any static host would do; this one also writes config.js, which tells
// the pages where the service is and which public token to use.
//   node examples/prebuilt-ui/serve.mjs [--port 8789] [--api http://localhost:8787] [--public-token TOKEN]
// Serve the pages from 127.0.0.1 and the service from localhost (or the reverse): cookies ignore
// ports, and the SDK's stytch_session cookies of the page's host must not reach the service.
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const HERE = dirname(fileURLToPath(import.meta.url))
const SDK = join(HERE, '../../node_modules/@stytch/vanilla-js/dist/iife')
/** The local project `npm run dev` seeds (README quick start). */
const LOCAL_PUBLIC_TOKEN = 'public-token-test-00000000-0000-4000-8000-000000000000'

const FILES = {
  '/': [join(HERE, 'public/index.html'), 'text/html; charset=utf-8'],
  '/headless.html': [join(HERE, 'public/headless.html'), 'text/html; charset=utf-8'],
  '/app.js': [join(HERE, 'public/app.js'), 'text/javascript; charset=utf-8'],
  '/stytch.js': [join(SDK, 'index.js'), 'text/javascript; charset=utf-8'],
  '/stytch-headless.js': [join(SDK, 'index.headless.js'), 'text/javascript; charset=utf-8'],
}

/** Starts the server; resolves with its URL and a stop() once it listens. */
export function servePages({
  port = 8789,
  host = '127.0.0.1',
  api = 'http://localhost:8787',
  publicToken = LOCAL_PUBLIC_TOKEN,
} = {}) {
  const config = `window.EXAMPLE_CONFIG = ${JSON.stringify({ apiUrl: api.replace(/\/$/, ''), publicToken })}\n`
  const server = createServer(async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end()
      return
    }
    if (path === '/config.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' }).end(config)
      return
    }
    if (path === '/favicon.ico') {
      res.writeHead(204).end()
      return
    }
    const file = FILES[path]
    if (!file) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found')
      return
    }
    try {
      const body = await readFile(file[0])
      res.writeHead(200, { 'content-type': file[1], 'cache-control': 'no-store' }).end(body)
    } catch (err) {
      // A missing file (e.g. the SDK bundle before `npm install`) answers at once instead of hanging the page.
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`cannot read ${path}: ${err.message}`)
    }
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      const { port: bound } = /** @type {import('node:net').AddressInfo} */ (server.address())
      resolve({
        url: `http://${host}:${bound}`,
        port: bound,
        stop: () => /** @type {Promise<void>} */ (new Promise((done) => server.close(() => done()))),
      })
    })
  })
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '8789' },
      api: { type: 'string', default: 'http://localhost:8787' },
      'public-token': { type: 'string', default: LOCAL_PUBLIC_TOKEN },
    },
  })
  const { url } = await servePages({ port: Number(values.port), api: values.api, publicToken: values['public-token'] })
  console.log(`prebuilt-ui example: ${url}   (service: ${values.api})`)
}
