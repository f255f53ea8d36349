// A Logto-like OpenID provider on loopback, for logto-guard's test suite.
//
//   node server.mjs --port 0 --keys /path/to/private-jwks.json [--host 127.0.0.1] [--exit-with-stdin]
//
// The keys file is a JSON Web Key Set with PRIVATE keys; the first key signs access tokens, the
// others are only published. When ready, ONE line of JSON goes to stdout:
//   {"port": 43123, "endpoint": "http://127.0.0.1:43123", "issuer": "http://127.0.0.1:43123/oidc"}
// Logs go to stderr. SIGTERM / SIGINT close the server and exit 0; with --exit-with-stdin, so does
// the end of stdin (the parent test process died without stopping us).
//
// Like Logto (which is built on oidc-provider), the provider is mounted under /oidc:
//   /oidc/.well-known/openid-configuration   discovery (also /oidc/.well-known/oauth-authorization-server)
//   /oidc/jwks                                 public keys; Cache-Control no-cache + ETag, 304 on If-None-Match
//   /oidc/token                                client_credentials with a resource indicator -> JWT (at+jwt)
// Control API (not part of Logto; for tests only):
//   POST /__control/keys         {"keys": [private JWKs]}  replace the key set (first key signs)
//   GET  /__control/stats        {"jwks_requests", "jwks_304", "discovery_requests", "token_requests"}
//   POST /__control/stats/reset  zero the counters
//   GET  /__control/health       {"ok": true, "kids": [...], "signing_kid": "..."}
//   POST /__control/resources    {"resource": URL, "scopes": [...], "grants": {"<client>": [...]}}
//                                add an API resource (e.g. an MCP server's URL, known only once
//                                it listens) and what each client's roles grant on it

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const MOUNT = '/oidc';
const CONTROL = '/__control';

const SHOP = 'https://shopping.api';
const MGMT = 'https://default.logto.app/api';

// API resources, as Logto's "API resources" with their permissions (scopes).
const RESOURCES = {
  [SHOP]: ['read:products', 'write:products'],
  [MGMT]: ['all'],
};

// M2M applications: secret and what their M2M roles grant, per resource.
const CLIENTS = {
  'shop-reader': { secret: 'reader-secret', grants: { [SHOP]: ['read:products'] } },
  'shop-writer': { secret: 'writer-secret', grants: { [SHOP]: ['read:products', 'write:products'] } },
  'mgmt-client': { secret: 'mgmt-secret', grants: { [MGMT]: ['all'] } },
  'org-client': { secret: 'org-secret', grants: { [SHOP]: ['read:products'] } },
};

const ACCESS_TOKEN_TTL = 3600; // Logto's default per API resource

const JWKS_CACHE_CONTROL = 'no-cache, max-age=0, must-revalidate';

const stats = {
  jwks_requests: 0,
  jwks_304: 0,
  discovery_requests: 0,
  token_requests: 0,
};

function log(...args) {
  process.stderr.write(`[oidc-provider-test] ${args.join(' ')}\n`);
}

function signingAlgFor(jwk) {
  if (jwk.kty === 'RSA') {
    return 'RS256';
  }
  if (jwk.kty === 'EC') {
    const byCurve = { 'P-256': 'ES256', 'P-384': 'ES384', 'P-521': 'ES512' };
    const alg = byCurve[jwk.crv];
    if (alg) {
      return alg;
    }
  }
  if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') {
    return 'EdDSA';
  }
  throw new Error(`unsupported signing key: kty=${jwk.kty} crv=${jwk.crv}`);
}

function validateKeySet(jwks) {
  if (!jwks || typeof jwks !== 'object' || !Array.isArray(jwks.keys) || jwks.keys.length === 0) {
    throw new Error('expected a JSON Web Key Set with at least one private key: {"keys": [...]}');
  }
  for (const [i, jwk] of jwks.keys.entries()) {
    if (!jwk || typeof jwk !== 'object' || typeof jwk.kid !== 'string' || !jwk.kid) {
      throw new Error(`keys[${i}] must be a JWK with a non-empty "kid"`);
    }
    if (typeof jwk.d !== 'string') {
      throw new Error(`keys[${i}] (kid ${jwk.kid}) must be a PRIVATE JWK (no "d")`);
    }
  }
}

// Build one Provider instance for a given issuer and key set. Clients are static configuration and
// JWT access tokens are stateless, so swapping instances on a key change loses nothing that matters.
function buildProvider(issuer, jwks) {
  validateKeySet(jwks);
  const signing = jwks.keys[0];
  const alg = signingAlgFor(signing);
  const kid = signing.kid;

  const provider = new Provider(issuer, {
    jwks: structuredClone(jwks),
    clients: Object.entries(CLIENTS).map(([clientId, { secret }]) => ({
      client_id: clientId,
      client_secret: secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      // oidc-provider accepts client_secret_post for a client_secret_basic client and vice versa
      // (both are "client secret" methods), which is how Logto behaves too.
      token_endpoint_auth_method: 'client_secret_basic',
    })),
    clientDefaults: {
      grant_types: ['client_credentials'],
      response_types: [],
      id_token_signed_response_alg: alg,
      token_endpoint_auth_method: 'client_secret_basic',
    },
    enabledJWA: {
      idTokenSigningAlgValues: [
        'ES256', 'ES384', 'ES512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'EdDSA',
      ],
    },
    cookies: { keys: ['logto-guard-test-provider-cookie-key'] },
    features: {
      devInteractions: { enabled: false },
      dPoP: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Logto requires a resource for client_credentials (no default API resource here).
        defaultResource: (ctx) => {
          if (ctx.oidc.params?.grant_type === 'client_credentials') {
            throw new errors.InvalidTarget('resource indicator is missing');
          }
          return undefined;
        },
        useGrantedResource: () => true,
        getResourceServerInfo: (ctx, resourceIndicator, client) => {
          const known = RESOURCES[resourceIndicator];
          if (!known) {
            throw new errors.InvalidTarget('resource indicator is missing, or unknown');
          }
          // Only the scopes the client's roles grant on this resource; oidc-provider silently
          // drops requested scopes that are not in this list (as Logto does).
          const granted = CLIENTS[client.clientId]?.grants[resourceIndicator] ?? [];
          return {
            scope: known.filter((s) => granted.includes(s)).join(' '),
            accessTokenFormat: 'jwt',
            accessTokenTTL: ACCESS_TOKEN_TTL,
            jwt: { sign: { alg, kid } },
          };
        },
      },
    },
    ttl: {
      AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL ?? ACCESS_TOKEN_TTL,
      ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? ACCESS_TOKEN_TTL,
      IdToken: 3600,
      Interaction: 3600,
      Session: 3600,
      Grant: 3600,
    },
  });

  // Logto's JWKS caching headers: revalidate every time, cheaply, with an ETag.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/jwks' && (ctx.method === 'GET' || ctx.method === 'HEAD')
        && ctx.status === 200 && ctx.body) {
      const bodyText = JSON.stringify(ctx.body);
      ctx.set('Cache-Control', JWKS_CACHE_CONTROL);
      ctx.etag = `W/"${createHash('sha256').update(bodyText).digest('base64url').slice(0, 27)}"`;
      if (ctx.fresh) {
        ctx.status = 304;
        ctx.body = null;
        stats.jwks_304 += 1;
      }
    }
  });

  provider.on('server_error', (ctx, err) => {
    log('server_error', ctx.method, ctx.path, err?.stack ?? String(err));
  });

  return { provider, callback: provider.callback(), kids: jwks.keys.map((k) => k.kid), kid, alg };
}

function sendJson(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}

async function readJson(req, limit = 1 << 20) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) {
      throw new Error('body too large');
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : {};
}

function main() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      keys: { type: 'string' },
      'exit-with-stdin': { type: 'boolean', default: false },
    },
  });
  if (!values.keys) {
    throw new Error('usage: node server.mjs --port 0 --keys <private-jwks.json>');
  }
  const initialKeys = JSON.parse(readFileSync(values.keys, 'utf8'));
  validateKeySet(initialKeys);

  let current = null; // { provider, callback, kids, kid, alg }
  let issuer = null;
  let publicHost = null;

  async function control(req, res, path) {
    if (req.method === 'POST' && path === '/keys') {
      let body;
      try {
        body = await readJson(req);
        current = buildProvider(issuer, body);
      } catch (err) {
        sendJson(res, 400, { error: 'invalid_keys', error_description: String(err?.message ?? err) });
        return;
      }
      log('key set replaced; signing kid', current.kid, current.alg, 'published', current.kids.join(','));
      sendJson(res, 200, { kids: current.kids, signing_kid: current.kid, alg: current.alg });
      return;
    }
    if (req.method === 'POST' && path === '/resources') {
      let body;
      try {
        body = await readJson(req);
        if (typeof body.resource !== 'string' || !Array.isArray(body.scopes)) {
          throw new Error('expected {"resource": "...", "scopes": [...], "grants": {...}}');
        }
      } catch (err) {
        sendJson(res, 400, { error: 'invalid_resource', error_description: String(err?.message ?? err) });
        return;
      }
      RESOURCES[body.resource] = body.scopes;
      for (const [clientId, scopes] of Object.entries(body.grants ?? {})) {
        if (CLIENTS[clientId]) {
          CLIENTS[clientId].grants[body.resource] = scopes;
        }
      }
      sendJson(res, 200, { resource: body.resource, scopes: body.scopes });
      return;
    }
    if (req.method === 'GET' && path === '/stats') {
      sendJson(res, 200, stats);
      return;
    }
    if (req.method === 'POST' && path === '/stats/reset') {
      for (const name of Object.keys(stats)) {
        stats[name] = 0;
      }
      sendJson(res, 200, stats);
      return;
    }
    if (req.method === 'GET' && path === '/health') {
      sendJson(res, 200, { ok: true, kids: current.kids, signing_kid: current.kid, alg: current.alg });
      return;
    }
    sendJson(res, 404, { error: 'not_found' });
  }

  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    const path = url.split('?', 1)[0];

    if (!current) {
      sendJson(res, 503, { error: 'starting' });
      return;
    }

    if (path === CONTROL || path.startsWith(`${CONTROL}/`)) {
      control(req, res, path.slice(CONTROL.length)).catch((err) => {
        log('control error', err?.stack ?? String(err));
        if (!res.headersSent) {
          sendJson(res, 500, { error: 'server_error', error_description: String(err) });
        }
      });
      return;
    }

    if (path === MOUNT || path.startsWith(`${MOUNT}/`)) {
      let inner = url.slice(MOUNT.length) || '/';
      if (inner.startsWith('?')) {
        inner = `/${inner}`;
      }
      const innerPath = inner.split('?', 1)[0];
      // Logto also answers the RFC 8414 name of the discovery document.
      if (innerPath === '/.well-known/oauth-authorization-server') {
        inner = inner.replace('/.well-known/oauth-authorization-server', '/.well-known/openid-configuration');
      }
      if (innerPath.startsWith('/.well-known/')) {
        stats.discovery_requests += 1;
      } else if (innerPath === '/jwks') {
        stats.jwks_requests += 1;
      } else if (innerPath === '/token') {
        stats.token_requests += 1;
      }
      // Like Logto, URLs in discovery follow the configured endpoint, not the Host a request used.
      req.headers.host = publicHost;
      // oidc-provider derives its mount path from originalUrl minus url.
      req.originalUrl = `${MOUNT}${inner}`;
      req.url = inner;
      current.callback(req, res);
      return;
    }

    sendJson(res, 404, { error: 'not_found' });
  });
  server.keepAliveTimeout = 5000;

  server.on('error', (err) => {
    log('listen error:', err?.message ?? String(err));
    process.exit(1);
  });

  server.listen(Number(values.port), values.host, () => {
    const { port } = server.address();
    const hostForUrl = values.host.includes(':') ? `[${values.host}]` : values.host;
    const endpoint = `http://${hostForUrl}:${port}`;
    issuer = `${endpoint}${MOUNT}`;
    publicHost = `${hostForUrl}:${port}`;
    try {
      current = buildProvider(issuer, initialKeys);
    } catch (err) {
      log('cannot start provider:', err?.stack ?? String(err));
      process.exit(1);
    }
    process.stdout.write(`${JSON.stringify({ port, endpoint, issuer })}\n`);
    log('ready', issuer, 'signing kid', current.kid, current.alg);
  });

  let stopping = false;
  const shutdown = (signal) => {
    if (stopping) {
      return;
    }
    stopping = true;
    log('received', signal, '- shutting down');
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  if (values['exit-with-stdin']) {
    process.stdin.on('end', () => shutdown('end of stdin'));
    process.stdin.on('error', () => shutdown('stdin error'));
    process.stdin.resume();
  }
}

try {
  main();
} catch (err) {
  log('fatal:', err?.stack ?? String(err));
  process.exit(1);
}
