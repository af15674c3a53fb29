// The deployable bundle's size, as `wrangler deploy` would upload it: built with
// `wrangler deploy --dry-run --outdir <tmp>` (no account, no network), measured raw and gzipped.
// Used by `npm run bench` and by test/node/bundle-size.test.mjs.
//   node scripts/bundle-size.mjs     prints {"raw_bytes":…,"gzip_bytes":…,"files":[…]}
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'

/** Cloudflare's limit for a Worker on the free plan is 3 MiB gzipped; this project aims far lower. */
export const BUNDLE_TARGET_GZIP_BYTES = 150 * 1024

/** Builds the Worker as `wrangler deploy` would and returns the sizes of the code it would upload. */
export function measureBundle() {
  const outdir = mkdtempSync(join(tmpdir(), 'whatsapp-otp-bundle-'))
  try {
    execFileSync('wrangler', ['deploy', '--dry-run', '--outdir', outdir], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' },
    })
    // The modules wrangler uploads; source maps and the README it writes beside them are not code.
    const files = readdirSync(outdir).filter((f) => /\.(m?js|wasm)$/.test(f))
    if (files.length === 0) throw new Error(`wrangler wrote no module to ${outdir}`)
    let raw = 0
    let gzip = 0
    for (const file of files) {
      const bytes = readFileSync(join(outdir, file))
      raw += bytes.length
      gzip += gzipSync(bytes).length
    }
    return { raw_bytes: raw, gzip_bytes: gzip, files }
  } finally {
    rmSync(outdir, { recursive: true, force: true })
  }
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(JSON.stringify(measureBundle()))
