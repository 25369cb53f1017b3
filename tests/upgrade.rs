//! Scope upgrade, step-up and claims, the token side: `TokenSource::upgraded` gets a token that
//! satisfies more (cached under its own key) while the original keeps serving its own, and a
//! source that cannot answers with `Error::StepUpRequired` / `Action::StepUp`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use oauth_layer::flow::{ClientCredentials, Password, RefreshToken, Requirements};
use oauth_layer::testing::TestServer;
use oauth_layer::{Action, AuthMethod, Error, RetryPolicy, TokenSource};
use secrecy::ExposeSecret;
use serde_json::json;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

async fn server() -> TestServer {
    TestServer::builder()
        .client("app", Some("app-secret"), AuthMethod::ClientSecretBasic)
        .user("alice", "alice-password")
        .require_scope("/api/files", "files:write")
        .start()
        .await
        .unwrap()
}

/// What the protected resource answers to `token`.
async fn status_with(server: &TestServer, path: &str, token: &oauth_layer::Token) -> u16 {
    reqwest::Client::new()
        .get(server.resource_url(path))
        .bearer_auth(token.access_token().expose_secret())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_wider_client_credentials_token_is_cached_apart_and_the_original_keeps_serving() {
    let server = server().await;
    let tokens = TokenSource::new(
        server.oauth_client("app").unwrap(),
        ClientCredentials::new().scope("files:read"),
    );
    let narrow = tokens.token().await.unwrap();
    assert_eq!(narrow.scope(), Some("files:read"));
    assert_eq!(status_with(&server, "/api/files", &narrow).await, 403);

    let need = Requirements::new().scope("files:write");
    let writer = tokens.upgraded(&need).unwrap();
    assert_ne!(writer.cache_key(), tokens.cache_key());
    assert_eq!(
        writer.cache_key().get("scope"),
        Some("files:read files:write")
    );
    let wide = writer.token().await.unwrap();
    assert_eq!(
        wide.scope(),
        Some("files:read files:write"),
        "the union was asked for"
    );
    assert_eq!(status_with(&server, "/api/files", &wide).await, 200);
    assert_eq!(server.token_requests_for("client_credentials"), 2);

    // The original still serves its own, narrower token, without a request.
    let again = tokens.token().await.unwrap();
    assert!(again.same_as(&narrow));

    // The same need, however spelled, reuses the derived source and its cached token.
    let same = Requirements::new().scope("files:write files:read");
    let reused = tokens.upgraded(&same).unwrap().token().await.unwrap();
    assert!(reused.same_as(&wide));
    assert_eq!(server.token_requests_for("client_credentials"), 2);
}

#[tokio::test]
async fn a_derived_source_asked_for_more_upgrades_from_the_original() {
    let server = server().await;
    let tokens = TokenSource::new(
        server.oauth_client("app").unwrap(),
        ClientCredentials::new().scope("base"),
    );
    let first = tokens.upgraded(&Requirements::new().scope("a")).unwrap();
    let second = first.upgraded(&Requirements::new().scope("b")).unwrap();
    assert_eq!(second.cache_key().get("scope"), Some("a b base"));
    let direct = tokens.upgraded(&Requirements::new().scope("a b")).unwrap();
    assert_eq!(direct.cache_key(), second.cache_key());
    let token = second.token().await.unwrap();
    assert!(
        direct.token().await.unwrap().same_as(&token),
        "one source, one token"
    );
    assert_eq!(server.token_requests(), 1);
}

#[tokio::test]
async fn a_source_keeps_a_bounded_number_of_upgrades() {
    let server = server().await;
    let tokens = TokenSource::new(
        server.oauth_client("app").unwrap(),
        ClientCredentials::new(),
    );
    let first = Requirements::new().scope("s0");
    tokens.upgraded(&first).unwrap().token().await.unwrap();
    for i in 1..TokenSource::MAX_UPGRADES {
        let need = Requirements::new().scope(format!("s{i}"));
        tokens.upgraded(&need).unwrap().token().await.unwrap();
    }
    // Asking for the first again keeps it the most recent, so the next new need drops s1.
    tokens.upgraded(&first).unwrap().token().await.unwrap();
    assert_eq!(server.token_requests(), TokenSource::MAX_UPGRADES);
    let extra = Requirements::new().scope("one-more");
    tokens.upgraded(&extra).unwrap().token().await.unwrap();
    tokens.upgraded(&first).unwrap().token().await.unwrap();
    assert_eq!(server.token_requests(), TokenSource::MAX_UPGRADES + 1);
    let dropped = Requirements::new().scope("s1");
    tokens.upgraded(&dropped).unwrap().token().await.unwrap();
    assert_eq!(
        server.token_requests(),
        TokenSource::MAX_UPGRADES + 2,
        "the least recently asked upgrade was dropped"
    );
}

#[tokio::test]
async fn a_password_source_asks_for_the_union_of_scopes() {
    let server = server().await;
    let tokens = TokenSource::new(
        server.oauth_client("app").unwrap(),
        Password::new("alice", "alice-password").scope("profile"),
    );
    let wide = tokens
        .upgraded(&Requirements::new().scope("files:write"))
        .unwrap()
        .token()
        .await
        .unwrap();
    assert_eq!(wide.scope(), Some("profile files:write"));
    assert_eq!(status_with(&server, "/api/files", &wide).await, 200);
}

#[tokio::test]
async fn what_a_source_cannot_get_is_a_typed_step_up_error() {
    let server = server().await;
    let client = server.oauth_client("app").unwrap();

    // A refresh token cannot widen its grant (RFC 6749 §6).
    let refresh_only = TokenSource::new(client.clone(), RefreshToken::new("rt-never-printed"));
    let need = Requirements::new().scope("files:write");
    let err = refresh_only.upgraded(&need).unwrap_err();
    assert!(
        matches!(&err, Error::StepUpRequired(n) if *n == need),
        "{err:?}"
    );
    assert_eq!(err.action(), Action::StepUp(need.clone()));

    // A machine grant cannot give a fresher or stronger sign-in.
    let machine = TokenSource::new(client.clone(), ClientCredentials::new());
    let sign_in = Requirements::new().acr_values("urn:example:mfa").max_age(0);
    let err = machine.upgraded(&sign_in).unwrap_err();
    assert_eq!(err.action(), Action::StepUp(sign_in));
    let text = err.to_string();
    assert!(text.starts_with("the resource needs a sign-in at the assurance level \"urn:example:mfa\" and a sign-in made just now"), "{text}");
    assert!(text.contains("Sign in again"), "{text}");
    assert!(
        text.ends_with("(step-up: acr_values=\"urn:example:mfa\", max_age=0)"),
        "{text}"
    );

    // Asking for what the source asks for already would bring the same token: refused.
    let scoped = TokenSource::new(client.clone(), ClientCredentials::new().scope("a b"));
    let err = scoped
        .upgraded(&Requirements::new().scope("b"))
        .unwrap_err();
    assert!(err.to_string().contains("scopes \"b\""), "{err}");
    assert!(
        scoped.upgraded(&Requirements::new()).is_err(),
        "nothing named"
    );

    // Hostile demands never reach the token endpoint.
    let many = (0..65).fold(Requirements::new(), |n, i| n.scope(format!("s{i}")));
    assert!(scoped.upgraded(&many).is_err());
    assert!(
        scoped
            .upgraded(&Requirements::new().scope("bad\"scope"))
            .is_err()
    );
    let huge = Requirements::new().claims("x".repeat(64 * 1024));
    let err = scoped.upgraded(&huge).unwrap_err();
    assert!(err.to_string().len() < 400, "the message stays short");
    assert!(format!("{err:?}").len() < 1_000, "and so does its Debug");
    assert_eq!(server.token_requests(), 0);

    // Neither the error nor the sources print a credential.
    let shown = format!("{err} {err:?} {refresh_only:?} {machine:?}");
    for secret in ["rt-never-printed", "app-secret"] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

#[tokio::test]
async fn tokens_never_print_through_upgraded_sources() {
    let server = server().await;
    let tokens = TokenSource::new(
        server.oauth_client("app").unwrap(),
        ClientCredentials::new(),
    );
    let writer = tokens
        .upgraded(&Requirements::new().scope("files:write"))
        .unwrap();
    let token = writer.token().await.unwrap();
    let shown = format!("{writer:?} {tokens:?}");
    assert!(
        !shown.contains(token.access_token().expose_secret()),
        "{shown}"
    );
}

/// A token endpoint that answers `plain` to requests without claims and `with_claims` (in turn)
/// to requests carrying `claims=`.
async fn claims_idp() -> MockServer {
    let idp = MockServer::start().await;
    let answer = |token: &str| {
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": token, "token_type": "Bearer", "expires_in": 3600,
        }))
    };
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("claims=%7B%22access_token%22"))
        .respond_with(answer("at-with-claims"))
        .with_priority(1)
        .mount(&idp)
        .await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(answer("at-plain"))
        .with_priority(2)
        .mount(&idp)
        .await;
    idp
}

#[tokio::test]
async fn a_claims_request_bypasses_the_cache_once_and_the_original_adopts_its_token() {
    let idp = claims_idp().await;
    let client = oauth_layer::OAuthClient::builder("app")
        .secret("app-secret")
        .token_url(format!("{}/token", idp.uri()))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let tokens = TokenSource::new(client, ClientCredentials::new().scope("api"));
    let old = tokens.token().await.unwrap();
    assert_eq!(old.access_token().expose_secret(), "at-plain");

    let claims = r#"{"access_token":{"nbf":{"essential":true,"value":"1700000000"}}}"#;
    let need = Requirements::new().claims(claims);
    let fresh = tokens.upgraded(&need).unwrap().token().await.unwrap();
    assert_eq!(fresh.access_token().expose_secret(), "at-with-claims");
    let requests = idp.received_requests().await.unwrap();
    assert_eq!(
        requests.len(),
        2,
        "one token request with the claims, despite the cache"
    );
    let form = String::from_utf8_lossy(&requests[1].body).into_owned();
    assert!(form.contains("scope=api"), "{form}");

    // Later requests that need nothing more get the new token at once.
    assert!(tokens.token().await.unwrap().same_as(&fresh));
    // The same challenge again for another request in flight: the same token, no request.
    let again = tokens.upgraded(&need).unwrap().token().await.unwrap();
    assert!(again.same_as(&fresh));
    assert_eq!(idp.received_requests().await.unwrap().len(), 2);

    // The same challenge against the token the claims request brought: one new request.
    let renewed = tokens
        .upgraded_after(&need, &fresh)
        .await
        .unwrap()
        .token()
        .await
        .unwrap();
    assert!(!renewed.same_as(&fresh));
    assert_eq!(idp.received_requests().await.unwrap().len(), 3);
    assert!(tokens.token().await.unwrap().same_as(&renewed));
}

#[tokio::test]
async fn a_wider_claims_token_is_not_adopted_by_the_narrower_source() {
    let idp = claims_idp().await;
    let client = oauth_layer::OAuthClient::builder("app")
        .secret("app-secret")
        .token_url(format!("{}/token", idp.uri()))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let tokens = TokenSource::new(client, ClientCredentials::new().scope("api"));
    let narrow = tokens.token().await.unwrap();
    let need = Requirements::new()
        .scope("admin")
        .claims(r#"{"access_token":{}}"#);
    let wide = tokens.upgraded(&need).unwrap().token().await.unwrap();
    assert!(!wide.same_as(&narrow));
    assert!(
        tokens.token().await.unwrap().same_as(&narrow),
        "least privilege kept"
    );

    // The source upgraded for the same scopes without the claims adopts it instead.
    let admin = tokens
        .upgraded(&Requirements::new().scope("admin"))
        .unwrap();
    let plain_admin = admin.token().await.unwrap();
    assert_eq!(plain_admin.access_token().expose_secret(), "at-plain");
    let newer = Requirements::new()
        .scope("admin")
        .claims(r#"{"access_token":{"nbf":{"value":"2"}}}"#);
    let claimed = tokens.upgraded(&newer).unwrap().token().await.unwrap();
    assert!(admin.token().await.unwrap().same_as(&claimed));
    assert!(tokens.token().await.unwrap().same_as(&narrow));
}

#[cfg(feature = "auth-code")]
mod auth_code {
    use super::*;
    use oauth_layer::flow::AuthCode;
    use oauth_layer::interact::{BrowserFn, ScriptedPrompt};
    use url::Url;

    /// A "browser" that records each authorization URL and follows it, as a person's browser
    /// would after an automatic sign-in.
    fn recording_browser(
        seen: Arc<Mutex<Vec<Url>>>,
    ) -> BrowserFn<impl Fn(&Url) -> std::io::Result<()> + Send + Sync> {
        BrowserFn(move |url: &Url| {
            seen.lock().unwrap().push(url.clone());
            let url = url.clone();
            tokio::spawn(async move {
                let resp = reqwest::get(url)
                    .await
                    .expect("the browser reaches the server");
                assert_eq!(resp.status(), 200, "the loopback page says signed in");
            });
            Ok(())
        })
    }

    fn query(url: &Url, name: &str) -> Option<String> {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    #[tokio::test]
    async fn a_step_up_signs_in_again_with_acr_max_age_and_claims_and_keeps_the_original() {
        let server = TestServer::builder()
            .client("desktop-app", None, AuthMethod::None)
            .require_scope("/api/files", "files:write")
            .start()
            .await
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let flow = AuthCode::new()
            .scope("files:read")
            .auth_param("prompt", "none")
            .browser(recording_browser(seen.clone()))
            .prompt(ScriptedPrompt::default())
            .timeout(Duration::from_secs(20));
        let tokens = TokenSource::new(server.oauth_client("desktop-app").unwrap(), flow);
        let narrow = tokens.token().await.unwrap();
        assert_eq!(server.authorization_requests(), 1);

        let claims = r#"{"id_token":{"amr":{"essential":true}}}"#;
        let need = Requirements::new()
            .scope("files:write")
            .acr_values("urn:example:mfa")
            .max_age(0)
            .claims(claims);
        let stepped_up = tokens.upgraded(&need).unwrap();
        assert_ne!(stepped_up.cache_key(), tokens.cache_key());
        let err = stepped_up.token_silently().await.unwrap_err();
        assert!(matches!(err, Error::InteractionRequired), "{err:?}");
        assert_eq!(
            server.authorization_requests(),
            1,
            "no sign-in without a person"
        );

        let wide = stepped_up.token().await.unwrap();
        assert_eq!(server.authorization_requests(), 2, "one more sign-in");
        assert_eq!(status_with(&server, "/api/files", &wide).await, 200);

        let urls = seen.lock().unwrap().clone();
        let url = urls.last().unwrap();
        assert_eq!(
            query(url, "scope").as_deref(),
            Some("files:read files:write")
        );
        assert_eq!(query(url, "acr_values").as_deref(), Some("urn:example:mfa"));
        assert_eq!(query(url, "max_age").as_deref(), Some("0"));
        assert_eq!(query(url, "claims").as_deref(), Some(claims));
        assert_eq!(
            query(url, "prompt"),
            None,
            "prompt=none would forbid the sign-in"
        );
        assert_eq!(
            query(&urls[0], "acr_values"),
            None,
            "the first sign-in was plain"
        );

        // The original keeps its token; the step-up is cached under its own key.
        assert!(tokens.token().await.unwrap().same_as(&narrow));
        assert!(
            tokens
                .upgraded(&need)
                .unwrap()
                .token()
                .await
                .unwrap()
                .same_as(&wide)
        );
        assert_eq!(server.authorization_requests(), 2);

        // The step-up token refused again for its age: one more sign-in, not the cached token.
        let fresher = tokens
            .upgraded_after(&need, &wide)
            .await
            .unwrap()
            .token()
            .await
            .unwrap();
        assert!(!fresher.same_as(&wide));
        assert_eq!(server.authorization_requests(), 3);
    }
}

/// Every grant of the crate: what it does with a wider need, with a sign-in need, and that each
/// upgrade is cached under a key of its own (SECURITY.md rule 34).
#[test]
fn every_grant_upgrades_under_its_own_key_or_declines() {
    use oauth_layer::flow::{DeviceCode, Flow, SubjectToken, TokenExchange};
    let client = oauth_layer::OAuthClient::builder("app")
        .secret("app-secret")
        .token_url("https://idp.example/token")
        .authorization_url("https://idp.example/authorize")
        .build()
        .unwrap();
    #[cfg_attr(not(feature = "jwt"), allow(unused_mut))]
    let mut machines: Vec<(&str, Box<dyn Flow>)> = vec![
        (
            "client_credentials",
            Box::new(ClientCredentials::new().scope("a")),
        ),
        (
            "password",
            Box::new(Password::new("alice", "pw").scope("a")),
        ),
        ("device", Box::new(DeviceCode::new().scope("a"))),
        (
            "token_exchange",
            Box::new(TokenExchange::new(SubjectToken::fixed("subject", "urn:x")).scope("a")),
        ),
    ];
    #[cfg(feature = "jwt")]
    machines.push((
        "jwt_bearer",
        Box::new(
            oauth_layer::flow::JwtBearer::new(
                oauth_layer::jwt::SigningKey::hs256("a-shared-secret-of-32-bytes-long!").unwrap(),
                "issuer",
            )
            .scope("a"),
        ),
    ));
    let wider = Requirements::new().scope("b");
    let claims = Requirements::new().claims(r#"{"access_token":{}}"#);
    for (name, flow) in &machines {
        let original = flow.cache_key(&client);
        let upgraded = flow.upgraded(&wider).unwrap().cache_key(&client);
        assert_eq!(upgraded.get("scope"), Some("a b"), "{name}");
        let with_claims = flow.upgraded(&claims).unwrap().cache_key(&client);
        assert_ne!(with_claims, original, "{name}: claims change the key");
        assert_ne!(with_claims, upgraded, "{name}");
        assert!(
            flow.upgraded(&Requirements::new().acr_values("mfa"))
                .is_none(),
            "{name}"
        );
        assert!(
            flow.upgraded(&Requirements::new().max_age(0)).is_none(),
            "{name}"
        );
    }
    assert!(RefreshToken::new("rt").upgraded(&wider).is_none());
    assert!(RefreshToken::new("rt").upgraded(&claims).is_none());

    #[cfg(feature = "auth-code")]
    {
        let flow = oauth_layer::flow::AuthCode::new().scope("a");
        let original = flow.cache_key(&client);
        let keys: Vec<_> = [
            Requirements::new().scope("b"),
            Requirements::new().acr_values("mfa"),
            Requirements::new().max_age(0),
            Requirements::new().max_age(300),
            claims.clone(),
        ]
        .iter()
        .map(|need| flow.upgraded(need).unwrap().cache_key(&client))
        .collect();
        for (i, key) in keys.iter().enumerate() {
            assert_ne!(*key, original, "need {i}");
            for other in &keys[i + 1..] {
                assert_ne!(key, other, "need {i}");
            }
        }
    }
}

#[tokio::test]
async fn a_scope_refused_again_costs_no_token_request() {
    let server = server().await;
    let tokens = TokenSource::new(
        server.oauth_client("app").unwrap(),
        ClientCredentials::new(),
    );
    let need = Requirements::new().scope("files:write");
    let wide = tokens.upgraded(&need).unwrap().token().await.unwrap();
    // The resource refuses the upgraded token with the same demand: same source, same token.
    let again = tokens
        .upgraded_after(&need, &wide)
        .await
        .unwrap()
        .token()
        .await
        .unwrap();
    assert!(again.same_as(&wide));
    assert_eq!(server.token_requests(), 1);

    fn send<T: Send>(_: &T) {}
    send(&tokens.upgraded_after(&need, &wide));
}
