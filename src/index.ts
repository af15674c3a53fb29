import { app } from './app'
import { handleScheduled } from './retention'
import { handleQueue } from './whatsapp/consumer'

export default {
  fetch: app.fetch,
  // Delivery jobs (WHATSAPP_QUEUE) and their dead letters (WHATSAPP_DLQ), told apart by queue name.
  queue: (batch, env) => handleQueue(batch, env),
  // The cron trigger (wrangler.toml): retention purge (src/retention.ts).
  scheduled: (_controller, env) => handleScheduled(env),
} satisfies ExportedHandler<Env>
