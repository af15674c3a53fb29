import { applyD1Migrations, reset } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import fc from 'fast-check'
import { afterEach, vi } from 'vitest'
import { clearSessionKeyCache } from '../src/sessions/keys'
import { beginTestFile } from './entry'
import { FUZZ_SEED } from './fuzz-seed'
import { seedProject, TEST_PROJECT } from './helpers'

// Runs before each test file. The files of one vitest worker share a workerd and its module
// instances (vitest.config.ts: isolate false), so each file starts here from the state a workerd of
// its own would have started in: every binding emptied (D1, KV), the migrations applied as
// `npm run db:migrate` applies them, the test project seeded, the isolate's caches of D1 records
// dropped, and no queued job of an earlier file left to run (test/entry.ts).
await beginTestFile()
await reset()
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS)
// The second shard (wrangler.toml DB_1) is migrated alike: test/shards*.test.ts and the files that run
// their project there use it.
await applyD1Migrations(env.DB_1, env.TEST_MIGRATIONS)
await seedProject(TEST_PROJECT)
clearSessionKeyCache()

// Every property-based check in every file draws from the one fixed seed (test/fuzz-seed.ts), so
// no file's inputs depend on which files ran before it in the same worker.
fc.configureGlobal({ ...fc.readConfigureGlobal(), seed: FUZZ_SEED })

// Every test starts on the real clock with no function mocked, whatever the test before it did: fake
// timers and spies are undone here, once for all files, and so also after a failing assertion ended a
// test before its own clean-up.
afterEach(() => {
  vi.useRealTimers()
  vi.restoreAllMocks()
})
