#![allow(clippy::unwrap_used, clippy::expect_used)]
//! DPoP (RFC 9449) through the public API against hostile and exact wiremock servers: proofs on
//! token and resource requests, bound tokens, nonces at the token endpoint and at the resource,
//! the loop guards, the key kept with the token in a store, and the algorithm chosen against the
//! server's metadata. Every proof is verified here independently of the crate (jsonwebtoken with
//! the JWK the proof carries).

use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::AUTHORIZATION;
use oauth_layer::dpop::{Dpop, DpopAlg, DpopKey};
use oauth_layer::flow::ClientCredentials;
use oauth_layer::{Error, OAuthClient, OAuthLayer, OAuthMiddleware, TokenSource};
use reqwest_middleware::ClientBuilder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// A proof as a server checks it: signature by the embedded key, header and claims.
#[derive(Debug, Clone)]
struct Proof {
    alg: String,
    jkt: String,
    claims: Value,
}

fn thumbprint(jwk: &Value) -> String {
    let members: &[&str] = match jwk["kty"].as_str().unwrap() {
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        "RSA" => &["e", "kty", "n"],
        other => panic!("kty {other}"),
    };
    let mut canonical = serde_json::Map::new();
    for m in members {
        canonical.insert((*m).to_owned(), jwk[*m].clone());
    }
    URL_SAFE_NO_PAD.encode(Sha256::digest(Value::Object(canonical).to_string()))
}

/// Verifies a `DPoP` header value: `typ`, an asymmetric `alg`, a public-only `jwk`, and the
/// signature made with it.
fn verify(proof: &str) -> Proof {
    let header = jsonwebtoken::decode_header(proof).unwrap();
    assert_eq!(header.typ.as_deref(), Some("dpop+jwt"));
    let raw_header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(proof.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let jwk = raw_header["jwk"].clone();
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        assert!(
            jwk.get(private).is_none(),
            "the proof's jwk leaks {private}"
        );
    }
    let decoding =
        jsonwebtoken::DecodingKey::from_jwk(&serde_json::from_value(jwk.clone()).unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    let data = jsonwebtoken::decode::<Value>(proof, &decoding, &validation).unwrap();
    Proof {
        alg: raw_header["alg"].as_str().unwrap().to_owned(),
        jkt: thumbprint(&jwk),
        claims: data.claims,
    }
}

fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token))
}

/// What a wiremock server saw: each request's `Authorization` and verified `DPoP` proof.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Entry>>>);

/// One request: its `Authorization` header and its verified proof.
type Entry = (Option<String>, Option<Proof>);

impl Seen {
    fn record(&self, req: &Request) -> Entry {
        let auth = req
            .headers
            .get(AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_owned());
        let proofs: Vec<_> = req.headers.get_all("dpop").iter().collect();
        assert!(proofs.len() <= 1, "more than one DPoP header");
        let proof = proofs.first().map(|v| verify(v.to_str().unwrap()));
        let entry = (auth, proof);
        self.0.lock().unwrap().push(entry.clone());
        entry
    }

    fn all(&self) -> Vec<Entry> {
        self.0.lock().unwrap().clone()
    }

    fn proofs(&self) -> Vec<Proof> {
        self.all()
            .into_iter()
            .map(|(_, p)| p.expect("a proof"))
            .collect()
    }
}

fn token_json(n: usize, token_type: &str) -> Value {
    json!({"access_token": format!("at-{n}"), "token_type": token_type, "expires_in": 3600})
}

/// A token endpoint answering `answer(n, proof)` to the n-th request (from 1).
async fn token_endpoint(
    answer: impl Fn(usize, &Option<Proof>) -> ResponseTemplate + Send + Sync + 'static,
) -> (MockServer, Seen) {
    let server = MockServer::start().await;
    let seen = Seen::default();
    let s = seen.clone();
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(move |req: &Request| {
            let (_, proof) = s.record(req);
            let n = s.all().len();
            answer(n, &proof)
        })
        .mount(&server)
        .await;
    (server, seen)
}

/// A resource answering `answer(n, authorization, proof)` to the n-th request.
async fn resource(
    answer: impl Fn(usize, &Option<String>, &Option<Proof>) -> ResponseTemplate + Send + Sync + 'static,
) -> (MockServer, Seen) {
    let server = MockServer::start().await;
    let seen = Seen::default();
    let s = seen.clone();
    Mock::given(path("/api"))
        .respond_with(move |req: &Request| {
            let (auth, proof) = s.record(req);
            let n = s.all().len();
            answer(n, &auth, &proof)
        })
        .mount(&server)
        .await;
    (server, seen)
}

fn client(idp: &MockServer, dpop: Dpop) -> OAuthClient {
    OAuthClient::builder("dpop-client")
        .secret("s3cret")
        .token_url(format!("{}/token", idp.uri()))
        .dpop(dpop)
        .build()
        .unwrap()
}

fn http(middleware: impl Into<OAuthMiddleware>) -> reqwest_middleware::ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(middleware.into())
        .build()
}

#[tokio::test]
async fn every_request_carries_a_fresh_proof_with_one_key_and_the_token_goes_as_dpop() {
    // `token_type` in any case (RFC 9449 §5 compares it case-insensitively).
    let (idp, token_requests) =
        token_endpoint(|n, _| ResponseTemplate::new(200).set_body_json(token_json(n, "dpop")))
            .await;
    let (api, resource_requests) = resource(|_, _, _| ResponseTemplate::new(200)).await;
    let http = http(OAuthMiddleware::client_credentials(client(
        &idp,
        Dpop::new(),
    )));

    for _ in 0..3 {
        let resp = http
            .get(format!("{}/api?page=2#frag", api.uri()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let post = http
        .post(format!("{}/api", api.uri()))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 200);

    let token_proof = &token_requests.proofs()[0];
    assert_eq!(token_requests.all().len(), 1);
    assert_eq!(token_proof.alg, "ES256");
    assert_eq!(token_proof.claims["htm"], "POST");
    assert_eq!(token_proof.claims["htu"], format!("{}/token", idp.uri()));
    assert!(token_proof.claims.get("ath").is_none());

    let seen = resource_requests.all();
    assert_eq!(seen.len(), 4);
    let mut jtis = std::collections::HashSet::new();
    jtis.insert(token_proof.claims["jti"].as_str().unwrap().to_owned());
    for (i, (auth, proof)) in seen.iter().enumerate() {
        assert_eq!(auth.as_deref(), Some("DPoP at-1"), "never as Bearer");
        let proof = proof.as_ref().expect("every resource request has a proof");
        assert_eq!(
            proof.jkt, token_proof.jkt,
            "one key for the token and its use"
        );
        assert_eq!(proof.claims["ath"], ath("at-1"));
        let (htm, htu) = if i < 3 {
            ("GET", format!("{}/api", api.uri()))
        } else {
            ("POST", format!("{}/api", api.uri()))
        };
        assert_eq!(proof.claims["htm"], htm);
        assert_eq!(proof.claims["htu"], htu, "no query, no fragment");
        let iat = proof.claims["iat"].as_u64().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(iat.abs_diff(now) < 60);
        assert!(
            jtis.insert(proof.claims["jti"].as_str().unwrap().to_owned()),
            "a fresh jti per request"
        );
    }
}

#[tokio::test]
async fn a_token_endpoint_nonce_is_answered_once_and_remembered_from_every_response() {
    let (idp, token_requests) = token_endpoint(|n, proof| {
        let nonce = proof.as_ref().unwrap().claims.get("nonce").cloned();
        match (n, nonce) {
            (1, None) => ResponseTemplate::new(400)
                .insert_header("dpop-nonce", "n-1")
                .set_body_json(json!({"error": "use_dpop_nonce"})),
            (_, Some(_)) => ResponseTemplate::new(200)
                .insert_header("dpop-nonce", format!("n-{}", n))
                .set_body_json(json!({"access_token": format!("at-{n}"), "token_type": "DPoP", "expires_in": 1})),
            _ => ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_dpop_proof"})),
        }
    })
    .await;
    let source = TokenSource::builder(client(&idp, Dpop::new()), ClientCredentials::new())
        .skew(std::time::Duration::ZERO)
        .build();
    let first = source.token().await.unwrap();
    assert_eq!(first.token_type(), "DPoP");
    assert!(first.dpop_key().is_some());
    // The token is gone at once (1 s); the next request carries the nonce of the last
    // *successful* response, not the one of the challenge.
    source.invalidate(&first);
    source.token().await.unwrap();
    let proofs = token_requests.proofs();
    assert_eq!(proofs.len(), 3);
    assert!(proofs[0].claims.get("nonce").is_none());
    assert_eq!(proofs[1].claims["nonce"], "n-1");
    assert_eq!(proofs[2].claims["nonce"], "n-2");
    assert_ne!(proofs[0].claims["jti"], proofs[1].claims["jti"]);
}

#[tokio::test]
async fn an_endless_or_repeated_nonce_challenge_costs_one_retry_and_no_loop() {
    for same_nonce in [true, false] {
        let (idp, token_requests) = token_endpoint(move |n, _| {
            let nonce = if same_nonce {
                "same".to_owned()
            } else {
                format!("n-{n}")
            };
            ResponseTemplate::new(400)
                .insert_header("dpop-nonce", nonce)
                .set_body_json(json!({"error": "use_dpop_nonce"}))
        })
        .await;
        let source = TokenSource::new(client(&idp, Dpop::new()), ClientCredentials::new());
        let err = source.token().await.unwrap_err();
        assert!(matches!(err, Error::Server(_)), "{err:?}");
        // A changed nonce is tried once; the same nonce again is not tried at all after the
        // first answer taught it.
        assert_eq!(token_requests.all().len(), 2, "same nonce: {same_nonce}");
    }
}

#[tokio::test]
async fn a_resource_nonce_challenge_is_retried_once_with_a_new_proof_and_the_next_nonce_kept() {
    let (idp, _) =
        token_endpoint(|n, _| ResponseTemplate::new(200).set_body_json(token_json(n, "DPoP")))
            .await;
    let (api, seen) = resource(|n, _, proof| {
        let nonce = proof
            .as_ref()
            .unwrap()
            .claims
            .get("nonce")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match nonce.as_deref() {
            Some(got) if got == format!("r-{}", n - 1) => {
                ResponseTemplate::new(200).insert_header("dpop-nonce", format!("r-{n}"))
            }
            _ => ResponseTemplate::new(401)
                .insert_header(
                    "www-authenticate",
                    r#"DPoP error="use_dpop_nonce", error_description="nonce", algs="ES256""#,
                )
                .insert_header("dpop-nonce", format!("r-{n}")),
        }
    })
    .await;
    let http = http(OAuthMiddleware::client_credentials(client(
        &idp,
        Dpop::new(),
    )));
    let url = format!("{}/api", api.uri());
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    // Request 3 uses the nonce of response 2 (the successful retry's) straight away.
    assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
    let proofs = seen.proofs();
    assert_eq!(proofs.len(), 3, "one retry, then straight through");
    assert!(proofs[0].claims.get("nonce").is_none());
    assert_eq!(proofs[1].claims["nonce"], "r-1");
    assert_eq!(proofs[2].claims["nonce"], "r-2");
    assert_ne!(proofs[0].claims["jti"], proofs[1].claims["jti"]);
}

#[tokio::test]
async fn a_resource_that_always_wants_a_new_nonce_gets_two_requests_and_its_401() {
    let (idp, token_requests) =
        token_endpoint(|n, _| ResponseTemplate::new(200).set_body_json(token_json(n, "DPoP")))
            .await;
    let (api, seen) = resource(|n, _, _| {
        ResponseTemplate::new(401)
            .insert_header("www-authenticate", r#"DPoP error="use_dpop_nonce""#)
            .insert_header("dpop-nonce", format!("r-{n}"))
    })
    .await;
    let http = http(OAuthMiddleware::client_credentials(client(
        &idp,
        Dpop::new(),
    )));
    let resp = http.get(format!("{}/api", api.uri())).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(seen.all().len(), 2);
    // A nonce challenge is not a rejected token: nothing was renewed.
    assert_eq!(token_requests.all().len(), 1);
}

#[tokio::test]
async fn a_request_that_cannot_be_replayed_gets_the_nonce_challenge_back_and_the_next_one_works() {
    let (idp, _) =
        token_endpoint(|n, _| ResponseTemplate::new(200).set_body_json(token_json(n, "DPoP")))
            .await;
    let (api, seen) = resource(|_, _, proof| {
        if proof.as_ref().unwrap().claims.get("nonce").is_some() {
            ResponseTemplate::new(200)
        } else {
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", r#"DPoP error="use_dpop_nonce""#)
                .insert_header("dpop-nonce", "r")
        }
    })
    .await;
    // A streaming body (a boxed body cannot be copied) through the tower layer.
    type Streaming = http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>;
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Streaming>();
    let mut service = tower::ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(client(&idp, Dpop::new())))
        .service(hyper);
    use http_body_util::BodyExt;
    use tower::{Service, ServiceExt};
    let body = || http_body_util::Full::new(bytes::Bytes::from_static(b"streamed")).boxed();
    let request = http::Request::post(format!("{}/api", api.uri()))
        .body(body())
        .unwrap();
    let resp = service.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(seen.all().len(), 1);
    let request = http::Request::post(format!("{}/api", api.uri()))
        .body(body())
        .unwrap();
    let resp = service.ready().await.unwrap().call(request).await.unwrap();
    assert_eq!(resp.status(), 200, "the nonce was kept from the 401");
    assert_eq!(seen.all().len(), 2);
}

#[tokio::test]
async fn a_bearer_answer_is_a_plain_bearer_token_unless_binding_is_required() {
    let (idp, _) =
        token_endpoint(|n, _| ResponseTemplate::new(200).set_body_json(token_json(n, "Bearer")))
            .await;
    let (api, seen) = resource(|_, _, _| ResponseTemplate::new(200)).await;
    let http = http(OAuthMiddleware::client_credentials(client(
        &idp,
        Dpop::new(),
    )));
    http.get(format!("{}/api", api.uri())).send().await.unwrap();
    let (auth, proof) = seen.all().remove(0);
    assert_eq!(auth.as_deref(), Some("Bearer at-1"));
    assert!(proof.is_none(), "no proof for an unbound token");

    let strict = TokenSource::new(
        client(&idp, Dpop::new().require_bound_tokens(true)),
        ClientCredentials::new(),
    );
    let err = strict.token().await.unwrap_err();
    assert!(matches!(err, Error::UnboundToken), "{err:?}");
    assert!(err.to_string().contains("DPoP-bound"));
}

#[tokio::test]
async fn a_dpop_token_the_client_did_not_ask_for_is_refused() {
    let (idp, _) =
        token_endpoint(|n, _| ResponseTemplate::new(200).set_body_json(token_json(n, "DPoP")))
            .await;
    let plain = OAuthClient::builder("c")
        .secret("s")
        .token_url(format!("{}/token", idp.uri()))
        .build()
        .unwrap();
    let err = TokenSource::new(plain, ClientCredentials::new())
        .token()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnsupportedTokenType { .. }), "{err:?}");
}

#[tokio::test]
async fn concurrent_requests_that_all_meet_a_nonce_challenge_make_one_token_request_and_no_storm() {
    let (idp, token_requests) =
        token_endpoint(|n, _| ResponseTemplate::new(200).set_body_json(token_json(n, "DPoP")))
            .await;
    let (api, seen) = resource(|_, _, proof| {
        if proof.as_ref().unwrap().claims.get("nonce").is_some() {
            ResponseTemplate::new(200).insert_header("dpop-nonce", "r")
        } else {
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", r#"DPoP error="use_dpop_nonce""#)
                .insert_header("dpop-nonce", "r")
        }
    })
    .await;
    let http = http(OAuthMiddleware::client_credentials(client(
        &idp,
        Dpop::new(),
    )));
    let url = format!("{}/api", api.uri());
    let calls = (0..20).map(|_| http.get(&url).send());
    for resp in futures::future::join_all(calls).await {
        assert_eq!(resp.unwrap().status(), 200);
    }
    assert_eq!(token_requests.all().len(), 1);
    assert!(seen.all().len() <= 40, "at most one retry each");
    // Later requests go straight through with the nonce.
    let before = seen.all().len();
    http.get(&url).send().await.unwrap();
    assert_eq!(seen.all().len(), before + 1);
}

#[tokio::test]
async fn the_tower_layer_sends_dpop_tokens_with_a_proof_per_request_and_answers_nonces() {
    let (idp, _) =
        token_endpoint(|n, _| ResponseTemplate::new(200).set_body_json(token_json(n, "DPoP")))
            .await;
    let (api, seen) = resource(|_, _, proof| {
        if proof.as_ref().unwrap().claims.get("nonce").is_some() {
            ResponseTemplate::new(200).insert_header("dpop-nonce", "r")
        } else {
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", r#"DPoP error="use_dpop_nonce""#)
                .insert_header("dpop-nonce", "r")
        }
    })
    .await;
    let hyper = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut service = tower::ServiceBuilder::new()
        .layer(OAuthLayer::client_credentials(client(&idp, Dpop::new())))
        .service(hyper);
    use tower::{Service, ServiceExt};
    for _ in 0..2 {
        let request = http::Request::get(format!("{}/api?q=1", api.uri()))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let resp = service.ready().await.unwrap().call(request).await.unwrap();
        assert_eq!(resp.status(), 200);
    }
    let all = seen.all();
    assert_eq!(all.len(), 3, "one nonce retry, then straight through");
    for (auth, proof) in &all {
        assert_eq!(auth.as_deref(), Some("DPoP at-1"));
        let proof = proof.as_ref().unwrap();
        assert_eq!(proof.claims["htu"], format!("{}/api", api.uri()));
        assert_eq!(proof.claims["ath"], ath("at-1"));
    }
}

#[tokio::test]
async fn the_algorithm_follows_the_server_metadata_and_an_impossible_one_fails_at_build() {
    let (idp, token_requests) =
        token_endpoint(|n, _| ResponseTemplate::new(200).set_body_json(token_json(n, "DPoP")))
            .await;
    let metadata = |algs: Value| -> oauth_layer::metadata::Metadata {
        serde_json::from_value(json!({
            "issuer": idp.uri(),
            "token_endpoint": format!("{}/token", idp.uri()),
            "dpop_signing_alg_values_supported": algs,
        }))
        .unwrap()
    };
    let eddsa_only = OAuthClient::builder("c")
        .secret("s")
        .metadata(metadata(json!(["EdDSA"])))
        .dpop(Dpop::new())
        .build()
        .unwrap();
    TokenSource::new(eddsa_only, ClientCredentials::new())
        .token()
        .await
        .unwrap();
    assert_eq!(token_requests.proofs()[0].alg, "EdDSA");

    let err = OAuthClient::builder("c")
        .secret("s")
        .metadata(metadata(json!(["RS256", "HS256"])))
        .dpop(Dpop::new())
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(err.to_string().contains("dpop"), "{err}");

    let fixed = DpopKey::generate(DpopAlg::ES256).unwrap();
    let err = OAuthClient::builder("c")
        .secret("s")
        .metadata(metadata(json!(["EdDSA"])))
        .dpop(Dpop::with_key(fixed))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("EdDSA"), "{err}");
}

#[tokio::test]
async fn each_source_has_its_own_key_unless_one_is_given_and_keys_never_print() {
    let (idp, token_requests) =
        token_endpoint(|n, _| ResponseTemplate::new(200).set_body_json(token_json(n, "DPoP")))
            .await;
    let c = client(&idp, Dpop::new());
    let a = TokenSource::builder(c.clone(), ClientCredentials::new())
        .identity("a")
        .build();
    let b = TokenSource::builder(c.clone(), ClientCredentials::new())
        .identity("b")
        .build();
    let ta = a.token().await.unwrap();
    let tb = b.token().await.unwrap();
    let proofs = token_requests.proofs();
    assert_ne!(proofs[0].jkt, proofs[1].jkt, "a fresh key per source");
    assert_eq!(ta.dpop_key().unwrap().thumbprint(), proofs[0].jkt);
    assert_eq!(tb.dpop_key().unwrap().thumbprint(), proofs[1].jkt);

    let key = DpopKey::generate(DpopAlg::EdDSA).unwrap();
    let shared = client(&idp, Dpop::with_key(key.clone()));
    TokenSource::new(shared, ClientCredentials::new())
        .token()
        .await
        .unwrap();
    assert_eq!(token_requests.proofs()[2].jkt, key.thumbprint());

    for shown in [
        format!("{ta:?}"),
        format!("{a:?}"),
        format!("{c:?}"),
        format!("{key:?}"),
    ] {
        assert!(!shown.contains("at-1"), "{shown}");
        assert!(!shown.to_lowercase().contains("private"), "{shown}");
        assert!(!shown.contains("\"d\""), "{shown}");
    }
}

/// A bound token and its refresh token outlive the process: the store keeps the key (sealed when
/// it encrypts), and a new process, with a new key of its own, uses the stored one for the token
/// and for refreshing it.
#[cfg(feature = "file-store")]
#[tokio::test]
async fn the_key_is_stored_with_its_token_and_a_restarted_process_refreshes_with_it() {
    use oauth_layer::store::FileStore;
    let (idp, token_requests) = token_endpoint(|n, _| {
        ResponseTemplate::new(200).set_body_json(json!({
            "access_token": format!("at-{n}"),
            "token_type": "DPoP",
            "expires_in": 3600,
            "refresh_token": format!("rt-{n}"),
        }))
    })
    .await;
    let dir = std::env::temp_dir().join(format!("dpop-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let store = || FileStore::in_dir(&dir).encryption_key([9u8; 32]);

    let first = TokenSource::builder(client(&idp, Dpop::new()), ClientCredentials::new())
        .store(store())
        .build();
    let token = first.token().await.unwrap();
    let jkt = token.dpop_key().unwrap().thumbprint().to_owned();
    // Sealed: neither the token nor the key's DER is in the file.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("at-1") && !text.contains("MIG"), "{text}");
    }
    drop(first);

    // "Restart": a new client and source, which generate a new key of their own.
    let second = TokenSource::builder(client(&idp, Dpop::new()), ClientCredentials::new())
        .store(store())
        .build();
    let restored = second.token().await.unwrap();
    assert_eq!(token_requests.all().len(), 1, "served from the store");
    assert_eq!(restored.dpop_key().unwrap().thumbprint(), jkt);
    // Its refresh is signed with the stored key, the one the refresh token is bound to.
    second.invalidate(&restored);
    let refreshed = second.token().await.unwrap();
    let proofs = token_requests.proofs();
    assert_eq!(proofs.len(), 2);
    assert_eq!(proofs[1].jkt, jkt);
    assert_eq!(refreshed.dpop_key().unwrap().thumbprint(), jkt);

    // Resource requests with the restored token are signed with that key too.
    let (api, seen) = resource(|_, _, _| ResponseTemplate::new(200)).await;
    let http = http(OAuthMiddleware::from_source(second));
    http.get(format!("{}/api", api.uri())).send().await.unwrap();
    assert_eq!(seen.proofs()[0].jkt, jkt);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Against the crate's test server in its strictest mode: proofs required and checked exactly
/// (signature, `htm`, `htu`, `iat`, `jti` replay, `ath`, the token's key), nonces required at
/// the token endpoint and at the resource, each nonce good for one use only. Every request
/// must carry the nonce of the response before it: only the very first request of each
/// server meets a challenge.
#[tokio::test]
async fn a_strict_server_with_single_use_nonces_sees_one_challenge_per_server_and_no_more() {
    use oauth_layer::AuthMethod;
    use oauth_layer::testing::TestServer;
    let server = TestServer::builder()
        .client("svc", Some("s3cret"), AuthMethod::ClientSecretBasic)
        .require_dpop(true)
        .require_dpop_nonce(true)
        .require_resource_dpop_nonce(true)
        .dpop_nonce_uses(1)
        .start()
        .await
        .unwrap();
    let client = server
        .oauth_client_builder("svc")
        .unwrap()
        .dpop(Dpop::new())
        .build()
        .unwrap();
    let source = TokenSource::new(client, ClientCredentials::new().scope("api:read"));
    let http = http(OAuthMiddleware::from_source(source.clone()));
    for i in 0..5 {
        let resp = http
            .get(server.resource_url(&format!("/api/item/{i}?page={i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
    }
    let resp = http
        .post(server.resource_url("/api/echo"))
        .body("payload")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let token_log = server.token_request_log();
    assert_eq!(token_log.len(), 2, "{token_log:?}");
    assert_eq!(token_log[0].error.as_deref(), Some("use_dpop_nonce"));
    assert_eq!(token_log[1].token_type.as_deref(), Some("DPoP"));
    let resource_log = server.resource_requests();
    assert_eq!(
        resource_log.len(),
        7,
        "one nonce challenge, then straight through"
    );
    assert_eq!(resource_log[0].status, 401);
    for request in &resource_log[1..] {
        assert_eq!(request.status, 200, "{request:?}");
        let proof = request.dpop.as_ref().unwrap();
        assert!(proof.is_valid(), "{proof:?}");
        assert_eq!(request.scheme(), Some("DPoP"));
    }

    // The token is useless without the key: presented as a bearer token, or as a DPoP token
    // with a proof by another key, the resource refuses it.
    let token = source.token().await.unwrap();
    let stolen = oauth_layer::ExposeSecret::expose_secret(token.access_token()).to_owned();
    let as_bearer = reqwest::Client::new()
        .get(server.resource_url("/api/item/1"))
        .bearer_auth(&stolen)
        .send()
        .await
        .unwrap();
    assert_eq!(as_bearer.status(), 401);
    let thief = DpopKey::generate(DpopAlg::ES256).unwrap();
    let url = server.resource_url("/api/item/1");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = thief
        .proof(
            "GET",
            &url,
            now,
            Some(&stolen),
            Some(&server.resource_dpop_nonce()),
        )
        .unwrap();
    let with_other_key = reqwest::Client::new()
        .get(&url)
        .header("authorization", format!("DPoP {stolen}"))
        .header("dpop", forged)
        .send()
        .await
        .unwrap();
    assert_eq!(with_other_key.status(), 401);
}
