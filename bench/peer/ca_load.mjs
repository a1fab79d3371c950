// Load generator for bench/ca.py: certificate issuance (every request body different, each
// used once) and OCSP (a fixed list of requests cycled through, against onecard and against
// `openssl ocsp`, which answers HTTP/1.0 and closes the connection after every response).
//
//   node ca_load.mjs CONFIG.json
//
// CONFIG (written by the benchmark):
//   { "mode": "issue" | "ocsp", "engine": "http" | "autocannon", "base_url":
//     "http://127.0.0.1:PORT", "concurrency": 32, "warmup": 5, "duration": 15,
//     issue: "path", "requests": [{ "authorization", "body" }]    (each sent once)
//     ocsp:  "requests": [{ "method", "path", "body_b64" | null }] (cycled through) }
//
// issue: each worker takes the next unused request and POSTs it as JSON with its bearer token;
//   success is 201 with a JSON body carrying a serial. When the pool runs out the run ends
//   early (reported as "exhausted": the benchmark fails and asks for a bigger pool).
// ocsp: each worker takes the next request of the list (round robin over all workers);
//   success is 200, Content-Type application/ocsp-response, and a DER OCSPResponse whose
//   responseStatus is successful (0). The body is not otherwise parsed here: the benchmark
//   parses and checks samples of each server's answers itself.
//
// engine "http" (default): plain node:http with a keep-alive agent (no dependency). A server
//   that closes the connection after each response (HTTP/1.0, no keep-alive) costs a new TCP
//   connection per request, exactly as for any well-behaved client; "sockets" counts the
//   connections opened. Only requests that complete inside the measured window count.
// engine "autocannon" (ocsp only; a cross-check of throughput): autocannon's own client over
//   the same request list. autocannon pipelines its next request onto a connection the server
//   is closing and then reconnects, so against a connection-closing server its latency figures
//   grow with the run (each response is timed from a request queued long before) and some
//   requests are lost as errors; its requests/s is still one per response.
//
// Prints one JSON line:
//   { mode, engine, concurrency, seconds, completed, rate, p50_ms, p99_ms, max_ms, errors,
//     warmup_errors, ok_total, statuses: {code: count}, samples: [first few failures],
//     sockets, exhausted }
// It stops by itself: after warmup + duration (plus a bounded wait for requests in flight), or
// after BENCH_MAX_SECONDS (default warmup + duration + 90), whichever comes first.

import http from 'node:http';
import { createRequire } from 'node:module';
import process from 'node:process';

import { Failure, loadConfig, timedRun } from './timed_run.mjs';

const { config, base, concurrency, warmupMs, durationMs } = loadConfig('ca_load.mjs');
const REQUEST_TIMEOUT_MS = 30_000;

const OCSP_RESPONSE = 'application/ocsp-response';

// responseStatus of a DER OCSPResponse: SEQUENCE { ENUMERATED responseStatus, ... }.
function ocspStatus(buffer) {
  if (buffer.length < 5 || buffer[0] !== 0x30) return null;
  let offset = 2;
  if (buffer[1] & 0x80) offset += buffer[1] & 0x7f;
  if (buffer[offset] !== 0x0a || buffer[offset + 1] !== 0x01) return null;
  return buffer[offset + 2];
}

// -- engine: node:http -------------------------------------------------------------------------

const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });
const seenSockets = new WeakSet();
let sockets = 0;

function request(method, path, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: base.hostname,
        port: base.port,
        method,
        path,
        agent,
        headers: body === undefined ? headers : { ...headers, 'content-length': body.length },
        timeout: REQUEST_TIMEOUT_MS,
      },
      (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('end', () => resolve({
          status: res.statusCode,
          headers: res.headers,
          body: Buffer.concat(chunks),
        }));
        res.on('error', reject);
      },
    );
    req.on('socket', (socket) => {
      if (!seenSockets.has(socket)) {
        seenSockets.add(socket);
        sockets += 1;
      }
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

let next = 0;
let exhausted = false;
let okTotal = 0;

const issueRequests = config.mode === 'issue' ? config.requests : [];
const ocspRequests = config.mode === 'ocsp'
  ? config.requests.map((r) => ({
    method: r.method,
    path: r.path,
    body: r.body_b64 ? Buffer.from(r.body_b64, 'base64') : undefined,
  }))
  : [];

async function issueOnce() {
  if (next >= issueRequests.length) {
    exhausted = true;
    return null;
  }
  const item = issueRequests[next];
  next += 1;
  const res = await request('POST', config.path, {
    authorization: item.authorization,
    'content-type': 'application/json',
    accept: 'application/json',
  }, Buffer.from(item.body, 'utf8'));
  const text = res.body.toString('utf8');
  if (res.status !== 201) throw new Failure(res.status, text.slice(0, 300));
  let answer;
  try {
    answer = JSON.parse(text);
  } catch {
    throw new Failure('bad-json', text.slice(0, 300));
  }
  if (typeof answer.serial !== 'string') throw new Failure('no-serial', text.slice(0, 300));
  okTotal += 1;
  return res.status;
}

async function ocspOnce() {
  const item = ocspRequests[next % ocspRequests.length];
  next += 1;
  const headers = { accept: OCSP_RESPONSE };
  if (item.body !== undefined) headers['content-type'] = 'application/ocsp-request';
  const res = await request(item.method, item.path, headers, item.body);
  if (res.status !== 200) throw new Failure(res.status, res.body.toString('latin1').slice(0, 200));
  const type = (res.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type !== OCSP_RESPONSE) throw new Failure(`type:${type}`, res.body.toString('latin1').slice(0, 200));
  const status = ocspStatus(res.body);
  if (status !== 0) throw new Failure(`ocsp-status:${status}`, res.body.toString('hex').slice(0, 80));
  okTotal += 1;
  return res.status;
}

async function runHttp() {
  const once = config.mode === 'issue' ? issueOnce : ocspOnce;
  const result = await timedRun(once, { concurrency, warmupMs, durationMs });
  agent.destroy();
  return { ...result, rate: result.completed / config.duration };
}

// -- engine: autocannon (ocsp only) ------------------------------------------------------------

async function runAutocannon() {
  const require = createRequire(import.meta.url);
  const autocannon = require('autocannon');
  const requests = ocspRequests.map((item) => ({
    method: item.method,
    path: item.path,
    headers: item.body === undefined
      ? { accept: OCSP_RESPONSE }
      : { accept: OCSP_RESPONSE, 'content-type': 'application/ocsp-request' },
    body: item.body,
  }));
  const run = (seconds) => new Promise((resolve, reject) => {
    autocannon({
      url: config.base_url,
      connections: concurrency,
      duration: seconds,
      requests,
    }, (error, result) => (error ? reject(error) : resolve(result)));
  });
  let warmupErrors = 0;
  let warmupConnectionErrors = 0;
  if (config.warmup > 0) {
    const warm = await run(config.warmup);
    warmupErrors = warm.errors + warm.timeouts + warm.non2xx;
    warmupConnectionErrors = warm.errors;
  }
  const result = await run(config.duration);
  const statuses = {};
  for (const [code, stats] of Object.entries(result.statusCodeStats ?? {})) statuses[code] = stats.count;
  if (result.errors) statuses.errors = result.errors;
  okTotal = result['2xx'];
  return {
    completed: result['2xx'],
    rate: result.requests.average,
    p50_ms: result.latency.p50,
    p99_ms: result.latency.p99,
    max_ms: result.latency.max,
    errors: result.errors + result.timeouts + result.non2xx,
    warmup_errors: warmupErrors,
    statuses,
    samples: [],
    // Connection errors of both runs (warm-up included), timeouts and non-2xx of the measured one.
    autocannon: {
      errors: result.errors + warmupConnectionErrors,
      timeouts: result.timeouts,
      non2xx: result.non2xx,
    },
  };
}

// -- the run ---------------------------------------------------------------------------------

const engine = config.engine ?? 'http';
if (!['issue', 'ocsp'].includes(config.mode) || !['http', 'autocannon'].includes(engine)
    || (engine === 'autocannon' && config.mode !== 'ocsp')) {
  console.error(`unsupported mode ${config.mode} / engine ${engine}`);
  process.exit(2);
}
const report = engine === 'http' ? await runHttp() : await runAutocannon();
const round = (x) => (x === null || x === undefined ? null : Math.round(x * 10) / 10);
console.log(JSON.stringify({
  mode: config.mode,
  engine,
  concurrency,
  seconds: config.duration,
  ...report,
  p50_ms: round(report.p50_ms),
  p99_ms: round(report.p99_ms),
  max_ms: round(report.max_ms),
  ok_total: okTotal,
  sockets: engine === 'http' ? sockets : null,
  exhausted,
}));
process.exit(0);
