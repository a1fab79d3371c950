// What both load generators share (ca_load.mjs, flow_load.mjs): reading the run's
// configuration, and the timed run itself. In the timed run `concurrency` workers
// call `once()` back to back for the warm-up and then the measured window. Only requests that
// start and end inside the window count; failures outside it are counted apart (reported,
// never hidden). `once` returns the answer's status, or null when it has nothing left to send,
// and throws a Failure (or any error) for an answer that is not the expected one.

import { readFileSync } from 'node:fs';
import process from 'node:process';
import { URL } from 'node:url';

// The configuration file named on the command line (127.0.0.1 only), with a deadline armed:
// the process exits after BENCH_MAX_SECONDS (default warm-up + duration + 90) whatever happens.
export function loadConfig(name) {
  const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  const base = new URL(config.base_url);
  if (base.hostname !== '127.0.0.1') {
    console.error(`${name} only loads 127.0.0.1`);
    process.exit(2);
  }
  const maxSeconds = Number.parseInt(process.env.BENCH_MAX_SECONDS ?? '0', 10)
    || config.warmup + config.duration + 90;
  setTimeout(() => {
    console.error(`${name}: BENCH_MAX_SECONDS=${maxSeconds} elapsed`);
    process.exit(3);
  }, maxSeconds * 1000).unref();
  return {
    config,
    base,
    concurrency: config.concurrency,
    warmupMs: config.warmup * 1000,
    durationMs: config.duration * 1000,
  };
}

export class Failure extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

export async function timedRun(once, { concurrency, warmupMs, durationMs }) {
  const latencies = [];
  const statuses = {};
  const samples = [];
  let errors = 0;
  let warmupErrors = 0;
  let completed = 0;
  const measureFrom = performance.now() + warmupMs;
  const stopAt = measureFrom + durationMs;

  async function worker() {
    while (performance.now() < stopAt) {
      const t0 = performance.now();
      let status;
      try {
        status = await once();
        if (status === null) return;
      } catch (error) {
        status = error instanceof Failure ? error.status : `error:${error.code ?? error.message}`;
        const t1 = performance.now();
        if (t0 >= measureFrom && t1 <= stopAt) {
          errors += 1;
          statuses[status] = (statuses[status] ?? 0) + 1;
        } else {
          warmupErrors += 1;
        }
        if (samples.length < 5) samples.push({ status, detail: error.message });
        continue;
      }
      const t1 = performance.now();
      if (t0 >= measureFrom && t1 <= stopAt) {
        completed += 1;
        latencies.push(t1 - t0);
        statuses[status] = (statuses[status] ?? 0) + 1;
      }
    }
  }

  await Promise.all(Array.from({ length: concurrency }, () => worker()));
  latencies.sort((a, b) => a - b);
  const pick = (q) => (latencies.length
    ? latencies[Math.min(latencies.length - 1, Math.ceil(q * latencies.length) - 1)]
    : null);
  return {
    completed,
    p50_ms: pick(0.5),
    p99_ms: pick(0.99),
    max_ms: latencies.length ? latencies[latencies.length - 1] : null,
    errors,
    warmup_errors: warmupErrors,
    statuses,
    samples,
  };
}
