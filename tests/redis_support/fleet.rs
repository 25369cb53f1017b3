//! The fleet the Redis tests renew for: a rotating authorization server whose refresh tokens
//! are single use, a client of it, the spent token the fleet starts from, how often a refresh
//! token reached the server, and what a failover in the middle of a renewal left behind.

use std::time::Duration;

use oauth_layer::clock::SystemClock;
use oauth_layer::flow::ClientCredentials;
use oauth_layer::store::{CacheKey, RedisStore, TokenStore};
use oauth_layer::{OAuthClient, RetryPolicy, Token, TokenSource};
use secrecy::ExposeSecret;
use serde_json::json;
use tokio::task::JoinHandle;
use wiremock::matchers::{body_string_contains, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A rotating authorization server: `rt-1` is answered once, after `delay`, with `at-2`/`rt-2`;
/// anything else sent to it (`rt-1` a second time, any other grant) is `invalid_grant`, the
/// grant revoked. A test that renews more than once mounts its further answers beside these
/// (at priority 1, ahead of the catch-all's 2).
pub async fn rotating_idp(delay: Duration) -> MockServer {
    let idp = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_string_contains("refresh_token=rt-1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({
                    "access_token": "at-2", "token_type": "Bearer", "expires_in": 3600,
                    "refresh_token": "rt-2",
                }))
                .set_delay(delay),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&idp)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "error": "invalid_grant",
            "error_description": "refresh token already used; grant revoked",
        })))
        .with_priority(2)
        .mount(&idp)
        .await;
    idp
}

/// The client `id` (its secret `{id}-secret`) of `idp`'s token endpoint. It never retries, so
/// the requests a test counts on `idp` are the token requests its renewals made, each once.
pub fn client(idp: &MockServer, id: &str) -> OAuthClient {
    OAuthClient::builder(id)
        .secret(format!("{id}-secret"))
        .token_url(format!("{}/token", idp.uri()))
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap()
}

/// The token the fleet holds before a renewal: `at-1`, already expired, with `rt-1`, the
/// refresh token [`rotating_idp`] answers once.
pub fn spent_token() -> Token {
    Token::builder("at-1")
        .expires_in(Duration::ZERO)
        .refresh_token("rt-1")
        .build(&SystemClock)
        .unwrap()
}

/// How many requests `idp` received with `needle` in their body (with `refresh_token=rt-1`:
/// how often `rt-1` was sent).
pub async fn requests_with(idp: &MockServer, needle: &str) -> usize {
    idp.received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains(needle))
        .count()
}

/// What a failover in the middle of a renewal left behind. The Sentinel and the Redis Cluster
/// tests stage the failover each their own way (`tests/redis_failover.rs`,
/// `tests/redis_cluster.rs`); what they look at afterwards, and what they expect of it, is the
/// same.
pub struct Aftermath {
    /// Whether the renewing process had handed its new token out before the primary died.
    pub handed_out_before_failover: bool,
    /// What the renewing process got.
    pub renewed: Option<String>,
    /// The refresh token the new primary (the promoted replica) holds.
    pub surviving_refresh_token: Option<String>,
    /// What the next process got (an error's text when it failed).
    pub next_process: Result<String, String>,
    /// How often the token endpoint received `rt-1`, and any request at all.
    pub rt1_sent: usize,
    pub requests: usize,
}

impl Aftermath {
    /// Once the failover is over: waits for `renewal` (the renewing process's `token()`), reads
    /// the refresh token `survivor` (a store on the new primary) holds for `key`, and lets the
    /// next process, a client credentials source of `client` on `survivor`, ask for a token.
    pub async fn gather(
        handed_out_before_failover: bool,
        renewal: JoinHandle<oauth_layer::Result<Token>>,
        survivor: RedisStore,
        client: OAuthClient,
        key: &CacheKey,
        idp: &MockServer,
    ) -> Self {
        let renewed = renewal
            .await
            .unwrap()
            .map_err(|e| eprintln!("the renewal failed: {e}"))
            .ok()
            .map(|t| t.access_token().expose_secret().to_owned());
        let surviving_refresh_token = survivor
            .load(key)
            .await
            .unwrap()
            .and_then(|t| t.refresh_token().map(|r| r.expose_secret().to_owned()));
        let next = TokenSource::builder(client, ClientCredentials::new())
            .store(survivor)
            .build();
        let next_process = next
            .token()
            .await
            .map(|t| t.access_token().expose_secret().to_owned())
            .map_err(|e| e.to_string());
        Self {
            handed_out_before_failover,
            renewed,
            surviving_refresh_token,
            next_process,
            rt1_sent: requests_with(idp, "refresh_token=rt-1").await,
            requests: idp.received_requests().await.unwrap().len(),
        }
    }

    /// What a failover without durability costs: the renewal handed `at-2` out as soon as the
    /// primary had `rt-2`, the failover lost `rt-2`, the next process sent `rt-1` again, and the
    /// server revoked the grant.
    #[track_caller]
    pub fn assert_rotated_refresh_token_lost(&self) {
        assert!(self.handed_out_before_failover);
        assert_eq!(self.renewed.as_deref(), Some("at-2"));
        assert_eq!(self.surviving_refresh_token.as_deref(), Some("rt-1"));
        assert_eq!(self.rt1_sent, 2, "the spent refresh token was sent again");
        let error = self.next_process.as_ref().unwrap_err();
        assert!(error.contains("invalid_grant"), "{error}");
    }

    /// What durability keeps: the renewal handed `at-2` out only once a replica held `rt-2`, the
    /// new primary holds `rt-2`, and the next process got `at-2`; `rt-1` was sent once.
    #[track_caller]
    pub fn assert_rotated_refresh_token_survived(&self) {
        assert!(
            !self.handed_out_before_failover,
            "the token was handed out before a replica held it"
        );
        assert_eq!(self.renewed.as_deref(), Some("at-2"));
        assert_eq!(self.surviving_refresh_token.as_deref(), Some("rt-2"));
        assert_eq!(self.next_process.as_deref(), Ok("at-2"));
        assert_eq!(self.rt1_sent, 1);
    }
}
