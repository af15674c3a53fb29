// The one Node.js module this Worker uses. workerd provides it under the nodejs_compat flag
// (wrangler.toml); declaring the two members used here avoids pulling all of @types/node into a
// Worker's type environment.
declare module 'node:async_hooks' {
  export class AsyncLocalStorage<T> {
    run<R>(store: T, fn: () => R): R
    getStore(): T | undefined
  }
}
