#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The tower layer through its public API: attach, reuse, renew ahead, retry after a 401, origin
//! rules. The token endpoint is wiremock; the wrapped service is in memory so every request it
//! sees can be checked.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{ApiState, Idp};
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use oauth_layer::clock::{Clock, ManualClock};
use oauth_layer::flow::ClientCredentials;
use oauth_layer::{Action, Error, OAuthLayer, RequestAuth, TokenSource};
use tower::{Service, ServiceBuilder, ServiceExt};

/// An in-memory API that answers per `ApiState`.
fn api<B>(
    state: ApiState,
) -> impl Service<Request<B>, Response = Response<String>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Debug,
{
    tower::service_fn(move |req: Request<B>| {
        let state = state.clone();
        async move {
            let auth = req
                .headers()
                .get(AUTHORIZATION)
                .map(|v| v.to_str().unwrap().to_owned());
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let (status, challenge) = state.answer(auth.as_deref(), &body);
            let mut resp = Response::new(String::from("ok"));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap();
            if let Some(c) = challenge {
                resp.headers_mut()
                    .insert(WWW_AUTHENTICATE, c.parse().unwrap());
            }
            Ok::<_, Infallible>(resp)
        }
    })
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

fn bearer(seen: &common::Seen) -> &str {
    seen.authorization.as_deref().unwrap_or("")
}

#[tokio::test]
async fn a_token_is_reused_across_ten_thousand_requests() {
    let idp = Idp::start(3600).await;
    let state = ApiState::default();
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(idp.client()).scope("api:read"))
        .service(api(state.clone()));

    for _ in 0..10_000 {
        let resp = svc
            .clone()
            .oneshot(get("https://api.example/things"))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
    }
    assert_eq!(idp.issued(), 1);
    let seen = state.seen();
    assert_eq!(seen.len(), 10_000);
    assert!(seen.iter().all(|s| bearer(s) == "Bearer tok-1"));
}

#[tokio::test]
async fn tokens_are_renewed_ahead_of_expiry_and_never_sent_expired() {
    use std::collections::HashMap;
    use wiremock::matchers::method;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    // A token endpoint that notes, on the test's clock, when each token it issues expires.
    let clock = ManualClock::new();
    let expiry: Arc<Mutex<HashMap<String, std::time::Instant>>> = Arc::default();
    let server = MockServer::start().await;
    {
        let clock = clock.clone();
        let expiry = expiry.clone();
        Mock::given(method("POST"))
            .respond_with(move |_: &wiremock::Request| {
                let mut expiry = expiry.lock().unwrap();
                let token = format!("tok-{}", expiry.len() + 1);
                expiry.insert(
                    format!("Bearer {token}"),
                    clock.now() + Duration::from_secs(1000),
                );
                ResponseTemplate::new(200).set_body_json(serde_json::json!({
                    "access_token": token, "token_type": "Bearer", "expires_in": 1000,
                }))
            })
            .mount(&server)
            .await;
    }
    let client = oauth_layer::OAuthClient::builder("c")
        .secret("s")
        .token_url(format!("{}/token", server.uri()))
        .clock(clock.clone())
        .build()
        .unwrap();

    // The API rejects nothing but counts every request that carried an expired token.
    let expired_sent = Arc::new(Mutex::new(0usize));
    let inner = {
        let clock = clock.clone();
        let expiry = expiry.clone();
        let expired_sent = expired_sent.clone();
        tower::service_fn(move |req: Request<Full<Bytes>>| {
            let sent = req.headers()[AUTHORIZATION].to_str().unwrap().to_owned();
            if clock.now() >= expiry.lock().unwrap()[&sent] {
                *expired_sent.lock().unwrap() += 1;
            }
            std::future::ready(Ok::<_, Infallible>(Response::new(String::new())))
        })
    };
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(client))
        .service(inner);

    // 2,500 s of traffic, a request every 5 s, with 1,000 s tokens.
    for _ in 0..500 {
        let resp = svc
            .clone()
            .oneshot(get("https://api.example/"))
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        clock.advance(Duration::from_secs(5));
        // Let a background renewal, if one started, reach the token endpoint.
        tokio::task::yield_now().await;
    }
    assert_eq!(
        *expired_sent.lock().unwrap(),
        0,
        "no request carried an expired token"
    );
    let issued = expiry.lock().unwrap().len();
    assert!(
        (3..=4).contains(&issued),
        "{issued} tokens for 2,500 s of 1,000 s tokens"
    );
}

#[tokio::test]
async fn a_401_renews_and_retries_once_with_the_same_body() {
    let idp = Idp::start(3600).await;
    let state = ApiState::default();
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(idp.client()))
        .service(api(state.clone()));

    let first = svc
        .clone()
        .oneshot(get("https://api.example/"))
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    state.revoke("tok-1");

    let req = Request::post("https://api.example/items")
        .body(Full::new(Bytes::from_static(b"{\"name\":\"widget\"}")))
        .unwrap();
    let resp = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(idp.issued(), 2);

    let seen = state.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(bearer(&seen[1]), "Bearer tok-1");
    assert_eq!(bearer(&seen[2]), "Bearer tok-2");
    assert_eq!(seen[1].body, b"{\"name\":\"widget\"}");
    assert_eq!(seen[2].body, seen[1].body);
}

#[tokio::test]
async fn a_second_401_goes_back_to_the_caller() {
    let idp = Idp::start(3600).await;
    let calls = Arc::new(Mutex::new(0));
    let inner = {
        let calls = calls.clone();
        tower::service_fn(move |_req: Request<Full<Bytes>>| {
            *calls.lock().unwrap() += 1;
            let mut resp = Response::new(String::new());
            *resp.status_mut() = StatusCode::UNAUTHORIZED;
            resp.headers_mut().insert(
                WWW_AUTHENTICATE,
                "Bearer error=\"invalid_token\"".parse().unwrap(),
            );
            std::future::ready(Ok::<_, Infallible>(resp))
        })
    };
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(idp.client()))
        .service(inner);

    let resp = svc.oneshot(get("https://api.example/")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(*calls.lock().unwrap(), 2, "one try and exactly one retry");
    assert_eq!(idp.issued(), 2);
}

#[tokio::test]
/// `insufficient_scope` is no reason to renew the token: one wider token is asked for (a
/// source derived from the layer's), the request goes once more, and a second 403 is returned.
async fn insufficient_scope_gets_one_upgrade_and_no_renewal() {
    let idp = Idp::start(3600).await;
    let calls = Arc::new(Mutex::new(0));
    let inner = {
        let calls = calls.clone();
        tower::service_fn(move |_req: Request<Full<Bytes>>| {
            *calls.lock().unwrap() += 1;
            let mut resp = Response::new(String::new());
            *resp.status_mut() = StatusCode::FORBIDDEN;
            resp.headers_mut().insert(
                WWW_AUTHENTICATE,
                "Bearer error=\"insufficient_scope\", scope=\"admin\""
                    .parse()
                    .unwrap(),
            );
            std::future::ready(Ok::<_, Infallible>(resp))
        })
    };
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(idp.client()))
        .service(inner);

    let resp = svc
        .clone()
        .oneshot(get("https://api.example/"))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        *calls.lock().unwrap(),
        2,
        "sent once more with the wider token, no more"
    );
    assert_eq!(idp.issued(), 2, "the token and the wider one");
    // The narrow token was not dropped, and the wider one is cached: no token request.
    let resp = svc.oneshot(get("https://api.example/")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(*calls.lock().unwrap(), 4);
    assert_eq!(idp.issued(), 2);
}

#[tokio::test]
async fn a_streaming_body_gets_its_401_back_and_is_not_resent() {
    type Streaming = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;
    let idp = Idp::start(3600).await;
    let state = ApiState::default();
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(idp.client()))
        .service(api::<Streaming>(state.clone()));
    let streaming = || Full::new(Bytes::from_static(b"chunk")).boxed_unsync();

    let ok = svc
        .clone()
        .oneshot(
            Request::post("https://api.example/")
                .body(streaming())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    state.revoke("tok-1");

    let rejected = svc
        .clone()
        .oneshot(
            Request::post("https://api.example/")
                .body(streaming())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(rejected.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        state.seen().len(),
        2,
        "the streaming request was not resent"
    );

    // The 401 still dropped the token: the next request carries a new one.
    let next = svc
        .clone()
        .oneshot(
            Request::post("https://api.example/")
                .body(streaming())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(next.status(), StatusCode::OK);
    assert_eq!(bearer(&state.seen()[2]), "Bearer tok-2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_401s_cause_one_renewal() {
    let idp = Idp::start(3600).await;
    let state = ApiState::default();
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(idp.client()))
        .service(api(state.clone()));
    svc.clone()
        .oneshot(get("https://api.example/"))
        .await
        .unwrap();
    state.revoke("tok-1");

    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let svc = svc.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                svc.oneshot(get("https://api.example/"))
                    .await
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(idp.issued(), 2, "one renewal for twenty 401s");
}

#[tokio::test]
async fn tokens_go_only_to_allowed_origins() {
    let idp = Idp::start(3600).await;
    let state = ApiState::default();
    let layer = OAuthLayer::client_credentials(idp.client())
        .allow_origins(["https://api.example", "http://127.0.0.1:8080"])
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(api(state.clone()));

    for uri in [
        "https://api.example.evil/",
        "https://evil.example/?u=https://api.example/",
        "https://api.example:8443/",
        "http://api.example/",
        "http://127.0.0.1:9090/",
    ] {
        svc.clone().oneshot(get(uri)).await.unwrap();
    }
    assert!(state.seen().iter().all(|s| s.authorization.is_none()));
    assert_eq!(idp.issued(), 0, "no token is even fetched for them");

    for uri in [
        "https://api.example/x",
        "https://API.example:443/y",
        "http://127.0.0.1:8080/z",
    ] {
        svc.clone().oneshot(get(uri)).await.unwrap();
    }
    let seen = state.seen();
    assert!(seen[5..].iter().all(|s| bearer(s) == "Bearer tok-1"));
}

#[tokio::test]
async fn plain_http_gets_a_token_only_on_loopback() {
    let idp = Idp::start(3600).await;
    let state = ApiState::default();
    assert!(
        OAuthLayer::client_credentials(idp.client())
            .allow_origins(["http://api.example"])
            .is_err(),
        "a plain http origin cannot even be allowed"
    );
    let svc = ServiceBuilder::new()
        .layer(
            OAuthLayer::client_credentials(idp.client())
                .allow_origins([
                    "http://127.0.0.1:1234",
                    "http://[::1]:1234",
                    "http://localhost:1234",
                ])
                .unwrap(),
        )
        .service(api(state.clone()));
    for uri in [
        "http://api.example/",
        "http://10.0.0.1/",
        "http://127.0.0.1:1234/",
        "http://[::1]:1234/",
        "http://localhost:1234/",
    ] {
        svc.clone().oneshot(get(uri)).await.unwrap();
    }
    let auth: Vec<bool> = state
        .seen()
        .iter()
        .map(|s| s.authorization.is_some())
        .collect();
    assert_eq!(auth, [false, false, true, true, true]);
}

#[tokio::test]
async fn a_callers_own_authorization_is_left_alone_and_per_request_choices_apply() {
    let idp = Idp::start(3600).await;
    let other = Idp::start(3600).await;
    let state = ApiState::default();
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(idp.client()))
        .service(api(state.clone()));

    let mut own = get("https://api.example/");
    own.headers_mut()
        .insert(AUTHORIZATION, "Basic dXNlcjpwdw==".parse().unwrap());
    svc.clone().oneshot(own).await.unwrap();

    let mut skip = get("https://api.example/");
    skip.extensions_mut().insert(RequestAuth::Skip);
    svc.clone().oneshot(skip).await.unwrap();

    let other_source = TokenSource::new(other.client(), ClientCredentials::new().scope("admin"));
    let mut with_other = get("https://api.example/");
    with_other
        .extensions_mut()
        .insert(RequestAuth::Source(other_source));
    svc.clone().oneshot(with_other).await.unwrap();

    let seen = state.seen();
    assert_eq!(seen[0].authorization.as_deref(), Some("Basic dXNlcjpwdw=="));
    assert_eq!(seen[1].authorization, None);
    assert_eq!(bearer(&seen[2]), "Bearer tok-1");
    assert_eq!((idp.issued(), other.issued()), (0, 1));
}

#[tokio::test]
async fn exactly_one_sensitive_authorization_header_is_sent() {
    let idp = Idp::start(3600).await;
    let inner = tower::service_fn(|req: Request<Full<Bytes>>| {
        let values: Vec<_> = req.headers().get_all(AUTHORIZATION).iter().collect();
        assert_eq!(values.len(), 1);
        assert!(values[0].is_sensitive());
        std::future::ready(Ok::<_, Infallible>(Response::new(String::new())))
    });
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(idp.client()))
        .service(inner);
    svc.oneshot(get("https://api.example/")).await.unwrap();
}

#[tokio::test]
async fn a_token_endpoint_failure_is_a_typed_error() {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(
            wiremock::ResponseTemplate::new(401)
                .set_body_json(serde_json::json!({"error": "invalid_client"})),
        )
        .mount(&server)
        .await;
    let client = oauth_layer::OAuthClient::builder("c")
        .secret("s")
        .token_url(format!("{}/token", server.uri()))
        .build()
        .unwrap();
    let state = ApiState::default();
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(client))
        .service(api(state.clone()));

    let err = svc.oneshot(get("https://api.example/")).await.unwrap_err();
    let err = err.downcast::<Error>().expect("an oauth_layer::Error");
    assert_eq!(err.action(), Action::FixConfiguration);
    assert!(
        state.seen().is_empty(),
        "the request was not sent without a token"
    );
}

#[tokio::test]
async fn a_cross_origin_redirect_does_not_carry_the_token() {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use oauth_layer::tower::RedirectPolicy;
    use tower_http::follow_redirect::FollowRedirectLayer;
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let idp = Idp::start(3600).await;
    let target = MockServer::start().await;
    Mock::given(path("/landing"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&target)
        .await;
    let origin = MockServer::start().await;
    Mock::given(path("/start"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("location", format!("{}/landing", target.uri())),
        )
        .mount(&origin)
        .await;

    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(idp.client()))
        .layer(FollowRedirectLayer::with_policy(RedirectPolicy::new()))
        .service(http);
    let resp = svc
        .oneshot(get(&format!("{}/start", origin.uri())))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let at_origin = &origin.received_requests().await.unwrap()[0];
    assert_eq!(at_origin.headers[AUTHORIZATION], "Bearer tok-1");
    let at_target = &target.received_requests().await.unwrap()[0];
    assert!(at_target.headers.get(AUTHORIZATION).is_none());
}

#[tokio::test]
async fn a_hyper_util_client_recovers_from_server_side_revocation() {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    use oauth_layer::AuthMethod;
    use oauth_layer::testing::TestServer;

    let server = TestServer::builder()
        .client(
            "app",
            Some("a:b/c+d%e&f=g h~"),
            AuthMethod::ClientSecretBasic,
        )
        .start()
        .await
        .unwrap();
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let svc = ServiceBuilder::new()
        .layer(
            OAuthLayer::client_credentials(server.oauth_client("app").unwrap()).scope("api:read"),
        )
        .service(http);
    let post = || {
        Request::post(server.resource_url("/api/orders"))
            .body(Full::new(Bytes::from_static(b"order-1")))
            .unwrap()
    };

    assert_eq!(
        svc.clone().oneshot(post()).await.unwrap().status(),
        StatusCode::OK
    );
    server.revoke_all_access_tokens();
    let resp = svc.clone().oneshot(post()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let seen = server.resource_requests();
    let statuses: Vec<u16> = seen.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 401, 200]);
    assert_eq!(seen[1].bearer_token(), seen[0].bearer_token());
    assert_ne!(seen[2].bearer_token(), seen[1].bearer_token());
    assert!(seen.iter().all(|r| &r.body[..] == b"order-1"));
    assert_eq!(server.token_requests(), 2);
}

#[tokio::test]
async fn without_retry_a_401_is_returned_and_the_next_request_is_renewed() {
    let idp = Idp::start(3600).await;
    let state = ApiState::default();
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(idp.client()).retry_after_401(false))
        .service(api(state.clone()));
    svc.clone()
        .oneshot(get("https://api.example/"))
        .await
        .unwrap();
    state.revoke("tok-1");

    let rejected = svc
        .clone()
        .oneshot(get("https://api.example/"))
        .await
        .unwrap();
    assert_eq!(rejected.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(state.seen().len(), 2, "not retried");
    let next = svc
        .clone()
        .oneshot(get("https://api.example/"))
        .await
        .unwrap();
    assert_eq!(next.status(), StatusCode::OK);
    assert_eq!(bearer(&state.seen()[2]), "Bearer tok-2");
}

/// Each service value keeps its own reference to the cached token for a cheap read; one that sat
/// idle while another renewed (or while the source was cleared) must still send the current token.
#[tokio::test]
async fn a_service_that_sat_idle_through_a_renewal_sends_the_current_token() {
    use tower::Layer;

    let idp = Idp::start(3600).await;
    let state = ApiState::default();
    let mut a = OAuthLayer::client_credentials(idp.client()).layer(api(state.clone()));
    let mut b = a.clone();
    /// One GET through a service kept across requests (readied, not cloned).
    async fn send<S>(svc: &mut S) -> StatusCode
    where
        S: Service<Request<Full<Bytes>>, Response = Response<String>>,
        S::Error: std::fmt::Debug,
    {
        let svc = svc.ready().await.unwrap();
        svc.call(get("https://api.example/"))
            .await
            .unwrap()
            .status()
    }

    assert_eq!(send(&mut b).await, StatusCode::OK);
    state.revoke("tok-1");
    assert_eq!(send(&mut a).await, StatusCode::OK, "renewed after the 401");
    assert_eq!(
        send(&mut b).await,
        StatusCode::OK,
        "idle through the renewal"
    );
    a.source().clear();
    assert_eq!(
        send(&mut b).await,
        StatusCode::OK,
        "after the source was cleared"
    );

    let seen: Vec<String> = state.seen().iter().map(|s| bearer(s).to_owned()).collect();
    assert_eq!(
        seen,
        [
            "Bearer tok-1", // b
            "Bearer tok-1", // a: 401
            "Bearer tok-2", // a: retried
            "Bearer tok-2", // b, idle through the renewal
            "Bearer tok-3", // b, after the source was cleared
        ]
    );
    assert_eq!(idp.issued(), 3);
}

/// The copy kept for the one retry is the request's own: with two requests of one service in
/// flight, the one answered 401 is sent again with its own method, URI, headers and body, and
/// nothing of the other's (nor a second token). Header-less requests, whose copy the layer makes
/// without cloning the empty map, are covered by every other retry test here.
#[tokio::test]
async fn a_retry_carries_its_own_request_not_one_sent_in_between() {
    use tower::Layer;

    /// What the API saw of each request: method, path and query, and every header but
    /// `Authorization` (the retry's URI is kept as text and parsed again),
    /// with how many `Authorization` headers came and the last one.
    type Seen = (String, String, Vec<(String, String)>, usize, String, Bytes);
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let api = {
        let seen = seen.clone();
        tower::service_fn(move |req: Request<Full<Bytes>>| {
            let seen = seen.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                let tokens = parts.headers.get_all(AUTHORIZATION).iter().count();
                let token = parts.headers[AUTHORIZATION].to_str().unwrap().to_owned();
                let mut others: Vec<(String, String)> = parts
                    .headers
                    .iter()
                    .filter(|(name, _)| *name != AUTHORIZATION)
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
                    .collect();
                others.sort();
                // The first token is refused for the request that says `x-request: a`.
                let refuse = token == "Bearer tok-1"
                    && parts.headers.get("x-request").is_some_and(|v| v == "a");
                seen.lock().unwrap().push((
                    parts.method.to_string(),
                    parts.uri.path_and_query().unwrap().as_str().to_owned(),
                    others,
                    tokens,
                    token,
                    body,
                ));
                let mut resp = Response::new(String::new());
                if refuse {
                    *resp.status_mut() = StatusCode::UNAUTHORIZED;
                    resp.headers_mut().insert(
                        WWW_AUTHENTICATE,
                        "Bearer error=\"invalid_token\"".parse().unwrap(),
                    );
                }
                Ok::<_, Infallible>(resp)
            }
        })
    };
    let idp = Idp::start(3600).await;
    let mut svc = OAuthLayer::client_credentials(idp.client()).layer(api);
    // Fill the cache first, so that both requests take the path with the copy made at once.
    let warm = svc
        .ready()
        .await
        .unwrap()
        .call(get("https://api.example/warm"));
    assert_eq!(warm.await.unwrap().status(), StatusCode::OK);

    let a = Request::put("https://api.example/a?x=1")
        .header("x-request", "a")
        .header("accept", "application/json")
        .header("x-only-a", "1")
        .body(Full::new(Bytes::from_static(b"body of a")))
        .unwrap();
    let b = Request::post("https://api.example/b")
        .header("x-request", "b")
        .header("x-only-b", "2")
        .body(Full::new(Bytes::from_static(b"body of b")))
        .unwrap();
    let a = svc.ready().await.unwrap().call(a);
    let b = svc.ready().await.unwrap().call(b);
    // b is answered first; then a gets its 401 and is sent again, after b went out.
    assert_eq!(b.await.unwrap().status(), StatusCode::OK);
    assert_eq!(a.await.unwrap().status(), StatusCode::OK);

    let seen = seen.lock().unwrap();
    let headers = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    };
    let a_headers = headers(&[
        ("accept", "application/json"),
        ("x-only-a", "1"),
        ("x-request", "a"),
    ]);
    let b_headers = headers(&[("x-only-b", "2"), ("x-request", "b")]);
    // The in-memory API runs a request when its future is polled: b's first, then a's.
    let expected: Vec<Seen> = vec![
        (
            "POST".into(),
            "/b".into(),
            b_headers,
            1,
            "Bearer tok-1".into(),
            Bytes::from_static(b"body of b"),
        ),
        (
            "PUT".into(),
            "/a?x=1".into(),
            a_headers.clone(),
            1,
            "Bearer tok-1".into(),
            Bytes::from_static(b"body of a"),
        ),
        (
            "PUT".into(),
            "/a?x=1".into(),
            a_headers,
            1,
            "Bearer tok-2".into(),
            Bytes::from_static(b"body of a"),
        ),
    ];
    assert_eq!(seen[1..], expected[..]);
    assert_eq!(idp.issued(), 2);
}
