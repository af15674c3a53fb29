/**
 * The Worker as the benchmark runs it (`npm run bench` starts `wrangler dev` with this file as its
 * entry point in place of src/index.ts): the production handlers, with fetch wrapped in the storage
 * accounting of ./storage-count. The production entry carries none of it, so a deployed Worker has
 * neither the counting nor the bench's history seeding route.
 */
import worker from '../index'
import { withStorageCounting } from './storage-count'

export default {
  ...worker,
  // Counting only under BENCH_COUNT_STORAGE=1 (the bench sets it); otherwise the production fetch.
  fetch: withStorageCounting(worker.fetch),
} satisfies ExportedHandler<Env>
