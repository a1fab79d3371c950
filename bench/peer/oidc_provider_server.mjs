// Peer for bench/token_endpoint.py: the Node `oidc-provider` package, configured like onecard's
// token endpoint (client_credentials, client_secret_basic, ES256 JWT access tokens).
//
//   BENCH_CLIENT_SECRET=... [BENCH_WORKERS=2] node oidc_provider_server.mjs PORT
//
// Runs in Node cluster mode with BENCH_WORKERS worker processes (as many as onecard's uvicorn
// workers), all listening on 127.0.0.1:PORT. The primary generates one ES256 (P-256) signing key
// at start and hands it to every worker, so all of them sign with the same key, as a real
// deployment would. The primary prints "ready <port> <workers>" once every worker listens.
//
// It stops by itself: when its standard input closes (the benchmark that started it exited,
// however it exited), on SIGTERM/SIGINT, or after BENCH_MAX_SECONDS (default 1800).

import cluster from 'node:cluster';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';
import process from 'node:process';

const HOST = '127.0.0.1';
const RESOURCE = 'urn:onecard:bench:api';
const SCOPE = 'card:verify';

const port = Number.parseInt(process.argv[2] ?? '', 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node oidc_provider_server.mjs PORT');
  process.exit(2);
}

if (cluster.isPrimary) {
  const workers = Number.parseInt(process.env.BENCH_WORKERS ?? '2', 10);
  const maxSeconds = Number.parseInt(process.env.BENCH_MAX_SECONDS ?? '1800', 10);
  if (!process.env.BENCH_CLIENT_SECRET) {
    console.error('BENCH_CLIENT_SECRET must be set');
    process.exit(2);
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = {
    ...privateKey.export({ format: 'jwk' }),
    kid: randomBytes(8).toString('hex'),
    alg: 'ES256',
    use: 'sig',
  };

  let stopping = false;
  const stop = (why, code = 0) => {
    if (stopping) return;
    stopping = true;
    if (why) console.error(`oidc-provider peer stopping: ${why}`);
    for (const worker of Object.values(cluster.workers)) worker?.process.kill('SIGTERM');
    setTimeout(() => process.exit(code), 2000).unref();
    const poll = setInterval(() => {
      if (Object.keys(cluster.workers).length === 0) process.exit(code);
    }, 50);
    poll.unref();
  };

  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.stdin.on('end', () => stop('standard input closed'));
  process.stdin.on('error', () => stop('standard input closed'));
  process.stdin.resume();
  setTimeout(() => stop(`BENCH_MAX_SECONDS=${maxSeconds} elapsed`), maxSeconds * 1000).unref();

  let listening = 0;
  cluster.on('listening', () => {
    listening += 1;
    if (listening === workers) console.log(`ready ${port} ${workers}`);
  });
  cluster.on('exit', (worker, code, signal) => {
    if (!stopping) stop(`worker ${worker.process.pid} exited (${signal ?? code})`, 1);
  });
  for (let i = 0; i < workers; i += 1) {
    cluster.fork({ BENCH_JWK: JSON.stringify(jwk) });
  }
} else {
  const { default: Provider, errors } = await import('oidc-provider');
  const jwk = JSON.parse(process.env.BENCH_JWK);

  const resourceServer = {
    scope: SCOPE,
    audience: RESOURCE,
    accessTokenTTL: 600,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'ES256' } },
  };

  const provider = new Provider(`http://${HOST}:${port}`, {
    clients: [
      {
        client_id: 'bench',
        client_secret: process.env.BENCH_CLIENT_SECRET,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: SCOPE,
      },
    ],
    jwks: { keys: [jwk] },
    // Only the signing algorithm the benchmark uses; the default list would advertise others.
    enabledJWA: { idTokenSigningAlgValues: ['ES256'] },
    clientDefaults: { id_token_signed_response_alg: 'ES256' },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    scopes: ['openid', SCOPE],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // A request without `resource` is for the one API: without this default,
        // client_credentials would issue an opaque token (or none) rather than a JWT.
        defaultResource: () => RESOURCE,
        getResourceServerInfo: (ctx, resourceIndicator) => {
          if (resourceIndicator === RESOURCE) return resourceServer;
          throw new errors.InvalidTarget();
        },
      },
    },
    ttl: {
      ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? 600,
    },
  });
  provider.on('server_error', (ctx, err) => console.error('server_error', err));

  // provider.callback() is the Koa request handler; no proxy, plain HTTP on the loopback only.
  const server = http.createServer(provider.callback());
  server.listen(port, HOST);
  process.on('SIGTERM', () => {
    server.close();
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 200).unref();
  });
  process.on('disconnect', () => process.exit(0));
}
