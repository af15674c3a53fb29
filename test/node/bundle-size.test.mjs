// The deployable bundle stays within its budget (150 KiB gzipped: a Worker's cold start grows with its size). A regression, e.g. a new
// `import { z } from 'zod'` (which pulls every zod locale in again) or a heavy dependency, fails here.
import assert from 'node:assert/strict'
import { it } from 'node:test'
import { BUNDLE_TARGET_GZIP_BYTES, measureBundle } from '../../scripts/bundle-size.mjs'

it('the Worker bundle `wrangler deploy` would upload is at most 150 KiB gzipped', () => {
  const { raw_bytes: raw, gzip_bytes: gzip } = measureBundle()
  const kib = (n) => `${(n / 1024).toFixed(1)} KiB`
  assert.ok(gzip <= BUNDLE_TARGET_GZIP_BYTES, `bundle is ${kib(gzip)} gzipped (${kib(raw)} raw)`)
})
