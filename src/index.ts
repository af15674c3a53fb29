import { app } from './app'
import { withStorageCounting } from './bench/storage-count'
import { handleScheduled } from './retention'
import { handleQueue } from './whatsapp/consumer'

export default {
  // Storage accounting only under the bench's BENCH_COUNT_STORAGE=1; otherwise app.fetch as is.
  fetch: withStorageCounting(app.fetch),
  // Delivery jobs (WHATSAPP_QUEUE) and their dead letters (WHATSAPP_DLQ), told apart by queue name.
  queue: (batch, env) => handleQueue(batch, env),
  // The cron trigger (wrangler.toml): retention purge (src/retention.ts).
  scheduled: (_controller, env) => handleScheduled(env),
} satisfies ExportedHandler<Env>
