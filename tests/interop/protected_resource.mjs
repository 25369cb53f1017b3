// A protected resource of the interop suite's own that a resource-first client can find its way
// from (RFC 9728), for oauth-layer's interop tests (tests/interop.rs, started by server.mjs).
//
// One instance per resource identifier `<origin><path>` (server.mjs runs two, on two ports):
//
//   GET /.well-known/oauth-protected-resource<path>
//       its metadata: `resource` (its identifier), `authorization_servers` ([the issuer]),
//       `scopes_supported`, `bearer_methods_supported`, `dpop_signing_alg_values_supported`
//   any method on <path> and below
//       needs an access token whose `aud` is this identifier and whose scope has the
//       resource's first scope. Without a token: 401
//         WWW-Authenticate: Bearer resource_metadata="<metadata URL>", scope="<scopes>"
//       A token that is not a JWT of the issuer for THIS resource (signature by the provider's
//       JWKS, `iss`, `aud`, `exp`, `typ` at+jwt): 401 with error="invalid_token" and the same
//       `resource_metadata` and `scope`. DPoP-bound tokens need the `DPoP` scheme and a proof
//       dpop.mjs accepts (with this resource's own nonces when nonces are required); an unbound
//       token in the DPoP scheme, or a bound one as Bearer, is refused like at the main
//       resource. A token without the scope: 403 insufficient_scope.
//       200 answers name what the token said (aud, client_id, sub, scope, scheme, jkt) and
//       what came (method, body_bytes).
//   GET /_seen
//       every request the resource answered at <path>, oldest first: method, path, scheme, and
//       of the presented token only its decoded (unverified) `aud`, `client_id` and `jti` and
//       the first 16 hex digits of its SHA-256 (never the token), then status and outcome.
//
// Every answer is also appended to the caller's `sequence` (who, method, path, status, scheme),
// so that a test can read the order of a cold start across the provider and both resources.
import * as crypto from 'node:crypto';

import * as jose from 'jose';

import {
  DPOP_ALGS, DpopError, Nonces, ReplayCache, verifyProof,
} from './dpop.mjs';

const quote = (v) => `"${String(v).replace(/["\\]/g, (c) => `\\${c}`)}"`;

function send(res, status, body, headers = {}) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

async function drain(req) {
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('body too large');
  }
  return size;
}

// What a presented token says about itself, unverified (for the `_seen` log only).
function describeToken(token) {
  const fingerprint = crypto.createHash('sha256').update(token, 'ascii').digest('hex').slice(0, 16);
  try {
    const claims = jose.decodeJwt(token);
    return {
      aud: claims.aud ?? null, client_id: claims.client_id ?? null, jti: claims.jti ?? null, sha256: fingerprint,
    };
  } catch {
    return {
      aud: null, client_id: null, jti: null, sha256: fingerprint,
    };
  }
}

/**
 * @param {object} options
 * @param {string} options.name      the key in the stats (`mcp`, `api`)
 * @param {string} options.origin    `http://127.0.0.1:<port>`
 * @param {string} options.path      the resource's path (`/mcp`)
 * @param {string[]} options.scopes  `scopes_supported`; the first one is required
 * @param {string} options.issuer    the only authorization server
 * @param {object} options.jwks      the issuer's key set (jose.createRemoteJWKSet)
 * @param {boolean} options.nonces   whether DPoP proofs need this resource's nonce
 * @param {number} options.nonceTtl  seconds before the nonce rotates on its own
 * @param {object[]} options.sequence where every answer is appended
 */
export function protectedResource({
  name, origin, path, scopes, issuer, jwks, nonces, nonceTtl, sequence,
}) {
  const id = `${origin}${path}`;
  const metadataPath = `/.well-known/oauth-protected-resource${path}`;
  const metadataUrl = `${origin}${metadataPath}`;
  const seen = [];
  const resourceNonces = new Nonces(nonceTtl);
  const replay = new ReplayCache();
  const metadata = {
    resource: id,
    authorization_servers: [issuer],
    scopes_supported: scopes,
    bearer_methods_supported: ['header'],
    dpop_signing_alg_values_supported: DPOP_ALGS,
    resource_name: `interop ${name}`,
  };
  const needs = { resource_metadata: metadataUrl, scope: scopes.join(' ') };

  function challenge(scheme, params) {
    const parts = scheme === 'dpop' ? [`algs=${quote(DPOP_ALGS.join(' '))}`] : [];
    for (const [k, v] of Object.entries(params)) parts.push(`${k}=${quote(v)}`);
    return `${scheme === 'dpop' ? 'DPoP' : 'Bearer'} ${parts.join(', ')}`;
  }

  function log(entry, status, outcome) {
    Object.assign(entry, { status, outcome });
    seen.push(entry);
    if (seen.length > 200) seen.shift();
    sequence(name, entry.method, entry.path, status, entry.scheme);
  }

  async function handler(req, res) {
    const url = new URL(req.url, origin);
    if (url.pathname === '/_seen') return send(res, 200, seen);
    if (url.pathname === metadataPath) {
      sequence(name, req.method, url.pathname, req.method === 'GET' ? 200 : 405, 'none');
      if (req.method !== 'GET') return send(res, 405, { error: 'method_not_allowed' });
      return send(res, 200, metadata);
    }
    if (url.pathname !== path && !url.pathname.startsWith(`${path}/`)) {
      sequence(name, req.method, url.pathname, 404, 'none');
      return send(res, 404, { error: 'not_found' });
    }
    const entry = { method: req.method, path: url.pathname, scheme: 'none' };
    const nonceHeader = () => (nonces ? { 'dpop-nonce': resourceNonces.now() } : {});
    const answer = (status, outcome, body, headers = {}) => {
      log(entry, status, outcome);
      return send(res, status, body, { ...nonceHeader(), ...headers });
    };
    try {
      const bodyBytes = await drain(req);
      const match = /^(Bearer|DPoP) +([A-Za-z0-9\-._~+/]+=*)$/i.exec(req.headers.authorization || '');
      if (!match) {
        return answer(401, 'no token', { error: 'unauthorized' }, {
          'www-authenticate': challenge('bearer', needs),
        });
      }
      const scheme = match[1].toLowerCase();
      const token = match[2];
      entry.scheme = scheme === 'dpop' ? 'DPoP' : 'Bearer';
      Object.assign(entry, describeToken(token));

      let proof;
      if (scheme === 'dpop') {
        try {
          proof = await verifyProof(req.headers.dpop, {
            method: req.method,
            url: `${origin}${url.pathname}`,
            accessToken: token,
            nonces: nonces ? resourceNonces : undefined,
            replay,
          });
        } catch (err) {
          if (!(err instanceof DpopError)) throw err;
          return answer(401, `${err.error}: ${err.reason}`, { error: err.error }, {
            'www-authenticate': challenge('dpop', { error: err.error, error_description: err.reason }),
          });
        }
      }

      let claims;
      try {
        ({ payload: claims } = await jose.jwtVerify(token, jwks, {
          issuer, audience: id, typ: 'at+jwt',
        }));
      } catch (err) {
        const reason = `jwt: ${err.code || err.message}`;
        return answer(401, reason, { error: 'invalid_token' }, {
          'www-authenticate': challenge(scheme, { error: 'invalid_token', error_description: reason, ...needs }),
        });
      }
      const jkt = claims.cnf?.jkt;
      if (scheme === 'bearer' && jkt) {
        return answer(401, 'dpop-bound token presented as Bearer', { error: 'invalid_token' }, {
          'www-authenticate': challenge('dpop', { error: 'invalid_token', ...needs }),
        });
      }
      if (scheme === 'dpop' && (!jkt || jkt !== proof.jkt)) {
        return answer(401, 'dpop: cnf.jkt mismatch', { error: 'invalid_dpop_proof' }, {
          'www-authenticate': challenge('dpop', { error: 'invalid_dpop_proof' }),
        });
      }
      const granted = new Set((claims.scope || '').split(' '));
      if (!granted.has(scopes[0])) {
        return answer(403, 'insufficient_scope', { error: 'insufficient_scope' }, {
          'www-authenticate': challenge(scheme, { error: 'insufficient_scope', ...needs }),
        });
      }
      return answer(200, 'ok', {
        ok: true,
        resource: id,
        aud: claims.aud,
        client_id: claims.client_id,
        sub: claims.sub,
        scope: claims.scope,
        scheme: entry.scheme,
        jkt: jkt ?? null,
        method: req.method,
        body_bytes: bodyBytes,
      });
    } catch (err) {
      console.error(`[interop] ${name} resource error`, err);
      return answer(500, 'server_error', { error: 'server_error' });
    }
  }

  return {
    id, metadataUrl, handler, seen,
  };
}
