//! `OAuthClient::builder(..)...build()`: setters that never fail, every unusable value reported
//! by `build()` under the name of its setter, and accessors named like the setters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use oauth_layer::clock::{Clock, ManualClock};
use oauth_layer::metadata::Metadata;
use oauth_layer::{
    AuthMethod, Error, OAuthClient, OAuthClientBuilder, RetryPolicy, TransportError,
    TransportErrorKind,
};
use secrecy::ExposeSecret;
use serde_json::json;

/// The one place this file starts a client.
fn builder() -> OAuthClientBuilder {
    OAuthClient::builder("builder-client")
}

type Setter = fn(OAuthClientBuilder, &str) -> OAuthClientBuilder;

/// Every URL setter, by name.
const URL_SETTERS: [(&str, Setter); 5] = [
    ("token_url", |b, u| b.token_url(u)),
    ("authorization_url", |b, u| b.authorization_url(u)),
    ("device_authorization_url", |b, u| {
        b.device_authorization_url(u)
    }),
    ("revocation_url", |b, u| b.revocation_url(u)),
    ("introspection_url", |b, u| b.introspection_url(u)),
];

#[test]
fn a_value_that_is_not_a_url_is_reported_by_build_naming_its_setter() {
    for (name, set) in URL_SETTERS {
        for bad in ["not a url", "/relative/path", ""] {
            let err = set(builder(), bad).build().unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{name} {bad:?}: {err:?}");
            assert!(err.to_string().contains(name), "{name} {bad:?}: {err}");
        }
    }
}

#[test]
fn plain_http_to_a_remote_host_is_reported_by_build_naming_its_setter() {
    for (name, set) in URL_SETTERS {
        let err = set(builder(), "http://idp.example/x").build().unwrap_err();
        assert!(
            matches!(
                err,
                Error::Transport(TransportError {
                    kind: TransportErrorKind::InsecureUrl,
                    ..
                })
            ),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
}

#[test]
fn a_user_agent_that_is_not_a_header_value_is_reported_by_build() {
    let err = builder().user_agent("line\nbreak").build().unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(err.to_string().contains("user_agent"), "{err}");
}

#[test]
fn metadata_for_another_issuer_is_reported_by_build() {
    let err = builder()
        .issuer("https://idp.example")
        .metadata(metadata(json!({ "issuer": "https://other.example" })))
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("metadata"), "{text}");
    assert!(text.contains("https://other.example"), "{text}");
}

#[test]
fn several_problems_are_reported_together_each_named() {
    let err = builder()
        .secret("never-printed-secret")
        .token_url("http://idp.example/token")
        .revocation_url("nope")
        .user_agent("bad\u{7f}agent")
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let text = err.to_string();
    for name in ["token_url", "revocation_url", "user_agent"] {
        assert!(text.contains(name), "{name} missing from {text}");
    }
    assert!(text.contains("3 client settings"), "{text}");
    assert!(!text.contains("never-printed-secret"));
}

#[test]
fn setting_a_value_again_replaces_its_problem() {
    for (name, set) in URL_SETTERS {
        let client = set(
            set(builder(), "http://idp.example/x"),
            "https://idp.example/x",
        )
        .build()
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let _ = client;
    }
    let client = builder()
        .user_agent("bad\nagent")
        .user_agent("good-agent/1.0")
        .build()
        .unwrap();
    assert_eq!(client.user_agent(), "good-agent/1.0");
}

#[test]
fn a_client_without_endpoints_builds() {
    let client = builder().build().unwrap();
    assert_eq!(client.client_id(), "builder-client");
    assert_eq!(client.token_url(), None);
    assert_eq!(client.secret().map(|_| ()), None);
    assert_eq!(client.auth_method(), AuthMethod::None);
}

#[test]
fn every_setting_reads_back_under_the_setters_name() {
    let clock = ManualClock::new();
    clock.advance(Duration::from_secs(90));
    let policy = RetryPolicy::default().attempts(7);
    let client = builder()
        .secret("s3cret")
        .auth_method(AuthMethod::ClientSecretPost)
        .token_url("https://idp.example/token")
        .authorization_url("https://idp.example/authorize")
        .device_authorization_url("https://idp.example/device")
        .revocation_url("https://idp.example/revoke")
        .introspection_url("http://127.0.0.1:8080/introspect")
        .issuer("https://idp.example")
        .clock(clock.clone())
        .timeout(Duration::from_secs(9))
        .max_response_body(4096)
        .default_lifetime(Duration::from_secs(120))
        .lenient_token_type(true)
        .retry_policy(policy)
        .user_agent("my-app/2.0")
        .build()
        .unwrap();

    assert_eq!(client.client_id(), "builder-client");
    assert_eq!(client.secret().unwrap().expose_secret(), "s3cret");
    assert_eq!(client.auth_method(), AuthMethod::ClientSecretPost);
    let url = |u: Option<&url::Url>| u.map(|u| u.as_str().to_owned());
    assert_eq!(
        url(client.token_url()).unwrap(),
        "https://idp.example/token"
    );
    assert_eq!(
        url(client.authorization_url()).unwrap(),
        "https://idp.example/authorize"
    );
    assert_eq!(
        url(client.device_authorization_url()).unwrap(),
        "https://idp.example/device"
    );
    assert_eq!(
        url(client.revocation_url()).unwrap(),
        "https://idp.example/revoke"
    );
    assert_eq!(
        url(client.introspection_url()).unwrap(),
        "http://127.0.0.1:8080/introspect"
    );
    assert_eq!(client.issuer(), Some("https://idp.example"));
    assert_eq!(client.clock().now(), clock.now(), "the same clock");
    assert_eq!(client.timeout(), Duration::from_secs(9));
    assert_eq!(client.max_response_body(), 4096);
    assert_eq!(client.default_lifetime(), Duration::from_secs(120));
    assert!(client.lenient_token_type());
    assert_eq!(client.retry_policy(), policy);
    assert_eq!(client.user_agent(), "my-app/2.0");
    assert_eq!(client.metadata(), None);
    assert!(!format!("{client:?}").contains("s3cret"));
}

#[test]
fn the_auth_method_follows_the_credential_unless_set() {
    assert_eq!(
        builder().secret("s").build().unwrap().auth_method(),
        AuthMethod::ClientSecretBasic
    );
    assert_eq!(builder().build().unwrap().auth_method(), AuthMethod::None);
}

#[test]
fn a_builder_never_prints_the_secret() {
    let b = builder().secret("builder-secret").token_url("nope");
    let debug = format!("{b:?}");
    assert!(!debug.contains("builder-secret"), "{debug}");
    assert!(debug.contains("token_url"), "{debug}");
}

#[test]
fn to_builder_keeps_every_setting_for_a_changed_copy() {
    let client = builder()
        .secret("s3cret")
        .token_url("https://idp.example/token")
        .issuer("https://idp.example")
        .build()
        .unwrap();
    let copy = client
        .to_builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    assert_eq!(copy.client_id(), client.client_id());
    assert_eq!(copy.token_url(), client.token_url());
    assert_eq!(copy.issuer(), client.issuer());
    assert_eq!(copy.secret().unwrap().expose_secret(), "s3cret");
    assert_eq!(copy.timeout(), Duration::from_secs(3));
    assert_ne!(
        client.timeout(),
        Duration::from_secs(3),
        "the original is unchanged"
    );
}

fn metadata(doc: serde_json::Value) -> Metadata {
    serde_json::from_value(doc).unwrap()
}

#[test]
fn metadata_fills_what_is_not_set_and_is_kept() {
    let doc = metadata(json!({
        "issuer": "https://idp.example",
        "token_endpoint": "https://idp.example/token",
        "authorization_endpoint": "https://idp.example/authorize",
        "revocation_endpoint": "https://idp.example/revoke",
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
    }));
    let client = builder()
        .secret("s3cret")
        .authorization_url("https://explicit.example/authorize")
        .metadata(doc.clone())
        .build()
        .unwrap();

    assert_eq!(client.issuer(), Some("https://idp.example"));
    assert_eq!(
        client.token_url().unwrap().as_str(),
        "https://idp.example/token"
    );
    assert_eq!(
        client.authorization_url().unwrap().as_str(),
        "https://explicit.example/authorize",
        "explicit settings win"
    );
    assert_eq!(client.auth_method(), AuthMethod::ClientSecretPost);
    assert_eq!(client.metadata(), Some(&doc));
}

#[test]
fn metadata_with_an_insecure_endpoint_is_reported_by_build() {
    let err = builder()
        .metadata(metadata(json!({
            "issuer": "https://idp.example",
            "token_endpoint": "http://idp.example/token",
        })))
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport(TransportError {
                kind: TransportErrorKind::InsecureUrl,
                ..
            })
        ),
        "{err:?}"
    );
}
