// oidc-provider as the authorization server of a Kubernetes workload, and a protected resource
// next to it, for oauth-layer's workload identity interop tests (tests/interop_workload.rs).
//
// The suite plays the Kubernetes API server: it makes a signing key at start and signs
// projected service-account tokens with it (iss the cluster's issuer, sub
// `system:serviceaccount:<namespace>:<name>`, aud this provider, exp/iat/nbf and the
// `kubernetes.io` claims). This server trusts that key alone, given as environment:
//
//   WORKLOAD_SA_KEY     the public key, SPKI PEM (required)
//   WORKLOAD_SA_ALG     its algorithm (ES256 by default; RS256 works too)
//   WORKLOAD_K8S_ISSUER the cluster's issuer (https://kubernetes.default.svc.cluster.local)
//   INTEROP_DEBUG=1     oidc-provider's grant errors on stderr
//
// Two grants are registered with `registerGrantType`, and both take such a token:
// - JWT bearer (RFC 7523 §2.1): `assertion`;
// - token exchange (RFC 8693): `subject_token` with `subject_token_type`
//   `urn:ietf:params:oauth:token-type:jwt`.
// Each checks the signature (that key, that algorithm only), `iss`, `aud` (the issuer or the
// token endpoint), `exp`, `nbf` and `iat` with 2 seconds of leeway, a `sub` of the service
// account form that agrees with the `kubernetes.io` claims, and issues an opaque access token
// whose `sub` is the service account. Anything else is `invalid_grant`. Introspection and
// revocation are on (the resource introspects; a test revokes to make the resource answer 401). Tokens are not
// single-use: the kubelet hands the same projected token to every request until it rotates it.
//
// When both listen (ephemeral ports on 127.0.0.1), one JSON line goes to stdout:
//
//   {"issuer":"http://127.0.0.1:P1","token_endpoint":"http://127.0.0.1:P1/token",
//    "resource":"http://127.0.0.1:P2","k8s_issuer":"...","client_id":"workload",
//    "client_secret":"..."}
//
// The resource:
//   GET /api/whoami    introspects the bearer token at the provider; 200 with its `sub`,
//                      `client_id` and `scope`, or 401 `invalid_token`
//   GET /_seen         every assertion and subject token the provider was shown, oldest first:
//                      grant, its SHA-256 (hex, first 16), unverified `sub`, `jti`, `exp`, the
//                      server's clock, and the outcome (`ok` or why it was refused)
//   GET /_calls        every /api/whoami answer: status, the `sub` it named, and the caller's
//                      `x-test` header (so tests sharing the server count only their own)
//
// The process exits when stdin closes, so a test that dies never leaves it behind.
import * as http from 'node:http';
import * as crypto from 'node:crypto';

import Provider, { errors } from 'oidc-provider';
import * as jose from 'jose';

const HOST = '127.0.0.1';
const DEBUG = process.env.INTEROP_DEBUG === '1';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const JWT_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:jwt';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
const K8S_ISSUER = process.env.WORKLOAD_K8S_ISSUER || 'https://kubernetes.default.svc.cluster.local';
const SA_ALG = process.env.WORKLOAD_SA_ALG || 'ES256';
const CLIENT_ID = 'workload';
const CLIENT_SECRET = crypto.randomBytes(16).toString('hex');
// The leeway on exp, nbf and iat: a few seconds, no more.
const LEEWAY = 2;
const SA_SUB = /^system:serviceaccount:([a-z0-9-]+):([a-z0-9-]+)$/;

if (!process.env.WORKLOAD_SA_KEY) {
  console.error('[workload] WORKLOAD_SA_KEY (the service-account signing key, SPKI PEM) is required');
  process.exit(2);
}
const saKey = await jose.importSPKI(process.env.WORKLOAD_SA_KEY, SA_ALG);

function log(...args) {
  if (DEBUG) console.error('[workload]', ...args);
}

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve(server.address().port));
  });
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

let providerHandler = (req, res) => { res.statusCode = 503; res.end(); };
const providerServer = http.createServer((req, res) => providerHandler(req, res));
const providerPort = await listen(providerServer);
const ISSUER = `http://${HOST}:${providerPort}`;
const TOKEN_ENDPOINT = `${ISSUER}/token`;

// The provider's own signing key, made fresh for every run.
const { privateKey: providerKey } = await jose.generateKeyPair('RS256', { extractable: true });
const providerJwk = { ...(await jose.exportJWK(providerKey)), kid: 'provider', alg: 'RS256', use: 'sig' };

// What the provider was shown, and what the resource answered.
const seen = [];
const calls = [];

const provider = new Provider(ISSUER, {
  clients: [
    {
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [JWT_BEARER, TOKEN_EXCHANGE],
      response_types: [],
      redirect_uris: [],
      scope: 'api:read api:write',
    },
    // The resource's own registration, for introspection.
    {
      client_id: 'resource-server',
      client_secret: 'resource-server-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: [],
      response_types: [],
      redirect_uris: [],
    },
  ],
  jwks: { keys: [providerJwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  scopes: ['api:read', 'api:write'],
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    revocation: { enabled: true },
    // On only because introspection and revocation look tokens of this kind up just when the
    // grant is enabled; no client here is allowed client_credentials itself.
    clientCredentials: { enabled: true },
  },
  async extraTokenClaims(ctx, token) {
    return token.extra && Object.keys(token.extra).length ? { ...token.extra } : undefined;
  },
  ttl: { ClientCredentials: 600 },
});
provider.on('server_error', (ctx, err) => console.error('[workload] server_error', err));
provider.on('grant.error', (ctx, err) => log('grant.error', err?.message, err?.error_description ?? ''));

// The checks a Kubernetes token passes here; the `sub` it names, or invalid_grant. Every token
// shown is recorded first, with its outcome.
async function serviceAccount(grant, jwt) {
  const entry = {
    grant,
    sha256: crypto.createHash('sha256').update(jwt).digest('hex').slice(0, 16),
    at: Math.floor(Date.now() / 1000),
  };
  try {
    const claims = jose.decodeJwt(jwt);
    Object.assign(entry, { sub: claims.sub ?? null, jti: claims.jti ?? null, exp: claims.exp ?? null });
  } catch {
    entry.sub = null;
  }
  seen.push(entry);
  try {
    const { payload } = await jose.jwtVerify(jwt, saKey, {
      algorithms: [SA_ALG],
      issuer: K8S_ISSUER,
      audience: [ISSUER, TOKEN_ENDPOINT],
      requiredClaims: ['exp', 'iat', 'nbf', 'sub'],
      clockTolerance: LEEWAY,
    });
    if (payload.iat > entry.at + LEEWAY) throw new Error('iat is in the future');
    const match = SA_SUB.exec(payload.sub);
    const k8s = payload['kubernetes.io'];
    if (!match) throw new Error('sub is not system:serviceaccount:<namespace>:<name>');
    if (k8s?.namespace !== match[1] || k8s?.serviceaccount?.name !== match[2]) {
      throw new Error('the kubernetes.io claims do not name the sub\'s service account');
    }
    entry.outcome = 'ok';
    return payload.sub;
  } catch (err) {
    entry.outcome = `refused: ${err.code || err.message}`;
    throw new errors.InvalidGrant(`the service-account token is refused: ${err.code || err.message}`);
  }
}

async function issue(ctx, sub, scope, extra = {}) {
  const allowed = new Set((ctx.oidc.client.scope || '').split(' '));
  const granted = (scope || '').split(' ').filter((s) => s && allowed.has(s));
  const token = new provider.ClientCredentials({
    client: ctx.oidc.client,
    scope: granted.join(' ') || undefined,
    extra: { sub },
  });
  const value = await token.save();
  ctx.body = {
    access_token: value,
    token_type: token.tokenType,
    expires_in: token.expiration,
    scope: token.scope,
    ...extra,
  };
}

// ---- JWT bearer (RFC 7523 §2.1) ---------------------------------------------------------------

provider.registerGrantType(JWT_BEARER, async (ctx) => {
  const { assertion, scope } = ctx.oidc.params;
  if (!assertion) throw new errors.InvalidRequest('missing assertion');
  await issue(ctx, await serviceAccount('jwt-bearer', assertion), scope);
}, ['assertion', 'scope']);

// ---- token exchange (RFC 8693) ----------------------------------------------------------------

provider.registerGrantType(TOKEN_EXCHANGE, async (ctx) => {
  const p = ctx.oidc.params;
  if (!p.subject_token || !p.subject_token_type) {
    throw new errors.InvalidRequest('subject_token and subject_token_type are required');
  }
  if (p.subject_token_type !== JWT_TOKEN_TYPE) {
    throw new errors.InvalidRequest('only JWT subject tokens are exchanged here');
  }
  if (p.requested_token_type && p.requested_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest('only access tokens are issued here');
  }
  const sub = await serviceAccount('token-exchange', p.subject_token);
  await issue(ctx, sub, p.scope, { issued_token_type: ACCESS_TOKEN_TYPE });
}, ['subject_token', 'subject_token_type', 'requested_token_type', 'audience', 'scope']);

providerHandler = provider.callback();

// ---- the resource -----------------------------------------------------------------------------

const introspectionAuth = `Basic ${Buffer.from('resource-server:resource-server-secret').toString('base64')}`;

const resourceServer = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://resource');
    if (req.method === 'GET' && url.pathname === '/_seen') return send(res, 200, seen);
    if (req.method === 'GET' && url.pathname === '/_calls') return send(res, 200, calls);
    if (url.pathname !== '/api/whoami') return send(res, 404, { error: 'not_found' });
    const [scheme, token] = (req.headers.authorization || '').split(' ');
    const tag = req.headers['x-test'] ?? null;
    let info = { active: false };
    if (scheme?.toLowerCase() === 'bearer' && token) {
      const answer = await fetch(`${ISSUER}/token/introspection`, {
        method: 'POST',
        headers: { authorization: introspectionAuth, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token }).toString(),
      });
      info = await answer.json();
    }
    if (!info.active) {
      calls.push({ status: 401, sub: null, tag });
      return send(res, 401, { error: 'invalid_token' }, {
        'www-authenticate': 'Bearer realm="workload", error="invalid_token"',
      });
    }
    calls.push({ status: 200, sub: info.sub, tag });
    return send(res, 200, { sub: info.sub, client_id: info.client_id, scope: info.scope ?? '' });
  } catch (err) {
    console.error('[workload] resource error', err);
    return send(res, 500, { error: 'server_error' });
  }
});
const resourcePort = await listen(resourceServer);

process.stdout.write(`${JSON.stringify({
  issuer: ISSUER,
  token_endpoint: TOKEN_ENDPOINT,
  resource: `http://${HOST}:${resourcePort}`,
  k8s_issuer: K8S_ISSUER,
  client_id: CLIENT_ID,
  client_secret: CLIENT_SECRET,
})}\n`);

// Exit with the parent: a closed stdin (the test's pipe dropped) or a signal.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => process.exit(0));
