#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The FAPI 2.0 interop suite: oidc-provider 9.13.3 in its FAPI 2.0 profile (`features.fapi`,
//! pushed authorization requests required, PS256/ES256/EdDSA only, DPoP and mutual TLS) and a
//! protected resource that takes only sender-constrained tokens, over HTTPS on loopback with
//! certificates this suite makes at start (tests/fapi_support, tests/interop/fapi_server.mjs).
//! One server for the whole binary.
//!
//! The matrix of the FAPI 2.0 client conformance plans, each cell through a full sign-in in
//! the scripted browser (pushed authorization request, PKCE, `iss` checked), a refresh and a
//! request to the resource that checks the binding (`cnf.jkt` against a DPoP proof, or
//! `cnf.x5t#S256` against the client certificate on the connection): client authentication
//! {`private_key_jwt` (PS256, ES256, EdDSA), `tls_client_auth`, `self_signed_tls_client_auth`}
//! × sender constraint {DPoP, mutual TLS}. And the negative cases: no PAR, an `iss` that is
//! not the issuer's (or none), a token bound to nothing, a certificate-bound token without its
//! certificate, RS256 offered, an assertion addressed to anything but the issuer, and
//! `tls_client_auth` with the wrong certificate or at the wrong endpoint. And the message-signing
//! profile: a pushed request object (JAR) and a signed response (JARM), and a request object
//! that expired refused at the push.
//!
//! The matrix and the message-signing sign-in run under the crate's `Profile::Fapi2` and
//! `Profile::Fapi2MessageSigning`; the server-side negative cases use clients without the
//! profile (it would refuse them first), and one test shows it refusing the same on the client.
//!
//! Needs Node.js and the npm packages of `tests/interop`: `bash tests/interop/install.sh`.

mod fapi_support;
mod interop_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use oauth_layer::clock::Clock;
use oauth_layer::dpop::Dpop;
use oauth_layer::flow::AuthCode;
use oauth_layer::flow::auth_code::Callback;
use oauth_layer::interact::ScriptedPrompt;
use oauth_layer::jwt::SigningKey;
use oauth_layer::profile::Profile;
use oauth_layer::tls::ClientCertificate;
use oauth_layer::{
    AuthMethod, Error, ExposeSecret, OAuthClient, OAuthMiddleware, Token, TokenSource,
};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use fapi_support::{CertAndKey, Fapi, fapi};
use interop_support::{FormBrowser, LOGIN};

const SCOPE: &str = "openid offline_access api:read";

/// `id` configured by discovery, trusting the suite's private CA
/// (`OAuthClientBuilder::root_certificate`), with `key` for `private_key_jwt` (its assertions
/// addressed to the issuer, as FAPI 2.0 wants) and DPoP.
async fn pkjwt_client(fapi: &Fapi, id: &str, key: SigningKey, dpop: bool) -> OAuthClient {
    let mut builder = OAuthClient::builder(id)
        .signing_key(key)
        .assertion_audience_issuer(true)
        .root_certificate(&fapi.certs.ca);
    if dpop {
        builder = builder.dpop(Dpop::new().require_bound_tokens(true));
    }
    oauth_layer::discovery::configure(builder, &fapi.issuer)
        .await
        .unwrap()
}

/// `id` configured by discovery under `profile` (which addresses assertions to the issuer
/// itself), with `key` for `private_key_jwt` and DPoP, trusting the suite's private CA.
async fn profile_client(fapi: &Fapi, id: &str, key: SigningKey, profile: Profile) -> OAuthClient {
    let builder = OAuthClient::builder(id)
        .signing_key(key)
        .dpop(Dpop::new())
        .root_certificate(&fapi.certs.ca)
        // discovery::configure builds the client once before it has the metadata, and the
        // profile refuses a client without an issuer: name it here too.
        .issuer(&fapi.issuer)
        .profile(profile);
    oauth_layer::discovery::configure(builder, &fapi.issuer)
        .await
        .unwrap_or_else(|e| panic!("{id} under {profile:?}: {e}"))
}

/// A token source for `flow` under the client's profile, the flow checked against it.
fn conforming(client: OAuthClient, flow: AuthCode) -> TokenSource {
    TokenSource::builder(client, flow)
        .try_build()
        .expect("the flow conforms to the profile")
}

fn rsa(fapi: &Fapi) -> SigningKey {
    SigningKey::ps256_pem(&fapi.keys.rsa)
        .unwrap()
        .kid("client-rsa")
}

fn es256(fapi: &Fapi) -> SigningKey {
    SigningKey::es256_pem(&fapi.keys.es256)
        .unwrap()
        .kid("client-es256")
}

fn eddsa(fapi: &Fapi) -> SigningKey {
    SigningKey::eddsa_pem(&fapi.keys.eddsa)
        .unwrap()
        .kid("client-eddsa")
}

/// A sign-in through the scripted browser (which trusts the suite's CA) and the loopback
/// receiver; `opened` counts the browser's visits.
fn sign_in(fapi: &Fapi, opened: &Arc<AtomicUsize>) -> AuthCode {
    AuthCode::new()
        .scope(SCOPE)
        .loopback()
        .validate_id_token(true)
        .browser(FormBrowser::trusting(fapi.root()).opener(opened.clone()))
        .prompt(ScriptedPrompt::default())
        .timeout(Duration::from_secs(30))
}

fn is_dpop(token: &Token) -> bool {
    token.token_type().eq_ignore_ascii_case("dpop")
}

/// GET the resource through the middleware over `http`: status and body.
async fn through_middleware(
    fapi: &Fapi,
    tokens: &TokenSource,
    http: reqwest::Client,
) -> (u16, Value) {
    let http = reqwest_middleware::ClientBuilder::new(http)
        .with(OAuthMiddleware::from_source(tokens.clone()))
        .build();
    let resp = http.get(fapi.api()).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// GET the resource over `http` with `Authorization: <scheme> <token>` and nothing else (what a
/// thief holding the token can do): status and body.
async fn raw_call(
    fapi: &Fapi,
    http: &reqwest::Client,
    scheme: &str,
    token: &Token,
) -> (u16, Value) {
    let resp = http
        .get(fapi.api())
        .header(
            "authorization",
            format!("{scheme} {}", token.access_token().expose_secret()),
        )
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

// ---- the matrix: private_key_jwt × DPoP ---------------------------------------------------------

/// private_key_jwt with PS256, ES256 and EdDSA keys × DPoP, under `Profile::Fapi2`: the push
/// (required by the profile and the server's metadata) carries the assertion and a proof, the
/// sign-in runs in the scripted browser, the ID token is checked, the token is DPoP-bound, the
/// resource takes it with a proof of the same key (`cnf.jkt`), and so again after a refresh.
#[tokio::test]
async fn private_key_jwt_with_dpop_signs_in_refreshes_and_calls_the_resource() {
    let fapi = fapi();
    for key in [rsa(fapi), es256(fapi), eddsa(fapi)] {
        let alg = key.algorithm();
        let client = profile_client(fapi, "fapi-pkjwt-dpop", key, Profile::Fapi2).await;
        let metadata = client.metadata().unwrap();
        assert!(metadata.require_pushed_authorization_requests, "{alg}");
        let opened = Arc::new(AtomicUsize::new(0));
        let tokens = conforming(client, sign_in(fapi, &opened));
        let first = tokens
            .token()
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}\n{}", fapi.stderr()));
        assert!(is_dpop(&first), "{alg}: {}", first.token_type());
        assert!(first.refresh_token().is_some(), "{alg}");
        let jkt = first
            .dpop_key()
            .expect("the token's key")
            .thumbprint()
            .to_owned();

        let (status, body) = through_middleware(fapi, &tokens, fapi.http()).await;
        assert_eq!(status, 200, "{alg}: {body}");
        assert_eq!(body["sub"], LOGIN, "{alg}");
        assert_eq!(body["client_id"], "fapi-pkjwt-dpop", "{alg}");
        assert_eq!(body["scheme"], "DPoP", "{alg}");
        assert_eq!(body["jkt"], jkt, "{alg}: bound to the source's key");

        // A refresh (a new assertion and proof) keeps the binding to the same key.
        assert!(tokens.invalidate(&first));
        let second = tokens.token().await.unwrap();
        assert!(!second.same_as(&first), "{alg}");
        assert!(is_dpop(&second), "{alg}");
        let (status, body) = through_middleware(fapi, &tokens, fapi.http()).await;
        assert_eq!(status, 200, "{alg}: {body}");
        assert_eq!(body["jkt"], jkt, "{alg}");
        assert_eq!(opened.load(Ordering::SeqCst), 1, "{alg}: one sign-in");

        // The bound token is useless without a proof.
        let (status, body) = raw_call(fapi, &fapi.http(), "Bearer", &second).await;
        assert_eq!(status, 401, "{alg}: {body}");
        assert_eq!(
            body["error_description"], "a DPoP-bound token presented as Bearer",
            "{alg}"
        );
    }
}

// ---- negative cases -----------------------------------------------------------------------------

/// The server requires pushed authorization requests: a flow told not to push stops before
/// anything is sent, and a plain authorization request made by hand is refused by the server.
#[tokio::test]
async fn without_par_the_sign_in_stops_and_the_server_refuses_a_plain_request() {
    let fapi = fapi();
    let client = pkjwt_client(fapi, "fapi-pkjwt-dpop", es256(fapi), true).await;
    let opened = Arc::new(AtomicUsize::new(0));
    let err = TokenSource::new(client, sign_in(fapi, &opened).par(false))
        .token()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("require_pushed_authorization_requests"),
        "{err}"
    );
    assert_eq!(opened.load(Ordering::SeqCst), 0, "no browser opened");

    // What a client that ignored the metadata gets: an error sent back to its redirect URI,
    // and no code.
    let redirect = callback_sink().await;
    let url = url::Url::parse_with_params(
        &format!("{}/auth", fapi.issuer),
        [
            ("client_id", "fapi-pkjwt-dpop"),
            ("response_type", "code"),
            ("redirect_uri", redirect.as_str()),
            ("scope", SCOPE),
            ("state", "plain-state"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    let (at, _, titles) = FormBrowser::trusting(fapi.root()).visit(url.as_str()).await;
    assert_eq!(at.path(), "/callback", "{at}");
    let answer: std::collections::HashMap<String, String> = at.query_pairs().into_owned().collect();
    assert_eq!(
        answer.get("error").map(String::as_str),
        Some("invalid_request"),
        "{at}"
    );
    assert!(
        answer["error_description"].contains("Pushed Authorization Request must be used"),
        "{at}"
    );
    assert_eq!(answer.get("state").map(String::as_str), Some("plain-state"));
    assert!(!answer.contains_key("code"), "{at}");
    assert_eq!(titles.len(), 1, "no sign-in page was shown: {titles:?}");
}

/// A one-shot HTTP server on loopback that answers every request `200 ok`: the redirect URI of
/// a sign-in driven step by step, so the browser's last URL is the callback itself.
async fn callback_sink() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut read = 0;
                while read < buf.len() {
                    match socket.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => read += n,
                    }
                    if buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    format!("http://127.0.0.1:{port}/callback")
}

/// RFC 9207 (FAPI 2.0 requires it): the server names itself in `iss` on the authorization
/// response, and an answer whose `iss` is another issuer, or that has none, is refused before
/// its code is used. The same sign-in with the callback untouched redeems its code.
#[tokio::test]
async fn an_authorization_response_with_a_foreign_or_missing_iss_is_refused() {
    let fapi = fapi();
    let client = pkjwt_client(fapi, "fapi-pkjwt-dpop", es256(fapi), true).await;
    assert!(
        client
            .metadata()
            .unwrap()
            .authorization_response_iss_parameter_supported
    );
    let redirect = callback_sink().await;
    let browser = FormBrowser::trusting(fapi.root());
    let flow = AuthCode::new().scope(SCOPE);

    // The whole sign-in, step by step; the browser stops at the callback.
    let answer = async |flow: &AuthCode| {
        let request = flow
            .authorization_request_pushed(&client, &redirect)
            .await
            .unwrap();
        assert!(request.request_uri().is_some(), "pushed");
        let (at, _, _) = browser.visit(request.url().as_str()).await;
        assert_eq!(at.path(), "/callback", "{at}");
        let pairs: Vec<(String, String)> = at.query_pairs().into_owned().collect();
        assert!(
            pairs.iter().any(|(k, v)| k == "iss" && *v == fapi.issuer),
            "the server sends its iss: {at}"
        );
        (request, pairs)
    };

    // Untouched: the code is redeemed.
    let (request, pairs) = answer(&flow).await;
    let code = request.check(&Callback::from_pairs(pairs)).unwrap();
    let token = flow.exchange(&client, &request, code).await.unwrap();
    assert!(is_dpop(&token));

    // Another issuer's name (a mix-up), and no iss at all.
    let (request, pairs) = answer(&flow).await;
    let swapped = pairs.iter().map(|(k, v)| {
        let v = if k == "iss" {
            "https://attacker.example".to_owned()
        } else {
            v.clone()
        };
        (k.clone(), v)
    });
    let err = request.check(&Callback::from_pairs(swapped)).unwrap_err();
    assert!(matches!(err, Error::MalformedCallback(_)), "{err:?}");
    assert!(err.to_string().contains("iss"), "{err}");

    let (request, pairs) = answer(&flow).await;
    let stripped = pairs.into_iter().filter(|(k, _)| k != "iss");
    let err = request.check(&Callback::from_pairs(stripped)).unwrap_err();
    assert!(matches!(err, Error::MalformedCallback(_)), "{err:?}");
}

/// A mix-up seen from the other side: a client configured for another issuer (its metadata
/// says so) is sent to this server's pages, whose answer names this server in `iss`. The
/// sign-in through the loopback receiver ends with `Error::MalformedCallback`, no code redeemed.
/// (The client authenticates with its certificate, so nothing else it sends names the issuer.)
#[tokio::test]
async fn a_client_configured_for_another_issuer_refuses_this_servers_answer() {
    let fapi = fapi();
    let certs = &fapi.certs;
    let discovering = OAuthClient::builder("fapi-tls-dpop")
        .root_certificate(&certs.ca)
        .build()
        .unwrap();
    let mut metadata = oauth_layer::discovery::discover(&discovering, &fapi.issuer)
        .await
        .unwrap();
    metadata.issuer = format!("{}/another-issuer", fapi.issuer);
    let client = OAuthClient::builder("fapi-tls-dpop")
        .auth_method(AuthMethod::TlsClientAuth)
        .client_certificate(certificate(&certs.client))
        .root_certificate(&certs.ca)
        .dpop(Dpop::new())
        .metadata(metadata)
        .build()
        .unwrap();
    let opened = Arc::new(AtomicUsize::new(0));
    let err = TokenSource::new(client, sign_in(fapi, &opened))
        .token()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MalformedCallback(_)), "{err:?}");
    assert!(err.to_string().contains("iss"), "{err}");
    assert_eq!(
        opened.load(Ordering::SeqCst),
        1,
        "the browser went, and came back"
    );
}

/// A token bound to nothing (a client registered without DPoP or certificate binding) is
/// refused by the FAPI resource, through the middleware as by hand.
#[tokio::test]
async fn a_token_bound_to_nothing_is_refused_by_the_resource() {
    let fapi = fapi();
    let client = pkjwt_client(fapi, "fapi-pkjwt-bearer", es256(fapi), false).await;
    let opened = Arc::new(AtomicUsize::new(0));
    let tokens = TokenSource::new(client, sign_in(fapi, &opened));
    let token = tokens.token().await.unwrap();
    assert!(token.token_type().eq_ignore_ascii_case("bearer"));
    let (status, body) = raw_call(fapi, &fapi.http(), "Bearer", &token).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        body["error_description"], "the token is not sender-constrained",
        "{body}"
    );
    let (status, body) = through_middleware(fapi, &tokens, fapi.http()).await;
    assert_eq!(status, 401, "{body}");
}

/// FAPI 2.0 allows PS256, ES256 and EdDSA only: the server lists nothing else, and refuses a
/// client assertion signed RS256 with the very RSA key it takes in PS256; the push fails with
/// `invalid_client` and no browser opens.
#[tokio::test]
async fn an_rs256_client_assertion_is_refused() {
    let fapi = fapi();
    let client = pkjwt_client(fapi, "fapi-pkjwt-dpop", rsa(fapi), true).await;
    let metadata = client.metadata().unwrap();
    let listed = metadata
        .token_endpoint_auth_signing_alg_values_supported
        .as_deref();
    assert_eq!(
        listed,
        Some(&["PS256", "ES256", "EdDSA"].map(String::from)[..])
    );

    let rs256 = SigningKey::rs256_pem(&fapi.keys.rsa)
        .unwrap()
        .kid("client-rsa");
    let client = pkjwt_client(fapi, "fapi-pkjwt-dpop", rs256, true).await;
    let opened = Arc::new(AtomicUsize::new(0));
    let err = TokenSource::new(client, sign_in(fapi, &opened))
        .token()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid_client"), "{err}");
    assert_eq!(opened.load(Ordering::SeqCst), 0, "no browser opened");
}

/// FAPI 2.0 wants client assertions addressed to the issuer alone: one addressed to the token
/// endpoint (the crate's default outside the profile) is refused.
#[tokio::test]
async fn an_assertion_addressed_to_the_token_endpoint_is_refused() {
    let fapi = fapi();
    let builder = OAuthClient::builder("fapi-pkjwt-dpop")
        .signing_key(es256(fapi))
        .dpop(Dpop::new())
        .transport(fapi.http());
    let client = oauth_layer::discovery::configure(builder, &fapi.issuer)
        .await
        .unwrap();
    let opened = Arc::new(AtomicUsize::new(0));
    let err = TokenSource::new(client, sign_in(fapi, &opened))
        .token()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid_client"), "{err}");
    assert_eq!(opened.load(Ordering::SeqCst), 0, "no browser opened");
}

// ---- the matrix: mutual TLS -------------------------------------------------------------------

/// The suite's certificate `cert` as the crate holds it.
fn certificate(cert: &CertAndKey) -> ClientCertificate {
    ClientCertificate::from_pem(&cert.cert, &cert.key).unwrap()
}

/// `id` configured by discovery for mutual TLS (`OAuthClientBuilder::client_certificate`,
/// trusting the private CA): its back-channel requests present `cert` and go to the server's
/// `mtls_endpoint_aliases` (the provider asks for a client certificate only there). With `key`
/// it authenticates with `private_key_jwt`; without, with the certificate alone (`method`).
async fn mtls_client(
    fapi: &Fapi,
    id: &str,
    cert: &CertAndKey,
    auth: Result<SigningKey, AuthMethod>,
    dpop: bool,
    profile: Option<Profile>,
) -> OAuthClient {
    let mut builder = OAuthClient::builder(id)
        .client_certificate(certificate(cert))
        .root_certificate(&fapi.certs.ca);
    builder = match auth {
        Ok(key) => builder.signing_key(key).assertion_audience_issuer(true),
        Err(method) => builder.auth_method(method),
    };
    if let Some(profile) = profile {
        // (The issuer too, as in `profile_client`.)
        builder = builder.issuer(&fapi.issuer).profile(profile);
    }
    if dpop {
        builder = builder.dpop(Dpop::new().require_bound_tokens(true));
    }
    let client = oauth_layer::discovery::configure(builder, &fapi.issuer)
        .await
        .unwrap();
    for url in [client.token_url(), client.par_url()] {
        let url = url.unwrap().as_str();
        assert!(
            url.starts_with(&fapi.mtls),
            "{id}: not the mTLS alias: {url}"
        );
    }
    client
}

/// A reqwest client for the resource that presents `cert` (and trusts the private CA).
fn presenting(fapi: &Fapi, cert: &ClientCertificate) -> reqwest::Client {
    cert.reqwest_client_builder()
        .tls_certs_only([fapi.root()])
        .redirect(oauth_layer::reqwest::redirect_policy())
        .build()
        .unwrap()
}

/// GET the resource through the middleware over `http`, which presents `cert` and says so.
async fn through_middleware_presenting(
    fapi: &Fapi,
    tokens: &TokenSource,
    cert: &ClientCertificate,
) -> (u16, Value) {
    let http = reqwest_middleware::ClientBuilder::new(presenting(fapi, cert))
        .with(OAuthMiddleware::from_source(tokens.clone()).client_certificate(cert))
        .build();
    let resp = http.get(fapi.api()).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// base64url(SHA-256(DER)) of a PEM certificate: its `x5t#S256` (RFC 8705 §3.1).
fn x5t(cert: &CertAndKey) -> String {
    use base64::Engine;
    use sha2::Digest;
    let body: String = cert
        .cert
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(der))
}

/// The other cells of the matrix, and `self_signed_tls_client_auth`: private_key_jwt ×
/// certificate-bound, tls_client_auth (by subject DN) × DPoP, tls_client_auth (by SAN DNS) ×
/// certificate-bound, self_signed_tls_client_auth × certificate-bound, under `Profile::Fapi2`.
/// Each pushes, signs in,
/// refreshes, and calls the resource, which checks `cnf.x5t#S256` against the certificate on
/// the connection (or `cnf.jkt` against the proof).
#[tokio::test]
async fn mutual_tls_cells_sign_in_refresh_and_call_the_resource() {
    let fapi = fapi();
    let certs = &fapi.certs;
    for (id, cert, auth, dpop) in [
        ("fapi-pkjwt-mtls", &certs.client, Ok(rsa(fapi)), false),
        (
            "fapi-tls-dpop",
            &certs.client,
            Err(AuthMethod::TlsClientAuth),
            true,
        ),
        (
            "fapi-tls-mtls",
            &certs.client,
            Err(AuthMethod::TlsClientAuth),
            false,
        ),
        (
            "fapi-selfsigned-mtls",
            &certs.self_signed,
            Err(AuthMethod::SelfSignedTlsClientAuth),
            false,
        ),
    ] {
        let client = mtls_client(fapi, id, cert, auth, dpop, Some(Profile::Fapi2)).await;
        let presented = certificate(cert);
        let opened = Arc::new(AtomicUsize::new(0));
        let tokens = conforming(client, sign_in(fapi, &opened));
        let first = tokens
            .token()
            .await
            .unwrap_or_else(|e| panic!("{id}: {e}\n{}", fapi.stderr()));
        assert_eq!(is_dpop(&first), dpop, "{id}: {}", first.token_type());
        let (status, body) = through_middleware_presenting(fapi, &tokens, &presented).await;
        assert_eq!(status, 200, "{id}: {body}");
        assert_eq!(body["client_id"], id);
        assert_eq!(body["sub"], LOGIN, "{id}");
        let binding = if dpop {
            assert_eq!(body["x5t"], Value::Null, "{id}");
            let jkt = first.dpop_key().unwrap().thumbprint().to_owned();
            assert_eq!(body["jkt"], jkt, "{id}");
            ("jkt", jkt)
        } else {
            assert_eq!(body["jkt"], Value::Null, "{id}");
            assert_eq!(body["x5t"], x5t(cert), "{id}: bound to the certificate");
            assert_eq!(presented.thumbprint(), x5t(cert), "{id}");
            assert_eq!(
                first.certificate_thumbprint(),
                Some(presented.thumbprint()),
                "{id}"
            );
            ("x5t", x5t(cert))
        };

        assert!(tokens.invalidate(&first));
        let second = tokens
            .token()
            .await
            .unwrap_or_else(|e| panic!("{id}: refresh: {e}"));
        assert!(!second.same_as(&first), "{id}");
        let (status, body) = through_middleware_presenting(fapi, &tokens, &presented).await;
        assert_eq!(status, 200, "{id}: {body}");
        assert_eq!(body[binding.0], binding.1, "{id}: the same binding");
        assert_eq!(opened.load(Ordering::SeqCst), 1, "{id}: one sign-in");
    }
}

/// A certificate-bound token is useless on a connection without its certificate: the resource
/// refuses it on one with none, and on one with another certificate the same CA signed; and the
/// middleware refuses to send it (nothing goes out) from a pipeline that did not declare the
/// certificate, or declared another.
#[tokio::test]
async fn a_certificate_bound_token_is_refused_without_its_certificate() {
    let fapi = fapi();
    let certs = &fapi.certs;
    let client = mtls_client(
        fapi,
        "fapi-tls-mtls",
        &certs.client,
        Err(AuthMethod::TlsClientAuth),
        false,
        None,
    )
    .await;
    let opened = Arc::new(AtomicUsize::new(0));
    let tokens = TokenSource::new(client, sign_in(fapi, &opened));
    let token = tokens.token().await.unwrap();
    let own = certificate(&certs.client);
    let stranger = certificate(&certs.stranger);
    assert_eq!(token.certificate_thumbprint(), Some(own.thumbprint()));

    let (status, body) = raw_call(fapi, &presenting(fapi, &own), "Bearer", &token).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = raw_call(fapi, &fapi.http(), "Bearer", &token).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        body["error_description"],
        "a certificate-bound token on a connection without a client certificate"
    );
    let (status, body) = raw_call(fapi, &presenting(fapi, &stranger), "Bearer", &token).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        body["error_description"],
        "the client certificate is not cnf.x5t#S256"
    );

    // The middleware: undeclared, and another certificate declared (and presented).
    for (what, http, middleware) in [
        (
            "undeclared",
            presenting(fapi, &own),
            OAuthMiddleware::from_source(tokens.clone()),
        ),
        (
            "another",
            presenting(fapi, &stranger),
            OAuthMiddleware::from_source(tokens.clone()).client_certificate(&stranger),
        ),
    ] {
        let http = reqwest_middleware::ClientBuilder::new(http)
            .with(middleware)
            .build();
        let err = match http.get(fapi.api()).send().await.unwrap_err() {
            reqwest_middleware::Error::Middleware(e) => e.downcast::<Error>().unwrap(),
            other => panic!("{what}: not the middleware's refusal: {other:?}"),
        };
        assert!(
            matches!(&err, Error::CertificateBinding { bound_to, .. } if bound_to == own.thumbprint()),
            "{what}: {err:?}"
        );
    }
}

/// The server's side of tls_client_auth holds: a certificate the CA signed for another subject,
/// a self-signed one, and the right one sent where the server asks for none (the issuer's own
/// endpoints, not the aliases) all fail client authentication; nothing reaches a browser.
#[tokio::test]
async fn tls_client_auth_refuses_the_wrong_certificate_and_the_wrong_endpoint() {
    const TLS: AuthMethod = AuthMethod::TlsClientAuth;
    let fapi = fapi();
    let certs = &fapi.certs;
    for (what, client) in [
        (
            "another subject",
            mtls_client(
                fapi,
                "fapi-tls-mtls",
                &certs.stranger,
                Err(TLS),
                false,
                None,
            )
            .await,
        ),
        (
            "self-signed",
            mtls_client(
                fapi,
                "fapi-tls-dpop",
                &certs.self_signed,
                Err(TLS),
                true,
                None,
            )
            .await,
        ),
        ("no alias", {
            // Endpoints set on the builder stay as set: the issuer's own, which ask for no
            // certificate.
            let builder = OAuthClient::builder("fapi-tls-mtls")
                .auth_method(TLS)
                .client_certificate(certificate(&certs.client))
                .root_certificate(&fapi.certs.ca)
                .token_url(format!("{}/token", fapi.issuer))
                .par_url(format!("{}/request", fapi.issuer));
            oauth_layer::discovery::configure(builder, &fapi.issuer)
                .await
                .unwrap()
        }),
    ] {
        let opened = Arc::new(AtomicUsize::new(0));
        let err = TokenSource::new(client, sign_in(fapi, &opened))
            .token()
            .await
            .unwrap_err();
        assert!(err.to_string().contains("invalid_client"), "{what}: {err}");
        assert_eq!(opened.load(Ordering::SeqCst), 0, "{what}");
    }
}

// ---- the message-signing profile: request objects and signed responses ------------------------

/// FAPI 2.0 Message Signing (`Profile::Fapi2MessageSigning`, which turns both on by itself):
/// the authorization parameters travel as a request object signed PS256 (`fapi-signed` must
/// send one), pushed, and the answer comes back as a signed response (JARM, PS256) carrying
/// nothing else; the code in it is redeemed for a DPoP-bound token the resource takes. Without
/// a request object the profile refuses the flow, and the server (for a client without the
/// profile) refuses the push.
#[tokio::test]
async fn message_signing_a_pushed_request_object_and_a_signed_response() {
    let fapi = fapi();
    let client = profile_client(fapi, "fapi-signed", rsa(fapi), Profile::Fapi2MessageSigning).await;
    let metadata = client.metadata().unwrap();
    assert!(
        metadata
            .response_modes_supported
            .as_ref()
            .is_some_and(|modes| modes.iter().any(|m| m == "jwt")),
        "{metadata:?}"
    );

    // Where the browser ended: the loopback callback, with which parameters.
    let ended: Arc<std::sync::Mutex<Vec<url::Url>>> = Arc::default();
    let browser = {
        let (browser, ended) = (FormBrowser::trusting(fapi.root()), ended.clone());
        oauth_layer::interact::BrowserFn(move |url: &url::Url| {
            let (browser, ended, url) = (browser.clone(), ended.clone(), url.to_string());
            tokio::spawn(async move {
                let (at, _, _) = browser.visit(&url).await;
                ended.lock().unwrap().push(at);
            });
            Ok(())
        })
    };
    let flow = AuthCode::new()
        .scope(SCOPE)
        .loopback()
        .validate_id_token(true)
        .browser(browser)
        .prompt(ScriptedPrompt::default())
        .timeout(Duration::from_secs(30));
    let tokens = conforming(client.clone(), flow);
    let token = tokens
        .token()
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", fapi.stderr()));
    assert!(is_dpop(&token));
    let (status, body) = through_middleware(fapi, &tokens, fapi.http()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["client_id"], "fapi-signed");
    // The browser reads the receiver's page after the flow has the callback.
    let mut names = Vec::new();
    for _ in 0..250 {
        if let Some(at) = ended.lock().unwrap().first() {
            assert_eq!(at.path(), "/callback", "{at}");
            names = at.query_pairs().map(|(k, _)| k.into_owned()).collect();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(names, ["response"], "only the signed response came back");

    // Without a request object: the profile refuses the flow before anything is sent, and the
    // server refuses the push of a client without the profile; no browser opens.
    let opened = Arc::new(AtomicUsize::new(0));
    let err = TokenSource::builder(client, sign_in(fapi, &opened).request_object(false))
        .try_build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(err.to_string().contains("request_object(false)"), "{err}");
    let client = pkjwt_client(fapi, "fapi-signed", rsa(fapi), true).await;
    let err = TokenSource::new(client, sign_in(fapi, &opened).request_object(false))
        .token()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid_request"), "{err}");
    assert_eq!(opened.load(Ordering::SeqCst), 0);
}

/// A clock `behind` the real one: what a machine whose clock is slow signs with.
#[derive(Debug)]
struct SlowClock(Duration);

impl Clock for SlowClock {
    fn now(&self) -> std::time::Instant {
        std::time::Instant::now()
    }

    fn now_utc(&self) -> std::time::SystemTime {
        std::time::SystemTime::now() - self.0
    }

    fn sleep(&self, duration: Duration) -> oauth_layer::clock::Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A request object that expired before it reached the server (signed on a clock ten minutes
/// slow: its five-minute lifetime is over on arrival) is refused at the push with
/// `invalid_request_object`, and no browser opens. The client authenticates with its
/// certificate, so nothing else it sends depends on the clock; on time, the same client signs in.
#[tokio::test]
async fn an_expired_request_object_is_refused_at_the_push() {
    let fapi = fapi();
    let certs = &fapi.certs;
    let configure = async |clock: Option<SlowClock>| {
        let mut builder = OAuthClient::builder("fapi-tls-mtls")
            .auth_method(AuthMethod::TlsClientAuth)
            .client_certificate(certificate(&certs.client))
            .root_certificate(&certs.ca)
            .signing_key(es256(fapi));
        if let Some(clock) = clock {
            builder = builder.clock(clock);
        }
        oauth_layer::discovery::configure(builder, &fapi.issuer)
            .await
            .unwrap()
    };

    let slow = configure(Some(SlowClock(Duration::from_secs(600)))).await;
    assert_eq!(slow.auth_method(), AuthMethod::TlsClientAuth);
    let opened = Arc::new(AtomicUsize::new(0));
    let err = TokenSource::new(slow, sign_in(fapi, &opened).request_object(true))
        .token()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid_request_object"), "{err}");
    assert_eq!(opened.load(Ordering::SeqCst), 0);

    let on_time = configure(None).await;
    let token = TokenSource::new(on_time, sign_in(fapi, &opened).request_object(true))
        .token()
        .await
        .unwrap();
    assert_eq!(
        token.certificate_thumbprint(),
        Some(x5t(&certs.client).as_str())
    );
    assert_eq!(opened.load(Ordering::SeqCst), 1);
}

/// The client-side half of the negative cases: under `Profile::Fapi2` the client refuses, before
/// any token or push request, what the server would refuse: an RS256 key, tokens bound to
/// nothing, a sign-in without PAR, an assertion addressed to the token endpoint (the profile
/// addresses it to the issuer whatever the builder says).
#[tokio::test]
async fn the_profile_refuses_on_the_client_what_the_server_refuses() {
    let fapi = fapi();
    let configure = async |builder: oauth_layer::OAuthClientBuilder| {
        oauth_layer::discovery::configure(
            builder
                .root_certificate(&fapi.certs.ca)
                .issuer(&fapi.issuer)
                .profile(Profile::Fapi2),
            &fapi.issuer,
        )
        .await
    };
    let rs256 = SigningKey::rs256_pem(&fapi.keys.rsa)
        .unwrap()
        .kid("client-rsa");
    let err = configure(
        OAuthClient::builder("fapi-pkjwt-dpop")
            .signing_key(rs256)
            .dpop(Dpop::new()),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(err.to_string().contains("RS256"), "{err}");

    let err = configure(OAuthClient::builder("fapi-pkjwt-bearer").signing_key(es256(fapi)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");

    let client = profile_client(fapi, "fapi-pkjwt-dpop", es256(fapi), Profile::Fapi2).await;
    assert!(client.assertion_audience_issuer());
    let opened = Arc::new(AtomicUsize::new(0));
    let err = TokenSource::builder(client, sign_in(fapi, &opened).par(false))
        .try_build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(err.to_string().contains("par(false)"), "{err}");
    assert_eq!(opened.load(Ordering::SeqCst), 0);
}
