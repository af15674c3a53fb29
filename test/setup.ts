import { applyD1Migrations } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { afterEach, vi } from 'vitest'
import { clearSessionKeyCache } from '../src/sessions/keys'
import { seedProject, TEST_PROJECT } from './helpers'

// Storage is isolated per test file; this runs before each file. applyD1Migrations applies the
// migrations the database has not recorded yet (all of them in a fresh file), as `npm run db:migrate` does.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS)
// The second shard (wrangler.toml DB_1) is migrated alike: test/shards*.test.ts and the files that run
// their project there use it.
await applyD1Migrations(env.DB_1, env.TEST_MIGRATIONS)
await seedProject(TEST_PROJECT)
// Signing keys live in D1, which starts empty in every file; a key cached by an earlier file is gone.
clearSessionKeyCache()

// Every test starts on the real clock with no function mocked, whatever the test before it did: fake
// timers and spies are undone here, once for all files, and so also after a failing assertion ended a
// test before its own clean-up.
afterEach(() => {
  vi.useRealTimers()
  vi.restoreAllMocks()
})
