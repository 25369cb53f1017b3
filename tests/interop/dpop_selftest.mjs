// Checks the interop server's DPoP side with a hand-written client (jose), independent of
// oauth-layer: the provider requires nonces and binds tokens, and the resource accepts exactly
// the proofs RFC 9449 allows and refuses every broken one. Run by tests/interop.rs
// (`node dpop_selftest.mjs <issuer> <resource>`), or alone (`node dpop_selftest.mjs`), which
// starts server.mjs itself. Prints one line per check; exits 1 on the first failure.
import { spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import { createInterface } from 'node:readline';
import { strict as assert } from 'node:assert';

import * as jose from 'jose';

let [issuer, resource] = process.argv.slice(2);
let child;
if (!issuer) {
  child = spawn(process.execPath, ['server.mjs'], {
    cwd: new URL('.', import.meta.url).pathname,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const line = await new Promise((resolve) => {
    createInterface({ input: child.stdout }).once('line', resolve);
  });
  ({ issuer, resource } = JSON.parse(line));
}

const checks = [];
function check(name, fn) {
  checks.push([name, fn]);
}

const ath = (token) => crypto.createHash('sha256').update(token).digest('base64url');

async function newKey(alg = 'ES256') {
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  const jwk = await jose.exportJWK(publicKey);
  return { alg, privateKey, jwk, jkt: await jose.calculateJwkThumbprint(jwk) };
}

// A proof; `over` replaces claims (undefined removes one), `header` header fields.
async function proof(key, htm, htu, { token, nonce, over = {}, header = {} } = {}) {
  const claims = {
    htm, htu, iat: Math.floor(Date.now() / 1000), jti: crypto.randomUUID(),
    ...(token ? { ath: ath(token) } : {}),
    ...(nonce ? { nonce } : {}),
    ...over,
  };
  for (const k of Object.keys(claims)) if (claims[k] === undefined) delete claims[k];
  return new jose.SignJWT(claims)
    .setProtectedHeader({ typ: 'dpop+jwt', alg: key.alg, jwk: key.jwk, ...header })
    .sign(key.privateKey);
}

const basic = (id, secret) => `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;

// A client-credentials token for `id`, with the nonce dance; returns [token body, nonce].
async function ccToken(key, id, secret, scope = 'api:read') {
  const post = async (nonce) => fetch(`${issuer}/token`, {
    method: 'POST',
    headers: {
      authorization: basic(id, secret),
      'content-type': 'application/x-www-form-urlencoded',
      dpop: await proof(key, 'POST', `${issuer}/token`, { nonce }),
    },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope }),
  });
  let res = await post();
  assert.equal(res.status, 400, 'a proof without a nonce is refused');
  assert.equal((await res.json()).error, 'use_dpop_nonce');
  const nonce = res.headers.get('dpop-nonce');
  assert.ok(nonce, 'with a DPoP-Nonce');
  res = await post(nonce);
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return [body, nonce];
}

async function call(path, { token, scheme = 'DPoP', dpop, method = 'GET' } = {}) {
  const headers = {};
  if (token) headers.authorization = `${scheme} ${token}`;
  if (dpop) headers.dpop = dpop;
  const res = await fetch(`${resource}${path}`, { method, headers });
  const body = await res.json().catch(() => null);
  return {
    status: res.status, body, nonce: res.headers.get('dpop-nonce'), challenge: res.headers.get('www-authenticate') || '',
  };
}

// ---- the provider -------------------------------------------------------------------------------

check('discovery lists DPoP algs and acr values', async () => {
  const meta = await (await fetch(`${issuer}/.well-known/openid-configuration`)).json();
  assert.ok(meta.dpop_signing_alg_values_supported.includes('ES256'));
  assert.ok(meta.dpop_signing_alg_values_supported.includes('PS256'));
  assert.deepEqual(meta.acr_values_supported, ['urn:mace:incommon:iap:silver', 'urn:mace:incommon:iap:bronze']);
});

check('a dpop-bound client gets nothing without a proof', async () => {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { authorization: basic('cc-dpop', 'cc-dpop-secret'), 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials&scope=api%3Aread',
  });
  assert.equal(res.status, 400);
  assert.equal((await res.json()).error, 'invalid_grant');
});

check('client credentials: nonce required, then a DPoP token bound to the key', async () => {
  const key = await newKey();
  const [body] = await ccToken(key, 'cc-dpop', 'cc-dpop-secret');
  assert.equal(body.token_type, 'DPoP');
  const stats = await (await fetch(`${resource}/stats`)).json();
  assert.ok(stats.token_dpop.use_dpop_nonce.client_credentials >= 1);
  assert.ok(stats.token_dpop.bound.client_credentials >= 1);
});

// ---- the resource -------------------------------------------------------------------------------

check('the resource: nonce challenge, then 200; every rule refuses a broken proof', async () => {
  const key = await newKey();
  const [{ access_token: at }] = await ccToken(key, 'cc-dpop', 'cc-dpop-secret', 'api:read');
  const htu = `${resource}/api/read`;

  let r = await call('/api/read', { token: at, dpop: await proof(key, 'GET', htu, { token: at }) });
  assert.equal(r.status, 401);
  assert.match(r.challenge, /^DPoP .*error="use_dpop_nonce"/);
  assert.ok(r.nonce);
  const { nonce } = r;

  const good = await proof(key, 'GET', htu, { token: at, nonce });
  r = await call('/api/read', { token: at, dpop: good });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.scheme, 'DPoP');
  assert.equal(r.body.jkt, key.jkt);
  assert.equal(r.nonce, nonce, 'DPoP-Nonce on every answer');

  r = await call('/api/read', { token: at, dpop: good });
  assert.equal(r.status, 401, 'a replayed proof');
  assert.match(r.challenge, /invalid_dpop_proof/);
  assert.equal(r.body.error_description, 'jti replayed');

  // A query string on the request is not part of htu; a proof with one in htu is refused.
  r = await call('/api/read?x=1', { token: at, dpop: await proof(key, 'GET', htu, { token: at, nonce }) });
  assert.equal(r.status, 200, `query not in htu: ${JSON.stringify(r.body)}`);

  const other = await newKey();
  const broken = [
    ['htm', await proof(key, 'POST', htu, { token: at, nonce })],
    ['htu', await proof(key, 'GET', `${resource}/api/write`, { token: at, nonce })],
    ['htu has a query or fragment', await proof(key, 'GET', `${htu}?x=1`, { token: at, nonce })],
    ['htu has a query or fragment', await proof(key, 'GET', `${htu}#f`, { token: at, nonce })],
    ['iat', await proof(key, 'GET', htu, { token: at, nonce, over: { iat: Math.floor(Date.now() / 1000) - 300 } })],
    ['iat', await proof(key, 'GET', htu, { token: at, nonce, over: { iat: Math.floor(Date.now() / 1000) + 300 } })],
    ['ath', await proof(key, 'GET', htu, { token: `${at}x`, nonce })],
    ['ath', await proof(key, 'GET', htu, { nonce })],
    ['jti', await proof(key, 'GET', htu, { token: at, nonce, over: { jti: undefined } })],
    ['typ', await proof(key, 'GET', htu, { token: at, nonce, header: { typ: 'JWT' } })],
    ['nonce stale', await proof(key, 'GET', htu, { token: at, nonce: 'not-a-nonce' })],
    ['nonce missing', await proof(key, 'GET', htu, { token: at })],
    ['cnf.jkt mismatch', await proof(other, 'GET', htu, { token: at, nonce })],
  ];
  for (const [reason, dpop] of broken) {
    r = await call('/api/read', { token: at, dpop });
    assert.equal(r.status, 401, reason);
    const described = r.body.error_description || r.body.error;
    if (reason === 'cnf.jkt mismatch') {
      assert.match(r.challenge, /invalid_dpop_proof/, reason);
    } else {
      assert.equal(described, reason, `${reason}: ${JSON.stringify(r.body)}`);
    }
  }
  // A signature from another key than the embedded jwk.
  const forged = await new jose.SignJWT({
    htm: 'GET', htu, iat: Math.floor(Date.now() / 1000), jti: crypto.randomUUID(), ath: ath(at), nonce,
  }).setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk }).sign(other.privateKey);
  r = await call('/api/read', { token: at, dpop: forged });
  assert.equal(r.status, 401);
  assert.match(r.body.error_description, /^signature/);
  // HS256 and alg none are not on the list.
  const hs = await new jose.SignJWT({ htm: 'GET', htu, iat: Math.floor(Date.now() / 1000), jti: 'x', ath: ath(at), nonce })
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'HS256', jwk: key.jwk }).sign(new Uint8Array(32));
  r = await call('/api/read', { token: at, dpop: hs });
  assert.equal(r.body.error_description, 'alg');
  const none = `${Buffer.from(JSON.stringify({ typ: 'dpop+jwt', alg: 'none', jwk: key.jwk })).toString('base64url')}.${Buffer.from(JSON.stringify({ htm: 'GET', htu, iat: Math.floor(Date.now() / 1000), jti: 'y', ath: ath(at), nonce })).toString('base64url')}.`;
  r = await call('/api/read', { token: at, dpop: none });
  assert.equal(r.body.error_description, 'alg');
  // Two DPoP headers.
  const two = await fetch(`${resource}/api/read`, {
    headers: [['authorization', `DPoP ${at}`], ['dpop', await proof(key, 'GET', htu, { token: at, nonce })],
      ['dpop', await proof(key, 'GET', htu, { token: at, nonce })]],
  });
  assert.equal(two.status, 401);
  assert.equal((await two.json()).error_description, 'more than one DPoP header');
  // No proof at all.
  r = await call('/api/read', { token: at });
  assert.equal(r.status, 401);
  assert.equal(r.body.error_description, 'no DPoP proof');

  // The stolen token as Bearer.
  r = await call('/api/read', { token: at, scheme: 'Bearer' });
  assert.equal(r.status, 401);
  assert.match(r.challenge, /^DPoP .*error="invalid_token"/);
  // And lowercase scheme name is the same scheme.
  r = await call('/api/read', { token: at, scheme: 'dpop', dpop: await proof(key, 'GET', htu, { token: at, nonce }) });
  assert.equal(r.status, 200);

  // POST: htm follows the method.
  r = await call('/api/read', { token: at, method: 'POST', dpop: await proof(key, 'POST', htu, { token: at, nonce }) });
  assert.equal(r.status, 200);

  // 403 insufficient_scope, in the DPoP scheme.
  r = await call('/api/write', { token: at, dpop: await proof(key, 'GET', `${resource}/api/write`, { token: at, nonce }) });
  assert.equal(r.status, 403);
  assert.match(r.challenge, /^DPoP algs="[^"]+", error="insufficient_scope", scope="api:write"$/);

  // A rotated nonce: the old one is refused with a new one.
  const rotated = (await (await fetch(`${resource}/control/dpop-nonce`, { method: 'POST' })).json()).nonce;
  r = await call('/api/read', { token: at, dpop: await proof(key, 'GET', htu, { token: at, nonce }) });
  assert.equal(r.status, 401);
  assert.match(r.challenge, /use_dpop_nonce/);
  assert.equal(r.nonce, rotated);
  r = await call('/api/read', { token: at, dpop: await proof(key, 'GET', htu, { token: at, nonce: rotated }) });
  assert.equal(r.status, 200);
});

check('an unbound token is refused as DPoP and works as Bearer', async () => {
  const res = await fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { authorization: basic('cc-basic', 'cc-basic-secret'), 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials&scope=api%3Aread',
  });
  const { access_token: at, token_type: type } = await res.json();
  assert.equal(type, 'Bearer');
  let r = await call('/api/read', { token: at, scheme: 'Bearer' });
  assert.equal(r.status, 200);
  const key = await newKey();
  const nonce = (await call('/api/read')).nonce;
  r = await call('/api/read', { token: at, dpop: await proof(key, 'GET', `${resource}/api/read`, { token: at, nonce }) });
  assert.equal(r.status, 401);
  assert.equal(r.body.error, 'invalid_token');
});

check('JWT access tokens carry cnf.jkt', async () => {
  const key = await newKey('PS256');
  const [{ access_token: at, token_type: type }] = await ccToken(key, 'cc-dpop-jwt', 'cc-dpop-jwt-secret');
  assert.equal(type, 'DPoP');
  assert.equal(jose.decodeJwt(at).cnf.jkt, key.jkt);
  const nonce = (await call('/api/read')).nonce;
  const r = await call('/api/read', { token: at, dpop: await proof(key, 'GET', `${resource}/api/read`, { token: at, nonce }) });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.format, 'jwt');
});

// ---- authorization code, acr and max_age --------------------------------------------------------

// A tiny browser: a cookie jar, follows redirects, fills login and consent forms, and stops at
// the redirect to the client's callback. Returns the callback URL.
async function signIn(url) {
  const jar = signIn.jar ??= new Map();
  const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  const keep = (res) => {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      jar.set(pair.slice(0, i), pair.slice(i + 1));
    }
  };
  let next = { url, method: 'GET' };
  const pages = [];
  for (let i = 0; i < 20; i += 1) {
    const res = await fetch(next.url, {
      method: next.method, redirect: 'manual', body: next.body,
      headers: { cookie: cookieHeader(), ...(next.body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
    });
    keep(res);
    if (res.status >= 300 && res.status < 400) {
      const to = new URL(res.headers.get('location'), next.url);
      if (to.pathname === '/callback') return { callback: to, pages };
      next = { url: to.href, method: 'GET' };
      continue;
    }
    const page = await res.text();
    const form = /<form[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/.exec(page);
    assert.ok(form, `no form at ${next.url}: ${page.slice(0, 500)}`);
    const fields = new URLSearchParams();
    for (const [, tag] of form[2].matchAll(/<input([^>]*)>/g)) {
      const name = /name="([^"]+)"/.exec(tag)?.[1];
      if (!name) continue;
      const value = /value="([^"]*)"/.exec(tag)?.[1] ?? '';
      fields.set(name, { login: 'alice', password: 'pw' }[name] ?? value);
    }
    pages.push(fields.get('prompt'));
    next = { url: new URL(form[1], next.url).href, method: 'POST', body: fields.toString() };
  }
  throw new Error('too many pages');
}

async function authCode(key, extra = {}) {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  const redirect = 'http://127.0.0.1:1/callback';
  const url = new URL(`${issuer}/auth`);
  url.search = new URLSearchParams({
    client_id: 'native-dpop', response_type: 'code', scope: 'openid api:read', redirect_uri: redirect,
    code_challenge: challenge, code_challenge_method: 'S256', dpop_jkt: key.jkt, ...extra,
  });
  const { callback, pages } = await signIn(url.href);
  const code = callback.searchParams.get('code');
  assert.ok(code, callback.href);
  let nonce = authCode.nonce;
  for (let i = 0; i < 2; i += 1) {
    const res = await fetch(`${issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: await proof(key, 'POST', `${issuer}/token`, { nonce }) },
      body: new URLSearchParams({
        grant_type: 'authorization_code', code, redirect_uri: redirect, code_verifier: verifier, client_id: 'native-dpop',
      }),
    });
    const body = await res.json();
    if (res.status === 400 && body.error === 'use_dpop_nonce') {
      nonce = res.headers.get('dpop-nonce');
      continue;
    }
    assert.equal(res.status, 200, JSON.stringify(body));
    authCode.nonce = res.headers.get('dpop-nonce') || nonce;
    return { body, pages };
  }
  throw new Error('nonce loop');
}

check('auth code with dpop_jkt, then step-up to silver and a fresh sign-in for max_age', async () => {
  const key = await newKey();
  const { body: first, pages } = await authCode(key);
  assert.equal(first.token_type, 'DPoP');
  assert.deepEqual(pages, ['login', 'consent']);
  const at1 = first.access_token;
  const nonce = (await call('/api/read')).nonce;
  const get = async (path, at) => call(path, { token: at, dpop: await proof(key, 'GET', `${resource}${path}`, { token: at, nonce }) });
  let r = await get('/api/read', at1);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.acr, 'urn:mace:incommon:iap:bronze');
  r = await get('/api/silver', at1);
  assert.equal(r.status, 401);
  assert.match(r.challenge, /^DPoP .*error="insufficient_user_authentication".*acr_values="urn:mace:incommon:iap:silver"$/);

  // Step-up: the same session is asked to sign in again.
  const { body: second, pages: pages2 } = await authCode(key, { acr_values: 'urn:mace:incommon:iap:silver' });
  assert.equal(pages2[0], 'login', 'signed in again');
  r = await get('/api/silver', second.access_token);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.acr, 'urn:mace:incommon:iap:silver');

  // max_age: a sign-in 2 s old is too old for max_age=1; max_age=1 on the request re-prompts.
  await new Promise((resolve) => { setTimeout(resolve, 2100); });
  r = await get('/api/max-age/1', second.access_token);
  assert.equal(r.status, 401);
  assert.match(r.challenge, /max_age="1"/);
  const { body: third, pages: pages3 } = await authCode(key, { max_age: '1' });
  assert.equal(pages3[0], 'login', 'signed in again');
  r = await get('/api/max-age/1', third.access_token);
  assert.equal(r.status, 200, JSON.stringify(r.body));

  // A refresh keeps the binding (public client: the refresh token is bound too).
  const refresh = async (k) => fetch(`${issuer}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', dpop: await proof(k, 'POST', `${issuer}/token`, { nonce: authCode.nonce }) },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: third.refresh_token, client_id: 'native-dpop' }),
  });
  const wrong = await refresh(await newKey());
  assert.equal(wrong.status, 400, 'a refresh token bound to another key');
  const ok = await refresh(key);
  const refreshed = await ok.json();
  assert.equal(ok.status, 200, JSON.stringify(refreshed));
  assert.equal(refreshed.token_type, 'DPoP');
  const stats = await (await fetch(`${resource}/stats`)).json();
  assert.equal(stats.authorize.dpop_jkt, 3);
});

let failed = false;
for (const [name, fn] of checks) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (err) {
    failed = true;
    console.log(`FAIL ${name}\n${err.stack}`);
    break;
  }
}
child?.kill();
process.exit(failed ? 1 : 0);
