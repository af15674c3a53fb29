/**
 * The Worker as the workerd tests run it (vitest.config.ts `main`): the production handlers of
 * src/index.ts, with one guard on queue().
 *
 * The test files of a vitest worker share one workerd (isolate: false), and test/setup.ts empties
 * every binding before each file. The local queue is not a binding that `reset()` empties: a job a
 * file sent in its last second (wrangler.toml's consumer waits up to 1 s for a batch) would
 * otherwise reach the consumer while the next file runs, and log or count there. So a message sent
 * before the running file started is acknowledged unread, exactly as if that file's own workerd
 * had been torn down with the message still queued (which is what happened when every file had a
 * workerd of its own). The running file's messages go to the production handler unchanged.
 */
import worker from '../src/index'

let fileStartedAt = Number.NEGATIVE_INFINITY

/**
 * Called by test/setup.ts before it empties storage for a new file: from now on, messages sent
 * earlier belong to a finished file. Resolves once the clock has moved past that instant, so no
 * message the new file sends can carry the same timestamp.
 */
export async function beginTestFile(): Promise<void> {
  fileStartedAt = Date.now()
  while (Date.now() <= fileStartedAt) await new Promise((resolve) => setTimeout(resolve, 1))
}

export default {
  ...worker,
  async queue(batch: MessageBatch<unknown>, env: Env): Promise<void> {
    const current = batch.messages.filter((message) => message.timestamp.getTime() > fileStartedAt)
    for (const message of batch.messages) if (!current.includes(message)) message.ack()
    if (current.length === 0) return
    // The same batch, without the earlier file's messages (the consumer acks or retries each one).
    const own: MessageBatch<unknown> = {
      queue: batch.queue,
      metadata: batch.metadata,
      messages: current,
      ackAll: () => {
        for (const message of current) message.ack()
      },
      retryAll: (options) => {
        for (const message of current) message.retry(options)
      },
    }
    return worker.queue(own, env)
  },
} satisfies ExportedHandler<Env>
