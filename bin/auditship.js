#!/usr/bin/env node
// Two libuv threads: DuckDB's statements run there (one at a time per connection), and each extra thread that
// ever ran one keeps a malloc arena of its own (measured: 337 → 318 MB peak for 1 M events). Set before any
// module starts the pool; a value from the environment wins.
process.env.UV_THREADPOOL_SIZE ??= '2';
await import('../dist/cli/main.js');
