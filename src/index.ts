import { app } from './app'
import { handleQueue } from './whatsapp/consumer'

export default {
  fetch: app.fetch,
  // Delivery jobs (WHATSAPP_QUEUE) and their dead letters (WHATSAPP_DLQ), told apart by queue name.
  queue: (batch, env) => handleQueue(batch, env),
} satisfies ExportedHandler<Env>
