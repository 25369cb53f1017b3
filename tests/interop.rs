#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The interop suite: every flow against an independent, certified authorization server
//! (`oidc-provider` 9.13.3, started by each test from `tests/interop/server.mjs`) and its
//! protected resource, and once in a real headless Chromium; and the challenge engine acting on
//! the resource's `insufficient_scope` and step-up (`acr_values`, `max_age`) challenges. Needs
//! Node.js, the npm packages of `tests/interop` and Chromium with its driver:
//! `bash tests/interop/install.sh`. A test that cannot find them fails and says so.

mod browser_support;
mod interop_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use oauth_layer::dpop::{Dpop, DpopAlg, DpopKey};
use oauth_layer::flow::{AuthCode, ClientCredentials, DeviceCode, JwtBearer, SubjectToken};
use oauth_layer::flow::{Flow, TokenExchange};
use oauth_layer::interact::RecordingDisplay;
use oauth_layer::interact::ScriptedPrompt;
use oauth_layer::jwt::SigningKey;
use oauth_layer::oidc::IdTokenValidator;
use oauth_layer::resource::ResourceClient;
use oauth_layer::{
    Action, AuthMethod, Error, OAuthClient, OAuthLayer, OAuthMiddleware, TokenSource, TokenTypeHint,
};
use secrecy::ExposeSecret;
use tower::{ServiceBuilder, ServiceExt};

use interop_support::{FormBrowser, Interop, LOGIN};

const RESERVED_SECRET: &str = "a:b/c+d%e&f=g h~";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

fn bearer(token: &oauth_layer::Token) -> String {
    token.access_token().expose_secret().to_owned()
}

async fn client_with(server: &Interop, id: &str, secret: &str, method: AuthMethod) -> OAuthClient {
    oauth_layer::discovery::configure(
        OAuthClient::builder(id).secret(secret).auth_method(method),
        &server.issuer,
    )
    .await
    .unwrap()
}

// ---- client credentials -------------------------------------------------------------------------

#[tokio::test]
async fn client_credentials_with_basic_post_and_a_reserved_character_secret() {
    let server = Interop::start();
    let cases = [
        ("cc-basic", "cc-basic-secret", AuthMethod::ClientSecretBasic),
        ("cc-post", "cc-post-secret", AuthMethod::ClientSecretPost),
        (
            "cc-reserved",
            RESERVED_SECRET,
            AuthMethod::ClientSecretBasic,
        ),
        (
            "cc-reserved-post",
            RESERVED_SECRET,
            AuthMethod::ClientSecretPost,
        ),
    ];
    for (id, secret, method) in cases {
        let client = client_with(&server, id, secret, method).await;
        let tokens = TokenSource::new(client, ClientCredentials::new().scope("api:read"));
        let token = tokens
            .token()
            .await
            .unwrap_or_else(|e| panic!("{id} ({method:?}): {e}"));
        assert_eq!(token.scope(), Some("api:read"), "{id}");
        let (status, body) = server.call("read", &bearer(&token)).await;
        assert_eq!(status, 200, "{id}: {body}");
        assert_eq!(body["client_id"], id);
    }
    let stats = server.stats().await;
    assert_eq!(
        stats["auth_methods"]["client_credentials client_secret_basic"], 2,
        "{stats}"
    );
    assert_eq!(
        stats["auth_methods"]["client_credentials client_secret_post"], 2,
        "{stats}"
    );

    // The server's auth method check holds: the method is really the one configured.
    let wrong = client_with(
        &server,
        "cc-basic",
        "cc-basic-secret",
        AuthMethod::ClientSecretPost,
    )
    .await;
    let err = TokenSource::new(wrong, ClientCredentials::new())
        .token()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("invalid_client"),
        "unexpected error: {err}"
    );
    // A wrong secret is invalid_client, and the error never shows the secret.
    let bad = client_with(
        &server,
        "cc-reserved",
        "a:b/c+d%e&f=g h~WRONG",
        AuthMethod::ClientSecretBasic,
    )
    .await;
    let err = TokenSource::new(bad, ClientCredentials::new())
        .token()
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("invalid_client"), "{shown}");
    assert!(!shown.contains("WRONG"), "the secret leaked: {shown}");
}

#[tokio::test]
async fn discovery_from_the_issuer_url_alone_configures_every_endpoint() {
    let server = Interop::start();
    let client = server.client("cc-basic", Some("cc-basic-secret")).await;
    let url = |p: &str| Some(server.endpoint(p));
    let s = |u: Option<&url::Url>| u.map(|u| u.as_str().to_owned());
    assert_eq!(s(client.token_url()), url("/token"));
    assert_eq!(s(client.authorization_url()), url("/auth"));
    assert_eq!(s(client.device_authorization_url()), url("/device/auth"));
    assert_eq!(s(client.revocation_url()), url("/token/revocation"));
    assert_eq!(s(client.introspection_url()), url("/token/introspection"));
    assert_eq!(client.issuer(), Some(server.issuer.as_str()));
    assert_eq!(client.auth_method(), AuthMethod::ClientSecretBasic);
    let metadata = client.metadata().unwrap();
    assert_eq!(s(metadata.jwks_uri.as_ref()), url("/jwks"));
    assert!(metadata.authorization_response_iss_parameter_supported);

    // A public client is `none`; and a token comes with nothing else configured.
    let public = server.client("native-app", None).await;
    assert_eq!(public.auth_method(), AuthMethod::None);
    let token = TokenSource::new(client, ClientCredentials::new().scope("api:read"))
        .token()
        .await
        .unwrap();
    assert_eq!(server.call("read", &bearer(&token)).await.0, 200);

    // The issuer is compared byte for byte: a trailing slash is another issuer.
    let err = oauth_layer::discovery::configure(
        OAuthClient::builder("cc-basic"),
        format!("{}/", server.issuer),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::IssuerMismatch { .. } | Error::Server(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn jwt_access_tokens_from_resource_indicators_and_insufficient_scope() {
    let server = Interop::start();
    let client = server.client("cc-jwt", Some("cc-jwt-secret")).await;
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OAuthMiddleware::client_credentials(client).scope("api:read"))
        .build();
    let resp = http.get(server.api("read")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["format"], "jwt", "{body}");

    assert_eq!(server.stat("/grants/client_credentials").await, 1);

    // The token lacks api:write: the resource's 403 insufficient_scope scope="api:write" names
    // it, the middleware asks for a token with both scopes (one more client credentials grant,
    // a JWT for the same resource) and sends the request once more.
    let resp = http.get(server.api("write")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["format"], "jwt", "{body}");
    assert_eq!(body["scope"], "api:read api:write", "{body}");
    assert_eq!(server.stat("/grants/client_credentials").await, 2);
    assert_eq!(
        token_scopes(&server, "client_credentials").await,
        ["api:read", "api:read api:write"]
    );
    let log = server.resource_log().await;
    assert_eq!(log[1]["status"], 403, "{log:?}");
    assert_eq!(log[1]["outcome"], "insufficient_scope", "{log:?}");
    assert_eq!(log[1]["scope"], "api:read", "{log:?}");
    // The narrow token keeps serving what needs no more; the wider one is cached.
    assert_eq!(
        http.get(server.api("read")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        http.get(server.api("write")).send().await.unwrap().status(),
        200
    );
    assert_eq!(server.stat("/grants/client_credentials").await, 2);
}

// ---- renewal through the middleware and the layer -----------------------------------------------

/// Requests every 200 ms for `run`; every status the caller saw.
async fn hammer<F, Fut>(run: Duration, mut call: F) -> Vec<u16>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let start = Instant::now();
    let mut statuses = Vec::new();
    while start.elapsed() < run {
        statuses.push(call().await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    statuses
}

#[tokio::test]
async fn the_middleware_renews_across_4_second_tokens_with_no_401_seen() {
    let server = Interop::start();
    let client = server.client("cc-short", Some("cc-short-secret")).await;
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OAuthMiddleware::client_credentials(client).scope("api:read"))
        .build();
    let url = server.api("read");
    let statuses = hammer(Duration::from_secs(10), || async {
        http.get(&url).send().await.unwrap().status().as_u16()
    })
    .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let renewals = server.stat("/grants/client_credentials").await;
    assert!(
        (3..=8).contains(&renewals),
        "{renewals} token requests in 10 s of 4-second tokens"
    );
}

#[tokio::test]
async fn the_tower_layer_renews_across_4_second_tokens_with_no_401_seen() {
    let server = Interop::start();
    let client = server.client("cc-short", Some("cc-short-secret")).await;
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(client).scope("api:read"))
        .service(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>(),
        );
    let url = server.api("read");
    let statuses = hammer(Duration::from_secs(10), || {
        let req = http::Request::get(&url)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let svc = svc.clone();
        async move { svc.oneshot(req).await.unwrap().status().as_u16() }
    })
    .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let renewals = server.stat("/grants/client_credentials").await;
    assert!(
        (3..=8).contains(&renewals),
        "{renewals} token requests in 10 s of 4-second tokens"
    );
}

#[tokio::test]
async fn a_401_after_server_side_revocation_is_renewed_and_retried() {
    let server = Interop::start();
    let client = server.client("cc-basic", Some("cc-basic-secret")).await;
    let middleware = OAuthMiddleware::client_credentials(client.clone()).scope("api:read");
    let source = middleware.source().clone();
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build();
    assert_eq!(
        http.get(server.api("read")).send().await.unwrap().status(),
        200
    );
    let first = source.cached().unwrap();

    // The server revokes the token behind the client's back (the client's own revocation call,
    // sent by hand so the source knows nothing of it).
    let resp = reqwest::Client::new()
        .post(server.endpoint("/token/revocation"))
        .basic_auth("cc-basic", Some("cc-basic-secret"))
        .form(&[("token", bearer(&first).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(server.call("read", &bearer(&first)).await.0, 401);
    let before = server.stat("/resource/401").await;

    let resp = http.get(server.api("read")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "the caller never sees the 401");
    assert_eq!(
        server.stat("/resource/401").await,
        before + 1,
        "one 401, absorbed"
    );
    assert_eq!(server.stat("/grants/client_credentials").await, 2);
    assert!(!source.cached().unwrap().same_as(&first));
}

// ---- revocation and introspection ---------------------------------------------------------------

#[tokio::test]
async fn introspection_and_revocation() {
    let server = Interop::start();
    let client = server.client("cc-basic", Some("cc-basic-secret")).await;
    let rs = server
        .client("resource-server", Some("resource-server-secret"))
        .await;
    let tokens = TokenSource::new(client.clone(), ClientCredentials::new().scope("api:read"));
    let token = tokens.token().await.unwrap();

    let info = rs
        .introspect(token.access_token(), Some(TokenTypeHint::AccessToken))
        .await
        .unwrap();
    assert!(info.active);
    assert_eq!(info.client_id.as_deref(), Some("cc-basic"));
    assert_eq!(info.scopes().collect::<Vec<_>>(), ["api:read"]);
    assert_eq!(info.iss.as_deref(), Some(server.issuer.as_str()));
    assert!(info.exp.is_some());

    // TokenSource::revoke: the server forgets the token and so does the source.
    tokens.revoke().await.unwrap();
    assert!(tokens.cached().is_none());
    let info = rs
        .introspect(token.access_token(), Some(TokenTypeHint::AccessToken))
        .await
        .unwrap();
    assert!(!info.active);
    assert_eq!(server.call("read", &bearer(&token)).await.0, 401);

    // OAuthClient::revoke, and a revoked or unknown token is still a 200 (RFC 7009 §2.2).
    let second = tokens.token().await.unwrap();
    assert!(!second.same_as(&token));
    client
        .revoke(second.access_token(), TokenTypeHint::AccessToken)
        .await
        .unwrap();
    client
        .revoke(second.access_token(), TokenTypeHint::AccessToken)
        .await
        .unwrap();
    let info = rs
        .introspect(second.access_token(), Some(TokenTypeHint::AccessToken))
        .await
        .unwrap();
    assert!(!info.active);
}

// ---- authorization code + PKCE, userinfo, ID tokens, refresh rotation ----------------------------

#[tokio::test]
async fn auth_code_with_pkce_through_the_loopback_server_then_userinfo_and_id_token() {
    let server = Interop::start();
    let client = server.client("native-app", None).await;
    let opened = Arc::new(AtomicUsize::new(0));
    let flow = AuthCode::new()
        .scope("openid email profile api:read")
        .loopback()
        .validate_id_token(true)
        .browser(FormBrowser::new().opener(opened.clone()))
        .prompt(ScriptedPrompt::default())
        .timeout(Duration::from_secs(30));
    let tokens = TokenSource::new(client.clone(), flow);
    let token = tokens.token().await.unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 1);
    assert!(token.refresh_token().is_some(), "issueRefreshToken is on");
    let id_token = token.id_token().expect("an ID token").expose_secret();

    // The access token works at the resource (introspected) and at userinfo.
    let (status, body) = server.call("read", &bearer(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sub"], LOGIN);
    let claims = client.userinfo(&token).await.unwrap();
    assert_eq!(claims["sub"], LOGIN);
    assert_eq!(
        claims["email"],
        serde_json::json!(format!("{LOGIN}@example.test"))
    );

    // The flow validated the ID token with the sign-in's nonce; a validator of our own agrees
    // on everything but a wrong nonce.
    let jwks = client.metadata().unwrap().jwks_uri.clone().unwrap();
    let validator = IdTokenValidator::new(&client, &server.issuer, jwks.as_str()).unwrap();
    let nonce = serde_json::from_slice::<serde_json::Value>(&base64_url_decode(
        id_token.split('.').nth(1).unwrap(),
    ))
    .unwrap()["nonce"]
        .as_str()
        .expect("the ID token carries the nonce")
        .to_owned();
    let validated = validator.validate(id_token, Some(&nonce)).await.unwrap();
    assert_eq!(validated.subject, LOGIN);
    assert_eq!(validated.audience, ["native-app"]);
    let err = validator
        .validate(id_token, Some("another-nonce"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidIdToken(_)), "{err:?}");
}

/// Pushed authorization requests (RFC 9126) against oidc-provider: the parameters go to its PAR
/// endpoint (found by discovery) with the client's authentication and, for the DPoP client, a
/// proof (its nonce challenge answered); the scripted browser gets only `client_id` and
/// `request_uri`, signs in, and the code is redeemed.
#[tokio::test]
async fn auth_code_with_a_pushed_authorization_request_bearer_and_dpop() {
    for (id, dpop) in [("native-app", false), ("native-dpop", true)] {
        let server = Interop::start();
        let client = if dpop {
            dpop_client(&server, id, None).await
        } else {
            server.client(id, None).await
        };
        assert!(client.par_url().is_some(), "{id}: discovered");
        let opened = Arc::new(AtomicUsize::new(0));
        let flow = AuthCode::new()
            .scope("openid api:read")
            .loopback()
            .par(true)
            .browser(FormBrowser::new().opener(opened.clone()))
            .prompt(ScriptedPrompt::default())
            .timeout(Duration::from_secs(30));
        let token = TokenSource::new(client, flow).token().await.unwrap();
        assert_eq!(opened.load(Ordering::SeqCst), 1, "{id}");
        assert_eq!(is_dpop(&token), dpop, "{id}");
        let stats = server.stats().await;
        assert_eq!(stats["par"]["created"], 1, "{id}: {stats}");
        assert_eq!(
            stats["authorize"]["pushed_only"], stats["authorize"]["requests"],
            "{id}: the browser carried only client_id and request_uri: {stats}"
        );
        assert_eq!(stats["authorize"]["pushed_only"], 1, "{id}: {stats}");
        if dpop {
            assert_eq!(
                stats["par"]["dpop"], stats["par"]["requests"],
                "{id}: {stats}"
            );
        }
        if !dpop {
            let (status, body) = server.call("read", &bearer(&token)).await;
            assert_eq!(status, 200, "{id}: {body}");
        }
    }
}

/// Signed request objects (RFC 9101) against oidc-provider: `jar-app` is registered with
/// `require_signed_request_object` and `request_object_signing_alg: ES256`, so its sign-in
/// completes only when the parameters come in a request object signed with its key, by value
/// (the URL carries `client_id`, `request` and, for OpenID Connect, `response_type` and
/// `scope`) or pushed (the push carries it; the URL `client_id` and `request_uri`).
#[tokio::test]
async fn jar_signed_request_objects_by_value_and_pushed_complete_a_sign_in() {
    for push in [false, true] {
        let server = Interop::start();
        let key = SigningKey::es256_pem(&server.private_key_jwt_pem)
            .unwrap()
            .kid("pkjwt-es256");
        let client = oauth_layer::discovery::configure(
            OAuthClient::builder("jar-app").signing_key(key),
            &server.issuer,
        )
        .await
        .unwrap();
        let metadata = client.metadata().unwrap();
        assert_eq!(metadata.request_parameter_supported, Some(true));
        let algs = metadata
            .request_object_signing_alg_values_supported
            .as_ref()
            .unwrap();
        assert!(algs.iter().any(|a| a == "ES256"), "{algs:?}");

        let opened = Arc::new(AtomicUsize::new(0));
        let flow = AuthCode::new()
            .scope("openid api:read")
            .loopback()
            .par(push)
            .request_object(true)
            .browser(FormBrowser::new().opener(opened.clone()))
            .prompt(ScriptedPrompt::default())
            .timeout(Duration::from_secs(30));
        let token = TokenSource::new(client.clone(), flow)
            .token()
            .await
            .unwrap();
        assert_eq!(opened.load(Ordering::SeqCst), 1, "push {push}");
        let stats = server.stats().await;
        assert_eq!(stats["jar"]["refused"], 0, "push {push}: {stats}");
        if push {
            assert_eq!(stats["jar"]["pushed"], 1, "{stats}");
            assert_eq!(stats["jar"]["by_value"], 0, "{stats}");
            assert_eq!(stats["authorize"]["pushed_only"], 1, "{stats}");
        } else {
            assert_eq!(stats["jar"]["by_value"], 1, "{stats}");
            assert_eq!(
                stats["jar"]["outside"],
                serde_json::json!([["client_id", "response_type", "scope"]]),
                "{stats}"
            );
        }
        let (status, body) = server.call("read", &bearer(&token)).await;
        assert_eq!(status, 200, "push {push}: {body}");

        // The same client without a request object: refused (shown at the push).
        let flow = AuthCode::new()
            .scope("openid api:read")
            .loopback()
            .par(true)
            .request_object(false)
            .browser(FormBrowser::new().opener(opened.clone()))
            .prompt(ScriptedPrompt::default())
            .timeout(Duration::from_secs(30));
        match flow.fetch(&client).await {
            Err(Error::Server(e)) => assert_eq!(e.code.as_str(), "invalid_request"),
            other => panic!("push {push}: {other:?}"),
        }
        assert_eq!(opened.load(Ordering::SeqCst), 1, "no second browser");
    }
}

fn base64_url_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}

#[tokio::test]
async fn refresh_tokens_rotate_and_the_old_one_is_rejected() {
    let server = Interop::start();
    let client = server.client("native-short", None).await;
    let opened = Arc::new(AtomicUsize::new(0));
    let flow = AuthCode::new()
        .scope("openid api:read")
        .loopback()
        .browser(FormBrowser::new().opener(opened.clone()))
        .prompt(ScriptedPrompt::default())
        .timeout(Duration::from_secs(30));
    let tokens = TokenSource::new(client.clone(), flow);

    let first = tokens.token().await.unwrap();
    let rt1 = first.refresh_token().unwrap().expose_secret().to_owned();

    // Renewal by refresh (forced), twice: a new refresh token each time, no new sign-in.
    assert!(tokens.invalidate(&first));
    let second = tokens.token().await.unwrap();
    let rt2 = second.refresh_token().unwrap().expose_secret().to_owned();
    assert_ne!(rt1, rt2, "rotated");
    // And by expiry: the 4-second token is renewed by the next call after it.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let third = tokens.token().await.unwrap();
    let rt3 = third.refresh_token().unwrap().expose_secret().to_owned();
    assert_ne!(rt2, rt3, "rotated");
    assert_eq!(server.call("read", &bearer(&third)).await.0, 200);
    assert_eq!(opened.load(Ordering::SeqCst), 1, "one sign-in");
    assert_eq!(server.stat("/grants/refresh_token").await, 2);

    // The first refresh token is dead.
    let err = client.refresh(&rt1.clone().into()).await.unwrap_err();
    assert!(err.to_string().contains("invalid_grant"), "{err}");

    // oidc-provider revokes the whole grant when a rotated refresh token is reused, so the
    // source's current refresh token dies too: the source drops it and signs in again.
    assert!(tokens.invalidate(&third));
    let fourth = tokens.token().await.unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 2, "a second sign-in");
    assert_eq!(server.call("read", &bearer(&fourth)).await.0, 200);
}

// ---- the device grant ---------------------------------------------------------------------------

#[tokio::test]
async fn the_device_grant_approved_on_the_servers_own_pages() {
    let server = Interop::start();
    let client = server.client("tv-app", None).await;
    let display = RecordingDisplay::default();
    let tokens = TokenSource::new(
        client.clone(),
        DeviceCode::new()
            .scope("openid api:read")
            .display(display.clone()),
    );
    let pending = tokio::spawn({
        let tokens = tokens.clone();
        async move { tokens.token().await }
    });
    let shown = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(shown) = display.shown() {
                return shown;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    assert!(
        shown
            .verification_uri()
            .as_str()
            .starts_with(&server.issuer)
    );

    // The person types the code on the verification page, confirms, signs in and consents.
    let (at, page, titles) = FormBrowser::new()
        .with_user_code(shown.user_code())
        .visit(shown.verification_uri().as_str())
        .await;
    assert!(
        page.contains("Sign-in Success"),
        "ended at {at}: {titles:?}\n{page}"
    );

    let token = tokio::time::timeout(Duration::from_secs(30), pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(token.refresh_token().is_some());
    let (status, body) = server.call("read", &bearer(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sub"], LOGIN);
    assert_eq!(display.outcome(), Some(true));
}

// ---- private_key_jwt, JWT bearer, token exchange ------------------------------------------------

#[tokio::test]
async fn private_key_jwt_client_authentication() {
    let server = Interop::start();
    let key = SigningKey::es256_pem(&server.private_key_jwt_pem)
        .unwrap()
        .kid("pkjwt-es256");
    let client = oauth_layer::discovery::configure(
        OAuthClient::builder("pkjwt").signing_key(key),
        &server.issuer,
    )
    .await
    .unwrap();
    assert_eq!(client.auth_method(), AuthMethod::PrivateKeyJwt);
    let tokens = TokenSource::new(client, ClientCredentials::new().scope("api:read"));
    let token = tokens.token().await.unwrap();
    assert_eq!(server.call("read", &bearer(&token)).await.0, 200);
    // Every request carries a fresh assertion (oidc-provider rejects a replayed jti).
    assert!(tokens.invalidate(&token));
    let again = tokens.token().await.unwrap();
    assert!(!again.same_as(&token));
    assert_eq!(server.stat("/auth_methods/client_credentials jwt").await, 2);
}

#[tokio::test]
async fn jwt_bearer_grant_registered_with_register_grant_type() {
    let server = Interop::start();
    let key = SigningKey::es256_pem(&server.jwt_bearer_pem).unwrap();
    let client = server.client("jwt-bearer-client", None).await;
    let flow = JwtBearer::new(key, server.assertion_issuer.clone())
        .subject("svc-42")
        .scope("api:read");
    let tokens = TokenSource::new(client, flow);
    let token = tokens.token().await.unwrap();
    assert_eq!(token.scope(), Some("api:read"));
    let (status, body) = server.call("read", &bearer(&token)).await;
    assert_eq!(status, 200, "{body}");
    // A second token needs a second assertion (the server rejects a replayed jti).
    assert!(tokens.invalidate(&token));
    tokens.token().await.unwrap();
    assert_eq!(
        server
            .stat("/grants/urn:ietf:params:oauth:grant-type:jwt-bearer")
            .await,
        2
    );
}

#[tokio::test]
async fn token_exchange_registered_with_register_grant_type_chains_sources() {
    let server = Interop::start();
    let subject = TokenSource::new(
        server.client("cc-basic", Some("cc-basic-secret")).await,
        ClientCredentials::new().scope("api:read"),
    );
    let exchanger = server.client("exchanger", Some("exchanger-secret")).await;
    let flow = TokenExchange::new(SubjectToken::source(subject.clone()))
        .audience("downstream")
        .scope("api:read");
    let _ = flow.cache_key(&exchanger);
    let tokens = TokenSource::new(exchanger, flow);
    let token = tokens.token().await.unwrap();
    assert_eq!(token.issued_token_type(), Some(ACCESS_TOKEN_TYPE));
    let (status, body) = server.call("read", &bearer(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["client_id"], "exchanger");
    assert_eq!(server.stat("/grants/client_credentials").await, 1);
    assert_eq!(
        server
            .stat("/grants/urn:ietf:params:oauth:grant-type:token-exchange")
            .await,
        1
    );
}

// ---- the authorization code flow in a real headless Chromium ------------------------------------

#[tokio::test]
async fn auth_code_in_a_real_headless_chromium_over_webdriver() {
    use fantoccini::Locator;
    let server = Interop::start();
    let chromium =
        browser_support::Chromium::start("interop-chromium", &[], Default::default()).await;
    let client = server.client("native-app", None).await;

    // The browser opener seam: the authorization URL is handed to Chromium.
    let (urls, mut opened) = tokio::sync::mpsc::unbounded_channel::<url::Url>();
    let flow = AuthCode::new()
        .scope("openid email api:read")
        .loopback()
        .validate_id_token(true)
        .browser(oauth_layer::interact::BrowserFn(move |url: &url::Url| {
            urls.send(url.clone())
                .map_err(|_| std::io::Error::other("the browser is gone"))
        }))
        .prompt(ScriptedPrompt::default())
        .timeout(Duration::from_secs(60));
    let tokens = TokenSource::new(client.clone(), flow);
    let pending = tokio::spawn({
        let tokens = tokens.clone();
        async move { tokens.token().await }
    });

    let c = &chromium.webdriver;
    let url = tokio::time::timeout(Duration::from_secs(20), opened.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        url.as_str()
            .starts_with(&format!("{}/auth?", server.issuer))
    );
    c.goto(url.as_str()).await.unwrap();
    // oidc-provider's login page: any login and password.
    let wait = Duration::from_secs(20);
    c.wait()
        .at_most(wait)
        .for_element(Locator::Css("input[name=login]"))
        .await
        .unwrap()
        .send_keys(LOGIN)
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("any password")
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    // The consent page.
    c.wait()
        .at_most(wait)
        .for_element(Locator::Css("input[name=prompt][value=consent]"))
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    let token = tokio::time::timeout(Duration::from_secs(30), pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // Chromium ended on our loopback callback page.
    let at = c.current_url().await.unwrap();
    assert_eq!(at.host_str(), Some("127.0.0.1"));
    assert_eq!(at.path(), "/callback");
    assert!(token.id_token().is_some());
    let (status, body) = server.call("read", &bearer(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sub"], LOGIN);
    assert_eq!(client.userinfo(&token).await.unwrap()["sub"], LOGIN);
    chromium.webdriver.clone().close().await.unwrap();
}

// ---- the file store across a client restart ------------------------------------------------------

#[cfg(feature = "file-store")]
#[tokio::test]
async fn the_file_store_survives_a_client_restart_without_a_second_sign_in() {
    use oauth_layer::store::FileStore;
    let server = Interop::start();
    let dir = std::env::temp_dir().join(format!(
        "oauth-layer-interop-store-{}-{}",
        std::process::id(),
        server.resource.rsplit(':').next().unwrap()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let opened = Arc::new(AtomicUsize::new(0));
    let source = |client: OAuthClient| {
        let flow = AuthCode::new()
            .scope("openid api:read")
            .loopback()
            .browser(FormBrowser::new().opener(opened.clone()))
            .prompt(ScriptedPrompt::default())
            .timeout(Duration::from_secs(30));
        TokenSource::builder(client, flow)
            .store(FileStore::in_dir(&dir))
            .build()
    };

    // First run: one sign-in, kept on disk.
    let first = source(server.client("native-short", None).await);
    let token = first.token().await.unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 1);
    drop(first);

    // The "restarted" client: new OAuthClient, new source, same folder. No sign-in; once the
    // 4-second token has expired, the stored refresh token renews it.
    let second = source(server.client("native-short", None).await);
    let again = second.token().await.unwrap();
    assert_eq!(bearer(&again), bearer(&token), "the stored token is reused");
    tokio::time::sleep(Duration::from_secs(4)).await;
    let renewed = second.token().await.unwrap();
    assert_ne!(bearer(&renewed), bearer(&token));
    assert_eq!(server.call("read", &bearer(&renewed)).await.0, 200);
    assert_eq!(opened.load(Ordering::SeqCst), 1, "no second sign-in");
    assert_eq!(server.stat("/grants/authorization_code").await, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- DPoP (RFC 9449) with nonces required, and step-up (RFC 9470) -------------------------------

#[tokio::test]
async fn the_provider_runs_with_dpop_nonces_required_and_lists_its_algs_and_acr_values() {
    let server = Interop::start();
    assert!(server.dpop_nonces, "nonces are required by default");
    let meta: serde_json::Value =
        reqwest::get(server.endpoint("/.well-known/openid-configuration"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let algs = meta["dpop_signing_alg_values_supported"]
        .as_array()
        .expect("dpop_signing_alg_values_supported");
    for alg in ["ES256", "PS256", "EdDSA"] {
        assert!(algs.iter().any(|a| a == alg), "{alg} in {algs:?}");
    }
    assert_eq!(
        meta["acr_values_supported"],
        serde_json::json!([
            "urn:mace:incommon:iap:silver",
            "urn:mace:incommon:iap:bronze"
        ])
    );

    // A DPoP-bound client gets no token without a proof.
    let client = server.client("cc-dpop", Some("cc-dpop-secret")).await;
    let err = TokenSource::new(client, ClientCredentials::new().scope("api:read"))
        .token()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid_grant"), "{err}");

    // And the resource challenges a request without a token with both schemes, and always
    // hands out its nonce.
    let resp = reqwest::get(server.api("read")).await.unwrap();
    assert_eq!(resp.status(), 401);
    let challenges: Vec<_> = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert!(challenges[0].starts_with("Bearer "), "{challenges:?}");
    assert!(challenges[1].starts_with("DPoP algs="), "{challenges:?}");
    assert!(resp.headers().contains_key("dpop-nonce"));

    // Without nonces (INTEROP_DPOP_NONCES=optional), the resource hands none out.
    let relaxed = Interop::start_with(&[("INTEROP_DPOP_NONCES", "optional")]);
    assert!(!relaxed.dpop_nonces);
    let resp = reqwest::get(relaxed.api("read")).await.unwrap();
    assert!(!resp.headers().contains_key("dpop-nonce"));
}

/// The suite's own DPoP checks must be right before they can judge the client: a hand-written
/// client (`tests/interop/dpop_selftest.mjs`, jose) gets tokens with the nonce dance, and the
/// resource refuses each broken proof (htm, htu, query in htu, iat, ath, jti missing or replayed,
/// typ, alg none and HS256, a forged signature, a stale nonce, another key than cnf.jkt, two DPoP
/// headers), a bound token as Bearer and an unbound one as DPoP; step-up to the silver acr and a
/// max_age sign-in go through the provider's pages; a bound refresh token refuses another key.
#[tokio::test]
async fn the_resource_validates_dpop_proofs_exactly_against_a_hand_written_client() {
    let server = Interop::start();
    let out = std::process::Command::new("node")
        .arg("dpop_selftest.mjs")
        .arg(&server.issuer)
        .arg(&server.resource)
        .current_dir(interop_support::interop_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dpop_selftest.mjs failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        7,
        "{stdout}"
    );
    let stats = server.stats().await;
    assert_eq!(stats["resource_dpop"]["outcomes"]["dpop: jti replayed"], 1);
    assert_eq!(
        stats["resource_dpop"]["outcomes"]["dpop-bound token presented as Bearer"],
        1
    );
}

// ---- every grant with DPoP, against nonces required at the provider and the resource ------------

async fn dpop_client_with(
    server: &Interop,
    id: &str,
    secret: Option<&str>,
    dpop: Dpop,
) -> OAuthClient {
    let mut builder = OAuthClient::builder(id).dpop(dpop);
    if let Some(secret) = secret {
        builder = builder.secret(secret);
    }
    oauth_layer::discovery::configure(builder, &server.issuer)
        .await
        .unwrap()
}

async fn dpop_client(server: &Interop, id: &str, secret: Option<&str>) -> OAuthClient {
    dpop_client_with(server, id, secret, Dpop::new()).await
}

fn dpop_http(source: &TokenSource) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OAuthMiddleware::from_source(source.clone()))
        .build()
}

async fn json_of(resp: reqwest::Response) -> (u16, serde_json::Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

/// GET `<resource>/api/<path>` through `http`: status and body.
async fn get(
    http: &reqwest_middleware::ClientWithMiddleware,
    server: &Interop,
    path: &str,
) -> (u16, serde_json::Value) {
    json_of(http.get(server.api(path)).send().await.unwrap()).await
}

fn is_dpop(token: &oauth_layer::Token) -> bool {
    token.token_type().eq_ignore_ascii_case("dpop")
}

/// Proofs at the token endpoint and answers for `grant`: (proofs, nonce challenges, bound).
async fn token_dpop(server: &Interop, grant: &str) -> (u64, u64, u64) {
    let stats = server.stats().await;
    let n = |k: &str| stats["token_dpop"][k][grant].as_u64().unwrap_or(0);
    (n("proofs"), n("use_dpop_nonce"), n("bound"))
}

#[tokio::test]
async fn dpop_client_credentials_through_the_middleware_absorbs_both_nonce_challenges() {
    let server = Interop::start();
    let client = dpop_client(&server, "cc-dpop", Some("cc-dpop-secret")).await;
    let middleware = OAuthMiddleware::client_credentials(client).scope("api:read");
    let source = middleware.source().clone();
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build();

    // The provider's nonce challenge (400 use_dpop_nonce) and the resource's (401) are each
    // answered once, and the caller sees 200.
    let (status, body) = get(&http, &server, "read").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scheme"], "DPoP");
    assert!(body["jkt"].is_string(), "{body}");
    assert!(is_dpop(&source.cached().unwrap()));
    assert_eq!(token_dpop(&server, "client_credentials").await, (2, 1, 1));
    assert_eq!(
        server
            .stat("/resource_dpop/outcomes/use_dpop_nonce: nonce missing")
            .await,
        1
    );

    // The nonces are remembered (from the successful retries too): ten more requests, POSTs
    // with a body among them, and not one more challenge.
    for i in 0..10 {
        let resp = if i % 2 == 0 {
            http.get(server.api("read")).send().await.unwrap()
        } else {
            http.post(server.api("read"))
                .body(format!("body {i}"))
                .send()
                .await
                .unwrap()
        };
        let (status, body) = json_of(resp).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(server.stat("/resource_dpop/ok").await, 11);
    assert_eq!(
        server.stat("/resource/401").await,
        1,
        "only the first nonce challenge"
    );
    assert_eq!(
        server.stat("/grants/client_credentials").await,
        2,
        "one token, two proofs"
    );

    // A rotated resource nonce: one more challenge, absorbed.
    let rotated = server.rotate_resource_nonce().await;
    let (status, body) = get(&http, &server, "read").await;
    assert_eq!(status, 200, "{body}");
    let log = server.resource_log().await;
    assert_eq!(
        log.last().unwrap()["proof"]["nonce"],
        rotated.as_str(),
        "{log:?}"
    );
    assert_eq!(
        server
            .stat("/resource_dpop/outcomes/use_dpop_nonce: nonce stale")
            .await,
        1
    );
    // Concurrent requests after another rotation: each is challenged at most once, every
    // caller sees 200, and no new token is asked for.
    server.rotate_resource_nonce().await;
    let before = server.stat("/resource/401").await;
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let http = http.clone();
            let url = server.api("read");
            tokio::spawn(async move { http.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    let challenged = server.stat("/resource/401").await - before;
    assert!(
        (1..=8).contains(&challenged),
        "{challenged} challenges for 8 requests"
    );
    assert_eq!(server.stat("/grants/client_credentials").await, 2);

    // Every proof was fresh (the resource refuses a replayed jti) and carried ath.
    let log = server.resource_log().await;
    assert!(
        log.iter()
            .all(|e| e["status"] == 200
                || e["outcome"].as_str().unwrap().starts_with("use_dpop_nonce")),
        "{log:?}"
    );
    assert!(log.iter().all(|e| e["proof"]["ath"] == true), "{log:?}");
}

#[tokio::test]
async fn dpop_through_the_tower_layer_renews_4_second_tokens_and_follows_a_rotated_nonce() {
    let server = Interop::start();
    let client = dpop_client(&server, "cc-dpop-short", Some("cc-dpop-short-secret")).await;
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(client).scope("api:read"))
        .service(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>(),
        );
    let url = server.api("read");
    let mut rotated = false;
    let start = Instant::now();
    let mut statuses = Vec::new();
    while start.elapsed() < Duration::from_secs(9) {
        if !rotated && start.elapsed() > Duration::from_secs(5) {
            server.rotate_resource_nonce().await;
            rotated = true;
        }
        let req = http::Request::get(&url)
            .body(Full::new(Bytes::new()))
            .unwrap();
        statuses.push(svc.clone().oneshot(req).await.unwrap().status().as_u16());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let renewals = server.stat("/grants/client_credentials").await;
    let (proofs, challenges, bound) = token_dpop(&server, "client_credentials").await;
    assert_eq!(
        challenges, 1,
        "the provider's nonce is kept across renewals"
    );
    assert_eq!(proofs, renewals);
    assert!(
        (3..=7).contains(&bound),
        "{bound} DPoP tokens in 9 s of 4-second tokens"
    );
    assert_eq!(
        server
            .stat("/resource_dpop/outcomes/use_dpop_nonce: nonce missing")
            .await,
        1
    );
    assert_eq!(
        server
            .stat("/resource_dpop/outcomes/use_dpop_nonce: nonce stale")
            .await,
        1
    );
    assert_eq!(
        server.stat("/resource/401").await,
        2,
        "only the two nonce challenges"
    );
}

#[tokio::test]
async fn a_stolen_dpop_token_is_rejected_as_bearer_without_a_proof_and_with_another_key() {
    let server = Interop::start();
    let key = DpopKey::generate(DpopAlg::ES256).unwrap();
    let client = dpop_client_with(
        &server,
        "cc-dpop",
        Some("cc-dpop-secret"),
        Dpop::with_key(key.clone()),
    )
    .await;
    let source = TokenSource::new(client, ClientCredentials::new().scope("api:read"));
    let (status, body) = get(&dpop_http(&source), &server, "read").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["jkt"], key.thumbprint(), "bound to the caller's key");
    let stolen = bearer(&source.cached().unwrap());

    let (status, challenge, _) = server.call_as("read", "Bearer", &stolen).await;
    assert_eq!(status, 401);
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_eq!(
        server
            .stat("/resource_dpop/outcomes/dpop-bound token presented as Bearer")
            .await,
        1
    );
    let (status, _, body) = server.call_as("read", "DPoP", &stolen).await;
    assert_eq!(status, 401);
    assert_eq!(body["error_description"], "no DPoP proof");

    // The thief's own key makes a well-formed proof, with the resource's current nonce.
    let thief = DpopKey::generate(DpopAlg::ES256).unwrap();
    let nonce = server.rotate_resource_nonce().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let proof = thief
        .proof("GET", &server.api("read"), now, Some(&stolen), Some(&nonce))
        .unwrap();
    let resp = reqwest::Client::new()
        .get(server.api("read"))
        .header("authorization", format!("DPoP {stolen}"))
        .header("dpop", proof)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("invalid_dpop_proof"), "{challenge}");
    assert_eq!(
        server
            .stat("/resource_dpop/outcomes/dpop: cnf.jkt mismatch")
            .await,
        1
    );
    // The owner's requests still work.
    assert_eq!(get(&dpop_http(&source), &server, "read").await.0, 200);
}

#[tokio::test]
async fn dpop_auth_code_with_dpop_jkt_then_a_bound_refresh() {
    let server = Interop::start();
    let client = dpop_client(&server, "native-dpop", None).await;
    let opened = Arc::new(AtomicUsize::new(0));
    let flow = AuthCode::new()
        .scope("openid api:read")
        .loopback()
        .browser(FormBrowser::new().opener(opened.clone()))
        .prompt(ScriptedPrompt::default())
        .timeout(Duration::from_secs(30));
    let tokens = TokenSource::new(client.clone(), flow);
    let first = tokens.token().await.unwrap();
    assert!(is_dpop(&first), "{}", first.token_type());
    assert_eq!(
        server.stat("/authorize/dpop_jkt").await,
        1,
        "dpop_jkt on the authorization request"
    );
    assert_eq!(token_dpop(&server, "authorization_code").await, (2, 1, 1));

    let http = dpop_http(&tokens);
    let (status, body) = get(&http, &server, "read").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sub"], LOGIN);
    let jkt = body["jkt"].clone();

    // A refresh (a public client's refresh token is bound to the key too) keeps the key.
    assert!(tokens.invalidate(&first));
    let second = tokens.token().await.unwrap();
    assert!(is_dpop(&second));
    assert!(!second.same_as(&first));
    let (status, body) = get(&http, &server, "read").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["jkt"], jkt, "the same key");
    assert_eq!(opened.load(Ordering::SeqCst), 1, "one sign-in");
    let (proofs, challenges, bound) = token_dpop(&server, "refresh_token").await;
    assert_eq!(
        (proofs, challenges, bound),
        (1, 0, 1),
        "the token endpoint's nonce is kept"
    );
}

#[tokio::test]
async fn dpop_device_grant() {
    let server = Interop::start();
    let client = dpop_client(&server, "tv-dpop", None).await;
    let display = RecordingDisplay::default();
    let tokens = TokenSource::new(
        client,
        DeviceCode::new()
            .scope("openid api:read")
            .display(display.clone()),
    );
    let pending = tokio::spawn({
        let tokens = tokens.clone();
        async move { tokens.token().await }
    });
    let shown = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(shown) = display.shown() {
                return shown;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    let (at, page, titles) = FormBrowser::new()
        .with_user_code(shown.user_code())
        .visit(shown.verification_uri().as_str())
        .await;
    assert!(
        page.contains("Sign-in Success"),
        "ended at {at}: {titles:?}\n{page}"
    );
    let token = tokio::time::timeout(Duration::from_secs(30), pending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(is_dpop(&token));
    let (status, body) = get(&dpop_http(&tokens), &server, "read").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sub"], LOGIN);
    let (_, _, bound) = token_dpop(&server, "urn:ietf:params:oauth:grant-type:device_code").await;
    assert_eq!(bound, 1);
}

#[tokio::test]
async fn dpop_private_key_jwt_jwt_bearer_and_token_exchange() {
    let server = Interop::start();
    // private_key_jwt: a client not registered as DPoP-bound still gets a bound token when it
    // sends a proof.
    let key = SigningKey::es256_pem(&server.private_key_jwt_pem)
        .unwrap()
        .kid("pkjwt-es256");
    let client = oauth_layer::discovery::configure(
        OAuthClient::builder("pkjwt")
            .signing_key(key)
            .dpop(Dpop::new()),
        &server.issuer,
    )
    .await
    .unwrap();
    let pkjwt = TokenSource::new(client, ClientCredentials::new().scope("api:read"));
    assert!(is_dpop(&pkjwt.token().await.unwrap()));
    assert_eq!(get(&dpop_http(&pkjwt), &server, "read").await.0, 200);

    // JWT bearer, registered with registerGrantType and binding like the built-in grants.
    let assertion_key = SigningKey::es256_pem(&server.jwt_bearer_pem).unwrap();
    let client = dpop_client(&server, "jwt-bearer-dpop", None).await;
    let jwt_bearer = TokenSource::new(
        client,
        JwtBearer::new(assertion_key, server.assertion_issuer.clone())
            .subject("svc-42")
            .scope("api:read"),
    );
    assert!(is_dpop(&jwt_bearer.token().await.unwrap()));
    let (status, body) = get(&dpop_http(&jwt_bearer), &server, "read").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sub"], "svc-42");

    // Token exchange, the subject from a DPoP source of another client.
    let subject = TokenSource::new(
        dpop_client(&server, "cc-dpop", Some("cc-dpop-secret")).await,
        ClientCredentials::new().scope("api:read"),
    );
    let exchanger = dpop_client(&server, "exchanger-dpop", Some("exchanger-dpop-secret")).await;
    let exchanged = TokenSource::new(
        exchanger,
        TokenExchange::new(SubjectToken::source(subject)).scope("api:read"),
    );
    let token = exchanged.token().await.unwrap();
    assert!(is_dpop(&token));
    assert_eq!(token.issued_token_type(), Some(ACCESS_TOKEN_TYPE));
    let (status, body) = get(&dpop_http(&exchanged), &server, "read").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["client_id"], "exchanger-dpop");

    for grant in [
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    ] {
        let (proofs, _, bound) = token_dpop(&server, grant).await;
        assert!(
            proofs >= 1 && bound == 1,
            "{grant}: {proofs} proofs, {bound} bound"
        );
    }
}

#[tokio::test]
async fn dpop_jwt_access_tokens_carry_cnf_jkt_and_insufficient_scope_comes_as_dpop() {
    let server = Interop::start();
    let key = DpopKey::generate(DpopAlg::ES256).unwrap();
    let client = dpop_client_with(
        &server,
        "cc-dpop-jwt",
        Some("cc-dpop-jwt-secret"),
        Dpop::with_key(key.clone()),
    )
    .await;
    let source = TokenSource::new(client, ClientCredentials::new().scope("api:read"));
    let http = dpop_http(&source);
    let (status, body) = get(&http, &server, "read").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["format"], "jwt");
    let jwt = bearer(&source.cached().unwrap());
    let claims: serde_json::Value =
        serde_json::from_slice(&base64_url_decode(jwt.split('.').nth(1).unwrap())).unwrap();
    assert_eq!(claims["cnf"]["jkt"], key.thumbprint());

    // The resource's 403 insufficient_scope (in the DPoP scheme, see
    // the_resources_scope_and_step_up_challenges_parse_in_both_schemes) is answered with a
    // wider JWT bound to the caller's own key, and the retry succeeds.
    let (status, body) = get(&http, &server, "write").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["format"], "jwt");
    assert_eq!(body["scope"], "api:read api:write");
    assert_eq!(
        body["jkt"],
        key.thumbprint(),
        "the upgraded source signs with the key"
    );
    let log = server.resource_log().await;
    let refused = log
        .iter()
        .find(|e| e["outcome"] == "insufficient_scope")
        .expect("a 403 insufficient_scope");
    assert_eq!(refused["scheme"], "dpop", "{log:?}");
    assert_eq!(refused["scope"], "api:read", "{log:?}");
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn dpop_file_store_refreshes_after_a_restart_with_the_persisted_key() {
    use oauth_layer::store::FileStore;
    let server = Interop::start();
    let dir = std::env::temp_dir().join(format!(
        "oauth-layer-interop-dpop-store-{}-{}",
        std::process::id(),
        server.resource.rsplit(':').next().unwrap()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let opened = Arc::new(AtomicUsize::new(0));
    let source = |client: OAuthClient| {
        let flow = AuthCode::new()
            .scope("openid api:read")
            .loopback()
            .browser(FormBrowser::new().opener(opened.clone()))
            .prompt(ScriptedPrompt::default())
            .timeout(Duration::from_secs(30));
        TokenSource::builder(client, flow)
            .store(FileStore::in_dir(&dir))
            .build()
    };

    let first = source(dpop_client(&server, "native-dpop-short", None).await);
    // The sign-in (the middleware never starts one on its own).
    first.token().await.unwrap();
    let (status, body) = get(&dpop_http(&first), &server, "read").await;
    assert_eq!(status, 200, "{body}");
    let jkt = body["jkt"].clone();
    let token = first.cached().unwrap();
    drop(first);

    // The restarted client: a new OAuthClient whose Dpop would make a new key; the stored
    // token brings its own, and the bound refresh token works with it.
    let second = source(dpop_client(&server, "native-dpop-short", None).await);
    let http = dpop_http(&second);
    let (status, body) = get(&http, &server, "read").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["jkt"], jkt,
        "the stored token is used with the stored key"
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, body) = get(&http, &server, "read").await;
    assert_eq!(status, 200, "{body}");
    assert!(!second.cached().unwrap().same_as(&token), "renewed");
    assert_eq!(body["jkt"], jkt, "the refresh kept the key");
    assert_eq!(opened.load(Ordering::SeqCst), 1, "no second sign-in");
    assert_eq!(token_dpop(&server, "refresh_token").await.2, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn dpop_keys_of_every_algorithm_the_crate_signs_with_are_accepted_by_both_servers() {
    let server = Interop::start();
    for alg in [DpopAlg::ES256, DpopAlg::EdDSA, DpopAlg::PS256] {
        let client = dpop_client_with(
            &server,
            "cc-dpop",
            Some("cc-dpop-secret"),
            Dpop::new().algorithms([alg]),
        )
        .await;
        let source = TokenSource::new(client, ClientCredentials::new().scope("api:read"));
        let (status, body) = get(&dpop_http(&source), &server, "read").await;
        assert_eq!(status, 200, "{alg:?}: {body}");
        let key = source
            .cached()
            .unwrap()
            .dpop_key()
            .cloned()
            .expect("a bound key");
        assert_eq!(key.alg(), alg);
        assert_eq!(body["jkt"], key.thumbprint(), "{alg:?}");
        let log = server.resource_log().await;
        assert_eq!(log.last().unwrap()["proof"]["alg"], alg.as_str());
    }
}

#[tokio::test]
async fn dpop_without_nonces_required_sends_no_nonce_and_meets_no_challenge() {
    let server = Interop::start_with(&[("INTEROP_DPOP_NONCES", "optional")]);
    let client = dpop_client(&server, "cc-dpop", Some("cc-dpop-secret")).await;
    let source = TokenSource::new(client, ClientCredentials::new().scope("api:read"));
    let http = dpop_http(&source);
    for _ in 0..3 {
        let (status, body) = get(&http, &server, "read").await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(token_dpop(&server, "client_credentials").await, (1, 0, 1));
    assert_eq!(server.stat("/resource/401").await, 0);
    let log = server.resource_log().await;
    assert!(log.iter().all(|e| e["proof"]["nonce"].is_null()), "{log:?}");
}

/// oidc-provider's userinfo endpoint wants a DPoP-bound token with a proof (and its nonce).
#[tokio::test]
async fn dpop_userinfo_with_a_bound_token() {
    let server = Interop::start();
    let client = dpop_client(&server, "native-dpop", None).await;
    let opened = Arc::new(AtomicUsize::new(0));
    let flow = AuthCode::new()
        .scope("openid email api:read")
        .loopback()
        .browser(FormBrowser::new().opener(opened.clone()))
        .prompt(ScriptedPrompt::default())
        .timeout(Duration::from_secs(30));
    let tokens = TokenSource::new(client.clone(), flow);
    let token = tokens.token().await.unwrap();
    let claims = client.userinfo(&token).await.unwrap();
    assert_eq!(claims["sub"], LOGIN);
}

/// The resource's scope and step-up challenges, in both schemes, read by the crate's own
/// parser (`oauth_layer::challenge`): what the challenge engine acts on.
#[tokio::test]
async fn the_resources_scope_and_step_up_challenges_parse_in_both_schemes() {
    use oauth_layer::challenge::Challenges;
    let server = Interop::start();
    let http = reqwest::Client::new();

    // No token: one Bearer and one DPoP challenge, in two fields.
    let resp = http.get(server.api("read")).send().await.unwrap();
    let nonce = resp.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    let none = Challenges::from_headers(resp.headers()).into_vec();
    assert_eq!(none.len(), 2, "{none:?}");
    assert!(none[0].is_bearer() && none[0].realm() == Some("interop"));
    assert!(none[1].is_dpop());
    assert!(none[1].algs().any(|a| a == "ES256"));

    // A bearer token and a DPoP-bound one, both with only api:read and no sign-in behind them.
    let plain = TokenSource::new(
        server.client("cc-basic", Some("cc-basic-secret")).await,
        ClientCredentials::new().scope("api:read"),
    )
    .token()
    .await
    .unwrap();
    let key = DpopKey::generate(DpopAlg::ES256).unwrap();
    let client = dpop_client_with(
        &server,
        "cc-dpop",
        Some("cc-dpop-secret"),
        Dpop::with_key(key.clone()),
    )
    .await;
    let bound = TokenSource::new(client, ClientCredentials::new().scope("api:read"))
        .token()
        .await
        .unwrap();

    for (path, status, error) in [
        ("write", 403, "insufficient_scope"),
        ("silver", 401, "insufficient_user_authentication"),
        ("max-age/60", 401, "insufficient_user_authentication"),
    ] {
        let bearer_resp = http
            .get(server.api(path))
            .bearer_auth(bearer(&plain))
            .send()
            .await
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let proof = key
            .proof(
                "GET",
                &server.api(path),
                now,
                Some(&bearer(&bound)),
                Some(&nonce),
            )
            .unwrap();
        let dpop_resp = http
            .get(server.api(path))
            .header("authorization", format!("DPoP {}", bearer(&bound)))
            .header("dpop", proof)
            .send()
            .await
            .unwrap();
        for (scheme, resp) in [("Bearer", bearer_resp), ("DPoP", dpop_resp)] {
            assert_eq!(resp.status(), status, "{path} {scheme}");
            let challenges = Challenges::from_headers(resp.headers()).into_vec();
            assert_eq!(challenges.len(), 1, "{path} {scheme}: {challenges:?}");
            let c = &challenges[0];
            assert!(c.scheme().eq_ignore_ascii_case(scheme), "{c:?}");
            assert_eq!(c.error(), Some(error), "{path} {scheme}");
            match path {
                "write" => assert_eq!(c.scope(), Some("api:write")),
                "silver" => assert_eq!(c.acr_values(), Some("urn:mace:incommon:iap:silver")),
                _ => assert_eq!(c.max_age(), Some(60)),
            }
            if scheme == "DPoP" {
                assert!(c.algs().any(|a| a == "ES256"), "{c:?}");
            }
        }
    }
}

// ---- the challenge engine against the resource's scope and step-up challenges --------------------
//
// The middleware and the layer act on `insufficient_scope` (a wider token from a derived source,
// the narrow one kept) and `insufficient_user_authentication` (a person signs in again with
// `acr_values` or `max_age`; a machine gets `Error::StepUpRequired`), here against oidc-provider
// and the suite's resource.

const ACR_BRONZE: &str = "urn:mace:incommon:iap:bronze";
const ACR_SILVER: &str = "urn:mace:incommon:iap:silver";

/// The scope each successful token request for `grant` asked for, oldest first.
async fn token_scopes(server: &Interop, grant: &str) -> Vec<String> {
    server.stats().await["token_log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["grant_type"] == grant && e["status"] == 200)
        .map(|e| e["scope"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// The resource's answers, oldest first, without the DPoP nonce challenges: path, status, and
/// the scope of the token presented (empty when it was refused before validation).
async fn resource_calls(server: &Interop) -> Vec<(String, u64, String)> {
    server
        .resource_log()
        .await
        .iter()
        .filter(|e| {
            !e["outcome"]
                .as_str()
                .unwrap_or_default()
                .starts_with("use_dpop_nonce")
        })
        .map(|e| {
            (
                e["path"].as_str().unwrap_or_default().to_owned(),
                e["status"].as_u64().unwrap(),
                e["scope"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn call(path: &str, status: u64, scope: &str) -> (String, u64, String) {
    (format!("/api/{path}"), status, scope.to_owned())
}

fn middleware_error(err: reqwest_middleware::Error) -> Error {
    match err {
        reqwest_middleware::Error::Middleware(e) => e.downcast::<Error>().unwrap(),
        other => panic!("not the crate's error: {other:?}"),
    }
}

/// Client credentials, bearer and DPoP: `/api/write` answers 403 `insufficient_scope`
/// `scope="api:write"`; the middleware asks once for `api:read api:write`, retries, and keeps
/// the narrow token for `/api/read`; the wider token is cached for the next `/api/write`.
#[tokio::test]
async fn scope_upgrade_for_client_credentials_asks_once_for_the_union_and_keeps_the_narrow_token() {
    use oauth_layer::flow::Requirements;
    for (id, secret, dpop) in [
        ("cc-basic", "cc-basic-secret", false),
        ("cc-dpop", "cc-dpop-secret", true),
    ] {
        let server = Interop::start();
        let client = if dpop {
            dpop_client(&server, id, Some(secret)).await
        } else {
            server.client(id, Some(secret)).await
        };
        let middleware = OAuthMiddleware::client_credentials(client).scope("api:read");
        let source = middleware.source().clone();
        let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(middleware)
            .build();

        let (status, wide_body) = get(&http, &server, "write").await;
        assert_eq!(status, 200, "{id}: {wide_body}");
        assert_eq!(wide_body["scope"], "api:read api:write", "{id}");
        assert_eq!(
            token_scopes(&server, "client_credentials").await,
            ["api:read", "api:read api:write"],
            "{id}: the narrow token, then one token request for the union"
        );

        let (status, narrow_body) = get(&http, &server, "read").await;
        assert_eq!(status, 200, "{id}: {narrow_body}");
        assert_eq!(
            narrow_body["scope"], "api:read",
            "{id}: least privilege where enough"
        );

        let (status, body) = http
            .post(server.api("write"))
            .body("again")
            .send()
            .await
            .map(json_of)
            .unwrap()
            .await;
        assert_eq!(status, 200, "{id}: {body}");
        assert_eq!(body["body_bytes"], 5, "{id}: the body went again");
        assert_eq!(
            token_scopes(&server, "client_credentials").await.len(),
            2,
            "{id}: the wider token is cached"
        );
        let wide = "api:read api:write";
        assert_eq!(
            resource_calls(&server).await,
            [
                call("write", 403, "api:read"),
                call("write", 200, wide),
                call("read", 200, "api:read"),
                call("write", 403, "api:read"),
                call("write", 200, wide),
            ],
            "{id}"
        );

        // The source's own token is the narrow one; the derived source (the same one asked
        // again) holds the wide one.
        let narrow = source.cached().unwrap();
        assert_eq!(narrow.scope(), Some("api:read"), "{id}");
        let upgraded = source
            .upgraded(&Requirements::new().scope("api:write"))
            .unwrap();
        let wider = upgraded.cached().expect("the wider token is cached");
        assert_eq!(wider.scope(), Some(wide), "{id}");

        if dpop {
            // Both tokens are DPoP-bound, each to the key its proofs were signed with, and the
            // nonces of the provider and the resource were kept across the upgrade.
            assert!(is_dpop(&narrow) && is_dpop(&wider), "{id}");
            let jkt =
                |t: &oauth_layer::Token| t.dpop_key().expect("a bound key").thumbprint().to_owned();
            assert_eq!(narrow_body["jkt"], jkt(&narrow), "{id}");
            assert_eq!(wide_body["jkt"], jkt(&wider), "{id}");
            assert_eq!(
                token_dpop(&server, "client_credentials").await,
                (3, 1, 2),
                "{id}: (proofs, nonce challenges, bound tokens)"
            );
            assert_eq!(
                server
                    .stat("/resource_dpop/outcomes/use_dpop_nonce: nonce missing")
                    .await,
                1,
                "{id}: only the first resource request meets a nonce challenge"
            );
            let log = server.resource_log().await;
            assert!(log.iter().all(|e| e["scheme"] == "dpop"), "{log:?}");
        } else {
            assert!(!is_dpop(&narrow) && !is_dpop(&wider), "{id}");
        }
    }
}

/// The same through the tower layer with DPoP: one upgrade, then the cached wider token.
#[tokio::test]
async fn scope_upgrade_through_the_tower_layer_with_dpop() {
    let server = Interop::start();
    let client = dpop_client(&server, "cc-dpop", Some("cc-dpop-secret")).await;
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(client).scope("api:read"))
        .service(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>(),
        );
    for path in ["write", "read", "write"] {
        let req = http::Request::post(server.api(path))
            .body(Full::new(Bytes::from_static(b"payload")))
            .unwrap();
        let resp = svc.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }
    assert_eq!(
        token_scopes(&server, "client_credentials").await,
        ["api:read", "api:read api:write"]
    );
    let wide = "api:read api:write";
    assert_eq!(
        resource_calls(&server).await,
        [
            call("write", 403, "api:read"),
            call("write", 200, wide),
            call("read", 200, "api:read"),
            call("write", 403, "api:read"),
            call("write", 200, wide),
        ]
    );
    assert_eq!(token_dpop(&server, "client_credentials").await, (3, 1, 2));
}

/// An interactive middleware for a person: the authorization code flow through the loopback
/// receiver, the scripted browser filling oidc-provider's pages.
fn person(
    client: OAuthClient,
    opened: &Arc<AtomicUsize>,
) -> (TokenSource, reqwest_middleware::ClientWithMiddleware) {
    let flow = AuthCode::new()
        .scope("openid api:read")
        .loopback()
        .browser(FormBrowser::new().opener(opened.clone()))
        .prompt(ScriptedPrompt::default())
        .timeout(Duration::from_secs(30));
    let middleware = OAuthMiddleware::with_flow(client, flow).interactive(true);
    let source = middleware.source().clone();
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build();
    (source, http)
}

/// `/api/silver` answers 401 `insufficient_user_authentication` `acr_values="<silver>"` to a
/// bronze sign-in: the middleware signs the person in again with `acr_values`, the provider's
/// login check asks again (the session is bronze), and the retry succeeds. The bronze token
/// keeps serving `/api/read`; the silver one is cached for the next `/api/silver`. Bearer and
/// DPoP.
#[tokio::test]
async fn step_up_to_the_silver_acr_signs_the_person_in_again_through_the_loopback() {
    for (id, dpop) in [("native-app", false), ("native-dpop", true)] {
        let server = Interop::start();
        let client = if dpop {
            dpop_client(&server, id, None).await
        } else {
            server.client(id, None).await
        };
        let opened = Arc::new(AtomicUsize::new(0));
        let (source, http) = person(client, &opened);

        // The first request signs the person in (the middleware may interact): bronze.
        let (status, body) = get(&http, &server, "read").await;
        assert_eq!(status, 200, "{id}: {body}");
        assert_eq!(body["acr"], ACR_BRONZE, "{id}");
        assert_eq!(opened.load(Ordering::SeqCst), 1, "{id}");

        let (status, body) = get(&http, &server, "silver").await;
        assert_eq!(status, 200, "{id}: {body}");
        assert_eq!(body["acr"], ACR_SILVER, "{id}");
        assert_eq!(body["sub"], LOGIN, "{id}");
        assert_eq!(
            opened.load(Ordering::SeqCst),
            2,
            "{id}: the step-up sign-in"
        );
        let stats = server.stats().await;
        assert_eq!(stats["authorize"]["requests"], 2, "{id}: {stats}");
        assert_eq!(
            stats["authorize"]["acr_values"],
            serde_json::json!({ ACR_SILVER: 1 }),
            "{id}: only the step-up carried acr_values"
        );
        assert_eq!(
            stats["logins"],
            serde_json::json!({ ACR_BRONZE: 1, ACR_SILVER: 1 }),
            "{id}: the provider asked the person to sign in again"
        );
        assert_eq!(
            stats["login_reasons"],
            serde_json::json!({ "no_session": 1, "acr_values": 1 }),
            "{id}: the second login was asked for by the acr check, in the same session"
        );
        assert_eq!(
            token_scopes(&server, "authorization_code").await.len(),
            2,
            "{id}: two code exchanges"
        );

        // The bronze token still serves what needs no more; the silver one is cached.
        let (status, body) = get(&http, &server, "read").await;
        assert_eq!(status, 200, "{id}: {body}");
        assert_eq!(body["acr"], ACR_BRONZE, "{id}");
        assert_eq!(source.cached().unwrap().scope(), Some("openid api:read"));
        let (status, body) = get(&http, &server, "silver").await;
        assert_eq!(status, 200, "{id}: {body}");
        assert_eq!(body["acr"], ACR_SILVER, "{id}");
        assert_eq!(opened.load(Ordering::SeqCst), 2, "{id}: no third sign-in");
        assert_eq!(
            token_scopes(&server, "authorization_code").await.len(),
            2,
            "{id}: the silver token is cached"
        );
        let outcomes: Vec<(String, u64)> = server
            .resource_log()
            .await
            .iter()
            .filter(|e| !e["outcome"].as_str().unwrap().starts_with("use_dpop_nonce"))
            .map(|e| {
                (
                    e["path"].as_str().unwrap().to_owned(),
                    e["status"].as_u64().unwrap(),
                )
            })
            .collect();
        let p = |path: &str, status: u64| (format!("/api/{path}"), status);
        assert_eq!(
            outcomes,
            [
                p("read", 200),
                p("silver", 401),
                p("silver", 200),
                p("read", 200),
                p("silver", 401),
                p("silver", 200),
            ],
            "{id}"
        );

        if dpop {
            // Both sign-ins bound their codes to a key (dpop_jkt), both tokens are bound, and
            // the resource took every proof (cnf.jkt matched the proof's key).
            assert_eq!(server.stat("/authorize/dpop_jkt").await, 2, "{id}");
            assert_eq!(
                token_dpop(&server, "authorization_code").await,
                (3, 1, 2),
                "{id}: (proofs, nonce challenges, bound): the provider's nonce was kept"
            );
            let log = server.resource_log().await;
            assert!(log.iter().all(|e| e["scheme"] == "dpop"), "{log:?}");
        }
    }
}

/// `/api/max-age/3` answers 401 `insufficient_user_authentication` `max_age="3"` once the
/// sign-in is more than 3 seconds old: the middleware signs the person in again with
/// `max_age=3`, oidc-provider's own max_age check asks for the login again, and the retry
/// succeeds with a newer `auth_time`.
#[tokio::test]
async fn a_max_age_step_up_signs_the_person_in_again_once_the_sign_in_is_too_old() {
    let server = Interop::start();
    let client = server.client("native-app", None).await;
    let opened = Arc::new(AtomicUsize::new(0));
    let (_source, http) = person(client, &opened);

    let (status, body) = get(&http, &server, "max-age/3").await;
    assert_eq!(status, 200, "a fresh sign-in is recent enough: {body}");
    let first = body["auth_time"].as_u64().expect("auth_time");
    assert_eq!(opened.load(Ordering::SeqCst), 1);

    // Until the sign-in is more than 3 seconds old, in whole seconds as both servers count.
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    };
    let wait = (first as f64 + 4.05 - now()).max(0.0);
    tokio::time::sleep(Duration::from_secs_f64(wait)).await;

    let (status, body) = get(&http, &server, "max-age/3").await;
    assert_eq!(
        status,
        200,
        "{body}; opened {}; {}",
        opened.load(Ordering::SeqCst),
        server.stats().await
    );
    let second = body["auth_time"].as_u64().expect("auth_time");
    assert!(second > first, "a new sign-in: {first} then {second}");
    assert_eq!(opened.load(Ordering::SeqCst), 2, "the step-up sign-in");
    let stats = server.stats().await;
    assert_eq!(
        stats["authorize"]["max_age"], 1,
        "only the step-up: {stats}"
    );
    assert_eq!(
        stats["logins"],
        serde_json::json!({ ACR_BRONZE: 2 }),
        "{stats}"
    );
    assert_eq!(
        stats["login_reasons"],
        serde_json::json!({ "no_session": 1, "max_age": 1 }),
        "oidc-provider's max_age check asked for the second login: {stats}"
    );
    let outcomes: Vec<_> = server
        .resource_log()
        .await
        .iter()
        .map(|e| (e["status"].as_u64().unwrap(), e["outcome"].clone()))
        .collect();
    assert_eq!(
        outcomes,
        [
            (200, "ok".into()),
            (401, "insufficient_user_authentication: max_age".into()),
            (200, "ok".into()),
        ]
    );
}

/// A machine cannot sign in: `/api/silver` and `/api/max-age/60` give client credentials
/// (bearer and DPoP) `Error::StepUpRequired` naming what the resource asked, with
/// `Action::StepUp`, no token request and no retry.
#[tokio::test]
async fn a_machine_asked_for_a_stronger_sign_in_gets_the_typed_step_up_error() {
    let server = Interop::start();
    for (id, secret, dpop) in [
        ("cc-basic", "cc-basic-secret", false),
        ("cc-dpop", "cc-dpop-secret", true),
    ] {
        let client = if dpop {
            dpop_client(&server, id, Some(secret)).await
        } else {
            server.client(id, Some(secret)).await
        };
        let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(OAuthMiddleware::client_credentials(client).scope("api:read"))
            .build();
        for path in ["silver", "max-age/60"] {
            let err = middleware_error(http.get(server.api(path)).send().await.unwrap_err());
            let Error::StepUpRequired(need) = &err else {
                panic!("{id} {path}: {err:?}")
            };
            if path == "silver" {
                assert_eq!(need.acr_values.as_deref(), Some(ACR_SILVER), "{id}");
                assert_eq!(need.max_age, None, "{id}");
            } else {
                assert_eq!(need.max_age, Some(60), "{id}");
                assert_eq!(need.acr_values, None, "{id}");
            }
            assert!(need.scopes.is_empty(), "{id} {path}: {need:?}");
            assert!(
                matches!(err.action(), Action::StepUp(n) if &n == need),
                "{id} {path}: {:?}",
                err.action()
            );
            // The message says what the resource asked for.
            let shown = err.to_string();
            assert!(
                shown.contains(if path == "silver" { ACR_SILVER } else { "60" }),
                "{shown}"
            );
        }
    }
    assert_eq!(
        token_scopes(&server, "client_credentials").await,
        ["api:read", "api:read"],
        "one token per client, nothing asked for the step-up"
    );
    let calls = resource_calls(&server).await;
    let to = |path: &str| calls.iter().filter(|c| c.0 == path).count();
    assert_eq!(to("/api/silver"), 2, "no retry: {calls:?}");
    assert_eq!(to("/api/max-age/60"), 2, "no retry: {calls:?}");
    assert!(calls.iter().all(|c| c.1 == 401), "{calls:?}");
}

/// Eight requests refused with the same `insufficient_scope` at once share one token request
/// for the union (the derived source is one, and single-flight), DPoP nonces included.
#[tokio::test]
async fn concurrent_scope_challenges_share_one_upgrade_token_request() {
    let server = Interop::start();
    let client = dpop_client(&server, "cc-dpop", Some("cc-dpop-secret")).await;
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OAuthMiddleware::client_credentials(client).scope("api:read"))
        .build();
    // The narrow token first, so the eight meet the scope challenge, not a cold cache.
    assert_eq!(get(&http, &server, "read").await.0, 200);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let http = http.clone();
            let url = server.api("write");
            tokio::spawn(async move { http.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    assert_eq!(
        token_scopes(&server, "client_credentials").await,
        ["api:read", "api:read api:write"],
        "one token request for the eight"
    );
    let calls = resource_calls(&server).await;
    let writes = |status: u64| {
        calls
            .iter()
            .filter(|c| c.0 == "/api/write" && c.1 == status)
            .count()
    };
    assert_eq!((writes(403), writes(200)), (8, 8), "{calls:?}");
}

/// A person's middleware told not to interact (`with_flow` of an interactive flow is
/// interactive by default) does not open a browser in the middle of a request: the step-up is `Error::StepUpRequired` for the caller to act on, and
/// `TokenSource::upgraded` is how it does (one sign-in with `acr_values`, then the request
/// goes through).
#[tokio::test]
async fn a_person_step_up_without_interaction_is_a_typed_error_the_caller_can_act_on() {
    use oauth_layer::flow::Requirements;
    let server = Interop::start();
    let client = server.client("native-app", None).await;
    let opened = Arc::new(AtomicUsize::new(0));
    let flow = AuthCode::new()
        .scope("openid api:read")
        .loopback()
        .browser(FormBrowser::new().opener(opened.clone()))
        .prompt(ScriptedPrompt::default())
        .timeout(Duration::from_secs(30));
    let middleware = OAuthMiddleware::with_flow(client, flow).interactive(false);
    let source = middleware.source().clone();
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(middleware)
        .build();
    // The sign-in, by the application.
    source.token().await.unwrap();
    assert_eq!(get(&http, &server, "read").await.0, 200);

    let err = middleware_error(http.get(server.api("silver")).send().await.unwrap_err());
    let Action::StepUp(need) = err.action() else {
        panic!("{err:?}")
    };
    assert_eq!(need.acr_values.as_deref(), Some(ACR_SILVER));
    assert_eq!(opened.load(Ordering::SeqCst), 1, "no browser mid-request");
    assert_eq!(server.stat("/authorize/requests").await, 1);

    // The application asks the person, with what the error named.
    let silver = source.upgraded(&need).unwrap();
    let token = silver.token().await.unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 2);
    assert_eq!(
        server.stats().await["authorize"]["acr_values"][ACR_SILVER],
        1
    );
    let (status, body) = server.call("silver", &bearer(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["acr"], ACR_SILVER);
    // And the middleware's next request to the page meets the challenge once more, finds the
    // silver token in the same derived source, and goes through without a sign-in.
    let (status, body) = get(&http, &server, "silver").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(opened.load(Ordering::SeqCst), 2);
    assert!(
        source
            .upgraded(&Requirements::new().acr_values(ACR_SILVER))
            .unwrap()
            .cached()
            .is_some()
    );
}

/// The step-up in a real headless Chromium: the same browser (and so the same oidc-provider
/// session) signs in at bronze for the first request, then the middleware opens it again with
/// `acr_values` for `/api/silver`; the provider's login page comes back, and the retry goes
/// through.
#[tokio::test]
async fn step_up_to_the_silver_acr_in_a_real_headless_chromium() {
    use fantoccini::Locator;
    let server = Interop::start();
    let chromium =
        browser_support::Chromium::start("interop-step-up", &[], Default::default()).await;
    let client = server.client("native-app", None).await;
    let (urls, mut opened) = tokio::sync::mpsc::unbounded_channel::<url::Url>();
    let flow = AuthCode::new()
        .scope("openid api:read")
        .loopback()
        .browser(oauth_layer::interact::BrowserFn(move |url: &url::Url| {
            urls.send(url.clone())
                .map_err(|_| std::io::Error::other("the browser is gone"))
        }))
        .prompt(ScriptedPrompt::default())
        .timeout(Duration::from_secs(60));
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OAuthMiddleware::with_flow(client, flow).interactive(true))
        .build();

    // The person at the browser: opens each of the two sign-in URLs, logs in, confirms consent
    // when asked, until the loopback callback page.
    let c = chromium.webdriver.clone();
    let person = tokio::spawn(async move {
        let mut sign_ins = Vec::new();
        for _ in 0..2 {
            let url = opened.recv().await.expect("a sign-in URL");
            c.goto(url.as_str()).await.unwrap();
            let wait = Duration::from_secs(20);
            c.wait()
                .at_most(wait)
                .for_element(Locator::Css("input[name=login]"))
                .await
                .unwrap()
                .send_keys(LOGIN)
                .await
                .unwrap();
            c.find(Locator::Css("input[name=password]"))
                .await
                .unwrap()
                .send_keys("any password")
                .await
                .unwrap();
            c.find(Locator::Css("button[type=submit]"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            let start = Instant::now();
            let mut consented = false;
            loop {
                assert!(start.elapsed() < wait, "no callback after the login");
                let at = c.current_url().await.unwrap();
                if at.host_str() == Some("127.0.0.1") && at.path() == "/callback" {
                    break;
                }
                if !consented
                    && c.find(Locator::Css("input[name=prompt][value=consent]"))
                        .await
                        .is_ok()
                {
                    c.find(Locator::Css("button[type=submit]"))
                        .await
                        .unwrap()
                        .click()
                        .await
                        .unwrap();
                    consented = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let acr = url
                .query_pairs()
                .find(|(k, _)| k == "acr_values")
                .map(|(_, v)| v.into_owned());
            sign_ins.push((acr, consented));
        }
        (sign_ins, opened)
    });

    let (status, body) = get(&http, &server, "read").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["acr"], ACR_BRONZE);
    let (status, body) = get(&http, &server, "silver").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["acr"], ACR_SILVER);
    assert_eq!(body["sub"], LOGIN);
    let stats = server.stats().await;
    assert_eq!(
        stats["login_reasons"],
        serde_json::json!({ "no_session": 1, "acr_values": 1 }),
        "Chromium kept the session, and the acr check asked again: {stats}"
    );

    let (sign_ins, mut opened) = person.await.unwrap();
    // (oidc-provider asks a native client's person to consent on every sign-in, its
    // `native_client_prompt` check, so both sign-ins end on the consent page.)
    assert_eq!(
        sign_ins,
        [(None, true), (Some(ACR_SILVER.to_owned()), true)],
        "the step-up carried acr_values"
    );
    // The silver token is cached: the page again opens no browser.
    assert_eq!(get(&http, &server, "silver").await.0, 200);
    assert!(opened.try_recv().is_err(), "no third sign-in");
    chromium.webdriver.clone().close().await.unwrap();
}

// ---- the resource-first client: RFC 9728 discovery, RFC 7591 registration, RFC 8707 -------------
//
// `server.mcp` and `server.api` are protected resources of the suite's own, on two ports
// (tests/interop/protected_resource.mjs): each publishes RFC 9728 metadata naming oidc-provider,
// answers a request without a token `401 Bearer resource_metadata="…", scope="…"`, and takes
// only JWT access tokens whose `aud` is its own identifier. The provider registers clients
// dynamically (RFC 7591) and issues those JWTs for a `resource` of either (RFC 8707).

/// The claims of a JWT access token (unverified: the resources verify them).
fn jwt_claims(token: &str) -> serde_json::Value {
    serde_json::from_slice(&base64_url_decode(token.split('.').nth(1).unwrap())).unwrap()
}

/// A reqwest client whose requests go through the resource-first middleware of `resources`.
fn resource_first_http(resources: &ResourceClient) -> reqwest_middleware::ClientWithMiddleware {
    reqwest_middleware::ClientBuilder::new(oauth_layer::reqwest::client_builder().build().unwrap())
        .with(OAuthMiddleware::for_resources(resources.clone()))
        .build()
}

/// A person's sign-in for a resource-first client: the loopback receiver, the scripted browser.
fn sign_in(opened: &Arc<AtomicUsize>) -> AuthCode {
    AuthCode::new()
        .loopback()
        .browser(FormBrowser::new().opener(opened.clone()))
        .prompt(ScriptedPrompt::default())
        .timeout(Duration::from_secs(30))
}

/// The token endpoint's answers so far as `(status, resource asked for)`.
async fn token_requests(server: &Interop) -> Vec<(String, String)> {
    server
        .sequence()
        .await
        .iter()
        .filter(|line| line.starts_with("provider POST /token "))
        .map(|line| {
            let resource = line.split(" resource=").nth(1).unwrap_or("").to_owned();
            (line.split(' ').nth(3).unwrap().to_owned(), resource)
        })
        .collect()
}

/// `(aud, sha256 prefix)` of every token `id` was shown, and how many requests came without one.
async fn tokens_seen(server: &Interop, id: &str) -> (Vec<(String, String)>, usize) {
    let seen = server.seen(id).await;
    let shown = seen
        .iter()
        .filter(|e| e["scheme"] != "none")
        .map(|e| {
            (
                e["aud"].as_str().unwrap_or("<not a JWT>").to_owned(),
                e["sha256"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (shown, seen.iter().filter(|e| e["scheme"] == "none").count())
}

/// Two resources on two ports, one client credentials client registered beforehand: each
/// resource's first request finds its own metadata, the authorization server is discovered
/// once, each gets a token requested with its own `resource` (a JWT whose `aud` is that
/// resource), and neither resource is ever shown the other's token. The api resource refuses
/// the mcp token when it is sent by hand, so the check has teeth.
#[tokio::test]
async fn two_resources_on_two_ports_each_get_their_own_token_and_never_the_others() {
    let server = Interop::start();
    let resources = ResourceClient::new(&server.mcp)
        .unwrap()
        .resource(&server.api)
        .unwrap()
        .client_id_and_secret("cc-resources", "cc-resources-secret")
        .machine();
    let http = resource_first_http(&resources);
    let mut bodies = Vec::new();
    for url in [&server.mcp, &server.api, &server.mcp, &server.api] {
        let (status, body) = json_of(http.get(url.as_str()).send().await.unwrap()).await;
        assert_eq!(status, 200, "{url}: {body}");
        assert_eq!(body["aud"], url.as_str(), "{body}");
        assert_eq!(body["client_id"], "cc-resources", "{body}");
        bodies.push(body);
    }
    assert_eq!(bodies[0]["scope"], "mcp:tools", "the mcp challenge's scope");
    assert_eq!(bodies[1]["scope"], "api:notes", "the api challenge's scope");

    let (mcp, api) = (&server.mcp, &server.api);
    let mcp_meta = "/.well-known/oauth-protected-resource/mcp";
    let api_meta = "/.well-known/oauth-protected-resource/api";
    assert_eq!(
        server.sequence().await,
        [
            "mcp GET /mcp 401".to_owned(),
            format!("mcp GET {mcp_meta} 200"),
            "provider GET /.well-known/openid-configuration 200".to_owned(),
            format!("provider POST /token 200 resource={mcp}"),
            "mcp GET /mcp 200 Bearer".to_owned(),
            "api GET /api 401".to_owned(),
            format!("api GET {api_meta} 200"),
            format!("provider POST /token 200 resource={api}"),
            "api GET /api 200 Bearer".to_owned(),
            "mcp GET /mcp 200 Bearer".to_owned(),
            "api GET /api 200 Bearer".to_owned(),
        ],
        "the authorization server is discovered once for both resources"
    );
    assert_eq!(
        server.registrations().await.len(),
        0,
        "registered beforehand"
    );

    // Each resource saw exactly one token, its own, and never the other's.
    let (mcp_seen, mcp_bare) = tokens_seen(&server, mcp).await;
    let (api_seen, api_bare) = tokens_seen(&server, api).await;
    assert_eq!((mcp_bare, api_bare), (1, 1), "one probe each");
    assert_eq!(mcp_seen.len(), 2);
    assert_eq!(api_seen.len(), 2);
    assert!(mcp_seen.iter().all(|(aud, _)| aud == mcp), "{mcp_seen:?}");
    assert!(api_seen.iter().all(|(aud, _)| aud == api), "{api_seen:?}");
    assert_eq!(mcp_seen[0].1, mcp_seen[1].1, "the mcp token is reused");
    assert_eq!(api_seen[0].1, api_seen[1].1, "the api token is reused");
    assert_ne!(mcp_seen[0].1, api_seen[0].1);

    // The sources behind the middleware hold those tokens; the mcp token at the api is refused
    // (its audience), so a leak would have shown as a 401 above.
    let mcp_token = resources
        .token_source(mcp)
        .await
        .unwrap()
        .token()
        .await
        .unwrap();
    let api_token = resources
        .token_source(api)
        .await
        .unwrap()
        .token()
        .await
        .unwrap();
    assert_eq!(jwt_claims(&bearer(&mcp_token))["aud"], mcp.as_str());
    assert_eq!(jwt_claims(&bearer(&api_token))["aud"], api.as_str());
    let leaked = reqwest::Client::new()
        .get(api.as_str())
        .bearer_auth(bearer(&mcp_token))
        .send()
        .await
        .unwrap();
    assert_eq!(leaked.status(), 401);
    let challenge = leaked.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert!(
        challenge.contains(&format!(
            r#"resource_metadata="{}""#,
            api.replace("/api", api_meta)
        )),
        "{challenge}"
    );
    assert_eq!(
        token_requests(&server).await,
        [
            ("200".to_owned(), mcp.clone()),
            ("200".to_owned(), api.clone())
        ]
    );
}

/// What oidc-provider was asked to register by a resource-first client for a person's sign-in
/// (the defaults: a native public client with the loopback redirect URI, any port of which
/// the provider accepts).
fn assert_native_registration(registration: &serde_json::Value) {
    assert_eq!(registration["application_type"], "native", "{registration}");
    assert_eq!(
        registration["redirect_uris"],
        serde_json::json!(["http://127.0.0.1/callback"]),
        "{registration}"
    );
    assert_eq!(
        registration["token_endpoint_auth_method"], "none",
        "{registration}"
    );
    assert_eq!(
        registration["grant_types"],
        serde_json::json!(["authorization_code", "refresh_token"]),
        "{registration}"
    );
}

/// The whole cold start of issue 15 against oidc-provider, a person signing in through the
/// loopback receiver and the scripted HTTP browser: the first GET of the mcp resource goes out
/// without a token, its `401` points at the resource's metadata, the provider's metadata comes
/// from OIDC discovery, the client registers itself (RFC 7591, a native public client), the
/// person signs in with `resource` on the authorization and token requests, and the request is
/// sent again with a JWT whose `aud` is the mcp resource. Nothing more is discovered or
/// registered for the next requests, and a resource that was not configured gets no token.
#[tokio::test]
async fn a_resource_first_client_discovers_registers_and_signs_a_person_in_through_the_http_browser()
 {
    let server = Interop::start();
    let opened = Arc::new(AtomicUsize::new(0));
    let resources = ResourceClient::new(&server.mcp)
        .unwrap()
        .auth_code(sign_in(&opened));
    let http = resource_first_http(&resources);

    let (status, body) = json_of(http.get(&server.mcp).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["aud"], server.mcp.as_str(), "{body}");
    assert_eq!(body["sub"], LOGIN, "{body}");
    assert_eq!(body["scope"], "mcp:tools", "the challenge's scope: {body}");
    assert_eq!(opened.load(Ordering::SeqCst), 1, "one sign-in");
    let registrations = server.registrations().await;
    assert_eq!(registrations.len(), 1, "{registrations:?}");
    assert_native_registration(&registrations[0]);
    assert_eq!(body["client_id"], registrations[0]["client_id"]);

    let mcp = &server.mcp;
    let cold_start = [
        "mcp GET /mcp 401".to_owned(),
        "mcp GET /.well-known/oauth-protected-resource/mcp 200".to_owned(),
        "provider GET /.well-known/openid-configuration 200".to_owned(),
        "provider POST /reg 201".to_owned(),
        format!("provider GET /auth 303 resource={mcp}"),
        format!("provider POST /token 200 resource={mcp}"),
        "mcp GET /mcp 200 Bearer".to_owned(),
    ];
    assert_eq!(server.sequence().await, cold_start);
    let token = resources
        .token_source(mcp)
        .await
        .unwrap()
        .token()
        .await
        .unwrap();
    let claims = jwt_claims(&bearer(&token));
    assert_eq!(claims["aud"], mcp.as_str(), "{claims}");
    assert_eq!(claims["client_id"], registrations[0]["client_id"]);

    // Later requests (the resource and a path below it) go straight, with the same token; the
    // api resource is not configured, so it is never shown a token.
    for url in [mcp.clone(), format!("{mcp}/tools"), mcp.clone()] {
        let (status, body) = json_of(http.get(&url).send().await.unwrap()).await;
        assert_eq!(status, 200, "{url}: {body}");
    }
    assert_eq!(
        http.get(&server.api).send().await.unwrap().status(),
        401,
        "no token for a resource the client was not pointed at"
    );
    let mut expected = cold_start.to_vec();
    expected.extend([
        "mcp GET /mcp 200 Bearer".to_owned(),
        "mcp GET /mcp/tools 200 Bearer".to_owned(),
        "mcp GET /mcp 200 Bearer".to_owned(),
        "api GET /api 401".to_owned(),
    ]);
    assert_eq!(server.sequence().await, expected);
    let (shown, _) = tokens_seen(&server, mcp).await;
    assert!(shown.iter().all(|t| t == &shown[0]), "one token: {shown:?}");
    assert_eq!(tokens_seen(&server, &server.api).await, (vec![], 1));
    assert_eq!(opened.load(Ordering::SeqCst), 1);
    assert_eq!(server.registrations().await.len(), 1);
}

/// The same cold start with a real headless Chromium signing the person in (oidc-provider's
/// login and consent pages, the loopback callback), the resource-first middleware waiting
/// in the middle of the first request.
#[tokio::test]
async fn a_resource_first_client_signs_a_person_in_through_a_real_headless_chromium() {
    use fantoccini::Locator;
    let server = Interop::start();
    let chromium =
        browser_support::Chromium::start("interop-resource-first", &[], Default::default()).await;
    let (urls, mut opened) = tokio::sync::mpsc::unbounded_channel::<url::Url>();
    let flow = AuthCode::new()
        .loopback()
        .browser(oauth_layer::interact::BrowserFn(move |url: &url::Url| {
            urls.send(url.clone())
                .map_err(|_| std::io::Error::other("the browser is gone"))
        }))
        .prompt(ScriptedPrompt::default())
        .timeout(Duration::from_secs(60));
    let resources = ResourceClient::new(&server.mcp).unwrap().auth_code(flow);
    let http = resource_first_http(&resources);
    let pending = tokio::spawn({
        let (http, url) = (http.clone(), server.mcp.clone());
        async move { json_of(http.get(url).send().await.unwrap()).await }
    });

    let c = &chromium.webdriver;
    let url = tokio::time::timeout(Duration::from_secs(20), opened.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        url.as_str()
            .starts_with(&format!("{}/auth?", server.issuer))
    );
    let resource = url
        .query_pairs()
        .find(|(k, _)| k == "resource")
        .map(|(_, v)| v.into_owned());
    assert_eq!(resource.as_deref(), Some(server.mcp.as_str()), "RFC 8707");
    c.goto(url.as_str()).await.unwrap();
    let wait = Duration::from_secs(20);
    c.wait()
        .at_most(wait)
        .for_element(Locator::Css("input[name=login]"))
        .await
        .unwrap()
        .send_keys(LOGIN)
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys("any password")
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(wait)
        .for_element(Locator::Css("input[name=prompt][value=consent]"))
        .await
        .unwrap();
    c.find(Locator::Css("button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    let (status, body) = tokio::time::timeout(Duration::from_secs(30), pending)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["aud"], server.mcp.as_str(), "{body}");
    assert_eq!(body["sub"], LOGIN, "{body}");
    let at = c.current_url().await.unwrap();
    assert_eq!(at.host_str(), Some("127.0.0.1"));
    assert_eq!(at.path(), "/callback");
    let registrations = server.registrations().await;
    assert_eq!(registrations.len(), 1, "{registrations:?}");
    assert_native_registration(&registrations[0]);
    let sequence = server.sequence().await;
    assert_eq!(
        sequence.first().unwrap(),
        "mcp GET /mcp 401",
        "{sequence:?}"
    );
    assert_eq!(
        sequence.last().unwrap(),
        "mcp GET /mcp 200 Bearer",
        "{sequence:?}"
    );
    assert_eq!(
        sequence
            .iter()
            .filter(|l| l.starts_with("provider GET /auth "))
            .count(),
        1,
        "{sequence:?}"
    );

    // The next request goes straight.
    assert_eq!(http.get(&server.mcp).send().await.unwrap().status(), 200);
    assert_eq!(server.sequence().await.len(), sequence.len() + 1);
    chromium.webdriver.clone().close().await.unwrap();
}

/// A registration kept in a `FileStore` outlives the process that made it: a second
/// resource-first client over the same folder (a restart) registers nothing and signs nobody
/// in (the token is kept too), and a third asking for other scopes signs the person in again
/// as the same registered client.
#[cfg(feature = "file-store")]
#[tokio::test]
async fn a_registration_kept_in_the_file_store_is_not_made_again_after_a_restart() {
    use oauth_layer::store::FileStore;
    let server = Interop::start();
    let dir = std::env::temp_dir().join(format!(
        "oauth-layer-interop-registration-{}-{}",
        std::process::id(),
        server.mcp.rsplit(':').next().unwrap().replace("/mcp", "")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let opened = Arc::new(AtomicUsize::new(0));
    let client = |scope: Option<&str>| {
        let mut resources = ResourceClient::new(&server.mcp)
            .unwrap()
            .auth_code(sign_in(&opened))
            .store(FileStore::in_dir(&dir));
        if let Some(scope) = scope {
            resources = resources.scope(scope);
        }
        resources
    };
    let get = |resources: &ResourceClient| {
        let http = resource_first_http(resources);
        let url = server.mcp.clone();
        async move { json_of(http.get(url).send().await.unwrap()).await }
    };

    let (status, first) = get(&client(None)).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(server.registrations().await.len(), 1);
    assert_eq!(opened.load(Ordering::SeqCst), 1);

    // The restart: nothing registered, nobody signed in, no token requested.
    let before = server.sequence().await;
    let (status, again) = get(&client(None)).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["client_id"], first["client_id"]);
    assert_eq!(
        server.registrations().await.len(),
        1,
        "no second registration"
    );
    assert_eq!(opened.load(Ordering::SeqCst), 1, "no second sign-in");
    let after = server.sequence().await;
    assert_eq!(
        after[before.len()..],
        ["mcp GET /mcp 200 Bearer".to_owned()],
        "known metadata, a kept registration and a kept token: no probe, nothing at the provider"
    );

    // Other scopes: a new sign-in, as the same registered client.
    let (status, wider) = get(&client(Some("openid mcp:tools"))).await;
    assert_eq!(status, 200, "{wider}");
    assert_eq!(wider["client_id"], first["client_id"]);
    assert_eq!(
        opened.load(Ordering::SeqCst),
        2,
        "a sign-in for the new scopes"
    );
    assert_eq!(
        server.registrations().await.len(),
        1,
        "still one registration"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// DPoP through the resource-first client with nothing but a template (`client_settings`):
/// a machine registered beforehand gets a DPoP-bound JWT for each of the two resources
/// (nonces required at the provider and at both resources), sent in the DPoP scheme.
#[tokio::test]
async fn a_resource_first_machine_with_dpop_gets_a_bound_token_for_each_resource() {
    let server = Interop::start();
    let resources = ResourceClient::new(&server.mcp)
        .unwrap()
        .resource(&server.api)
        .unwrap()
        .client_id_and_secret("cc-resources", "cc-resources-secret")
        .machine()
        .client_settings(OAuthClient::builder("").dpop(Dpop::new()));
    let http = resource_first_http(&resources);
    for url in [&server.mcp, &server.api, &server.mcp, &server.api] {
        let (status, body) = json_of(http.get(url.as_str()).send().await.unwrap()).await;
        assert_eq!(status, 200, "{url}: {body}");
        assert_eq!(body["aud"], url.as_str(), "{body}");
        assert_eq!(body["scheme"], "DPoP", "{body}");
        assert!(body["jkt"].is_string(), "{body}");
    }
    for id in [&server.mcp, &server.api] {
        let token = resources
            .token_source(id)
            .await
            .unwrap()
            .token()
            .await
            .unwrap();
        assert!(is_dpop(&token));
        let (shown, _) = tokens_seen(&server, id).await;
        assert!(shown.iter().all(|(aud, _)| aud == id), "{shown:?}");
    }
    assert_eq!(
        token_dpop(&server, "client_credentials").await,
        (3, 1, 2),
        "one use_dpop_nonce at the provider, then the nonce is kept"
    );
}

/// DPoP for a person through the resource-first client: the client registered dynamically
/// signs in with `dpop_jkt`, and the token is bound.
#[tokio::test]
async fn a_resource_first_person_with_dpop_gets_a_bound_token() {
    let server = Interop::start();
    let opened = Arc::new(AtomicUsize::new(0));
    let resources = ResourceClient::new(&server.mcp)
        .unwrap()
        .auth_code(sign_in(&opened))
        .client_settings(OAuthClient::builder("").dpop(Dpop::new()));
    let http = resource_first_http(&resources);
    for _ in 0..2 {
        let (status, body) = json_of(http.get(&server.mcp).send().await.unwrap()).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["aud"], server.mcp.as_str(), "{body}");
        assert_eq!(body["scheme"], "DPoP", "{body}");
        assert!(body["jkt"].is_string(), "{body}");
    }
    assert_eq!(opened.load(Ordering::SeqCst), 1);
    assert_eq!(server.registrations().await.len(), 1);
    assert_eq!(server.stat("/authorize/dpop_jkt").await, 1);
    let (_, _, bound) = token_dpop(&server, "authorization_code").await;
    assert_eq!(bound, 1);
}

/// A machine that registers itself (RFC 7591) for the client credentials grant, with a secret,
/// and gets a token for each of two resources with that one registration.
/// The registration says `"response_types": []`: left out, RFC 7591 §2 reads it as `["code"]`,
/// and oidc-provider then asks for redirect URIs.
#[tokio::test]
async fn a_resource_first_machine_registers_itself_for_client_credentials() {
    let server = Interop::start();
    let resources = ResourceClient::new(&server.mcp)
        .unwrap()
        .resource(&server.api)
        .unwrap()
        .machine();
    let http = resource_first_http(&resources);
    for url in [&server.mcp, &server.api, &server.mcp] {
        let (status, body) = json_of(http.get(url.as_str()).send().await.unwrap()).await;
        assert_eq!(status, 200, "{url}: {body}");
        assert_eq!(body["aud"], url.as_str(), "{body}");
    }
    let registrations = server.registrations().await;
    assert_eq!(registrations.len(), 1, "{registrations:?}");
    assert_eq!(
        registrations[0]["grant_types"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(
        registrations[0]["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    assert_eq!(
        server
            .stat("/auth_methods/client_credentials client_secret_basic")
            .await,
        2
    );
}

/// The tower side (`OAuthLayer::for_resources` over hyper-util's client): a POST with a body
/// to the mcp resource is answered `401`, discovery runs, and the same POST, body and all, is
/// sent again with the mcp token; the api resource then gets its own.
#[tokio::test]
async fn the_tower_layer_for_resources_replays_a_post_body_after_discovery() {
    let server = Interop::start();
    let resources = ResourceClient::new(&server.mcp)
        .unwrap()
        .resource(&server.api)
        .unwrap()
        .client_id_and_secret("cc-resources", "cc-resources-secret")
        .machine();
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::for_resources(resources))
        .service(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>(),
        );
    let call = |method: &str, url: &str, body: &'static [u8]| {
        let req = http::Request::builder()
            .method(method)
            .uri(url)
            .body(Full::new(Bytes::from_static(body)))
            .unwrap();
        let svc = svc.clone();
        async move {
            let resp = svc.oneshot(req).await.unwrap();
            let status = resp.status().as_u16();
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            (
                status,
                serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            )
        }
    };
    let (status, body) = call("POST", &server.mcp, br#"{"tool":"x"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["method"], "POST");
    assert_eq!(body["body_bytes"], 12, "the body was sent again: {body}");
    assert_eq!(body["aud"], server.mcp.as_str());
    let (status, body) = call("GET", &server.api, b"").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["aud"], server.api.as_str());
    let mcp_meta = "/.well-known/oauth-protected-resource/mcp";
    let sequence = server.sequence().await;
    assert_eq!(
        sequence[..5],
        [
            "mcp POST /mcp 401".to_owned(),
            format!("mcp GET {mcp_meta} 200"),
            "provider GET /.well-known/openid-configuration 200".to_owned(),
            format!("provider POST /token 200 resource={}", server.mcp),
            "mcp POST /mcp 200 Bearer".to_owned(),
        ],
        "{sequence:?}"
    );
    let (api_seen, _) = tokens_seen(&server, &server.api).await;
    assert!(
        api_seen.iter().all(|(aud, _)| aud == &server.api),
        "{api_seen:?}"
    );
}

/// RFC 7591 and RFC 7592 as plain calls (`OAuthClient::register`, `read_registration`,
/// `update_registration`, `delete_registration`) against oidc-provider: the registered secret
/// gets a token for the mcp resource; an update renames the client and rotates the
/// registration access token, so the old one is refused (`Error::RegistrationGone`); after the
/// delete, the client configuration endpoint and the token endpoint both refuse the client.
#[tokio::test]
async fn register_read_update_and_delete_a_client_at_oidc_provider() {
    use oauth_layer::registration::ClientMetadata;
    let server = Interop::start();
    let app = oauth_layer::discovery::configure(OAuthClient::builder(""), &server.issuer)
        .await
        .unwrap();
    let metadata = ClientMetadata::new()
        .client_name("interop app")
        .redirect_uri("https://app.example/callback")
        .grant_type("authorization_code")
        .grant_type("client_credentials")
        .response_type("code")
        .token_endpoint_auth_method(AuthMethod::ClientSecretBasic);
    let registration = app.register(&metadata).await.unwrap();
    let secret = registration
        .client_secret()
        .expect("a confidential client gets a secret")
        .expose_secret()
        .to_owned();
    let access = registration
        .registration_access_token()
        .expect("RFC 7592 is on")
        .expose_secret()
        .to_owned();
    assert!(!format!("{registration:?}").contains(&secret));
    assert!(!format!("{registration:?}").contains(&access));
    let uri = registration.registration_client_uri().unwrap().as_str();
    assert_eq!(
        uri,
        format!("{}/reg/{}", server.issuer, registration.client_id())
    );
    assert_eq!(
        registration.token_endpoint_auth_method(),
        Some(AuthMethod::ClientSecretBasic)
    );

    // The registration is a working client: a token for the mcp resource (RFC 8707).
    let token_for_mcp = |registration: &oauth_layer::registration::Registration| {
        let client = registration
            .client_builder()
            .metadata(app.metadata().unwrap().clone())
            .resource(server.mcp.as_str())
            .build()
            .unwrap();
        async move {
            TokenSource::new(client, ClientCredentials::new().scope("mcp:tools"))
                .token()
                .await
        }
    };
    let token = token_for_mcp(&registration).await.unwrap();
    let (status, body) = json_of(
        reqwest::Client::new()
            .get(&server.mcp)
            .bearer_auth(bearer(&token))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["client_id"], registration.client_id());

    // Read, then update: the name changes, the secret stays, the access token rotates.
    let read = app.read_registration(&registration).await.unwrap();
    assert_eq!(read.client_id(), registration.client_id());
    assert_eq!(read.metadata()["client_name"], "interop app");
    let updated = app
        .update_registration(&read, &metadata.clone().client_name("interop app, renamed"))
        .await
        .unwrap();
    assert_eq!(updated.metadata()["client_name"], "interop app, renamed");
    assert_eq!(updated.client_secret().unwrap().expose_secret(), secret);
    assert_ne!(
        updated.registration_access_token().unwrap().expose_secret(),
        access,
        "oidc-provider rotates the registration access token on update"
    );
    let err = app.read_registration(&registration).await.unwrap_err();
    assert!(
        matches!(err, Error::RegistrationGone { status: 401 }),
        "{err:?}"
    );
    assert_eq!(
        app.read_registration(&updated).await.unwrap().metadata()["client_name"],
        "interop app, renamed"
    );
    token_for_mcp(&updated).await.unwrap();

    // Delete: gone at the configuration endpoint and at the token endpoint.
    app.delete_registration(&updated).await.unwrap();
    let err = app.read_registration(&updated).await.unwrap_err();
    assert!(matches!(err, Error::RegistrationGone { .. }), "{err:?}");
    let err = token_for_mcp(&updated).await.unwrap_err();
    assert!(err.to_string().contains("invalid_client"), "{err}");
    let stats = server.stats().await;
    assert_eq!(
        stats["registrations"],
        serde_json::json!({
            "created": 1, "updated": 1, "deleted": 1,
            "clients": stats["registrations"]["clients"].clone(),
        })
    );
}
