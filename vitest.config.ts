import { readFileSync } from 'node:fs'
import { cloudflareTest } from '@cloudflare/vitest-plugin'
import { defineConfig } from 'vitest/config'

// schema.sql is the single schema; tests apply it through applyD1Migrations (test/setup.ts).
// It has no triggers, so splitting on ';' at a line end is safe.
const schemaQueries = readFileSync(new URL('./schema.sql', import.meta.url), 'utf8')
  .split(/;\s*$/m)
  .map((q) => q.replace(/^\s*--.*$/gm, '').trim())
  .filter((q) => q.length > 0)

export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: './wrangler.toml' },
      miniflare: {
        bindings: {
          TEST_MIGRATIONS: [{ name: 'schema.sql', queries: schemaQueries }],
          WHATSAPP_PROVIDER: 'console',
          OTP_PEPPER: 'test-pepper-0123456789abcdef0123456789abcdef',
          CODE_ENCRYPTION_KEY: 'dGVzdC1lbmNyeXB0aW9uLWtleS0wMDAwMDAwMDAwMDA=',
          SESSION_KEY_ENCRYPTION_KEY: 'dGVzdC1zZXNzaW9uLWtleS1lbmNyeXB0aW9uLTAwMDA=',
          WHATSAPP_ACCESS_TOKEN: 'test-access-token-EAAJB0000000000000000',
          WHATSAPP_APP_SECRET: 'test-app-secret-000000000000',
          WHATSAPP_VERIFY_TOKEN: 'test-verify-token',
          WHATSAPP_PHONE_NUMBER_ID: '106540352242922',
        },
      },
    }),
  ],
  test: {
    setupFiles: ['./test/setup.ts', './test/log-capture.ts'],
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
  },
})
