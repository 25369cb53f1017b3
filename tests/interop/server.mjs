// oidc-provider and a protected resource on 127.0.0.1, for oauth-layer's interop tests
// (tests/interop.rs). Both listen on ephemeral ports; when they are ready, one JSON line goes
// to stdout:
//
//   {"issuer":"http://127.0.0.1:P1","provider_port":P1,"resource":"http://127.0.0.1:P2",
//    "resource_port":P2,"keys":{"private_key_jwt":"<PKCS#8 PEM>","jwt_bearer":"<PKCS#8 PEM>"}}
//
// Everything else (oidc-provider's warnings, request logs with INTEROP_DEBUG=1) goes to stderr.
// The process exits when stdin closes, so a test that dies never leaves it behind.
//
// What it configures, and why (oidc-provider 9.13.3):
// - Refresh tokens for every client allowed the refresh_token grant (`issueRefreshToken`),
//   rotated on every use (`rotateRefreshToken`); reusing a rotated one revokes the grant.
// - `resourceIndicators` with a default resource only for the `cc-jwt` client, whose client
//   credentials tokens are JWTs for the resource; every other token is opaque, and the resource
//   validates those with the provider's own introspection endpoint.
// - A check that a client registered for client_secret_basic really uses Basic, and one
//   registered for client_secret_post really uses the body (oidc-provider accepts either).
// - devInteractions (real login and consent pages), the device flow, introspection,
//   revocation, and two grants registered with `registerGrantType`: JWT bearer (RFC 7523) and
//   token exchange (RFC 8693).
// - Clients whose id ends in `-short` get 4-second access tokens.
import * as http from 'node:http';
import * as crypto from 'node:crypto';

import Provider, { errors } from 'oidc-provider';
import * as jose from 'jose';

const HOST = '127.0.0.1';
const DEBUG = process.env.INTEROP_DEBUG === '1';
const SHORT_TTL = Number(process.env.INTEROP_SHORT_TTL || 4);

const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const DEVICE_CODE = 'urn:ietf:params:oauth:grant-type:device_code';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';
// The `iss` of the JWT bearer assertions this server trusts (signed with the jwt_bearer key).
const ASSERTION_ISSUER = 'interop-service-account';

// The secret with every character RFC 6749 §2.3.1 makes clients form-encode.
const RESERVED_SECRET = 'a:b/c+d%e&f=g h~';

function log(...args) {
  if (DEBUG) console.error('[interop]', ...args);
}

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve(server.address().port));
  });
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

// ---- keys: made fresh for every run, never written to disk -------------------------------------

async function keyPair(alg, kid) {
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  const privateJwk = { ...(await jose.exportJWK(privateKey)), kid, alg, use: 'sig' };
  const publicJwk = { ...(await jose.exportJWK(publicKey)), kid, alg, use: 'sig' };
  const pem = await jose.exportPKCS8(privateKey);
  return { publicKey, privateKey, privateJwk, publicJwk, pem };
}

const providerKey = await keyPair('RS256', 'provider-rs256');
const clientKey = await keyPair('ES256', 'pkjwt-es256');
const assertionKey = await keyPair('ES256', 'service-account-es256');

// ---- listeners first, so the issuer URL knows its port ------------------------------------------

let providerHandler = (req, res) => { res.statusCode = 503; res.end(); };
let resourceHandler = providerHandler;
const providerServer = http.createServer((req, res) => providerHandler(req, res));
const resourceServer = http.createServer((req, res) => resourceHandler(req, res));
const providerPort = await listen(providerServer);
const resourcePort = await listen(resourceServer);
const ISSUER = `http://${HOST}:${providerPort}`;
const RESOURCE = `http://${HOST}:${resourcePort}`;

// ---- what the tests can read back (GET <resource>/stats) ----------------------------------------

const stats = {
  // token endpoint requests by grant_type, and by grant_type + client auth method
  grants: {},
  auth_methods: {},
  // requests rejected by the auth method check
  auth_method_mismatches: 0,
  // resource answers by status
  resource: { 200: 0, 401: 0, 403: 0 },
  // resource 401s by reason
  resource_401: {},
};

function bump(map, key) {
  map[key] = (map[key] || 0) + 1;
}

// ---- clients ------------------------------------------------------------------------------------

const ccClient = (id, secret, method, extra = {}) => ({
  client_id: id,
  client_secret: secret,
  token_endpoint_auth_method: method,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  scope: 'api:read api:write',
  ...extra,
});

const nativeClient = (id) => ({
  client_id: id,
  application_type: 'native',
  token_endpoint_auth_method: 'none',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  // A native client's loopback redirect URI matches any port (RFC 8252 §7.3).
  redirect_uris: [`http://${HOST}/callback`],
  scope: 'openid email profile offline_access api:read api:write',
});

const clients = [
  ccClient('cc-basic', 'cc-basic-secret', 'client_secret_basic'),
  ccClient('cc-post', 'cc-post-secret', 'client_secret_post'),
  ccClient('cc-reserved', RESERVED_SECRET, 'client_secret_basic'),
  ccClient('cc-reserved-post', RESERVED_SECRET, 'client_secret_post'),
  ccClient('cc-short', 'cc-short-secret', 'client_secret_basic'),
  ccClient('cc-jwt', 'cc-jwt-secret', 'client_secret_basic'),
  {
    ...ccClient('pkjwt', undefined, 'private_key_jwt'),
    token_endpoint_auth_signing_alg: 'ES256',
    jwks: { keys: [clientKey.publicJwk] },
  },
  nativeClient('native-app'),
  nativeClient('native-short'),
  {
    client_id: 'tv-app',
    token_endpoint_auth_method: 'none',
    grant_types: [DEVICE_CODE, 'refresh_token'],
    response_types: [],
    redirect_uris: [],
    scope: 'openid email profile offline_access api:read',
  },
  {
    client_id: 'jwt-bearer-client',
    token_endpoint_auth_method: 'none',
    grant_types: [JWT_BEARER],
    response_types: [],
    redirect_uris: [],
    scope: 'api:read api:write',
  },
  {
    client_id: 'exchanger',
    client_secret: 'exchanger-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: [TOKEN_EXCHANGE],
    response_types: [],
    redirect_uris: [],
    scope: 'api:read api:write',
  },
  // The protected resource's own registration, for introspection.
  {
    client_id: 'resource-server',
    client_secret: 'resource-server-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: [],
    response_types: [],
    redirect_uris: [],
  },
];

const isShort = (client) => client?.clientId?.endsWith('-short');

// ---- the provider -------------------------------------------------------------------------------

const provider = new Provider(ISSUER, {
  clients,
  jwks: { keys: [providerKey.privateJwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'api:read', 'api:write'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  async findAccount(ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return { sub, email: `${sub}@example.test`, email_verified: true, name: `Interop ${sub}` };
      },
    };
  },
  features: {
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    userinfo: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource(ctx, client, oneOf) {
        if (oneOf) return oneOf;
        return client.clientId === 'cc-jwt' ? RESOURCE : undefined;
      },
      getResourceServerInfo(ctx, indicator) {
        if (indicator !== RESOURCE) throw new errors.InvalidTarget();
        return {
          scope: 'api:read api:write',
          audience: RESOURCE,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 600,
          jwt: { sign: { alg: 'RS256' } },
        };
      },
      useGrantedResource() {
        return true;
      },
    },
  },
  // Refresh tokens for every client that may use them (not only with offline_access + consent).
  issueRefreshToken(ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  // Rotate on every use, confidential clients included.
  rotateRefreshToken: true,
  ttl: {
    AccessToken(ctx, token, client) {
      if (token.resourceServer) return token.resourceServer.accessTokenTTL || 600;
      return isShort(client) ? SHORT_TTL : 600;
    },
    ClientCredentials(ctx, token, client) {
      if (token.resourceServer) return token.resourceServer.accessTokenTTL || 600;
      return isShort(client) ? SHORT_TTL : 600;
    },
    AuthorizationCode: 60,
    DeviceCode: 600,
    Grant: 3600,
    IdToken: 3600,
    Interaction: 600,
    RefreshToken: 3600,
    Session: 3600,
  },
  renderError(ctx, out, error) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><title>error</title><pre id="error">${JSON.stringify(out)}</pre>`;
    log('renderError', error?.message);
  },
});

provider.on('server_error', (ctx, err) => console.error('[interop] server_error', err));
if (DEBUG) {
  for (const event of ['grant.error', 'introspection.error', 'revocation.error', 'userinfo.error',
    'authorization.error', 'device_authorization.error', 'grant.revoked']) {
    provider.on(event, (ctx, err) => log(event, err?.message ?? err, err?.error_description ?? ''));
  }
}

// ---- client authentication method check ---------------------------------------------------------

const CLIENT_AUTH_PATHS = new Set(['/token', '/token/introspection', '/token/revocation', '/device/auth']);

function providedMethod(headers, params) {
  const auth = headers.authorization;
  if (auth && /^basic /i.test(auth)) {
    let id;
    try {
      const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
      id = decodeURIComponent(decoded.slice(0, decoded.indexOf(':')).replace(/\+/g, '%20'));
    } catch {
      id = undefined;
    }
    return { method: 'client_secret_basic', id };
  }
  if (params.get('client_assertion')) {
    let id;
    try {
      id = jose.decodeJwt(params.get('client_assertion')).sub;
    } catch {
      id = undefined;
    }
    return { method: 'jwt', id };
  }
  if (params.get('client_secret')) return { method: 'client_secret_post', id: params.get('client_id') };
  return { method: 'none', id: params.get('client_id') };
}

provider.use(async (ctx, next) => {
  log(ctx.method, ctx.path);
  if (ctx.method === 'POST' && CLIENT_AUTH_PATHS.has(ctx.path)
    && ctx.is('application/x-www-form-urlencoded')) {
    // Read the body here and hand it on: oidc-provider reads `req.body` when the stream is spent.
    const raw = await readBody(ctx.req);
    ctx.req.body = raw;
    const params = new URLSearchParams(raw);
    const { method, id } = providedMethod(ctx.headers, params);
    if (ctx.path === '/token') {
      const grant = params.get('grant_type') || '';
      bump(stats.grants, grant);
      bump(stats.auth_methods, `${grant} ${method}`);
    }
    const client = id ? await provider.Client.find(id) : undefined;
    const registered = client?.clientAuthMethod;
    if ((registered === 'client_secret_basic' || registered === 'client_secret_post')
      && (method === 'client_secret_basic' || method === 'client_secret_post')
      && registered !== method) {
      stats.auth_method_mismatches += 1;
      ctx.status = 401;
      ctx.type = 'application/json';
      ctx.set('Cache-Control', 'no-store');
      ctx.body = {
        error: 'invalid_client',
        error_description: `client is registered for ${registered}, not ${method}`,
      };
      return;
    }
  }
  await next();
});

// ---- JWT bearer (RFC 7523 §2.1) -----------------------------------------------------------------

const seenJti = new Set();

provider.registerGrantType(JWT_BEARER, async (ctx) => {
  const { assertion, scope } = ctx.oidc.params;
  if (!assertion) throw new errors.InvalidRequest('missing assertion');
  let payload;
  try {
    ({ payload } = await jose.jwtVerify(assertion, assertionKey.publicKey, {
      issuer: ASSERTION_ISSUER,
      audience: [ISSUER, `${ISSUER}/token`],
      requiredClaims: ['exp', 'sub', 'jti'],
      maxTokenAge: '10m',
      clockTolerance: 5,
    }));
  } catch (err) {
    throw new errors.InvalidGrant(`invalid assertion: ${err.message}`);
  }
  if (seenJti.has(payload.jti)) throw new errors.InvalidGrant('assertion replayed');
  seenJti.add(payload.jti);
  const allowed = new Set((ctx.oidc.client.scope || '').split(' '));
  const granted = (scope || '').split(' ').filter((s) => s && allowed.has(s));
  const token = new provider.ClientCredentials({
    client: ctx.oidc.client,
    scope: granted.join(' ') || undefined,
    extra: { sub: payload.sub },
  });
  const value = await token.save();
  ctx.body = {
    access_token: value,
    token_type: 'Bearer',
    expires_in: token.expiration,
    scope: token.scope,
  };
}, ['assertion', 'scope']);

// ---- token exchange (RFC 8693) ------------------------------------------------------------------

async function findAccessToken(value) {
  return (await provider.ClientCredentials.find(value)) || (await provider.AccessToken.find(value));
}

provider.registerGrantType(TOKEN_EXCHANGE, async (ctx) => {
  const p = ctx.oidc.params;
  if (!p.subject_token || !p.subject_token_type) {
    throw new errors.InvalidRequest('subject_token and subject_token_type are required');
  }
  if (p.subject_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest('only access tokens are exchanged here');
  }
  if (p.requested_token_type && p.requested_token_type !== ACCESS_TOKEN_TYPE) {
    throw new errors.InvalidRequest('only access tokens are issued here');
  }
  const subject = await findAccessToken(p.subject_token);
  if (!subject || subject.isExpired) throw new errors.InvalidGrant('the subject token is not active');
  let actor;
  if (p.actor_token) {
    actor = await findAccessToken(p.actor_token);
    if (!actor) throw new errors.InvalidGrant('the actor token is not active');
  }
  const allowed = new Set((ctx.oidc.client.scope || '').split(' '));
  const requested = (p.scope || subject.scope || '').split(' ').filter((s) => s && allowed.has(s));
  const token = new provider.ClientCredentials({
    client: ctx.oidc.client,
    scope: requested.join(' ') || undefined,
    extra: {
      sub: subject.accountId || subject.clientId,
      act: { sub: actor ? (actor.accountId || actor.clientId) : ctx.oidc.client.clientId },
      ...(p.audience ? { exchanged_for: p.audience } : {}),
    },
  });
  const value = await token.save();
  ctx.body = {
    access_token: value,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: 'Bearer',
    expires_in: token.expiration,
    scope: token.scope,
  };
}, ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
  'requested_token_type', 'audience', 'scope']);

providerHandler = provider.callback();

// ---- the protected resource ---------------------------------------------------------------------
//
// GET /api/read needs `api:read`, GET /api/write needs `api:write`. JWT access tokens (three
// segments) are verified with the provider's JWKS (issuer, audience = this resource, expiry);
// anything else is introspected at the provider (so revoked and expired tokens are inactive).
// GET /stats returns the counters above. Answers follow RFC 6750 §3.

const jwks = jose.createRemoteJWKSet(new URL(`${ISSUER}/jwks`));
const introspectionAuth = `Basic ${Buffer.from('resource-server:resource-server-secret').toString('base64')}`;

async function validate(token) {
  if (token.split('.').length === 3) {
    try {
      const { payload } = await jose.jwtVerify(token, jwks, {
        issuer: ISSUER,
        audience: RESOURCE,
        typ: 'at+jwt',
      });
      return { active: true, scope: payload.scope || '', client_id: payload.client_id, sub: payload.sub, format: 'jwt' };
    } catch (err) {
      return { active: false, reason: `jwt: ${err.code || err.message}` };
    }
  }
  const res = await fetch(`${ISSUER}/token/introspection`, {
    method: 'POST',
    headers: { authorization: introspectionAuth, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ token }).toString(),
  });
  const body = await res.json();
  if (!body.active) return { active: false, reason: 'introspection: inactive' };
  return { ...body, format: 'opaque' };
}

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

resourceHandler = async (req, res) => {
  try {
    const url = new URL(req.url, RESOURCE);
    if (url.pathname === '/stats') return send(res, 200, stats);
    const needed = { '/api/read': 'api:read', '/api/write': 'api:write' }[url.pathname];
    if (!needed) return send(res, 404, { error: 'not_found' });
    const auth = req.headers.authorization || '';
    const match = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/.exec(auth);
    if (!match) {
      stats.resource[401] += 1;
      bump(stats.resource_401, 'no token');
      return send(res, 401, { error: 'unauthorized' }, { 'www-authenticate': 'Bearer realm="interop"' });
    }
    const info = await validate(match[1]);
    if (!info.active) {
      stats.resource[401] += 1;
      bump(stats.resource_401, info.reason);
      return send(res, 401, { error: 'invalid_token' }, {
        'www-authenticate': `Bearer realm="interop", error="invalid_token", error_description="${info.reason}"`,
      });
    }
    const scopes = new Set((info.scope || '').split(' '));
    if (!scopes.has(needed)) {
      stats.resource[403] += 1;
      return send(res, 403, { error: 'insufficient_scope' }, {
        'www-authenticate': `Bearer realm="interop", error="insufficient_scope", scope="${needed}"`,
      });
    }
    stats.resource[200] += 1;
    return send(res, 200, {
      ok: true, client_id: info.client_id, sub: info.sub, scope: info.scope, format: info.format,
    });
  } catch (err) {
    console.error('[interop] resource error', err);
    return send(res, 500, { error: 'server_error' });
  }
};

// ---- ready --------------------------------------------------------------------------------------

process.stdout.write(`${JSON.stringify({
  issuer: ISSUER,
  provider_port: providerPort,
  resource: RESOURCE,
  resource_port: resourcePort,
  assertion_issuer: ASSERTION_ISSUER,
  keys: { private_key_jwt: clientKey.pem, jwt_bearer: assertionKey.pem },
})}\n`);

// Exit with the parent: a closed stdin (the test's pipe dropped) or a signal.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => process.exit(0));
