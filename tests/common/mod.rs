//! Shared test doubles: the token endpoint of `oauth_layer::testing::TestServer` issuing
//! numbered tokens, and an API that accepts them until they are revoked.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

pub mod logs;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oauth_layer::testing::TestServer;
use oauth_layer::{AuthMethod, OAuthClient};

/// A [`TestServer`] whose client `client` (secret `client-secret`, HTTP Basic) gets `tok-1`,
/// `tok-2`, ... with a fixed lifetime.
pub struct Idp {
    pub server: TestServer,
}

impl Idp {
    pub async fn start(lifetime_secs: u64) -> Self {
        let server = TestServer::builder()
            .client(
                "client",
                Some("client-secret"),
                AuthMethod::ClientSecretBasic,
            )
            .access_token_lifetime(Duration::from_secs(lifetime_secs))
            .numbered_access_tokens("tok-")
            .start()
            .await
            .unwrap();
        Self { server }
    }

    pub fn token_url(&self) -> String {
        self.server.token_url()
    }

    /// Token requests answered so far.
    pub fn issued(&self) -> usize {
        self.server.token_requests()
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
