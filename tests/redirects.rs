#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Redirect chains never carry a token to an origin it was not meant for (SECURITY.md rule 25),
//! however the caller composes redirect following: tower-http's `FollowRedirect` outside or
//! inside the layer, with its default policy or ours; reqwest's default policy, a custom one,
//! none, or ours. Two real origins (`A` and `B`, two local servers on different ports) serve the
//! chains `A→B`, `A→B→B`, `A→B→A` and `A→A→B`.

mod common;

use bytes::Bytes;
use common::Idp;
use http::header::AUTHORIZATION;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use oauth_layer::tower::RedirectPolicy;
use oauth_layer::{Action, Error, OAuthLayer, OAuthMiddleware, TokenWithheld, WithheldReason};
use tower::{ServiceBuilder, ServiceExt};
use tower_http::follow_redirect::FollowRedirectLayer;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The two origins of a chain, and where it starts.
struct Chain {
    a: MockServer,
    b: MockServer,
    name: &'static str,
}

/// A chain: `AToB` is `A→B`, `AToBToB` is `A→B→B`, and so on.
#[derive(Clone, Copy)]
enum Shape {
    AToB,
    AToBToB,
    AToBToA,
    AToAToB,
}

const SHAPES: [Shape; 4] = [Shape::AToB, Shape::AToBToB, Shape::AToBToA, Shape::AToAToB];

/// A way to build reqwest's redirect policy (`None`: reqwest's default).
type MakePolicy = fn() -> Option<reqwest::redirect::Policy>;

impl Chain {
    /// Mounts the chain; the last hop answers `last_status`.
    async fn start(shape: Shape, last_status: u16) -> Self {
        let a = MockServer::start().await;
        let b = MockServer::start().await;
        let redirect = |to: String| ResponseTemplate::new(302).insert_header("location", to);
        let (name, hop, land) = match shape {
            Shape::AToB => ("A→B", None, &b),
            Shape::AToBToB => ("A→B→B", Some(&b), &b),
            Shape::AToBToA => ("A→B→A", Some(&b), &a),
            Shape::AToAToB => ("A→A→B", Some(&a), &b),
        };
        let first_target = match hop {
            Some(server) => format!("{}/hop", server.uri()),
            None => format!("{}/land", land.uri()),
        };
        Mock::given(path("/start"))
            .respond_with(redirect(first_target))
            .mount(&a)
            .await;
        if let Some(server) = hop {
            Mock::given(path("/hop"))
                .respond_with(redirect(format!("{}/land", land.uri())))
                .mount(server)
                .await;
        }
        Mock::given(path("/land"))
            .respond_with(ResponseTemplate::new(last_status))
            .mount(land)
            .await;
        Chain { a, b, name }
    }

    fn url(&self) -> String {
        format!("{}/start", self.a.uri())
    }

    /// Every request `B` received carried no `Authorization` header.
    async fn assert_b_saw_no_token(&self, composition: &str) {
        for request in self.b.received_requests().await.unwrap() {
            assert!(
                request.headers.get(AUTHORIZATION).is_none(),
                "{composition}, {}: {} got a token",
                self.name,
                request.url
            );
        }
    }

    /// The first request, at `A`, carried the token.
    async fn assert_a_got_the_token(&self, composition: &str) {
        let at_a = &self.a.received_requests().await.unwrap()[0];
        assert_eq!(
            at_a.headers.get(AUTHORIZATION).map(|v| v.to_str().unwrap()),
            Some("Bearer tok-1"),
            "{composition}, {}",
            self.name
        );
    }
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

fn hyper_client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>()
}

// ---- tower: every composition that follows redirects and is allowed ----

/// Where tower-http's `FollowRedirect` sits, and with which policy.
#[derive(Debug, Clone, Copy)]
enum Stack {
    /// `FollowRedirect` (default policy) outside `OAuthLayer`: every hop comes through the layer.
    DefaultPolicyOutside,
    /// `FollowRedirect` with `RedirectPolicy` outside `OAuthLayer`.
    OurPolicyOutside,
    /// `OAuthLayer` outside `FollowRedirect` with `RedirectPolicy`: the hops are hidden from it.
    OurPolicyInside,
}

/// Runs every chain, with and without `allow_origins`, through `stack`: `A` gets the token on
/// the first request, `B` never gets one.
async fn no_chain_gives_b_a_token(stack: Stack) {
    for allow_list in [false, true] {
        for shape in SHAPES {
            let idp = Idp::start(3600).await;
            let chain = Chain::start(shape, 200).await;
            let mut layer = OAuthLayer::client_credentials(idp.client());
            if allow_list {
                layer = layer.allow_origins([chain.a.uri()]).unwrap();
            }
            let request = get(&chain.url());
            let response = match stack {
                Stack::DefaultPolicyOutside => ServiceBuilder::new()
                    .layer(FollowRedirectLayer::new())
                    .layer(layer)
                    .service(hyper_client())
                    .oneshot(request)
                    .await
                    .unwrap(),
                Stack::OurPolicyOutside => ServiceBuilder::new()
                    .layer(FollowRedirectLayer::with_policy(RedirectPolicy::new()))
                    .layer(layer)
                    .service(hyper_client())
                    .oneshot(request)
                    .await
                    .unwrap(),
                Stack::OurPolicyInside => ServiceBuilder::new()
                    .layer(layer)
                    .layer(FollowRedirectLayer::with_policy(RedirectPolicy::new()))
                    .service(hyper_client())
                    .oneshot(request)
                    .await
                    .unwrap(),
            };
            assert_eq!(response.status(), StatusCode::OK, "{}", chain.name);
            let composition = format!("{stack:?}, allow_origins {allow_list}");
            chain.assert_a_got_the_token(&composition).await;
            chain.assert_b_saw_no_token(&composition).await;
        }
    }
}

#[tokio::test]
async fn tower_redirects_outside_the_layer_default_policy_never_give_b_a_token() {
    no_chain_gives_b_a_token(Stack::DefaultPolicyOutside).await;
}

#[tokio::test]
async fn tower_redirects_outside_the_layer_with_our_policy_never_give_b_a_token() {
    no_chain_gives_b_a_token(Stack::OurPolicyOutside).await;
}

#[tokio::test]
async fn tower_layer_outside_follow_redirect_with_our_policy_never_gives_b_a_token() {
    no_chain_gives_b_a_token(Stack::OurPolicyInside).await;
}

// ---- tower: FollowRedirect with another policy inside the layer (the hops are hidden) ----

#[tokio::test]
async fn tower_layer_outside_a_default_follow_redirect_is_refused_before_anything_is_sent() {
    for allow_list in [false, true] {
        let idp = Idp::start(3600).await;
        let chain = Chain::start(Shape::AToBToB, 200).await;
        let mut layer = OAuthLayer::client_credentials(idp.client());
        if allow_list {
            layer = layer.allow_origins([chain.a.uri()]).unwrap();
        }
        let svc = ServiceBuilder::new()
            .layer(layer)
            .layer(FollowRedirectLayer::new())
            .service(hyper_client());
        let err = svc.oneshot(get(&chain.url())).await.unwrap_err();
        let err = err.downcast::<Error>().expect("an oauth_layer::Error");
        assert_eq!(err.action(), Action::FixConfiguration);
        assert!(err.to_string().contains("RedirectPolicy"), "{err}");
        assert!(chain.a.received_requests().await.unwrap().is_empty());
        assert!(chain.b.received_requests().await.unwrap().is_empty());
        assert_eq!(idp.issued(), 0, "no token was even fetched");
    }
}

#[tokio::test]
async fn a_401_from_a_redirect_target_renews_nothing_and_resends_nothing() {
    // Layer outside FollowRedirect(ours): B's 401 reaches the layer as the final answer.
    let idp = Idp::start(3600).await;
    let chain = Chain::start(Shape::AToBToB, 401).await;
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(idp.client()))
        .layer(FollowRedirectLayer::with_policy(RedirectPolicy::new()))
        .service(hyper_client());
    let response = svc.oneshot(get(&chain.url())).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(idp.issued(), 1, "no renewal after B's 401");
    assert_eq!(
        chain.a.received_requests().await.unwrap().len(),
        1,
        "no resend"
    );
    chain
        .assert_b_saw_no_token("layer outside, B answers 401")
        .await;

    // FollowRedirect(default) outside the layer: the hop to B goes without a token, and B's 401
    // says why.
    let idp = Idp::start(3600).await;
    let chain = Chain::start(Shape::AToB, 401).await;
    let svc = ServiceBuilder::new()
        .layer(FollowRedirectLayer::new())
        .layer(OAuthLayer::client_credentials(idp.client()))
        .service(hyper_client());
    let response = svc.oneshot(get(&chain.url())).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let withheld = response.extensions().get::<TokenWithheld>().unwrap();
    assert_eq!(withheld.reason(), WithheldReason::OriginNotAllowed);
    assert_eq!(idp.issued(), 1, "no renewal after B's 401");
    chain
        .assert_b_saw_no_token("layer inside, B answers 401")
        .await;
}

// ---- reqwest-middleware: reqwest follows redirects below the middleware ----

fn middleware_client(
    idp: &Idp,
    policy: Option<reqwest::redirect::Policy>,
) -> reqwest_middleware::ClientWithMiddleware {
    let mut builder = reqwest::Client::builder();
    if let Some(policy) = policy {
        builder = builder.redirect(policy);
    }
    reqwest_middleware::ClientBuilder::new(builder.build().unwrap())
        .with(OAuthMiddleware::client_credentials(idp.client()))
        .build()
}

#[tokio::test]
async fn middleware_with_our_redirect_policy_never_lets_a_chain_leave_the_origin() {
    for shape in SHAPES {
        let idp = Idp::start(3600).await;
        let chain = Chain::start(shape, 200).await;
        let http = middleware_client(&idp, Some(oauth_layer::reqwest::redirect_policy()));
        let response = http.get(chain.url()).send().await.unwrap();
        // The redirect to B comes back to the caller instead of being followed.
        assert_eq!(response.status(), StatusCode::FOUND, "{}", chain.name);
        assert!(
            chain.b.received_requests().await.unwrap().is_empty(),
            "{}: B was contacted",
            chain.name
        );
        chain.assert_a_got_the_token("our reqwest policy").await;
    }
}

#[tokio::test]
async fn middleware_with_our_policy_follows_redirects_within_the_origin() {
    let idp = Idp::start(3600).await;
    let a = MockServer::start().await;
    Mock::given(path("/start"))
        .respond_with(
            ResponseTemplate::new(307).insert_header("location", format!("{}/land", a.uri())),
        )
        .mount(&a)
        .await;
    Mock::given(path("/land"))
        .respond_with(ResponseTemplate::new(200).set_body_string("landed"))
        .mount(&a)
        .await;
    let http = middleware_client(&idp, Some(oauth_layer::reqwest::redirect_policy()));
    let response = http.get(format!("{}/start", a.uri())).send().await.unwrap();
    assert_eq!(response.text().await.unwrap(), "landed");
}

#[tokio::test]
async fn middleware_over_a_client_that_follows_cross_origin_redirects_refuses_the_answer() {
    let policies: [(&str, MakePolicy); 2] = [
        ("reqwest's default policy", || None),
        ("a custom limited policy", || {
            Some(reqwest::redirect::Policy::limited(5))
        }),
    ];
    for (composition, policy) in policies {
        for shape in [Shape::AToB, Shape::AToBToB, Shape::AToAToB] {
            let idp = Idp::start(3600).await;
            let chain = Chain::start(shape, 200).await;
            let http = middleware_client(&idp, policy());
            let err = http.get(chain.url()).send().await.unwrap_err();
            let reqwest_middleware::Error::Middleware(err) = err else {
                panic!(
                    "{composition}, {}: expected the middleware's error",
                    chain.name
                );
            };
            let err = err.downcast::<Error>().unwrap();
            assert!(
                matches!(err, Error::UnsafeRedirect { .. }),
                "{composition}, {}: {err}",
                chain.name
            );
            assert_eq!(err.action(), Action::FixConfiguration);
            assert!(err.to_string().contains("redirect_policy"), "{err}");
            assert_eq!(idp.issued(), 1, "no renewal, whatever B answered");
        }
    }
}

#[tokio::test]
async fn middleware_over_a_client_that_follows_cross_origin_redirects_never_renews_on_bs_401() {
    let idp = Idp::start(3600).await;
    let chain = Chain::start(Shape::AToB, 401).await;
    let http = middleware_client(&idp, None);
    let err = http.get(chain.url()).send().await.unwrap_err();
    assert!(err.to_string().contains("redirect"), "{err}");
    assert_eq!(idp.issued(), 1, "no renewal after B's 401");
    assert_eq!(
        chain.a.received_requests().await.unwrap().len(),
        1,
        "no resend"
    );
    chain
        .assert_b_saw_no_token("reqwest default, B answers 401")
        .await;
}

#[tokio::test]
async fn middleware_over_a_client_without_redirects_returns_the_redirect() {
    for shape in SHAPES {
        let idp = Idp::start(3600).await;
        let chain = Chain::start(shape, 200).await;
        let http = middleware_client(&idp, Some(reqwest::redirect::Policy::none()));
        let response = http.get(chain.url()).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        chain.assert_b_saw_no_token("Policy::none()").await;
    }
}

// ---- the default origin policy, and withheld tokens ----

#[tokio::test]
async fn without_a_list_only_the_first_origin_gets_tokens_and_a_401_elsewhere_says_why() {
    let idp = Idp::start(3600).await;
    let first = MockServer::start().await;
    let second = MockServer::start().await;
    for server in [&first, &second] {
        Mock::given(path("/api"))
            .respond_with(ResponseTemplate::new(401))
            .mount(server)
            .await;
    }
    let http = middleware_client(&idp, None);
    http.get(format!("{}/api", first.uri()))
        .send()
        .await
        .unwrap();
    let response = http
        .get(format!("{}/api", second.uri()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let withheld = response.extensions().get::<TokenWithheld>().unwrap();
    assert_eq!(withheld.reason(), WithheldReason::OriginNotAllowed);
    assert!(withheld.to_string().contains("allow_origins"), "{withheld}");
    assert!(withheld.origin().contains("127.0.0.1"));
    let at_second = &second.received_requests().await.unwrap()[0];
    assert!(at_second.headers.get(AUTHORIZATION).is_none());
    let at_first = &first.received_requests().await.unwrap()[0];
    assert!(at_first.headers.get(AUTHORIZATION).is_some());
}

#[tokio::test]
async fn plain_http_to_a_remote_host_is_withheld_and_said_once() {
    let logs = common::logs::Captured::default();
    let _guard = logs.install(tracing::Level::WARN);

    let idp = Idp::start(3600).await;
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(idp.client()))
        .service(tower::service_fn(|req: Request<Full<Bytes>>| async move {
            assert!(req.headers().get(AUTHORIZATION).is_none());
            let mut response = http::Response::new(String::new());
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            Ok::<_, std::convert::Infallible>(response)
        }));
    for _ in 0..3 {
        let response = svc
            .clone()
            .oneshot(get("http://api.example/things"))
            .await
            .unwrap();
        let withheld = response.extensions().get::<TokenWithheld>().unwrap();
        assert_eq!(withheld.reason(), WithheldReason::PlainHttp);
        assert!(withheld.to_string().contains("https"));
    }
    let logs = logs.text();
    assert_eq!(
        logs.matches("no token was sent to http://api.example:80")
            .count(),
        1,
        "{logs}"
    );
    assert_eq!(idp.issued(), 0);
}

#[tokio::test]
async fn an_origin_written_another_way_is_the_same_origin_and_userinfo_fools_nothing() {
    let idp = Idp::start(3600).await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let svc = ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(idp.client()))
        .service(tower::service_fn(move |req: Request<Full<Bytes>>| {
            record.lock().unwrap().push((
                req.uri().to_string(),
                req.headers().get(AUTHORIZATION).is_some(),
            ));
            async { Ok::<_, std::convert::Infallible>(http::Response::new(String::new())) }
        }));
    for uri in [
        "https://api.example/first",
        "https://API.Example:443/same",
        "https://api.example.evil.example/other",
        "https://api.example@evil.example/userinfo",
        "https://api.example:8443/other-port",
        "http://api.example/plain",
    ] {
        svc.clone().oneshot(get(uri)).await.unwrap();
    }
    let sent: Vec<bool> = seen.lock().unwrap().iter().map(|(_, t)| *t).collect();
    assert_eq!(sent, [true, true, false, false, false, false], "{seen:?}");
}

/// The answer's origin is compared with the request's however the request writes its origin:
/// as the allowed origin was written (compared as text) or otherwise (here with user
/// information in the URL, compared parsed). A same-origin answer passes either way; an answer
/// from B, after reqwest's default policy followed `A→B`, is refused either way.
#[tokio::test]
async fn middleware_compares_the_answers_origin_however_the_request_writes_it() {
    for write in ["as allowed", "with userinfo"] {
        for (shape, same_origin) in [(Shape::AToBToA, true), (Shape::AToB, false)] {
            let idp = Idp::start(3600).await;
            let chain = Chain::start(shape, 200).await;
            let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
                .with(
                    OAuthMiddleware::client_credentials(idp.client())
                        .allow_origins([chain.a.uri()])
                        .unwrap(),
                )
                .build();
            let mut url = reqwest::Url::parse(&chain.url()).unwrap();
            if write == "with userinfo" {
                url.set_username("someone").unwrap();
            }
            // `execute`, not `get`: reqwest's builder would turn the user information into a
            // Basic `Authorization` header, and the middleware would leave the request alone.
            let request = reqwest::Request::new(reqwest::Method::GET, url);
            let result = http.execute(request).await;
            chain
                .assert_a_got_the_token(&format!("written {write}"))
                .await;
            if same_origin {
                assert_eq!(result.unwrap().status(), StatusCode::OK, "{write}");
            } else {
                let err = result.unwrap_err();
                assert!(
                    err.to_string().contains("redirect_policy"),
                    "{write}: {err}"
                );
            }
        }
    }
}
