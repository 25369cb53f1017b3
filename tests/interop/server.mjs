// oidc-provider and a protected resource on 127.0.0.1, for oauth-layer's interop tests
// (tests/interop.rs). Both listen on ephemeral ports; when they are ready, one JSON line goes
// to stdout:
//
//   {"issuer":"http://127.0.0.1:P1","provider_port":P1,"resource":"http://127.0.0.1:P2",
//    "resource_port":P2,"mcp":"http://127.0.0.1:P3/mcp","api":"http://127.0.0.1:P4/api",
//    "assertion_issuer":"...",
//    "keys":{"private_key_jwt":"<PKCS#8 PEM>","jwt_bearer":"<PKCS#8 PEM>"},
//    "dpop_nonces":true,"dpop_algs":[...],"acr_values":[...]}
//
// Environment: INTEROP_DPOP_NONCES=optional (nonces not required), INTEROP_DPOP_NONCE_TTL
// (seconds before the resource's nonce rotates on its own, 300), INTEROP_SHORT_TTL (4),
// INTEROP_DEBUG=1.
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
// - DPoP (RFC 9449) with nonces required (INTEROP_DPOP_NONCES=optional turns them off at the
//   provider and at the resource), for every grant including the two registered ones. Clients
//   whose id contains `dpop` are registered with `dpop_bound_access_tokens`, so a token request
//   without a proof fails for them.
// - `acrValues` (bronze and silver); a login gets the strongest requested acr it supports
//   (bronze when none is requested), a session whose acr is not among the requested
//   `acr_values` is asked to sign in again, and access tokens carry `acr` and `auth_time`
//   (`extraTokenClaims`), so the resource can ask for step-up (RFC 9470).
// - Open dynamic registration (RFC 7591, no initial access token) and client configuration
//   (RFC 7592). A native client registered with `http://127.0.0.1/callback` may come back to
//   any port of it (oidc-provider ignores the port of a loopback redirect URI, RFC 8252 §7.3).
// - Two more protected resources for resource-first clients (protected_resource.mjs):
//   `http://127.0.0.1:P3/mcp` (scope `mcp:tools`) and `http://127.0.0.1:P4/api` (scope
//   `api:notes`), each publishing RFC 9728 metadata and taking only JWT access tokens whose
//   `aud` is its own identifier; `resourceIndicators` issues those JWTs for either identifier
//   (client credentials with `resource`, or an authorization code requested with `resource`).
//   GET <resource>/stats has `sequence` (the order of the provider's and these resources'
//   answers) and `registrations`; GET <origin>/_seen of each lists what that resource was shown.
import * as http from 'node:http';
import * as crypto from 'node:crypto';

import Provider, { errors, interactionPolicy } from 'oidc-provider';
import validateDpop, { checkDpopReplay } from 'oidc-provider/lib/helpers/validate_dpop.js';
import * as jose from 'jose';

import {
  DPOP_ALGS, DpopError, Nonces, ReplayCache, describeProof, verifyProof,
} from './dpop.mjs';
import { protectedResource } from './protected_resource.mjs';

const HOST = '127.0.0.1';
const DEBUG = process.env.INTEROP_DEBUG === '1';
const SHORT_TTL = Number(process.env.INTEROP_SHORT_TTL || 4);
const DPOP_NONCES = (process.env.INTEROP_DPOP_NONCES || 'required') !== 'optional';
// How long the resource's DPoP nonce lives before it rotates on its own (seconds).
const RESOURCE_NONCE_TTL = Number(process.env.INTEROP_DPOP_NONCE_TTL || 300);

const ACR_BRONZE = 'urn:mace:incommon:iap:bronze';
const ACR_SILVER = 'urn:mace:incommon:iap:silver';
// Strongest first.
const ACR_VALUES = [ACR_SILVER, ACR_BRONZE];

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
// The two resources a resource-first client finds its way from (protected_resource.mjs), each
// on a port of its own: tokens for one must never reach the other.
let mcpHandler = providerHandler;
let apiHandler = providerHandler;
const mcpServer = http.createServer((req, res) => mcpHandler(req, res));
const apiServer = http.createServer((req, res) => apiHandler(req, res));
const providerPort = await listen(providerServer);
const resourcePort = await listen(resourceServer);
const mcpPort = await listen(mcpServer);
const apiPort = await listen(apiServer);
const ISSUER = `http://${HOST}:${providerPort}`;
const RESOURCE = `http://${HOST}:${resourcePort}`;
const MCP = `http://${HOST}:${mcpPort}/mcp`;
const API = `http://${HOST}:${apiPort}/api`;
// Their scopes (`scopes_supported`; the first is required) and audiences.
const PROTECTED = {
  [MCP]: { name: 'mcp', scopes: ['mcp:tools'] },
  [API]: { name: 'api', scopes: ['api:notes'] },
};

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
  // token endpoint requests with a DPoP header, by grant_type; those answered with
  // 400 use_dpop_nonce, and those answered with a DPoP-bound token (token_type DPoP)
  token_dpop: { proofs: {}, use_dpop_nonce: {}, bound: {}, bearer: {} },
  // authorization requests, and those with dpop_jkt / acr_values / max_age
  authorize: { requests: 0, dpop_jkt: 0, acr_values: {}, max_age: 0, pushed_only: 0 },
  // pushed authorization requests (RFC 9126, POST /request): all, those answered 201, those
  // with a DPoP proof, and those answered use_dpop_nonce
  par: { requests: 0, created: 0, dpop: 0, use_dpop_nonce: 0 },
  // sign-ins finished on the login page, by the acr they reached, and by why the login was
  // asked for (oidc-provider's prompt reasons: no_session, max_age, our acr_values check, ...)
  logins: {},
  login_reasons: {},
  // the token endpoint's last 100 requests: grant_type, the scope asked for, whether a DPoP
  // proof came with it, the status and the scope granted (never a token or a secret)
  token_log: [],
  // the resource's DPoP outcomes: ok, use_dpop_nonce, invalid_dpop_proof reasons, bound token
  // sent as Bearer, ...; and its nonce rotations
  resource_dpop: { ok: 0, outcomes: {}, nonces_issued: 0 },
  // resource requests by scheme (Bearer, DPoP, none)
  resource_schemes: {},
  // the resource's last 100 requests: path, scheme, proof fields (never a token), outcome
  resource_log: [],
  // RFC 7591 registrations made at /reg (and RFC 7592 updates and deletes), with each new
  // client's metadata (never its secret or registration access token)
  registrations: { created: 0, updated: 0, deleted: 0, clients: [] },
  // the last 500 requests, in the order they were answered, of the provider (method, path,
  // status, and the `resource` parameter of /auth and /token) and of the mcp and api resources
  // (method, path, status, scheme): a cold start's round trips, in order
  sequence: [],
};

function sequence(who, method, path, status, scheme, extra = {}) {
  stats.sequence.push({
    who, method, path, status, scheme, ...extra,
  });
  if (stats.sequence.length > 500) stats.sequence.shift();
}

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

// DPoP-bound variants: a token request without a proof is refused.
const dpop = (client) => ({ ...client, dpop_bound_access_tokens: true });

const clients = [
  dpop(ccClient('cc-dpop', 'cc-dpop-secret', 'client_secret_basic')),
  dpop(ccClient('cc-dpop-short', 'cc-dpop-short-secret', 'client_secret_basic')),
  dpop(ccClient('cc-dpop-jwt', 'cc-dpop-jwt-secret', 'client_secret_basic')),
  dpop(nativeClient('native-dpop')),
  dpop(nativeClient('native-dpop-short')),
  dpop({
    client_id: 'tv-dpop',
    token_endpoint_auth_method: 'none',
    grant_types: [DEVICE_CODE, 'refresh_token'],
    response_types: [],
    redirect_uris: [],
    scope: 'openid email profile offline_access api:read',
  }),
  dpop({
    client_id: 'jwt-bearer-dpop',
    token_endpoint_auth_method: 'none',
    grant_types: [JWT_BEARER],
    response_types: [],
    redirect_uris: [],
    scope: 'api:read api:write',
  }),
  dpop({
    client_id: 'exchanger-dpop',
    client_secret: 'exchanger-dpop-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: [TOKEN_EXCHANGE],
    response_types: [],
    redirect_uris: [],
    scope: 'api:read api:write',
  }),
  ccClient('cc-basic', 'cc-basic-secret', 'client_secret_basic'),
  ccClient('cc-post', 'cc-post-secret', 'client_secret_post'),
  ccClient('cc-reserved', RESERVED_SECRET, 'client_secret_basic'),
  ccClient('cc-reserved-post', RESERVED_SECRET, 'client_secret_post'),
  ccClient('cc-short', 'cc-short-secret', 'client_secret_basic'),
  ccClient('cc-jwt', 'cc-jwt-secret', 'client_secret_basic'),
  // For the resource-first client's machine tests: tokens for the mcp and api resources.
  ccClient('cc-resources', 'cc-resources-secret', 'client_secret_basic'),
  {
    ...ccClient('pkjwt', undefined, 'private_key_jwt'),
    token_endpoint_auth_signing_alg: 'ES256',
    jwks: { keys: [clientKey.publicJwk] },
  },
  nativeClient('native-app'),
  // Signed request objects (RFC 9101) only, by value or pushed, signed with the private_key_jwt
  // key, which also authenticates it.
  {
    ...nativeClient('jar-app'),
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'ES256',
    request_object_signing_alg: 'ES256',
    require_signed_request_object: true,
    jwks: { keys: [clientKey.publicJwk] },
  },
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
const JWT_AT_CLIENTS = new Set(['cc-jwt', 'cc-dpop-jwt']);

// ---- acr: step-up sign-in (RFC 9470) ------------------------------------------------------------

// oidc-provider treats acr_values as voluntary; a real step-up server signs the person in again
// when the session's acr is not one of those requested.
const policy = interactionPolicy.base();
policy.get('login').checks.push(new interactionPolicy.Check(
  'acr_values',
  'the session does not satisfy the requested acr_values',
  'login_required',
  (ctx) => {
    const requested = ctx.oidc.params.acr_values?.split(' ').filter(Boolean);
    if (!requested?.length || !ctx.oidc.session.accountId || ctx.oidc.result?.login) {
      return interactionPolicy.Check.NO_NEED_TO_PROMPT;
    }
    return requested.includes(ctx.oidc.acr)
      ? interactionPolicy.Check.NO_NEED_TO_PROMPT
      : interactionPolicy.Check.REQUEST_PROMPT;
  },
));

// The acr a fresh login reaches: the strongest requested one we support, bronze otherwise.
function loginAcr(params) {
  const requested = new Set((params?.acr_values || '').split(' ').filter(Boolean));
  return ACR_VALUES.find((v) => requested.has(v)) || ACR_BRONZE;
}

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
  acrValues: ACR_VALUES,
  interactions: { policy },
  enabledJWA: { dPoPSigningAlgValues: DPOP_ALGS },
  // acr and auth_time of the sign-in behind an access token, for the resource's step-up
  // checks; the registered grants' own `extra` is kept.
  async extraTokenClaims(ctx, token) {
    const source = ctx?.oidc?.entities?.AuthorizationCode
      || ctx?.oidc?.entities?.RefreshToken
      || ctx?.oidc?.entities?.DeviceCode;
    const extra = { ...token.extra };
    if (source?.acr) extra.acr = source.acr;
    if (source?.authTime) extra.auth_time = source.authTime;
    return Object.keys(extra).length ? extra : undefined;
  },
  features: {
    pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: false },
    requestObjects: { enabled: true, requireSignedRequestObject: false },
    dPoP: {
      enabled: true,
      nonceSecret: crypto.randomBytes(32),
      requireNonce: () => DPOP_NONCES,
    },
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    clientCredentials: { enabled: true },
    // Open dynamic registration (RFC 7591) and client configuration (RFC 7592).
    registration: { enabled: true, initialAccessToken: false },
    registrationManagement: { enabled: true },
    userinfo: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource(ctx, client, oneOf) {
        if (oneOf) return oneOf;
        return JWT_AT_CLIENTS.has(client.clientId) ? RESOURCE : undefined;
      },
      getResourceServerInfo(ctx, indicator) {
        const own = PROTECTED[indicator];
        if (own) {
          return {
            scope: own.scopes.join(' '),
            audience: indicator,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 600,
            jwt: { sign: { alg: 'RS256' } },
          };
        }
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
provider.on('registration_create.success', (ctx, client) => {
  stats.registrations.created += 1;
  const m = client.metadata();
  stats.registrations.clients.push({
    client_id: m.client_id,
    application_type: m.application_type,
    redirect_uris: m.redirect_uris,
    grant_types: m.grant_types,
    response_types: m.response_types,
    token_endpoint_auth_method: m.token_endpoint_auth_method,
    client_name: m.client_name ?? null,
  });
});
provider.on('registration_update.success', () => { stats.registrations.updated += 1; });

// Signed request objects (RFC 9101): those the authorization endpoint got by value (and the
// other parameters next to them), those pushed, and those refused.
stats.jar = { by_value: 0, pushed: 0, refused: 0, outside: [] };
provider.use(async (ctx, next) => {
  const authorize = ctx.path === '/auth' && ctx.method === 'GET' && ctx.query.request;
  const pushed = ctx.path === '/request' && ctx.method === 'POST';
  await next();
  if (authorize) {
    stats.jar.by_value += 1;
    stats.jar.outside.push(Object.keys(ctx.query).filter((k) => k !== 'request').sort());
  }
  if (pushed && ctx.oidc?.body?.request && ctx.status === 201) stats.jar.pushed += 1;
  const error = `${ctx.body?.error || ''} ${ctx.response.get('Location') || ''}`;
  if ((authorize || pushed) && error.includes('invalid_request_object')) stats.jar.refused += 1;
});
provider.on('registration_delete.success', () => { stats.registrations.deleted += 1; });

// devInteractions' login sets no acr: give every login the acr it reached.
{
  const finished = provider.interactionFinished.bind(provider);
  provider.interactionFinished = async (req, res, result, options) => {
    if (result?.login) {
      const { params, prompt } = await provider.interactionDetails(req, res);
      if (!result.login.acr) result.login.acr = loginAcr(params);
      bump(stats.logins, result.login.acr);
      bump(stats.login_reasons, (prompt?.reasons || []).join(' ') || 'none');
    }
    return finished(req, res, result, options);
  };
}
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

// What the token and authorization endpoints saw of DPoP, acr_values and max_age.
provider.use(async (ctx, next) => {
  try {
    await next();
  } finally {
    let resource;
    if (ctx.path === '/auth' && ctx.method === 'GET') resource = ctx.query.resource;
    if (ctx.path === '/token' && ctx.method === 'POST') {
      resource = new URLSearchParams(ctx.req.body || '').get('resource') ?? undefined;
    }
    sequence('provider', ctx.method, ctx.path, ctx.status, 'none', resource === undefined ? {} : { resource });
  }
});

provider.use(async (ctx, next) => {
  if (ctx.path === '/auth') {
    const q = ctx.method === 'GET' ? ctx.query : {};
    stats.authorize.requests += 1;
    if (q.dpop_jkt) stats.authorize.dpop_jkt += 1;
    if (q.acr_values) bump(stats.authorize.acr_values, q.acr_values);
    if (q.max_age !== undefined) stats.authorize.max_age += 1;
    const names = Object.keys(q);
    if (names.length === 2 && names.includes('client_id') && names.includes('request_uri')) {
      stats.authorize.pushed_only += 1;
    }
  }
  await next();
  if (ctx.path === '/request' && ctx.method === 'POST') {
    stats.par.requests += 1;
    if (ctx.status === 201) stats.par.created += 1;
    if (ctx.get('DPoP')) stats.par.dpop += 1;
    if (ctx.status === 400 && ctx.body?.error === 'use_dpop_nonce') stats.par.use_dpop_nonce += 1;
  }
  if (ctx.path === '/token' && ctx.method === 'POST') {
    const grant = new URLSearchParams(ctx.req.body || '').get('grant_type') || '';
    if (ctx.get('DPoP')) bump(stats.token_dpop.proofs, grant);
    if (ctx.status === 400 && ctx.body?.error === 'use_dpop_nonce') bump(stats.token_dpop.use_dpop_nonce, grant);
    if (ctx.status === 200 && ctx.body?.token_type) {
      bump(ctx.body.token_type === 'DPoP' ? stats.token_dpop.bound : stats.token_dpop.bearer, grant);
    }
    const params = new URLSearchParams(ctx.req.body || '');
    stats.token_log.push({
      grant_type: grant,
      scope: params.get('scope'),
      dpop: Boolean(ctx.get('DPoP')),
      status: ctx.status,
      granted: ctx.status === 200 ? (ctx.body?.scope ?? null) : null,
    });
    if (stats.token_log.length > 100) stats.token_log.shift();
  }
});

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

// ---- the registered grants bind their tokens like the built-in ones -----------------------------

async function bindDpop(ctx, dPoP, token) {
  if (dPoP) {
    await checkDpopReplay(provider, ctx, dPoP, ctx.oidc.client.clientId);
    token.setThumbprint('jkt', dPoP.thumbprint);
  } else if (ctx.oidc.client.dpopBoundAccessTokens) {
    throw new errors.InvalidGrant('DPoP proof JWT not provided');
  }
}

// ---- JWT bearer (RFC 7523 §2.1) -----------------------------------------------------------------

const seenJti = new Set();

provider.registerGrantType(JWT_BEARER, async (ctx) => {
  const { assertion, scope } = ctx.oidc.params;
  if (!assertion) throw new errors.InvalidRequest('missing assertion');
  // The DPoP proof (and its nonce) first, like the built-in grants: a use_dpop_nonce answer
  // must not spend the assertion, which the client sends again with the nonce.
  const dPoP = await validateDpop(provider, ctx);
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
  await bindDpop(ctx, dPoP, token);
  const value = await token.save();
  ctx.body = {
    access_token: value,
    token_type: token.tokenType,
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
  const dPoP = await validateDpop(provider, ctx);
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
  await bindDpop(ctx, dPoP, token);
  const value = await token.save();
  ctx.body = {
    access_token: value,
    issued_token_type: ACCESS_TOKEN_TYPE,
    token_type: token.tokenType,
    expires_in: token.expiration,
    scope: token.scope,
  };
}, ['subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
  'requested_token_type', 'audience', 'scope']);

providerHandler = provider.callback();

// ---- the protected resource ---------------------------------------------------------------------
//
// Any method on
//   /api/read          needs `api:read`
//   /api/write         needs `api:write`  (403 insufficient_scope, scope="api:write")
//   /api/silver        needs `api:read` and a sign-in with the silver acr
//                      (401 insufficient_user_authentication, acr_values="<silver>")
//   /api/max-age/<N>   needs `api:read` and a sign-in at most N seconds ago
//                      (401 insufficient_user_authentication, max_age="<N>")
// with `Authorization: Bearer <token>`, or `Authorization: DPoP <token>` and a `DPoP` proof that
// dpop.mjs validates exactly. JWT access tokens (three segments) are verified with the
// provider's JWKS (issuer, audience = this resource, expiry, typ at+jwt); anything else is
// introspected at the provider (so revoked and expired tokens are inactive). Either way the
// token's `cnf.jkt`, `scope`, `acr` and `auth_time` come from there. Answers follow RFC 6750 §3,
// RFC 9449 §7 and RFC 9470 §3, in the scheme the request used. With nonces required, every
// /api answer carries `DPoP-Nonce`, and a proof without the current nonce (or the one before)
// gets 401 `DPoP error="use_dpop_nonce"`.
//
// A DPoP-bound token presented as Bearer is refused (401 invalid_token), and so is an unbound
// token presented as DPoP.
//
// GET /stats returns the counters above (the resource log names each token's scope and acr); POST /control/dpop-nonce retires the resource's nonces
// (the next DPoP request is challenged) and returns the new one.

const jwks = jose.createRemoteJWKSet(new URL(`${ISSUER}/jwks`));
const introspectionAuth = `Basic ${Buffer.from('resource-server:resource-server-secret').toString('base64')}`;
const resourceNonces = new Nonces(RESOURCE_NONCE_TTL);
const resourceReplay = new ReplayCache();
const ALGS = DPOP_ALGS.join(' ');

async function validate(token) {
  if (token.split('.').length === 3) {
    try {
      const { payload } = await jose.jwtVerify(token, jwks, {
        issuer: ISSUER,
        audience: RESOURCE,
        typ: 'at+jwt',
      });
      return { ...payload, active: true, scope: payload.scope || '', format: 'jwt' };
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

const quote = (v) => `"${String(v).replace(/["\\]/g, (c) => `\\${c}`)}"`;

// One challenge in the request's scheme (RFC 6750 §3 / RFC 9449 §7.1).
function challenge(scheme, params) {
  const parts = scheme === 'dpop' ? [`algs=${quote(ALGS)}`] : ['realm="interop"'];
  for (const [k, v] of Object.entries(params)) parts.push(`${k}=${quote(v)}`);
  return `${scheme === 'dpop' ? 'DPoP' : 'Bearer'} ${parts.join(', ')}`;
}

function record(entry) {
  stats.resource_log.push(entry);
  if (stats.resource_log.length > 100) stats.resource_log.shift();
}

const PATHS = [
  [/^\/api\/read$/, () => ({ scope: 'api:read' })],
  [/^\/api\/write$/, () => ({ scope: 'api:write' })],
  [/^\/api\/silver$/, () => ({ scope: 'api:read', acr: ACR_SILVER })],
  [/^\/api\/max-age\/(\d{1,6})$/, (m) => ({ scope: 'api:read', maxAge: Number(m[1]) })],
];

function route(pathname) {
  for (const [re, need] of PATHS) {
    const m = re.exec(pathname);
    if (m) return need(m);
  }
  return undefined;
}

resourceHandler = async (req, res) => {
  const entry = { method: req.method, path: undefined, scheme: 'none', status: 0, outcome: '' };
  const nonceHeader = () => (DPOP_NONCES ? { 'dpop-nonce': resourceNonces.now() } : {});
  // Every /api answer goes through here: counted, logged, with the current nonce.
  const answer = (status, outcome, body, headers = {}) => {
    bump(stats.resource, status);
    if (status === 401) bump(stats.resource_401, outcome);
    if (entry.scheme === 'dpop' || outcome.startsWith('dpop')) bump(stats.resource_dpop.outcomes, outcome);
    if (status === 200 && entry.scheme === 'dpop') stats.resource_dpop.ok += 1;
    entry.status = status;
    entry.outcome = outcome;
    record(entry);
    stats.resource_dpop.nonces_issued = resourceNonces.issued;
    return send(res, status, body, { ...nonceHeader(), ...headers });
  };
  try {
    const url = new URL(req.url, RESOURCE);
    entry.path = url.pathname;
    if (url.pathname === '/stats') return send(res, 200, stats);
    if (url.pathname === '/control/dpop-nonce' && req.method === 'POST') {
      const nonce = resourceNonces.rotate(true);
      stats.resource_dpop.nonces_issued = resourceNonces.issued;
      return send(res, 200, { nonce });
    }
    const needed = route(url.pathname);
    if (!needed) return send(res, 404, { error: 'not_found' });
    const body = await readBody(req);

    const auth = req.headers.authorization || '';
    const match = /^(Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*)$/i.exec(auth);
    if (!match) {
      bump(stats.resource_schemes, 'none');
      res.setHeader('www-authenticate', ['Bearer realm="interop"', `DPoP algs=${quote(ALGS)}`]);
      return answer(401, 'no token', { error: 'unauthorized' });
    }
    entry.scheme = match[1].toLowerCase();
    bump(stats.resource_schemes, entry.scheme === 'dpop' ? 'DPoP' : 'Bearer');
    const token = match[2];
    const scheme = entry.scheme;

    let proof;
    if (scheme === 'dpop') {
      entry.proof = describeProof(req.headers.dpop || '');
      try {
        proof = await verifyProof(req.headers.dpop, {
          method: req.method,
          url: `${RESOURCE}${url.pathname}`,
          accessToken: token,
          nonces: DPOP_NONCES ? resourceNonces : undefined,
          replay: resourceReplay,
        });
      } catch (err) {
        if (!(err instanceof DpopError)) throw err;
        const outcome = err.error === 'use_dpop_nonce' ? `use_dpop_nonce: ${err.reason}` : `dpop: ${err.reason}`;
        return answer(401, outcome, { error: err.error, error_description: err.reason }, {
          'www-authenticate': challenge('dpop', { error: err.error, error_description: err.reason }),
        });
      }
    }

    const info = await validate(token);
    if (!info.active) {
      return answer(401, info.reason, { error: 'invalid_token' }, {
        'www-authenticate': challenge(scheme, { error: 'invalid_token', error_description: info.reason }),
      });
    }
    // What the token allows (never the token itself), for the tests' least-privilege checks.
    entry.scope = info.scope || '';
    entry.acr = info.acr ?? null;
    const jkt = info.cnf?.jkt;
    if (scheme === 'bearer' && jkt) {
      // RFC 9449 §7.2: a DPoP-bound token is no bearer token; tell the client the scheme.
      return answer(401, 'dpop-bound token presented as Bearer', { error: 'invalid_token' }, {
        'www-authenticate': challenge('dpop', {
          error: 'invalid_token', error_description: 'DPoP-bound token presented as Bearer',
        }),
      });
    }
    if (scheme === 'dpop' && !jkt) {
      return answer(401, 'dpop: token is not DPoP-bound', { error: 'invalid_token' }, {
        'www-authenticate': challenge('dpop', { error: 'invalid_token', error_description: 'token is not DPoP-bound' }),
      });
    }
    if (scheme === 'dpop' && jkt !== proof.jkt) {
      return answer(401, 'dpop: cnf.jkt mismatch', { error: 'invalid_dpop_proof' }, {
        'www-authenticate': challenge('dpop', {
          error: 'invalid_dpop_proof', error_description: 'proof key does not match cnf.jkt',
        }),
      });
    }

    const scopes = new Set((info.scope || '').split(' '));
    if (!scopes.has(needed.scope)) {
      return answer(403, 'insufficient_scope', { error: 'insufficient_scope' }, {
        'www-authenticate': challenge(scheme, { error: 'insufficient_scope', scope: needed.scope }),
      });
    }
    if (needed.acr && info.acr !== needed.acr) {
      return answer(401, 'insufficient_user_authentication: acr', {
        error: 'insufficient_user_authentication', acr: info.acr ?? null,
      }, {
        'www-authenticate': challenge(scheme, {
          error: 'insufficient_user_authentication',
          error_description: 'a stronger sign-in is required',
          acr_values: needed.acr,
        }),
      });
    }
    // Whole seconds, like oidc-provider's own max_age check (`Session#past`): the resource refuses
    // a sign-in exactly when a sign-in request with the same max_age makes the person log in
    // again, never in the second between (where a step-up would bring the same old sign-in).
    if (needed.maxAge !== undefined
      && !(typeof info.auth_time === 'number'
        && Math.floor(Date.now() / 1000) - info.auth_time <= needed.maxAge)) {
      return answer(401, 'insufficient_user_authentication: max_age', {
        error: 'insufficient_user_authentication', auth_time: info.auth_time ?? null,
      }, {
        'www-authenticate': challenge(scheme, {
          error: 'insufficient_user_authentication',
          error_description: 'a more recent sign-in is required',
          max_age: needed.maxAge,
        }),
      });
    }
    return answer(200, 'ok', {
      ok: true,
      client_id: info.client_id,
      sub: info.sub,
      scope: info.scope,
      format: info.format,
      scheme: scheme === 'dpop' ? 'DPoP' : 'Bearer',
      jkt: jkt ?? null,
      acr: info.acr ?? null,
      auth_time: info.auth_time ?? null,
      method: req.method,
      body_bytes: Buffer.byteLength(body),
    });
  } catch (err) {
    console.error('[interop] resource error', err);
    return send(res, 500, { error: 'server_error' });
  }
};

// ---- the resources a resource-first client starts from (RFC 9728) ------------------------------

for (const [id, own] of Object.entries(PROTECTED)) {
  const url = new URL(id);
  const { handler } = protectedResource({
    name: own.name,
    origin: url.origin,
    path: url.pathname,
    scopes: own.scopes,
    issuer: ISSUER,
    jwks,
    nonces: DPOP_NONCES,
    nonceTtl: RESOURCE_NONCE_TTL,
    sequence,
  });
  if (own.name === 'mcp') mcpHandler = handler;
  else apiHandler = handler;
}

// ---- ready --------------------------------------------------------------------------------------

process.stdout.write(`${JSON.stringify({
  issuer: ISSUER,
  provider_port: providerPort,
  resource: RESOURCE,
  resource_port: resourcePort,
  mcp: MCP,
  api: API,
  assertion_issuer: ASSERTION_ISSUER,
  keys: { private_key_jwt: clientKey.pem, jwt_bearer: assertionKey.pem },
  dpop_nonces: DPOP_NONCES,
  dpop_algs: DPOP_ALGS,
  acr_values: ACR_VALUES,
})}\n`);

// Exit with the parent: a closed stdin (the test's pipe dropped) or a signal.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => process.exit(0));
