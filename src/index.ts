import { app } from './app'
import { handleQueue } from './delivery/consumer'
import { handleScheduled } from './retention'

export default {
  fetch: app.fetch,
  // Delivery jobs of both channels (WHATSAPP_QUEUE) and their dead letters (WHATSAPP_DLQ), told apart by queue name.
  queue: (batch, env) => handleQueue(batch, env),
  // The cron trigger (wrangler.toml): retention purge (src/retention.ts).
  scheduled: (_controller, env) => handleScheduled(env),
} satisfies ExportedHandler<Env>
