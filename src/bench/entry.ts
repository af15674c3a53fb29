/**
 * The Worker as the benchmark runs it (`npm run bench` starts `wrangler dev` with this file as its
 * entry point in place of src/index.ts): the production handlers, with fetch and queue wrapped in the
 * storage accounting of ./storage-count. The production entry carries none of it, so a deployed Worker has
 * neither the counting nor the bench's history seeding route.
 */
import worker from '../index'
import { withDeliveryCounting, withStorageCounting } from './storage-count'

export default {
  ...worker,
  // Counting only under BENCH_COUNT_STORAGE=1 (the bench sets it); otherwise the production fetch.
  fetch: withStorageCounting(worker.fetch),
  // The queue consumer's work, summed over its batches, under the same variable.
  queue: withDeliveryCounting(worker.queue),
} satisfies ExportedHandler<Env>
