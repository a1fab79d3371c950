// Load generator for bench/token_endpoint.py, for what autocannon cannot replay: requests whose
// body changes every time (a refresh token is single use) or that take several requests with
// cookies (a password login through the authorization endpoint).
//
//   node flow_load.mjs CONFIG.json
//
// CONFIG (written by the benchmark):
//   { "mode": "refresh" | "login", "base_url": "http://127.0.0.1:PORT",
//     "concurrency": 8, "warmup": 5, "duration": 15,
//     refresh: "token_path", "authorization" (Basic …), "refresh_tokens": [...]
//     login:   "authorize_path", "authorize_query" (object), "accounts": [...], "password" }
//
// refresh: each worker takes a refresh token from the pool, exchanges it (grant_type=
//   refresh_token), checks the answer is 200 with an access token and a *new* refresh token,
//   and puts the new one back in the pool: every token is presented exactly once, and the run
//   lasts as long as asked whatever the rate. A failed exchange loses that token (its family).
// login: each iteration is a new browser (no cookies): GET the authorization endpoint (login
//   page, CSRF cookie, csrf_token and txn in the form), then POST the login form with the next
//   account's login and password; success is the consent page (200) or a redirect (303) to the
//   client's redirect URI carrying a code. Latency is that of the whole login (both requests).
//
// Plain node:http with a keep-alive agent (no dependency). Only requests that complete inside
// the measured window count. Prints one JSON line:
//   { mode, concurrency, seconds, completed, rate, p50_ms, p99_ms, max_ms, errors,
//     warmup_errors, statuses: {code: count}, samples: [first few failures], tokens_left }
// It stops by itself: after warmup + duration (plus a bounded wait for requests in flight), or
// after BENCH_MAX_SECONDS (default warmup + duration + 90), whichever comes first.

import http from 'node:http';
import process from 'node:process';

import { Failure, loadConfig, timedRun } from './timed_run.mjs';

const { config, base, concurrency, warmupMs, durationMs } = loadConfig('flow_load.mjs');
const REQUEST_TIMEOUT_MS = 30_000;

const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, maxFreeSockets: concurrency });

function request(method, path, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: base.hostname,
        port: base.port,
        method,
        path,
        agent,
        headers: body === undefined ? headers : { ...headers, 'content-length': Buffer.byteLength(body) },
        timeout: REQUEST_TIMEOUT_MS,
      },
      (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('end', () => resolve({
          status: res.statusCode,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

// -- refresh ---------------------------------------------------------------------------------

const pool = [];

async function refreshOnce() {
  const token = pool.pop();
  if (token === undefined) return null; // every token lost to failures: nothing left to do
  const body = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: token }).toString();
  const res = await request('POST', config.token_path, {
    authorization: config.authorization,
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  }, body);
  if (res.status !== 200) throw new Failure(res.status, res.body.slice(0, 300));
  let answer;
  try {
    answer = JSON.parse(res.body);
  } catch {
    throw new Failure('bad-json', res.body.slice(0, 300));
  }
  const next = answer.refresh_token;
  if (typeof answer.access_token !== 'string' || typeof next !== 'string' || next === token) {
    throw new Failure('no-rotation', `keys ${Object.keys(answer).join(',')}`);
  }
  pool.push(next);
  return res.status;
}

// -- login -----------------------------------------------------------------------------------

let nextAccount = 0;

function unescapeHtml(text) {
  return text.replace(/&(amp|lt|gt|quot|#39|#x27|#34);/g, (_, name) => ({
    amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", '#x27': "'", '#34': '"',
  })[name]);
}

function hidden(html, name) {
  const match = html.match(new RegExp(`name="${name}"\\s+value="([^"]*)"`));
  return match ? unescapeHtml(match[1]) : null;
}

function cookies(res) {
  const jar = [];
  for (const line of res.headers['set-cookie'] ?? []) jar.push(line.split(';')[0]);
  return jar.join('; ');
}

async function loginOnce() {
  const account = config.accounts[nextAccount % config.accounts.length];
  nextAccount += 1;
  const query = new URLSearchParams({ ...config.authorize_query, state: `s${nextAccount}` });
  const page = await request('GET', `${config.authorize_path}?${query}`, { accept: 'text/html' });
  if (page.status !== 200) throw new Failure(`get-${page.status}`, page.body.slice(0, 300));
  const cookie = cookies(page);
  const csrf = hidden(page.body, 'csrf_token');
  const txn = hidden(page.body, 'txn');
  if (!cookie || !csrf || !txn) throw new Failure('get-no-form', page.body.slice(0, 300));
  const form = new URLSearchParams({
    csrf_token: csrf, txn, login: account, password: config.password, action: 'login',
  }).toString();
  const res = await request('POST', `${config.authorize_path}/login`, {
    cookie,
    accept: 'text/html',
    'content-type': 'application/x-www-form-urlencoded',
  }, form);
  if (res.status === 200 && res.body.includes(`action="${config.authorize_path}/consent"`)) {
    return 200;
  }
  if (res.status === 303) {
    const location = res.headers.location ?? '';
    if (location.startsWith(config.authorize_query.redirect_uri) && location.includes('code=')) {
      return 303;
    }
  }
  const error = res.body.match(/role="alert"[^>]*>([\s\S]{0,200})/);
  throw new Failure(`post-${res.status}`, (error ? error[1] : res.body).trim().slice(0, 300));
}

// -- the run ---------------------------------------------------------------------------------

const once = config.mode === 'refresh' ? refreshOnce : loginOnce;
if (config.mode === 'refresh') pool.push(...config.refresh_tokens);
else if (config.mode !== 'login') {
  console.error(`unknown mode ${config.mode}`);
  process.exit(2);
}

const result = await timedRun(once, { concurrency, warmupMs, durationMs });
agent.destroy();

const round = (x) => (x === null ? null : Math.round(x * 10) / 10);
console.log(JSON.stringify({
  mode: config.mode,
  concurrency,
  seconds: config.duration,
  completed: result.completed,
  rate: result.completed / config.duration,
  p50_ms: round(result.p50_ms),
  p99_ms: round(result.p99_ms),
  max_ms: round(result.max_ms),
  errors: result.errors,
  warmup_errors: result.warmup_errors,
  statuses: result.statuses,
  samples: result.samples,
  tokens_left: config.mode === 'refresh' ? pool.length : undefined,
}));
process.exit(0);
