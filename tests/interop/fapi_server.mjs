// oidc-provider in its FAPI 2.0 profile, and a protected resource that takes only
// sender-constrained tokens, both over HTTPS on 127.0.0.1, for oauth-layer's FAPI interop suite
// (tests/interop_fapi.rs). The certificates come from the test (FAPI_CERTS, a directory):
//
//   ca.pem                 the private CA every listener's certificate chains to, and the one
//                          client certificates are verified against
//   server.pem, server-key.pem    the listeners' certificate (IP 127.0.0.1, DNS localhost)
//   client.pem             a client certificate the CA signed (subject
//                          `CN=fapi-tls-client,O=oauth-layer interop`, SAN DNS client.fapi.test)
//   selfsigned.pem         a self-signed client certificate (self_signed_tls_client_auth)
//
// Three HTTPS listeners on ephemeral ports:
//   ISSUER  https://127.0.0.1:P1   the provider; asks for no client certificate (the browser's
//                                  pages, discovery, the authorization endpoint)
//   MTLS    https://127.0.0.1:P2   the same provider where it asks for a client certificate
//                                  (`requestCert`, never refusing the handshake): discovery
//                                  names its endpoints as `mtls_endpoint_aliases` (RFC 8705 §5)
//   RESOURCE https://127.0.0.1:P3  the protected resource (asks for a client certificate too)
//
// When ready, one JSON line goes to stdout:
//
//   {"issuer":"https://127.0.0.1:P1","mtls":"https://127.0.0.1:P2",
//    "resource":"https://127.0.0.1:P3",
//    "keys":{"rsa":"<PKCS#8 PEM>","es256":"<PKCS#8 PEM>","eddsa":"<PKCS#8 PEM>"}}
//
// and the process exits when stdin closes. Everything else goes to stderr (request logs with
// INTEROP_DEBUG=1).
//
// What it configures, and why (oidc-provider 9.13.3):
// - `features.fapi` with profile 2.0: PKCE S256 required, the redirect URI required, client
//   assertions whose `aud` is exactly the issuer, request objects with `exp`, `nbf` and `aud`
//   and at most an hour between `exp` and `nbf`.
// - Pushed authorization requests required (`requirePushedAuthorizationRequests`): a plain
//   authorization request is refused.
// - Client authentication private_key_jwt, tls_client_auth and self_signed_tls_client_auth
//   only; signing with PS256, ES256 and EdDSA only, everywhere (no RS256, no HMAC).
// - Mutual TLS (`features.mTLS`): the client certificate is what Node's TLS socket saw
//   (`getPeerCertificate`), `certificateAuthorized` is Node's own chain check against ca.pem,
//   `tls_client_auth_subject_dn` compares the RFC 4514 form of the subject and
//   `tls_client_auth_san_dns` the DNS names; certificate-bound access tokens
//   (`cnf.x5t#S256`) for clients registered with `tls_client_certificate_bound_access_tokens`.
// - DPoP (`features.dPoP`) with nonces required; clients registered with
//   `dpop_bound_access_tokens` cannot get a token without a proof.
// - `requestObjects` and `jwtResponseModes` (JAR and JARM, for the message-signing profile).
// - Access tokens are JWTs for the resource (`resourceIndicators` with a default resource), so
//   the resource reads `cnf` itself.
//
// The clients, one per cell of the FAPI 2.0 conformance matrix {private_key_jwt, mutual TLS} x
// {DPoP, mutual TLS}, all with the loopback redirect URI http://127.0.0.1/callback (any port,
// RFC 8252 §7.3), scope `openid offline_access api:read api:write` and refresh tokens:
//   fapi-pkjwt-dpop        private_key_jwt (the RSA, ES256 and EdDSA keys), DPoP-bound
//   fapi-pkjwt-mtls        private_key_jwt, certificate-bound
//   fapi-tls-dpop          tls_client_auth by subject DN, DPoP-bound
//   fapi-tls-mtls          tls_client_auth by SAN DNS, certificate-bound
//   fapi-selfsigned-mtls   self_signed_tls_client_auth (selfsigned.pem in its JWKS), bound
//   fapi-pkjwt-bearer      private_key_jwt, tokens bound to nothing (what a FAPI resource
//                          must refuse)
//   fapi-signed            private_key_jwt, DPoP-bound, `require_signed_request_object`
//                          (the message-signing profile: request objects, and JARM on request)
// fapi-tls-mtls also registers the private_key_jwt keys, for its request objects. Authorization
// responses are signed (JARM) with PS256 when a client asks for them.
//
// The resource: any method on /api/read (scope api:read) with `Authorization: Bearer <token>`
// or `Authorization: DPoP <token>` and a proof dpop.mjs accepts. The token must be a JWT of the
// issuer for this resource (PS256/ES256/EdDSA, `typ` at+jwt), and bound:
// - `cnf.jkt`: the DPoP scheme, and a proof with that key (with the resource's nonce);
// - `cnf.x5t#S256`: the SHA-256 of the client certificate presented on this connection;
// - neither: refused (FAPI 2.0 resources take sender-constrained tokens only).
// A refusal is 401 with `error` and an `error_description` naming the rule; 200 answers name
// the client, the subject, the scheme and the binding.
import * as https from 'node:https';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

import Provider, { errors } from 'oidc-provider';
import * as jose from 'jose';

import { DpopError, Nonces, ReplayCache, verifyProof } from './dpop.mjs';

const HOST = '127.0.0.1';
const DEBUG = process.env.INTEROP_DEBUG === '1';
const CERTS = process.env.FAPI_CERTS;
if (!CERTS) {
  console.error('FAPI_CERTS (the directory of the test certificates) is not set');
  process.exit(2);
}
const read = (name) => fs.readFileSync(path.join(CERTS, name), 'utf8');
const CA = read('ca.pem');
const SERVER_CERT = read('server.pem');
const SERVER_KEY = read('server-key.pem');
const SELF_SIGNED = read('selfsigned.pem');

// The algorithms FAPI 2.0 allows, and the only ones this server signs or accepts.
const ALGS = ['PS256', 'ES256', 'EdDSA'];
const TLS_CLIENT_DN = 'CN=fapi-tls-client,O=oauth-layer interop';
const TLS_CLIENT_SAN_DNS = 'client.fapi.test';

function log(...args) {
  if (DEBUG) console.error('[fapi]', ...args);
}

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve(server.address().port));
  });
}

// ---- keys: made fresh for every run ----------------------------------------------------------

async function keyPair(alg, kid, options = {}) {
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true, ...options });
  const privateJwk = { ...(await jose.exportJWK(privateKey)), kid, use: 'sig' };
  const publicJwk = { ...(await jose.exportJWK(publicKey)), kid, use: 'sig' };
  const pem = await jose.exportPKCS8(privateKey);
  return { publicKey, privateKey, privateJwk, publicJwk, pem };
}

const providerRsa = await keyPair('PS256', 'provider-rsa');
const providerEc = await keyPair('ES256', 'provider-ec');
// The private_key_jwt clients' keys. The RSA key has no `alg`: the client may sign with it in
// any RSA algorithm the server allows (PS256), and RS256 is refused by the server's algorithm
// list, not by the key.
const clientRsa = await keyPair('PS256', 'client-rsa');
const clientEc = await keyPair('ES256', 'client-es256');
const clientEd = await keyPair('EdDSA', 'client-eddsa', { crv: 'Ed25519' });
const clientKeys = [clientRsa.publicJwk, clientEc.publicJwk, clientEd.publicJwk];

// The self-signed client certificate as its client registers it: the public key with x5c.
const selfSigned = new crypto.X509Certificate(SELF_SIGNED);
const selfSignedJwk = {
  ...selfSigned.publicKey.export({ format: 'jwk' }),
  kid: 'self-signed-cert',
  use: 'sig',
  x5c: [selfSigned.raw.toString('base64')],
};

// ---- listeners first, so the URLs know their ports -------------------------------------------

const tls = { cert: SERVER_CERT, key: SERVER_KEY, ca: CA };
let providerHandler = (req, res) => { res.statusCode = 503; res.end(); };
let resourceHandler = providerHandler;
const providerServer = https.createServer(tls, (req, res) => providerHandler(req, res));
const mtlsServer = https.createServer(
  { ...tls, requestCert: true, rejectUnauthorized: false },
  (req, res) => providerHandler(req, res),
);
const resourceServer = https.createServer(
  { ...tls, requestCert: true, rejectUnauthorized: false },
  (req, res) => resourceHandler(req, res),
);
const ISSUER = `https://${HOST}:${await listen(providerServer)}`;
const MTLS = `https://${HOST}:${await listen(mtlsServer)}`;
const RESOURCE = `https://${HOST}:${await listen(resourceServer)}`;

// ---- the client certificate of a request -----------------------------------------------------

function peerCertificate(socket) {
  if (typeof socket?.getPeerCertificate !== 'function') return undefined;
  const peer = socket.getPeerCertificate(false);
  return peer?.raw ? new crypto.X509Certificate(peer.raw) : undefined;
}

function pem(cert) {
  const b64 = cert.raw.toString('base64').match(/.{1,64}/g).join('\n');
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

// Node writes the subject one attribute a line in certificate order; RFC 4514 writes the most
// specific first, joined by commas.
const rfc4514 = (subject) => subject.split('\n').reverse().join(',');

const sanDns = (cert) => (cert.subjectAltName || '')
  .split(', ')
  .filter((entry) => entry.startsWith('DNS:'))
  .map((entry) => entry.slice(4));

const thumbprint = (cert) => crypto.createHash('sha256').update(cert.raw).digest('base64url');

// ---- clients -----------------------------------------------------------------------------------

const client = (id, extra) => ({
  client_id: id,
  application_type: 'native',
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  redirect_uris: [`http://${HOST}/callback`],
  scope: 'openid offline_access api:read api:write',
  ...extra,
});
const privateKeyJwt = { token_endpoint_auth_method: 'private_key_jwt', jwks: { keys: clientKeys } };
const dpopBound = { dpop_bound_access_tokens: true };
const certBound = { tls_client_certificate_bound_access_tokens: true };

const clients = [
  client('fapi-pkjwt-dpop', { ...privateKeyJwt, ...dpopBound }),
  client('fapi-pkjwt-mtls', { ...privateKeyJwt, ...certBound }),
  client('fapi-tls-dpop', {
    token_endpoint_auth_method: 'tls_client_auth', tls_client_auth_subject_dn: TLS_CLIENT_DN, ...dpopBound,
  }),
  // Its JWKS only for request objects (the certificate authenticates it).
  client('fapi-tls-mtls', {
    token_endpoint_auth_method: 'tls_client_auth',
    tls_client_auth_san_dns: TLS_CLIENT_SAN_DNS,
    jwks: { keys: clientKeys },
    ...certBound,
  }),
  client('fapi-selfsigned-mtls', {
    token_endpoint_auth_method: 'self_signed_tls_client_auth', jwks: { keys: [selfSignedJwk] }, ...certBound,
  }),
  client('fapi-pkjwt-bearer', { ...privateKeyJwt }),
  // FAPI 2.0 Message Signing: its authorization requests only as signed request objects.
  client('fapi-signed', { ...privateKeyJwt, ...dpopBound, require_signed_request_object: true }),
];

// ---- the provider ------------------------------------------------------------------------------

const provider = new Provider(ISSUER, {
  clients,
  clientDefaults: {
    id_token_signed_response_alg: 'PS256',
    authorization_signed_response_alg: 'PS256',
  },
  jwks: { keys: [providerRsa.privateJwk, providerEc.privateJwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  scopes: ['openid', 'offline_access', 'api:read', 'api:write'],
  claims: { openid: ['sub'] },
  async findAccount(ctx, sub) {
    return { accountId: sub, async claims() { return { sub }; } };
  },
  clientAuthMethods: ['private_key_jwt', 'tls_client_auth', 'self_signed_tls_client_auth'],
  enabledJWA: {
    clientAuthSigningAlgValues: ALGS,
    idTokenSigningAlgValues: ALGS,
    requestObjectSigningAlgValues: ALGS,
    userinfoSigningAlgValues: ALGS,
    introspectionSigningAlgValues: ALGS,
    authorizationSigningAlgValues: ALGS,
    dPoPSigningAlgValues: ALGS,
  },
  discovery: {
    // RFC 8705 §5: where a client that authenticates with, or binds tokens to, its certificate
    // sends its back-channel requests.
    mtls_endpoint_aliases: {
      token_endpoint: `${MTLS}/token`,
      pushed_authorization_request_endpoint: `${MTLS}/request`,
      revocation_endpoint: `${MTLS}/token/revocation`,
      introspection_endpoint: `${MTLS}/token/introspection`,
      userinfo_endpoint: `${MTLS}/me`,
    },
  },
  features: {
    fapi: { enabled: true, profile: '2.0' },
    pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: true },
    dPoP: { enabled: true, nonceSecret: crypto.randomBytes(32), requireNonce: () => true },
    mTLS: {
      enabled: true,
      certificateBoundAccessTokens: true,
      selfSignedTlsClientAuth: true,
      tlsClientAuth: true,
      getCertificate(ctx) {
        const cert = peerCertificate(ctx.socket);
        return cert ? pem(cert) : undefined;
      },
      certificateAuthorized(ctx) {
        return ctx.socket.authorized === true;
      },
      certificateSubjectMatches(ctx, property, expected) {
        const cert = peerCertificate(ctx.socket);
        if (!cert) return false;
        log('certificateSubjectMatches', property, expected, JSON.stringify(cert.subject), cert.subjectAltName, ctx.socket.authorized, ctx.socket.authorizationError);
        switch (property) {
          case 'tls_client_auth_subject_dn':
            return rfc4514(cert.subject) === expected;
          case 'tls_client_auth_san_dns':
            return sanDns(cert).includes(expected);
          default:
            return false;
        }
      },
    },
    requestObjects: { enabled: true },
    jwtResponseModes: { enabled: true },
    devInteractions: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client, oneOf) => oneOf || RESOURCE,
      getResourceServerInfo(ctx, indicator) {
        if (indicator !== RESOURCE) throw new errors.InvalidTarget();
        return {
          scope: 'api:read api:write',
          audience: RESOURCE,
          accessTokenFormat: 'jwt',
          accessTokenTTL: 600,
          jwt: { sign: { alg: 'PS256' } },
        };
      },
      useGrantedResource: () => true,
    },
  },
  issueRefreshToken: (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    AccessToken: 600,
    AuthorizationCode: 60,
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

provider.on('server_error', (ctx, err) => console.error('[fapi] server_error', err));
if (DEBUG) {
  provider.use(async (ctx, next) => {
    await next();
    log(ctx.method, ctx.host, ctx.path, ctx.status, ctx.status >= 400 ? JSON.stringify(ctx.body) : '');
  });
  for (const event of ['grant.error', 'authorization.error', 'pushed_authorization_request.error',
    'introspection.error', 'revocation.error', 'userinfo.error']) {
    provider.on(event, (ctx, err) => log(event, err?.message ?? err, err?.error_description ?? ''));
  }
}

providerHandler = provider.callback();

// ---- the protected resource --------------------------------------------------------------------

const providerKeys = jose.createLocalJWKSet({
  keys: [providerRsa.publicJwk, providerEc.publicJwk],
});
const resourceNonces = new Nonces(300);
const resourceReplay = new ReplayCache();

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

const quote = (v) => `"${String(v).replace(/["\\]/g, (c) => `\\${c}`)}"`;

function challenge(scheme, error, description) {
  const params = scheme === 'dpop' ? [`algs=${quote(ALGS.join(' '))}`] : [];
  params.push(`error=${quote(error)}`, `error_description=${quote(description)}`);
  return `${scheme === 'dpop' ? 'DPoP' : 'Bearer'} ${params.join(', ')}`;
}

resourceHandler = async (req, res) => {
  const dpopNonce = { 'dpop-nonce': resourceNonces.now() };
  const refuse = (scheme, error, description) => {
    log('resource 401', description);
    return send(res, 401, { error, error_description: description }, {
      ...dpopNonce,
      'www-authenticate': challenge(scheme, error, description),
    });
  };
  try {
    const url = new URL(req.url, RESOURCE);
    for await (const chunk of req) { if (chunk.length > 65536) throw new Error('body too large'); }
    if (url.pathname !== '/api/read') return send(res, 404, { error: 'not_found' });

    const match = /^(Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*)$/i.exec(req.headers.authorization || '');
    if (!match) {
      res.setHeader('www-authenticate', ['Bearer', `DPoP algs=${quote(ALGS.join(' '))}`]);
      return send(res, 401, { error: 'unauthorized', error_description: 'no token' }, dpopNonce);
    }
    const scheme = match[1].toLowerCase();
    const token = match[2];

    let claims;
    try {
      ({ payload: claims } = await jose.jwtVerify(token, providerKeys, {
        issuer: ISSUER, audience: RESOURCE, typ: 'at+jwt', algorithms: ALGS,
      }));
    } catch (err) {
      return refuse(scheme, 'invalid_token', `jwt: ${err.code || err.message}`);
    }

    const cert = peerCertificate(req.socket);
    const jkt = claims.cnf?.jkt;
    const x5t = claims.cnf?.['x5t#S256'];
    let proof;
    if (scheme === 'dpop') {
      try {
        proof = await verifyProof(req.headers.dpop, {
          method: req.method,
          url: `${RESOURCE}${url.pathname}`,
          accessToken: token,
          nonces: resourceNonces,
          replay: resourceReplay,
        });
      } catch (err) {
        if (!(err instanceof DpopError)) throw err;
        return refuse('dpop', err.error, `dpop: ${err.reason}`);
      }
    }
    if (!jkt && !x5t) return refuse(scheme, 'invalid_token', 'the token is not sender-constrained');
    if (jkt) {
      if (scheme !== 'dpop') return refuse('dpop', 'invalid_token', 'a DPoP-bound token presented as Bearer');
      if (proof.jkt !== jkt) return refuse('dpop', 'invalid_dpop_proof', 'the proof key is not cnf.jkt');
    }
    if (x5t) {
      if (!cert) return refuse(scheme, 'invalid_token', 'a certificate-bound token on a connection without a client certificate');
      if (thumbprint(cert) !== x5t) return refuse(scheme, 'invalid_token', 'the client certificate is not cnf.x5t#S256');
    }
    if (!(claims.scope || '').split(' ').includes('api:read')) {
      return send(res, 403, { error: 'insufficient_scope' }, dpopNonce);
    }
    return send(res, 200, {
      ok: true,
      client_id: claims.client_id,
      sub: claims.sub,
      scope: claims.scope,
      scheme: scheme === 'dpop' ? 'DPoP' : 'Bearer',
      jkt: jkt ?? null,
      x5t: x5t ?? null,
      client_certificate: cert ? thumbprint(cert) : null,
    }, dpopNonce);
  } catch (err) {
    console.error('[fapi] resource error', err);
    return send(res, 500, { error: 'server_error' });
  }
};

// ---- ready ---------------------------------------------------------------------------------------

process.stdout.write(`${JSON.stringify({
  issuer: ISSUER,
  mtls: MTLS,
  resource: RESOURCE,
  keys: { rsa: clientRsa.pem, es256: clientEc.pem, eddsa: clientEd.pem },
})}\n`);

process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(signal, () => process.exit(0));
