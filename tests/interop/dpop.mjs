// DPoP (RFC 9449) proof validation for the interop suite's protected resource (server.mjs).
//
// Strict on purpose: the resource exists to catch a client that gets any part of a proof wrong.
// A proof is accepted only when
// - it is one compact JWS (one `DPoP` header, no comma-joined duplicates),
// - `typ` is exactly `dpop+jwt` and `alg` is on the allow-list (no `none`, no HMAC),
// - the signature verifies with the embedded `jwk`, which is a public key,
// - `htm` is the request's method and `htu` is this resource's URL for the request path,
//   without query and fragment,
// - `iat` is within IAT_WINDOW seconds of now,
// - `jti` is a string never seen before (replay cache),
// - `ath` is base64url(SHA-256(access token)),
// - `nonce` is one this resource issued and has not retired (when nonces are required),
// - the JWK SHA-256 thumbprint equals the access token's `cnf.jkt`.
// Each failure has its own reason, so a test can tell which rule fired.
import * as crypto from 'node:crypto';

import * as jose from 'jose';

export const DPOP_ALGS = ['ES256', 'ES384', 'PS256', 'RS256', 'EdDSA', 'Ed25519'];
export const IAT_WINDOW = 60;

export class DpopError extends Error {
  // `error` is the RFC 9449 error code of the challenge: invalid_dpop_proof, use_dpop_nonce or
  // invalid_token; `reason` a short, stable label for the stats.
  constructor(error, reason) {
    super(reason);
    this.error = error;
    this.reason = reason;
  }
}

export function ath(accessToken) {
  return crypto.createHash('sha256').update(accessToken, 'ascii').digest('base64url');
}

// The resource's own nonces: one current nonce, and the one before it (so a rotation does not
// fail requests already in flight). `rotate(true)` retires both, so the next proof that carries
// either is answered with use_dpop_nonce.
export class Nonces {
  constructor(ttlSeconds) {
    this.ttl = ttlSeconds * 1000;
    this.issued = 0;
    this.rotate(true);
  }

  fresh() {
    this.issued += 1;
    return crypto.randomBytes(16).toString('base64url');
  }

  rotate(forgetPrevious = false) {
    this.previous = forgetPrevious ? undefined : this.current;
    this.current = this.fresh();
    this.since = Date.now();
    return this.current;
  }

  // The nonce to hand out now (rotating when the current one is old).
  now() {
    if (Date.now() - this.since > this.ttl) this.rotate();
    return this.current;
  }

  accepts(nonce) {
    this.now();
    return typeof nonce === 'string' && (nonce === this.current || nonce === this.previous);
  }
}

export class ReplayCache {
  constructor() {
    this.seen = new Map();
  }

  // True when `jti` is new (and remembers it until the iat window has surely passed).
  add(jti) {
    const now = Date.now();
    for (const [key, until] of this.seen) {
      if (until < now) this.seen.delete(key);
    }
    if (this.seen.has(jti)) return false;
    this.seen.set(jti, now + (IAT_WINDOW * 2 + 5) * 1000);
    return true;
  }
}

// The fields of a proof a test may want to look at (never the access token itself).
export function describeProof(proof) {
  try {
    const header = jose.decodeProtectedHeader(proof);
    const payload = jose.decodeJwt(proof);
    return {
      typ: header.typ,
      alg: header.alg,
      kty: header.jwk?.kty,
      htm: payload.htm,
      htu: payload.htu,
      iat: payload.iat,
      jti: payload.jti,
      ath: payload.ath !== undefined,
      nonce: payload.nonce,
    };
  } catch {
    return { undecodable: true };
  }
}

// Validates `proof` for a request of `method` to `url` (the absolute URL the resource
// reconstructs from its own origin and the request path) carrying `accessToken`. Returns
// `{ jkt, payload }`; throws DpopError.
export async function verifyProof(proof, { method, url, accessToken, nonces, replay }) {
  if (typeof proof !== 'string' || proof.length === 0) {
    throw new DpopError('invalid_dpop_proof', 'no DPoP proof');
  }
  if (proof.includes(',')) {
    throw new DpopError('invalid_dpop_proof', 'more than one DPoP header');
  }
  let header;
  try {
    header = jose.decodeProtectedHeader(proof);
  } catch {
    throw new DpopError('invalid_dpop_proof', 'not a JWS');
  }
  if (header.typ !== 'dpop+jwt') throw new DpopError('invalid_dpop_proof', 'typ');
  if (!DPOP_ALGS.includes(header.alg)) throw new DpopError('invalid_dpop_proof', 'alg');
  if (!header.jwk || typeof header.jwk !== 'object') throw new DpopError('invalid_dpop_proof', 'no jwk');
  if ('d' in header.jwk || 'p' in header.jwk || 'k' in header.jwk) {
    throw new DpopError('invalid_dpop_proof', 'private jwk');
  }

  let payload;
  try {
    ({ payload } = await jose.jwtVerify(proof, jose.EmbeddedJWK, {
      typ: 'dpop+jwt',
      algorithms: DPOP_ALGS,
    }));
  } catch (err) {
    throw new DpopError('invalid_dpop_proof', `signature: ${err.code || err.message}`);
  }

  if (typeof payload.jti !== 'string' || payload.jti.length === 0) {
    throw new DpopError('invalid_dpop_proof', 'jti');
  }
  if (payload.htm !== method) throw new DpopError('invalid_dpop_proof', 'htm');
  {
    let htu;
    try {
      htu = new URL(payload.htu);
    } catch {
      throw new DpopError('invalid_dpop_proof', 'htu');
    }
    // RFC 9449 §4.2: htu carries no query and no fragment; compare after normalization.
    if (htu.search || htu.hash || payload.htu.includes('?') || payload.htu.includes('#')) {
      throw new DpopError('invalid_dpop_proof', 'htu has a query or fragment');
    }
    const expected = new URL(url);
    expected.search = '';
    expected.hash = '';
    if (htu.href !== expected.href) throw new DpopError('invalid_dpop_proof', 'htu');
  }
  if (typeof payload.iat !== 'number' || Math.abs(Date.now() / 1000 - payload.iat) > IAT_WINDOW) {
    throw new DpopError('invalid_dpop_proof', 'iat');
  }
  if (payload.ath !== ath(accessToken)) throw new DpopError('invalid_dpop_proof', 'ath');

  // Every proof that verified counts as used, whatever happens next: a client must make a
  // fresh proof (and jti) for every retry.
  if (!replay.add(payload.jti)) throw new DpopError('invalid_dpop_proof', 'jti replayed');

  if (nonces && !nonces.accepts(payload.nonce)) {
    throw new DpopError('use_dpop_nonce', payload.nonce === undefined ? 'nonce missing' : 'nonce stale');
  }

  const jkt = await jose.calculateJwkThumbprint(header.jwk, 'sha256');
  return { jkt, payload, header };
}
