//! The fleet the Redis tests renew for: a rotating authorization server whose refresh tokens
//! are single use, a client of it, the spent token the fleet starts from, and how often a
//! refresh token reached the server.

use std::time::Duration;

use oauth_layer::clock::SystemClock;
use oauth_layer::{OAuthClient, RetryPolicy, Token};
use serde_json::json;
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
