#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests (proptest) of the parsers that read outside data, through the public API:
//! whatever a token endpoint, an API or a store hands over, the crate classifies it without
//! panicking and without letting a secret out. The libFuzzer targets in `fuzz/` go deeper
//! (scripts/fuzz.sh); these run with the ordinary tests and stay fast (a few dozen cases each).

mod common;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use oauth_layer::clock::ManualClock;
use oauth_layer::flow::AuthCode;
use oauth_layer::flow::auth_code::Callback;
use oauth_layer::oidc::IdTokenValidator;
use oauth_layer::store::{CacheKey, Codec};
use oauth_layer::{MAX_LIFETIME, OAuthClient, OAuthLayer, RetryPolicy, Token, TokenRequest};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use secrecy::ExposeSecret;
use tower::{ServiceBuilder, ServiceExt};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Secrets as people choose them, with the characters that change under form and percent
/// encoding.
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 +/=&%._~!$'()*,;:@?#-]{8,24}".prop_filter("not blank", |s| !s.trim().is_empty())
}

/// Every form a server can echo a secret in: as sent, form-encoded, percent-encoded, JSON
/// escaped.
fn encodings(secret: &str) -> Vec<String> {
    let form: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let json = serde_json::to_string(secret).unwrap();
    vec![
        secret.to_owned(),
        form.replace('+', "%20"),
        form,
        json.trim_matches('"').to_owned(),
    ]
}

fn basic(client_id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(client_id), enc(secret)))
}

/// A body a hostile or careless token endpoint may send, with the secrets the client sent
/// planted in it in some encoding.
fn hostile_body(planted: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
    let n = planted.len();
    (
        prop::collection::vec(any::<u8>(), 0..40),
        0..n,
        prop::sample::select(vec![
            r#"{"error":"invalid_client","error_description":"#,
            r#"{"access_token":"#,
            "<html><body>",
            "password=",
            r#"{"error":"invalid_grant","error_uri":"https://x/?p="#,
            "",
        ]),
        prop::sample::select(vec![r#""}"#, "</body>", "&x=1", "", r#"","#]),
    )
        .prop_map(move |(noise, which, before, after)| {
            let mut body = before.as_bytes().to_vec();
            if before.ends_with(':') {
                body.push(b'"');
            }
            body.extend_from_slice(planted[which % n].as_bytes());
            body.extend_from_slice(after.as_bytes());
            body.extend_from_slice(&noise);
            body
        })
}

#[test]
fn any_token_endpoint_answer_is_classified_without_panic_or_leaked_secret() {
    let rt = runtime();
    let server = rt.block_on(MockServer::start());
    let strategy = (secret(), secret()).prop_flat_map(|(client_secret, password)| {
        let mut planted = encodings(&client_secret);
        planted.extend(encodings(&password));
        planted.push(basic("prop-client", &client_secret));
        (
            Just(client_secret),
            Just(password),
            Just(planted.clone()),
            hostile_body(planted),
            prop::sample::select(vec![200u16, 400, 401, 429, 500, 503]),
            prop::sample::select(vec![
                "application/json",
                "text/html",
                "application/x-www-form-urlencoded",
                "",
            ]),
            prop::option::of("[0-9]{1,25}"),
        )
    });
    runner(48)
        .run(
            &strategy,
            |(client_secret, password, planted, body, status, content_type, retry_after)| {
                let outcome = rt.block_on(async {
                    server.reset().await;
                    let mut answer = ResponseTemplate::new(status).set_body_raw(body, content_type);
                    if let Some(r) = &retry_after {
                        answer = answer.insert_header("retry-after", r.as_str());
                    }
                    Mock::given(method("POST"))
                        .and(path("/token"))
                        .respond_with(answer)
                        .mount(&server)
                        .await;
                    let client = OAuthClient::builder("prop-client")
                        .secret(client_secret.as_str())
                        .token_url(format!("{}/token", server.uri()))
                        .retry_policy(RetryPolicy::none())
                        .lenient_token_type(true)
                        .build()
                        .unwrap();
                    client
                        .request_token(
                            TokenRequest::new("password")
                                .param("username", "alice")
                                .secret_param("password", password.as_str()),
                        )
                        .await
                });
                match outcome {
                    Ok(token) => assert_token_is_sound(&token),
                    Err(e) => {
                        let shown = format!("{e} {e:?}");
                        for p in &planted {
                            prop_assert!(!shown.contains(p.as_str()), "{p:?} leaked: {shown}");
                        }
                    }
                }
                Ok(())
            },
        )
        .unwrap();
}

fn assert_token_is_sound(token: &Token) {
    let access = token.access_token().expose_secret();
    assert!(!access.is_empty() && access.bytes().all(|b| b.is_ascii_graphic()));
    assert!(token.lifetime() <= MAX_LIFETIME);
    assert!(token.token_type().eq_ignore_ascii_case("bearer"));
    let debug = format!("{token:?}");
    assert!(access.len() < 8 || !debug.contains(access), "{debug}");
}

#[test]
fn any_www_authenticate_value_through_the_layer_never_panics_and_renews_at_most_once() {
    let rt = runtime();
    let idp = rt.block_on(common::Idp::start(3600));
    let values = prop::collection::vec(
        prop::collection::vec(
            prop::sample::select(b" \t\",=\\BbEeAaRrinvalid_tokenrealmBasic\x80\xff".to_vec()),
            0..48,
        ),
        0..4,
    );
    runner(64)
        .run(&values, |values| {
            let calls = Arc::new(AtomicUsize::new(0));
            let api = {
                let calls = calls.clone();
                let values = values.clone();
                tower::service_fn(move |_req: Request<Full<Bytes>>| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let mut resp = Response::new(String::new());
                    *resp.status_mut() = StatusCode::UNAUTHORIZED;
                    for v in &values {
                        if let Ok(v) = HeaderValue::from_bytes(v) {
                            resp.headers_mut().append(WWW_AUTHENTICATE, v);
                        }
                    }
                    async move { Ok::<_, Infallible>(resp) }
                })
            };
            let svc = ServiceBuilder::new()
                .layer(OAuthLayer::client_credentials(idp.client()))
                .service(api);
            let resp = rt
                .block_on(
                    svc.oneshot(
                        Request::get("https://api.example/x")
                            .body(Full::new(Bytes::new()))
                            .unwrap(),
                    ),
                )
                .unwrap();
            prop_assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
            let n = calls.load(Ordering::SeqCst);
            prop_assert!((1..=2).contains(&n), "the API was called {} times", n);
            Ok(())
        })
        .unwrap();
}

fn token_strategy() -> impl Strategy<Value = (String, Option<String>, Option<String>, u64)> {
    (
        "[!-~]{1,64}",
        prop::option::of("[ -~]{0,64}"),
        prop::option::of("[ -~\u{e9}\u{1f600}]{0,32}"),
        prop::num::u64::ANY,
    )
}

#[test]
fn store_entries_round_trip_plain_and_sealed_and_sealed_ones_hide_the_tokens() {
    let clock = ManualClock::new();
    let client = OAuthClient::builder("prop-client")
        .token_url("https://idp.example/token")
        .build()
        .unwrap();
    let key = CacheKey::builder(&client, "client_credentials").build();
    runner(64)
        .run(&token_strategy(), |(access, refresh, scope, secs)| {
            let mut builder = Token::builder(access.clone()).expires_in(Duration::from_secs(secs));
            if let Some(r) = &refresh {
                builder = builder.refresh_token(r.clone());
            }
            if let Some(s) = &scope {
                builder = builder.scope(s.clone());
            }
            let token = builder.build(&clock).unwrap();
            for codec in [Codec::plain(), Codec::encrypted([3; 32])] {
                let bytes = codec.encode(&key, &token).unwrap();
                if codec.is_encrypted() {
                    let text = String::from_utf8_lossy(&bytes);
                    prop_assert!(access.len() < 8 || !text.contains(access.as_str()));
                }
                let back = codec.decode(&key, &bytes, &clock).unwrap();
                prop_assert_eq!(back.access_token().expose_secret(), access.as_str());
                prop_assert_eq!(
                    back.refresh_token().map(|r| r.expose_secret().to_owned()),
                    refresh.clone()
                );
                prop_assert_eq!(back.scope(), scope.as_deref());
                prop_assert_eq!(back.lifetime(), token.lifetime());
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn any_bytes_as_a_store_entry_are_refused_without_panic_or_quoting_them() {
    let clock = ManualClock::new();
    let client = OAuthClient::builder("prop-client")
        .token_url("https://idp.example/token")
        .build()
        .unwrap();
    let key = CacheKey::builder(&client, "client_credentials").build();
    let entry = prop::collection::vec(any::<u8>(), 0..200).prop_map(|noise| {
        let mut bytes =
            br#"{"format":"oauth-layer-token","version":1,"token":{"access_token":"SENTINEL"#
                .to_vec();
        bytes.extend(noise);
        bytes
    });
    runner(128)
        .run(&entry, |bytes| {
            for codec in [Codec::plain(), Codec::encrypted([3; 32])] {
                if let Err(e) = codec.decode(&key, &bytes, &clock) {
                    let shown = format!("{e} {e:?}");
                    prop_assert!(!shown.contains("SENTINEL"), "{}", shown);
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn any_callback_query_or_paste_is_checked_without_panic_and_needs_the_state() {
    let client = OAuthClient::builder("prop-client")
        .authorization_url("https://idp.example/authorize")
        .build()
        .unwrap();
    let flow = AuthCode::new();
    let text = prop::collection::vec(
        prop::sample::select(vec![
            "code=",
            "state=",
            "{state}",
            "error=",
            "iss=",
            "&",
            "?",
            "=",
            "%",
            "%2",
            "+",
            "x",
            "http://127.0.0.1/cb?",
            " ",
            "#",
            "\u{e9}",
            "%FF",
            "SENTINEL",
        ]),
        0..16,
    )
    .prop_map(|parts| parts.concat());
    runner(256)
        .run(&text, |text| {
            let request = flow
                .authorization_request(&client, "http://127.0.0.1:1410/cb")
                .unwrap();
            let text = text.replace("{state}", request.state());
            let query = Callback::from_query(&text);
            let first = request.check(&query);
            if first.is_ok() {
                let state = format!("state={}", request.state());
                prop_assert!(text.contains(&state), "accepted without the state");
            }
            prop_assert!(request.check(&query).is_err(), "a replay was accepted");
            if let Ok(pasted) = Callback::from_pasted(&text) {
                let fresh = flow
                    .authorization_request(&client, "http://127.0.0.1:1410/cb")
                    .unwrap();
                prop_assert!(fresh.check(&pasted).is_err(), "another sign-in's state");
            }
            Ok(())
        })
        .unwrap();
}

/// Regression (found by the `id_token` fuzz target): an `exp` or `iat` past what `SystemTime`
/// holds panicked validation. Such times saturate now: a huge `exp` is far in the future, a huge
/// `iat` is in the future.
#[test]
fn id_tokens_with_extreme_times_are_judged_without_panic() {
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::{Value, json};

    let rt = runtime();
    let secret = "prop-secret-for-hs256-id-tokens";
    let client = OAuthClient::builder("prop-client")
        .secret(secret)
        .build()
        .unwrap();
    let validator =
        IdTokenValidator::new(&client, "https://idp.example", "https://idp.example/jwks")
            .unwrap()
            .allow_client_secret_hs256(true);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sign = |exp: &Value, iat: &Value| {
        let claims = json!({
            "iss": "https://idp.example", "aud": "prop-client", "sub": "alice",
            "exp": exp, "iat": iat,
        });
        encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };

    let far = rt.block_on(validator.validate(&sign(&json!(u64::MAX), &json!(now)), None));
    assert!(far.is_ok(), "{far:?}");
    let future = rt.block_on(validator.validate(&sign(&json!(1e300), &json!(u64::MAX)), None));
    assert!(
        matches!(future, Err(oauth_layer::Error::InvalidIdToken(_))),
        "{future:?}"
    );

    let time = prop_oneof![
        Just(json!(u64::MAX)),
        Just(json!(f64::MAX)),
        Just(json!(1e19)),
        Just(json!(-1)),
        any::<u64>().prop_map(|t| json!(t)),
        (0..2 * now).prop_map(|t| json!(t)),
    ];
    runner(48)
        .run(&(time.clone(), time), |(exp, iat)| {
            let _ = rt.block_on(validator.validate(&sign(&exp, &iat), None));
            Ok(())
        })
        .unwrap();
}

/// Regression (found by the `token_response` fuzz target): the `Content-Type` of an unexpected
/// answer went into the error as sent, so a server echoing the password there had it printed.
#[tokio::test]
async fn a_content_type_that_echoes_the_password_is_redacted_in_the_error() {
    let server = MockServer::start().await;
    let password = "pw-echoed-in-a-header&1";
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(502).set_body_raw(
            "<html>bad gateway</html>",
            &format!("text/html; {password}"),
        ))
        .mount(&server)
        .await;
    let client = OAuthClient::builder("prop-client")
        .secret("client-secret-1")
        .token_url(format!("{}/token", server.uri()))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let err = client
        .request_token(
            TokenRequest::new("password")
                .param("username", "alice")
                .secret_param("password", password),
        )
        .await
        .unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(shown.contains("text/html"), "{shown}");
    for form in encodings(password) {
        assert!(!shown.contains(&form), "{shown}");
    }
}
