//! Token endpoint responses, good and hostile, through the public API (SECURITY.md §C, rules
//! 15 and 17–21, and rule 38 for what error snippets may show).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use http::StatusCode;
use oauth_layer::clock::{Clock, ManualClock};
use oauth_layer::{
    DEFAULT_LIFETIME, Error, ErrorCode, MAX_LIFETIME, OAuthClient, ResponseError, ServerError,
    Token, TokenRequest,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const CLIENT_SECRET: &str = "cl13nt-s3cr3t-value";
const REQUESTED_SCOPE: &str = "read write";

/// A token endpoint that answers every request with `response`, exactly once.
async fn endpoint(response: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(response)
        .expect(1)
        .mount(&server)
        .await;
    server
}

fn client(server: &MockServer, clock: &ManualClock) -> OAuthClient {
    OAuthClient::builder("test-client")
        .secret(CLIENT_SECRET)
        .clock(clock.clone())
        .token_url(format!("{}/token", server.uri()))
        .build()
        .unwrap()
}

/// One client credentials request (never replayed) against an endpoint that answers `response`.
async fn fetch_with(
    response: ResponseTemplate,
    client_of: fn(OAuthClient) -> OAuthClient,
) -> Result<Token, Error> {
    let server = endpoint(response).await;
    let clock = ManualClock::new();
    let client = client_of(client(&server, &clock));
    client
        .request_token(TokenRequest::new("client_credentials").scope(REQUESTED_SCOPE))
        .await
}

async fn fetch(response: ResponseTemplate) -> Result<Token, Error> {
    fetch_with(response, |c| c).await
}

fn json_body(status: u16, body: Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

fn raw_body(status: u16, body: impl Into<Vec<u8>>, content_type: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.into(), content_type)
}

/// A well-formed bearer token response with `member` set to `value` (or removed when `None`).
fn token_body_with(member: &str, value: Option<Value>) -> Value {
    let mut body = json!({
        "access_token": "AT-good-0123456789",
        "token_type": "Bearer",
        "expires_in": 3600,
    });
    let map = body.as_object_mut().unwrap();
    match value {
        Some(v) => map.insert(member.to_owned(), v),
        None => map.remove(member),
    };
    body
}

/// The `ResponseError` of an `UnexpectedResponse`, or a panic naming what came instead.
fn unexpected(result: Result<Token, Error>) -> ResponseError {
    match result {
        Err(Error::UnexpectedResponse(e)) => e,
        other => panic!("expected Error::UnexpectedResponse, got {other:?}"),
    }
}

fn server_error(result: Result<Token, Error>) -> ServerError {
    match result {
        Err(Error::Server(e)) => e,
        other => panic!("expected Error::Server, got {other:?}"),
    }
}

fn assert_short(snippet: &str) {
    assert!(
        snippet.chars().count() <= 201,
        "snippet of {} chars: {snippet}",
        snippet.chars().count()
    );
    assert!(!snippet.chars().any(char::is_control), "{snippet:?}");
}

// ---------------------------------------------------------------------------------------------
// Rule 15: every response is classified, without panicking.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn html_body_is_a_typed_error_with_a_short_snippet() {
    let html = format!(
        "<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>{}</body></html>",
        "<p>Please sign in to continue.</p>\r\n".repeat(200)
    );
    let err = unexpected(fetch(raw_body(200, html, "text/html; charset=utf-8")).await);

    assert_eq!(err.problem, "body is not JSON");
    assert_eq!(err.status, Some(StatusCode::OK));
    assert_eq!(
        err.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert!(
        err.snippet.starts_with("<!DOCTYPE html> <html>"),
        "{}",
        err.snippet
    );
    assert_short(&err.snippet);
    assert_eq!(err.retry_after, None);
}

#[tokio::test]
async fn empty_body_is_a_typed_error() {
    let err = unexpected(fetch(ResponseTemplate::new(200)).await);

    assert_eq!(err.problem, "empty body");
    assert_eq!(err.status, Some(StatusCode::OK));
    assert_eq!(err.content_type, None);
    assert_eq!(err.snippet, "");
}

#[tokio::test]
async fn json_array_string_and_number_bodies_are_not_token_responses() {
    for body in [
        r#"[{"access_token":"AT-in-an-array","token_type":"Bearer"}]"#,
        r#""AT-as-a-bare-string""#,
        "3600",
        "null",
    ] {
        let err = unexpected(fetch(raw_body(200, body, "application/json")).await);

        assert_eq!(err.problem, "JSON body is not an object", "body {body}");
        assert_eq!(err.status, Some(StatusCode::OK));
        assert_eq!(err.content_type.as_deref(), Some("application/json"));
        assert!(!err.snippet.contains("AT-in-an-array"), "{}", err.snippet);
        assert_short(&err.snippet);
    }
}

#[tokio::test]
async fn invalid_utf8_body_is_a_typed_error() {
    let mut body = br#"{"access_token":"AT-"#.to_vec();
    body.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28]);
    body.extend_from_slice(br#"","token_type":"Bearer"}"#);
    let err = unexpected(fetch(raw_body(200, body, "application/json")).await);

    assert_eq!(err.problem, "body is not UTF-8");
    assert_eq!(err.status, Some(StatusCode::OK));
    assert_short(&err.snippet);
    assert!(!err.snippet.contains("AT-"), "{}", err.snippet);
}

#[tokio::test]
async fn status_200_carrying_an_oauth_error_is_an_error_not_a_token() {
    let body = json!({
        "access_token": "AT-should-never-be-used",
        "token_type": "Bearer",
        "error": "invalid_grant",
        "error_description": "code expired",
    });
    let err = server_error(fetch(json_body(200, body)).await);

    assert_eq!(err.status, StatusCode::OK);
    assert_eq!(err.code, ErrorCode::InvalidGrant);
    assert_eq!(err.description.as_deref(), Some("code expired"));
}

#[tokio::test]
async fn github_style_form_encoded_error_with_status_200_is_an_oauth_error() {
    let body = "error=bad_verification_code&error_description=The+code+passed+is+incorrect+or+expired.&error_uri=https%3A%2F%2Fdocs.github.com%2Foauth";
    let err = server_error(
        fetch(raw_body(
            200,
            body,
            "application/x-www-form-urlencoded; charset=utf-8",
        ))
        .await,
    );

    assert_eq!(err.status, StatusCode::OK);
    assert_eq!(err.code, ErrorCode::Other("bad_verification_code".into()));
    assert_eq!(
        err.description.as_deref(),
        Some("The code passed is incorrect or expired.")
    );
    assert_eq!(err.uri.as_deref(), Some("https://docs.github.com/oauth"));
}

#[tokio::test]
async fn rfc6749_error_response_keeps_code_description_and_uri() {
    let body = json!({
        "error": "invalid_grant",
        "error_description": "The refresh token has been revoked",
        "error_uri": "https://idp.example/docs/errors#invalid_grant",
    });
    let result = fetch(json_body(400, body)).await;
    assert!(result.as_ref().is_err_and(Error::is_invalid_grant));
    let err = server_error(result);

    assert_eq!(err.status, StatusCode::BAD_REQUEST);
    assert_eq!(err.code, ErrorCode::InvalidGrant);
    assert_eq!(
        err.description.as_deref(),
        Some("The refresh token has been revoked")
    );
    assert_eq!(
        err.uri.as_deref(),
        Some("https://idp.example/docs/errors#invalid_grant")
    );
    assert_eq!(err.retry_after, None);
}

#[tokio::test]
async fn every_rfc6749_error_code_is_typed_and_unknown_codes_are_kept() {
    for (code, expected) in [
        ("invalid_request", ErrorCode::InvalidRequest),
        ("invalid_client", ErrorCode::InvalidClient),
        ("invalid_grant", ErrorCode::InvalidGrant),
        ("unauthorized_client", ErrorCode::UnauthorizedClient),
        ("unsupported_grant_type", ErrorCode::UnsupportedGrantType),
        ("invalid_scope", ErrorCode::InvalidScope),
        ("temporarily_unavailable", ErrorCode::TemporarilyUnavailable),
        ("server_error", ErrorCode::ServerError),
        ("consent_required", ErrorCode::ConsentRequired),
        (
            "quota_exhausted",
            ErrorCode::Other("quota_exhausted".into()),
        ),
    ] {
        let err = server_error(fetch(json_body(400, json!({ "error": code }))).await);
        assert_eq!(err.code, expected);
        assert_eq!(err.description, None);
        assert_eq!(err.uri, None);
    }
}

#[tokio::test]
async fn status_200_carrying_a_non_string_error_is_never_a_token() {
    let body = json!({
        "access_token": "AT-should-never-be-used",
        "token_type": "Bearer",
        "error": { "code": "invalid_grant" },
    });
    let err = unexpected(fetch(json_body(200, body)).await);

    assert_eq!(err.problem, "error member is not a string");
    assert_eq!(err.status, Some(StatusCode::OK));
    assert!(!err.snippet.contains("AT-should"), "{}", err.snippet);
}

#[tokio::test]
async fn a_null_error_member_on_success_is_ignored() {
    let body = token_body_with("error", Some(Value::Null));
    let token = fetch(json_body(200, body)).await.unwrap();

    assert_eq!(token.access_token().expose_secret(), "AT-good-0123456789");
}

#[tokio::test]
async fn unknown_error_codes_are_printable_and_redacted() {
    let body = json!({ "error": format!("bad_secret_{CLIENT_SECRET}\r\nX-Injected: 1") });
    let result = fetch(json_body(400, body)).await;
    let shown = format!("{}", result.as_ref().unwrap_err());
    let err = server_error(result);

    assert_eq!(
        err.code,
        ErrorCode::Other("bad_secret_[redacted]  X-Injected: 1".into())
    );
    assert!(
        !shown.contains(CLIENT_SECRET) && !shown.contains('\n'),
        "{shown}"
    );
}

#[tokio::test]
async fn deeply_nested_json_is_a_typed_error_not_a_stack_overflow() {
    let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = unexpected(fetch(raw_body(200, body, "application/json")).await);

    assert_eq!(err.problem, "body is not JSON");
    assert_short(&err.snippet);
}

#[tokio::test]
async fn error_description_echoing_the_client_secret_is_redacted() {
    let body = json!({
        "error": "invalid_client",
        "error_description": format!("client secret '{CLIENT_SECRET}' does not match"),
    });
    let result = fetch(json_body(401, body)).await;
    let shown = format!("{result:?} {}", result.as_ref().unwrap_err());
    assert!(!shown.contains(CLIENT_SECRET), "{shown}");
    let err = server_error(result);

    assert_eq!(err.status, StatusCode::UNAUTHORIZED);
    assert_eq!(err.code, ErrorCode::InvalidClient);
    assert_eq!(
        err.description.as_deref(),
        Some("client secret '[redacted]' does not match")
    );
}

#[tokio::test]
async fn huge_error_description_is_shortened_and_printable() {
    let body = json!({
        "error": "invalid_request",
        "error_description": "line\r\nbreak ".repeat(10_000),
    });
    let err = server_error(fetch(json_body(400, body)).await);

    let description = err.description.unwrap();
    assert!(description.chars().count() <= 301, "{}", description.len());
    assert!(!description.chars().any(char::is_control));
}

#[tokio::test]
async fn server_error_500_with_html_is_a_retryable_typed_error() {
    let html = "<html><body><h1>500 Internal Server Error</h1></body></html>";
    let result = fetch(raw_body(500, html, "text/html")).await;
    assert!(result.as_ref().unwrap_err().is_transient());
    let err = unexpected(result);

    assert_eq!(err.problem, "body is not JSON");
    assert_eq!(err.status, Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(err.content_type.as_deref(), Some("text/html"));
    assert_eq!(err.snippet, html);
}

#[tokio::test]
async fn error_status_with_json_but_no_error_code_is_unexpected() {
    let err = unexpected(fetch(json_body(400, json!({ "message": "bad" }))).await);

    assert_eq!(err.problem, "error status without an OAuth error code");
    assert_eq!(err.status, Some(StatusCode::BAD_REQUEST));
    assert_eq!(err.snippet, r#"{"message":"bad"}"#);
}

#[tokio::test]
async fn error_status_carrying_a_token_is_never_a_token() {
    let body = json!({ "access_token": "AT-on-a-404", "token_type": "Bearer" });
    let err = unexpected(fetch(json_body(404, body)).await);

    assert_eq!(err.problem, "error status without an OAuth error code");
    assert_eq!(err.status, Some(StatusCode::NOT_FOUND));
    assert!(!err.snippet.contains("AT-on-a-404"), "{}", err.snippet);
}

#[tokio::test]
async fn unknown_members_are_kept_in_extra() {
    let body = json!({
        "access_token": "AT-good-0123456789",
        "token_type": "Bearer",
        "expires_in": 3600,
        "id_token": "eyJ.id.token",
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "ext_expires_in": 3599,
        "tenant": { "id": "acme", "region": "eu" },
        "not_before": null,
    });
    let token = fetch(json_body(200, body)).await.unwrap();

    let extra = token.extra();
    assert_eq!(extra.get("ext_expires_in"), Some(&json!(3599)));
    assert_eq!(
        extra.get("tenant"),
        Some(&json!({ "id": "acme", "region": "eu" }))
    );
    assert_eq!(extra.get("not_before"), Some(&Value::Null));
    assert_eq!(
        extra.len(),
        3,
        "interpreted members are not repeated: {extra:?}"
    );
    assert_eq!(token.id_token().unwrap().expose_secret(), "eyJ.id.token");
    assert_eq!(
        token.issued_token_type(),
        Some("urn:ietf:params:oauth:token-type:access_token")
    );
}

#[tokio::test]
async fn github_style_form_encoded_success_is_accepted() {
    let clock = ManualClock::new();
    let server = endpoint(raw_body(
        200,
        "access_token=gho_16C7e42F292c6912E7710c838347Ae178B4a&scope=repo%2Cgist&token_type=bearer&expires_in=28800&refresh_token=ghr_1B4a2e77838347a7E420ce178F2E7c6912E169246",
        "application/x-www-form-urlencoded; charset=utf-8",
    ))
    .await;
    let token = client(&server, &clock)
        .request_token(TokenRequest::new("authorization_code").secret_param("code", "c0de"))
        .await
        .unwrap();

    assert_eq!(
        token.access_token().expose_secret(),
        "gho_16C7e42F292c6912E7710c838347Ae178B4a"
    );
    assert_eq!(
        token.header_value().to_str().unwrap(),
        "Bearer gho_16C7e42F292c6912E7710c838347Ae178B4a"
    );
    assert!(token.header_value().is_sensitive());
    assert_eq!(token.token_type(), "bearer");
    assert_eq!(token.scope(), Some("repo,gist"));
    assert_eq!(token.expires_at(), clock.now() + Duration::from_secs(28800));
    assert_eq!(
        token.refresh_token().unwrap().expose_secret(),
        "ghr_1B4a2e77838347a7E420ce178F2E7c6912E169246"
    );
}

// ---------------------------------------------------------------------------------------------
// Snippets: short, and never the tokens in the body nor the secrets we sent (rule 38).
// ---------------------------------------------------------------------------------------------

/// Everything a caller could print about an error.
fn printed(err: &Error) -> String {
    format!("{err} {err:?}")
}

#[tokio::test]
async fn snippets_never_show_token_values_from_a_json_body() {
    let body = json!({
        "access_token": "AT secret with a space",
        "refresh_token": "RT-secret-refresh-value",
        "token_type": "Bearer",
        "expires_in": 3600,
    });
    let result = fetch(json_body(200, body)).await;
    let shown = printed(result.as_ref().unwrap_err());
    let err = unexpected(result);

    assert_eq!(
        err.problem,
        "access_token contains characters not allowed in an HTTP header"
    );
    for leaked in ["AT secret", "RT-secret-refresh-value"] {
        assert!(!err.snippet.contains(leaked), "{}", err.snippet);
        assert!(!shown.contains(leaked), "{shown}");
    }
    assert!(
        err.snippet.contains(r#""expires_in":3600"#),
        "{}",
        err.snippet
    );
}

#[tokio::test]
async fn snippets_never_show_token_values_from_a_broken_json_body() {
    // Not valid JSON (a trailing comma and a cut-off end), so it cannot be redacted as JSON.
    let body = r#"{"access_token": "AT-secret-in-broken-json", "refresh_token":"RT-secret-in-broken-json", "#;
    let result = fetch(raw_body(200, body, "application/json")).await;
    let shown = printed(result.as_ref().unwrap_err());
    let err = unexpected(result);

    assert_eq!(err.problem, "body is not JSON");
    for leaked in ["AT-secret-in-broken-json", "RT-secret-in-broken-json"] {
        assert!(!err.snippet.contains(leaked), "{}", err.snippet);
        assert!(!shown.contains(leaked), "{shown}");
    }
    assert!(
        err.snippet.starts_with(r#"{"access_token""#),
        "{}",
        err.snippet
    );
}

#[tokio::test]
async fn snippets_never_show_token_values_from_a_form_encoded_body() {
    let body = "access_token=AT-form-secret%0D%0Ainjected&scope=repo&refresh_token=RT-form-secret&token_type=bearer";
    let result = fetch(raw_body(200, body, "application/x-www-form-urlencoded")).await;
    let shown = printed(result.as_ref().unwrap_err());
    let err = unexpected(result);

    assert_eq!(
        err.problem,
        "access_token contains characters not allowed in an HTTP header"
    );
    for leaked in ["AT-form-secret", "RT-form-secret"] {
        assert!(!err.snippet.contains(leaked), "{}", err.snippet);
        assert!(!shown.contains(leaked), "{shown}");
    }
    assert!(err.snippet.contains("&scope=repo&"), "{}", err.snippet);
}

#[tokio::test]
async fn snippets_never_show_token_values_from_a_json_body_too_long_to_redact_as_json() {
    let body = json!({
        "access_token": "AT-secret-before-padding with space",
        "token_type": "Bearer",
        "padding": "x".repeat(100 * 1024),
    });
    let result = fetch(json_body(200, body)).await;
    let shown = printed(result.as_ref().unwrap_err());
    let err = unexpected(result);

    assert_short(&err.snippet);
    assert!(!err.snippet.contains("AT-secret"), "{}", err.snippet);
    assert!(!shown.contains("AT-secret"), "{shown}");
}

#[tokio::test]
async fn snippets_never_show_the_client_secret_echoed_in_html() {
    let html = format!("<html><body>Bad credentials for test-client:{CLIENT_SECRET}</body></html>");
    let result = fetch(raw_body(401, html, "text/html")).await;
    let shown = printed(result.as_ref().unwrap_err());
    let err = unexpected(result);

    assert_eq!(err.status, Some(StatusCode::UNAUTHORIZED));
    assert_eq!(
        err.snippet,
        "<html><body>Bad credentials for test-client:[redacted]</body></html>"
    );
    assert!(!shown.contains(CLIENT_SECRET), "{shown}");
}

#[tokio::test]
async fn snippets_never_show_the_refresh_token_we_sent_echoed_back() {
    let clock = ManualClock::new();
    let server = endpoint(raw_body(
        502,
        "upstream rejected refresh_token RT-we-sent-0123 for test-client",
        "text/plain",
    ))
    .await;
    let result = client(&server, &clock)
        .refresh(&SecretString::from("RT-we-sent-0123"))
        .await;
    let shown = printed(result.as_ref().unwrap_err());
    let err = unexpected(result);

    assert_eq!(err.status, Some(StatusCode::BAD_GATEWAY));
    assert!(!err.snippet.contains("RT-we-sent-0123"), "{}", err.snippet);
    assert!(!shown.contains("RT-we-sent-0123"), "{shown}");
}

// ---------------------------------------------------------------------------------------------
// Rule 17: the access token must be usable as a header value.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unusable_access_tokens_are_typed_errors_never_panics() {
    let not_header_safe = "access_token contains characters not allowed in an HTTP header";
    for (value, problem) in [
        (json!(""), "access_token is empty"),
        (json!(12345), "access_token is not a string"),
        (json!(null), "access_token is not a string"),
        (json!(["AT"]), "access_token is not a string"),
        (json!({ "value": "AT" }), "access_token is not a string"),
        (json!("AT-abc\r\nX-Injected: 1"), not_header_safe),
        (json!("AT-abc\nX-Injected: 1"), not_header_safe),
        (json!("AT abc"), not_header_safe),
        (json!("AT-abc\u{1}"), not_header_safe),
        (json!("AT-abc\u{7f}"), not_header_safe),
        (json!("AT-abc\t"), not_header_safe),
        (json!("AT-t\u{f6}k\u{e9}n"), not_header_safe),
        (json!("AT-\u{1F511}"), not_header_safe),
    ] {
        let body = token_body_with("access_token", Some(value.clone()));
        let err = unexpected(fetch(json_body(200, body)).await);
        assert_eq!(err.problem, problem, "access_token {value}");
        assert_eq!(err.status, Some(StatusCode::OK));
    }
}

#[tokio::test]
async fn missing_access_token_is_a_typed_error() {
    let err = unexpected(fetch(json_body(200, token_body_with("access_token", None))).await);

    assert_eq!(err.problem, "no access_token");
}

// ---------------------------------------------------------------------------------------------
// Rule 18: only bearer tokens.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bearer_token_type_is_matched_case_insensitively() {
    for token_type in ["bearer", "BEARER", "Bearer", "bEaReR"] {
        let body = token_body_with("token_type", Some(json!(token_type)));
        let token = fetch(json_body(200, body)).await.unwrap();

        assert_eq!(token.token_type(), token_type);
        assert_eq!(
            token.header_value().to_str().unwrap(),
            "Bearer AT-good-0123456789"
        );
    }
}

#[tokio::test]
async fn non_bearer_token_types_are_refused() {
    for token_type in ["mac", "N_A", "DPoP", "bearer ", "Bearer2", ""] {
        let body = token_body_with("token_type", Some(json!(token_type)));
        match fetch(json_body(200, body)).await {
            Err(Error::UnsupportedTokenType { token_type: got }) => assert_eq!(got, token_type),
            other => panic!("token_type {token_type:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_very_long_token_type_is_shortened_in_the_error() {
    let body = token_body_with("token_type", Some(json!("x".repeat(10_000))));
    match fetch(json_body(200, body)).await {
        Err(Error::UnsupportedTokenType { token_type }) => assert_eq!(token_type, "x".repeat(64)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn missing_token_type_is_an_error_by_default() {
    for value in [None, Some(Value::Null)] {
        let body = token_body_with("token_type", value);
        let err = unexpected(fetch(json_body(200, body)).await);

        assert_eq!(
            err.problem,
            "no token_type (enable lenient_token_type for servers that omit it)"
        );
        assert!(!err.snippet.contains("AT-good"), "{}", err.snippet);
    }
}

#[tokio::test]
async fn missing_token_type_is_accepted_as_bearer_when_lenient() {
    for value in [None, Some(Value::Null)] {
        let body = token_body_with("token_type", value);
        let token = fetch_with(json_body(200, body), |c| {
            c.to_builder().lenient_token_type(true).build().unwrap()
        })
        .await
        .unwrap();

        assert_eq!(token.token_type(), "Bearer");
        assert_eq!(
            token.header_value().to_str().unwrap(),
            "Bearer AT-good-0123456789"
        );
    }
}

#[tokio::test]
async fn lenient_mode_still_refuses_a_non_bearer_type() {
    let body = token_body_with("token_type", Some(json!("mac")));
    let result = fetch_with(json_body(200, body), |c| {
        c.to_builder().lenient_token_type(true).build().unwrap()
    })
    .await;

    assert!(
        matches!(&result, Err(Error::UnsupportedTokenType { token_type }) if token_type == "mac"),
        "{result:?}"
    );
}

#[tokio::test]
async fn non_string_token_type_is_a_typed_error() {
    let body = token_body_with("token_type", Some(json!(1)));
    let err = unexpected(fetch(json_body(200, body)).await);

    assert_eq!(err.problem, "token_type is not a string");
}

// ---------------------------------------------------------------------------------------------
// Rule 19: expires_in.
// ---------------------------------------------------------------------------------------------

/// The token a server sends with `expires_in` set to `value` (removed when `None`), and the
/// clock it was stamped with.
async fn token_expiring(value: Option<Value>) -> (Token, ManualClock) {
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(12_345));
    let server = endpoint(json_body(200, token_body_with("expires_in", value))).await;
    let token = client(&server, &clock)
        .request_token(TokenRequest::new("client_credentials"))
        .await
        .unwrap();
    (token, clock)
}

async fn assert_lifetime(value: Option<Value>, lifetime: Duration, reported: bool) {
    let shown = format!("{value:?}");
    let (token, clock) = token_expiring(value).await;
    assert_eq!(token.lifetime(), lifetime, "expires_in {shown}");
    assert_eq!(
        token.expires_at(),
        clock.now() + lifetime,
        "expires_in {shown}"
    );
    assert_eq!(
        token.expires_at_utc(),
        clock.now_utc() + lifetime,
        "expires_in {shown}"
    );
    assert_eq!(
        token.lifetime_was_reported(),
        reported,
        "expires_in {shown}"
    );
}

#[tokio::test]
async fn expires_in_as_a_number_or_numeric_string() {
    let hour = Duration::from_secs(3600);
    assert_lifetime(Some(json!(3600)), hour, true).await;
    assert_lifetime(Some(json!("3600")), hour, true).await;
    assert_lifetime(Some(json!(" 3600 ")), hour, true).await;
    assert_lifetime(Some(json!(3600.0)), hour, true).await;
}

#[tokio::test]
async fn fractional_expires_in_floors() {
    let hour = Duration::from_secs(3600);
    assert_lifetime(Some(json!(3600.9)), hour, true).await;
    assert_lifetime(Some(json!("3600.9")), hour, true).await;
    assert_lifetime(Some(json!(0.5)), Duration::ZERO, true).await;
}

#[tokio::test]
async fn missing_or_null_expires_in_gets_the_documented_default() {
    assert_eq!(DEFAULT_LIFETIME, Duration::from_secs(3600));
    assert_lifetime(None, DEFAULT_LIFETIME, false).await;
    assert_lifetime(Some(Value::Null), DEFAULT_LIFETIME, false).await;
}

#[tokio::test]
async fn missing_expires_in_uses_the_clients_default_lifetime() {
    let lifetime = Duration::from_secs(300);
    let clock = ManualClock::new();
    let server = endpoint(json_body(200, token_body_with("expires_in", None))).await;
    let token = client(&server, &clock)
        .to_builder()
        .default_lifetime(lifetime)
        .build()
        .unwrap()
        .request_token(TokenRequest::new("client_credentials"))
        .await
        .unwrap();

    assert_eq!(token.expires_at(), clock.now() + lifetime);
    assert!(!token.lifetime_was_reported());
}

#[tokio::test]
async fn garbage_expires_in_gets_the_default() {
    for value in [
        json!("soon"),
        json!(""),
        json!("3600s"),
        json!("inf"),
        json!("Infinity"),
        json!("-inf"),
        json!("NaN"),
        json!(true),
        json!([3600]),
        json!({ "seconds": 3600 }),
    ] {
        assert_lifetime(Some(value), DEFAULT_LIFETIME, false).await;
    }
}

#[tokio::test]
async fn zero_or_negative_expires_in_is_already_expired() {
    for value in [json!(0), json!(-5), json!("-5"), json!(-1e300), json!("0")] {
        let shown = value.to_string();
        let (token, clock) = token_expiring(Some(value)).await;

        assert_eq!(token.lifetime(), Duration::ZERO, "expires_in {shown}");
        assert_eq!(token.expires_at(), clock.now(), "expires_in {shown}");
        assert!(token.is_expired_at(clock.now()), "expires_in {shown}");
        assert!(token.lifetime_was_reported());
    }
}

#[tokio::test]
async fn huge_expires_in_clamps_to_max_lifetime_without_overflow() {
    for value in [
        json!(1e300),
        json!(99_999_999_999_999_999_999.0),
        json!(u64::MAX),
        json!("99999999999999999999"),
        json!("1e300"),
        json!("1e400"),
    ] {
        assert_lifetime(Some(value), MAX_LIFETIME, true).await;
    }
}

#[tokio::test]
async fn a_token_is_fresh_until_its_lifetime_passes() {
    let (token, clock) = token_expiring(Some(json!(60))).await;

    assert!(!token.is_expired_at(clock.now()));
    clock.advance(Duration::from_secs(59));
    assert!(!token.is_expired_at(clock.now()));
    clock.advance(Duration::from_secs(1));
    assert!(token.is_expired_at(clock.now()));
}

// ---------------------------------------------------------------------------------------------
// Rule 20: granted scope.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn absent_scope_means_the_requested_scope() {
    let token = fetch(json_body(200, token_body_with("scope", None)))
        .await
        .unwrap();

    assert_eq!(token.scope(), Some(REQUESTED_SCOPE));
    assert_eq!(token.scopes().collect::<Vec<_>>(), ["read", "write"]);
}

#[tokio::test]
async fn absent_scope_without_a_requested_scope_is_none() {
    let clock = ManualClock::new();
    let server = endpoint(json_body(200, token_body_with("scope", None))).await;
    let token = client(&server, &clock)
        .request_token(TokenRequest::new("client_credentials"))
        .await
        .unwrap();

    assert_eq!(token.scope(), None);
    assert_eq!(token.scopes().count(), 0);
}

#[tokio::test]
async fn narrower_granted_scope_is_stored_exactly() {
    let body = token_body_with("scope", Some(json!("read")));
    let token = fetch(json_body(200, body)).await.unwrap();

    assert_eq!(token.scope(), Some("read"));
    assert_eq!(token.scopes().collect::<Vec<_>>(), ["read"]);
}

#[tokio::test]
async fn granted_scope_is_stored_exactly_as_sent() {
    let body = token_body_with("scope", Some(json!("write  read openid")));
    let token = fetch(json_body(200, body)).await.unwrap();

    assert_eq!(token.scope(), Some("write  read openid"));
    assert_eq!(
        token.scopes().collect::<Vec<_>>(),
        ["write", "read", "openid"]
    );
}

// ---------------------------------------------------------------------------------------------
// Rule 21 at the client: refresh responses and the refresh token.
// ---------------------------------------------------------------------------------------------

async fn refresh_against(body: Value) -> (Token, MockServer) {
    let clock = ManualClock::new();
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=RT-old-0001"))
        .respond_with(json_body(200, body))
        .expect(1)
        .mount(&server)
        .await;
    let token = client(&server, &clock)
        .refresh(&SecretString::from("RT-old-0001"))
        .await
        .unwrap();
    (token, server)
}

#[tokio::test]
async fn refresh_response_without_a_refresh_token_keeps_the_old_one() {
    for body in [
        token_body_with("refresh_token", None),
        token_body_with("refresh_token", Some(Value::Null)),
        token_body_with("refresh_token", Some(json!(""))),
    ] {
        let (token, _server) = refresh_against(body).await;

        assert_eq!(token.access_token().expose_secret(), "AT-good-0123456789");
        assert_eq!(
            token.refresh_token().unwrap().expose_secret(),
            "RT-old-0001"
        );
    }
}

#[tokio::test]
async fn refresh_response_with_a_new_refresh_token_carries_the_new_one() {
    let body = token_body_with("refresh_token", Some(json!("RT-new-0002")));
    let (token, _server) = refresh_against(body).await;

    assert_eq!(
        token.refresh_token().unwrap().expose_secret(),
        "RT-new-0002"
    );
}

#[tokio::test]
async fn refresh_rejected_with_invalid_grant_is_a_typed_error() {
    let clock = ManualClock::new();
    let server = endpoint(json_body(
        400,
        json!({ "error": "invalid_grant", "error_description": "refresh token RT-old-0001 revoked" }),
    ))
    .await;
    let result = client(&server, &clock)
        .refresh(&SecretString::from("RT-old-0001"))
        .await;
    let err = server_error(result);

    assert_eq!(err.code, ErrorCode::InvalidGrant);
    assert_eq!(
        err.description.as_deref(),
        Some("refresh token [redacted] revoked")
    );
}
