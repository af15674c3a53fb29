import { readFileSync } from 'node:fs'
import { cloudflareTest, readD1Migrations } from '@cloudflare/vitest-plugin'
import { defineConfig } from 'vitest/config'

const sqlFile = (path: string) => readFileSync(new URL(path, import.meta.url), 'utf8')

export default defineConfig(async () => {
  // Every migration in migrations/, in order: test/setup.ts applies them as `npm run db:migrate` does.
  const migrations = await readD1Migrations(new URL('./migrations', import.meta.url).pathname)
  // schema.sql, the readable whole schema, as statements: test/migrations.test.ts checks that the
  // migrations build exactly this. It has no triggers, so splitting on ';' at a line end is safe.
  const schemaQueries = sqlFile('./schema.sql')
    .split(/;\s*$/m)
    .map((q) => q.replace(/^\s*--.*$/gm, '').trim())
    .filter((q) => q.length > 0)

  return {
    plugins: [
      cloudflareTest({
        wrangler: { configPath: './wrangler.toml' },
        // wrangler.toml's Worker, with the guard that keeps one file's queued jobs out of the next.
        main: './test/entry.ts',
        miniflare: {
          bindings: {
            TEST_MIGRATIONS: migrations,
            TEST_SCHEMA: schemaQueries,
            TEST_BASELINE: sqlFile('./scripts/db-baseline.sql'),
            // The fuzz tests' fast-check seed: fixed, so every run (and CI) tries the same inputs;
            // FUZZ_SEED=random explores new ones, FUZZ_SEED=<n> replays a run (test/fuzz-seed.ts).
            FUZZ_SEED: process.env.FUZZ_SEED ?? '20261130',
            // 'deep' (npm run test:deep): the fuzz tests' full case counts; otherwise a quarter of them.
            FUZZ_DEPTH: process.env.FUZZ_DEPTH ?? 'default',
            WHATSAPP_PROVIDER: 'console',
            OTP_PEPPER: 'test-pepper-0123456789abcdef0123456789abcdef',
            CODE_ENCRYPTION_KEY: 'dGVzdC1lbmNyeXB0aW9uLWtleS0wMDAwMDAwMDAwMDA=',
            SESSION_KEY_ENCRYPTION_KEY: 'dGVzdC1zZXNzaW9uLWtleS1lbmNyeXB0aW9uLTAwMDA=',
            WHATSAPP_ACCESS_TOKEN: 'test-access-token-EAAJB0000000000000000',
            WHATSAPP_APP_SECRET: 'test-app-secret-000000000000',
            WHATSAPP_VERIFY_TOKEN: 'test-verify-token',
            WHATSAPP_PHONE_NUMBER_ID: '106540352242922',
            // SMS as .dev.vars.example has it (console); test/sms-helpers.ts switches to Twilio, mocked at fetch.
            SMS_PROVIDER: 'console',
            TWILIO_ACCOUNT_SID: 'AC0123456789abcdef0123456789abcdef',
            TWILIO_AUTH_TOKEN: 'fedcba9876543210fedcba9876543210',
            TWILIO_SENDER: '+15005550006',
          },
        },
      }),
    ],
    test: {
      setupFiles: ['./test/setup.ts', './test/log-capture.ts'],
      include: ['test/**/*.test.ts'],
      // Test files share their worker's workerd instead of starting one each (about 1.5 s apiece);
      // test/setup.ts gives every file the empty storage its own workerd would have had. Two
      // workers, each with a workerd of its own, run files side by side (vitest's default on two
      // cores is one).
      isolate: false,
      maxWorkers: 2,
      // Generous: the property tests run hundreds of requests each, and a busy 2-core machine can
      // make them several times slower than an idle one. A timeout is for a hang, not for slowness.
      testTimeout: 180_000,
      hookTimeout: 120_000,
    },
  }
})
