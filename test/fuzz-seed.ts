import { env } from 'cloudflare:workers'

/**
 * The seed of every property-based check (test/setup.ts configures fast-check with it for every
 * file). Fixed by default, so a run (CI included) is repeatable: the same inputs pass or fail every
 * time. `FUZZ_SEED=random npm test` explores new inputs (one seed per vitest worker, printed by the
 * first fuzz file it runs); a failure prints its seed (and fast-check's shrunk counterexample), and
 * `FUZZ_SEED=<seed>` replays it.
 */
export const FUZZ_SEED =
  env.FUZZ_SEED === 'random' ? (Date.now() ^ (Math.random() * 0x7fffffff)) | 0 : Number(env.FUZZ_SEED) | 0
