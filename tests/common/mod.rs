//! Shared test doubles: a token endpoint that issues numbered tokens, and an API that accepts
//! them until they are revoked.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod logs;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use oauth_layer::OAuthClient;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// A token endpoint issuing `tok-1`, `tok-2`, ... with a fixed lifetime.
pub struct Idp {
    pub server: MockServer,
    issued: Arc<AtomicUsize>,
}

impl Idp {
    pub async fn start(lifetime_secs: u64) -> Self {
        let server = MockServer::start().await;
        let issued = Arc::new(AtomicUsize::new(0));
        let counter = issued.clone();
        Mock::given(method("POST"))
            .and(path("/token"))
            .respond_with(move |_: &Request| {
                let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                ResponseTemplate::new(200).set_body_json(serde_json::json!({
                    "access_token": format!("tok-{n}"),
                    "token_type": "Bearer",
                    "expires_in": lifetime_secs,
                }))
            })
            .mount(&server)
            .await;
        Self { server, issued }
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.server.uri())
    }

    /// Token requests answered so far.
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }

    pub fn client(&self) -> OAuthClient {
        OAuthClient::builder("client")
            .secret("client-secret")
            .token_url(self.token_url())
            .build()
            .unwrap()
    }
}

/// What the API saw: the Authorization header and the body of each request.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub authorization: Option<String>,
    pub body: Vec<u8>,
}

/// Which tokens the API rejects, and what it has seen.
#[derive(Default, Clone)]
pub struct ApiState {
    pub revoked: Arc<Mutex<HashSet<String>>>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl ApiState {
    pub fn revoke(&self, token: &str) {
        self.revoked
            .lock()
            .unwrap()
            .insert(format!("Bearer {token}"));
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The answer of an API that wants a bearer token not yet revoked.
    pub fn answer(&self, authorization: Option<&str>, body: &[u8]) -> (u16, Option<&'static str>) {
        self.seen.lock().unwrap().push(Seen {
            authorization: authorization.map(str::to_owned),
            body: body.to_vec(),
        });
        match authorization {
            None => (401, Some("Bearer realm=\"api\"")),
            Some(a) if self.revoked.lock().unwrap().contains(a) => {
                (401, Some("Bearer realm=\"api\", error=\"invalid_token\""))
            }
            Some(_) => (200, None),
        }
    }
}
