//! Network failures explain themselves: each kind (DNS, refused, TLS, timeout, proxy) is told
//! apart, names the endpoint and its origin in `Display`, keeps its cause chain, and shows no
//! secret, whichever endpoint the request was for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use oauth_layer::flow::DeviceCode;
use oauth_layer::transport::TowerTransport;
use oauth_layer::{
    Action, Endpoint, Error, OAuthClient, OAuthClientBuilder, RetryPolicy, TokenRequest,
    TokenTypeHint, TransportError, TransportErrorKind,
};
use secrecy::SecretString;
use tokio::net::TcpListener;

const CLIENT_SECRET: &str = "client-secret-7Qz9";
/// Something private in a query string: it must never reach a message.
const QUERY_SECRET: &str = "query-secret-Wd4k";
const REFRESH_TOKEN: &str = "refresh-token-Hx2m";
const PROXY_PASSWORD: &str = "proxy-password-Lp8v";

/// The one place tests build a client: `url` is configured as `endpoint`'s URL.
fn client(endpoint: Endpoint, url: &str) -> OAuthClientBuilder {
    let client = OAuthClient::builder("transport-errors")
        .secret(CLIENT_SECRET)
        .retry_policy(RetryPolicy::none())
        // Room for a slow resolver to say "no such name"; the stalled server gets less.
        .timeout(Duration::from_secs(10));
    match endpoint {
        Endpoint::Token => client.token_url(url),
        Endpoint::DeviceAuthorization => client.device_authorization_url(url),
        Endpoint::Revocation => client.revocation_url(url),
        Endpoint::Discovery => client,
        other => panic!("no test client for {other:?}"),
    }
}

/// Calls `endpoint` at `url` through `client` and returns its transport error.
async fn fail(client: OAuthClientBuilder, endpoint: Endpoint, url: &str) -> TransportError {
    let client = client.build().unwrap();
    let result = match endpoint {
        Endpoint::Token => client
            .request_token(TokenRequest::new("client_credentials"))
            .await
            .map(drop),
        Endpoint::DeviceAuthorization => DeviceCode::new()
            .device_authorization(&client)
            .await
            .map(drop),
        Endpoint::Revocation => {
            client
                .revoke(
                    &SecretString::from(REFRESH_TOKEN),
                    TokenTypeHint::RefreshToken,
                )
                .await
        }
        Endpoint::Discovery => oauth_layer::discovery::discover(&client, url)
            .await
            .map(drop),
        other => panic!("no call for {other:?}"),
    };
    match result {
        Err(Error::Transport(e)) => e,
        other => panic!("expected a transport error, got {other:?}"),
    }
}

/// Every error in the chain below `err`, as text.
fn chain(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = Vec::new();
    let mut next = err.source();
    while let Some(e) = next {
        out.push(format!("{e} / {e:?}"));
        next = e.source();
    }
    out
}

/// What every transport error must show: its kind, the endpoint and origin in `Display`, a cause
/// underneath (through `Error` too), and no secret in any rendering.
fn check(err: &TransportError, kind: TransportErrorKind, endpoint: Endpoint, origin: &str) {
    let shown = err.to_string();
    assert_eq!(err.kind, kind, "{shown}");
    assert_eq!(err.endpoint, Some(endpoint), "{shown}");
    assert_eq!(err.origin.as_deref(), Some(origin), "{shown}");
    assert!(
        shown.starts_with(&format!("{endpoint} ({origin}): {kind}")),
        "{shown}"
    );
    assert!(err.source().is_some(), "no source: {err:?}");

    let wrapped = Error::Transport(err.clone());
    assert_eq!(wrapped.to_string(), shown);
    assert!(
        wrapped.source().is_some(),
        "Error hides the cause: {wrapped:?}"
    );

    let everything = format!("{shown}\n{err:?}\n{}", chain(err).join("\n"));
    for secret in [CLIENT_SECRET, QUERY_SECRET, REFRESH_TOKEN, PROXY_PASSWORD] {
        assert!(
            !everything.contains(secret),
            "{secret} leaked: {everything}"
        );
    }
    for path in ["/token", "/device", "/revoke", "/tenant", "well-known"] {
        assert!(!everything.contains(path), "a path leaked: {everything}");
    }
}

/// A loopback port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_closed_port_is_connection_refused_at_the_token_endpoint() {
    let port = closed_port().await;
    let url = format!("http://127.0.0.1:{port}/token?tenant={QUERY_SECRET}");

    let err = fail(client(Endpoint::Token, &url), Endpoint::Token, &url).await;

    let origin = format!("http://127.0.0.1:{port}");
    check(&err, TransportErrorKind::Refused, Endpoint::Token, &origin);
    assert!(err.kind.request_not_sent());
    assert!(Error::Transport(err.clone()).is_transient());
    // The chain reaches the operating system's answer.
    let mut refused = false;
    let mut next = err.source();
    while let Some(e) = next {
        refused |= e
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
        next = e.source();
    }
    assert!(refused, "{:?}", chain(&err));
}

#[tokio::test]
async fn an_unresolvable_name_is_a_dns_failure_of_discovery() {
    // `.invalid` never resolves (RFC 2606). An issuer has no query, but its path is private too.
    let issuer = format!("https://idp.invalid/tenant/{QUERY_SECRET}");

    let err = fail(
        client(Endpoint::Discovery, &issuer),
        Endpoint::Discovery,
        &issuer,
    )
    .await;

    check(
        &err,
        TransportErrorKind::Dns,
        Endpoint::Discovery,
        "https://idp.invalid",
    );
    assert!(err.kind.request_not_sent());
}

/// A TLS server on loopback whose certificate (for `localhost`) no authority signed.
async fn untrusted_tls_server() -> u16 {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key =
        tokio_rustls::rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
            .unwrap();
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(socket).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn a_certificate_from_an_unknown_authority_is_a_tls_failure() {
    let port = untrusted_tls_server().await;
    let url = format!("https://localhost:{port}/token?tenant={QUERY_SECRET}");

    let err = fail(client(Endpoint::Token, &url), Endpoint::Token, &url).await;

    check(
        &err,
        TransportErrorKind::Tls,
        Endpoint::Token,
        &format!("https://localhost:{port}"),
    );
    assert!(err.kind.request_not_sent());
    assert!(err.message.contains("certificate"), "{err}");
    // Trying again will not make the certificate trusted.
    assert_eq!(Error::Transport(err).action(), Action::FixConfiguration);
}

/// A server that accepts connections and never answers.
async fn stalled_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            open.push(socket);
        }
    });
    port
}

#[tokio::test]
async fn a_stalled_device_authorization_endpoint_times_out() {
    let port = stalled_server().await;
    let url = format!("http://127.0.0.1:{port}/device?tenant={QUERY_SECRET}");

    let started = std::time::Instant::now();
    let err = fail(
        client(Endpoint::DeviceAuthorization, &url).timeout(Duration::from_millis(300)),
        Endpoint::DeviceAuthorization,
        &url,
    )
    .await;

    check(
        &err,
        TransportErrorKind::Timeout,
        Endpoint::DeviceAuthorization,
        &format!("http://127.0.0.1:{port}"),
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!err.kind.request_not_sent(), "the server may have it");
}

#[tokio::test]
async fn a_proxy_on_a_closed_port_is_a_proxy_failure_of_revocation() {
    let (proxy_port, server_port) = (closed_port().await, stalled_server().await);
    let proxied = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .proxy(
            reqwest::Proxy::all(format!(
                "http://someone:{PROXY_PASSWORD}@127.0.0.1:{proxy_port}"
            ))
            .unwrap(),
        )
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{server_port}/revoke?tenant={QUERY_SECRET}");

    let err = fail(
        client(Endpoint::Revocation, &url).transport(proxied),
        Endpoint::Revocation,
        &url,
    )
    .await;

    check(
        &err,
        TransportErrorKind::Proxy,
        Endpoint::Revocation,
        &format!("http://127.0.0.1:{server_port}"),
    );
    assert!(
        err.message.contains(&format!("127.0.0.1:{proxy_port}")),
        "names the proxy it could not reach: {err}"
    );
    assert!(err.kind.request_not_sent());
}

#[tokio::test]
async fn a_proxy_that_cannot_open_a_tunnel_is_a_proxy_failure() {
    let proxy_port = closed_port().await;
    let proxied = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .proxy(
            reqwest::Proxy::https(format!(
                "http://someone:{PROXY_PASSWORD}@127.0.0.1:{proxy_port}"
            ))
            .unwrap(),
        )
        .build()
        .unwrap();
    let url = format!("https://idp.example/token?tenant={QUERY_SECRET}");

    let err = fail(
        client(Endpoint::Token, &url).transport(proxied),
        Endpoint::Token,
        &url,
    )
    .await;

    check(
        &err,
        TransportErrorKind::Proxy,
        Endpoint::Token,
        "https://idp.example",
    );
}

#[tokio::test]
async fn a_hyper_util_client_as_transport_is_classified_too() {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let port = closed_port().await;
    let url = format!("http://127.0.0.1:{port}/token?tenant={QUERY_SECRET}");
    let hyper: Client<_, http_body_util::Full<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();

    let err = fail(
        client(Endpoint::Token, &url).transport(TowerTransport::new(hyper)),
        Endpoint::Token,
        &url,
    )
    .await;

    check(
        &err,
        TransportErrorKind::Refused,
        Endpoint::Token,
        &format!("http://127.0.0.1:{port}"),
    );
}
