#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Mutual TLS (RFC 8705) through the public API, against a TLS server in this file that asks
//! for client certificates: it is the token endpoint (it checks a certificate came, which one,
//! and that no other credential did) and a resource that takes a token only on a connection
//! presenting the certificate the token is bound to.

#![cfg(all(feature = "reqwest", feature = "rustls", feature = "tower"))]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use oauth_layer::flow::ClientCredentials;
use oauth_layer::metadata::Metadata;
use oauth_layer::tls::ClientCertificate;
use oauth_layer::{AuthMethod, Error, OAuthClient, OAuthLayer, OAuthMiddleware, TokenSource};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tower::{Service, ServiceBuilder, ServiceExt};
use wiremock::{Mock, MockServer, ResponseTemplate};

// ---------------------------------------------------------------------------------------------
// Certificates

/// A test certificate authority, with what it issued.
struct Pki {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate with its key, as PEM, and the leaf's DER.
struct Issued {
    cert_pem: String,
    key_pem: String,
    der: Vec<u8>,
}

impl Issued {
    fn certificate(&self) -> ClientCertificate {
        ClientCertificate::from_pem(&self.cert_pem, &self.key_pem).unwrap()
    }

    /// The RFC 8705 thumbprint, computed here independently of the crate.
    fn thumbprint(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&self.der))
    }
}

impl Pki {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "oauth-layer test CA");
        let cert = params.self_signed(&key).unwrap();
        Self {
            ca_pem: cert.pem(),
            ca_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    fn issue(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> Issued {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.extended_key_usages = vec![purpose];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        }
    }

    /// A client certificate this CA issued (for `tls_client_auth`).
    fn client(&self, name: &str) -> Issued {
        self.issue(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// A self-signed client certificate (for `self_signed_tls_client_auth`).
fn self_signed(name: &str) -> Issued {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().to_vec(),
    }
}

// ---------------------------------------------------------------------------------------------
// The server

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    /// The thumbprint of the certificate the connection presented.
    presented: Option<String>,
    authorization: Option<String>,
    body: String,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    /// Issued access tokens and the thumbprint each is bound to (`cnf.x5t#S256`).
    bound: HashMap<String, String>,
}

/// An HTTPS server on loopback (a certificate for `127.0.0.1` from `pki`) that asks every
/// client for a certificate and takes any that proves its key: one the CA issued
/// (`tls_client_auth`) or a self-signed one (`self_signed_tls_client_auth`). The thumbprint
/// is what the tests check.
struct MtlsServer {
    base: String,
    state: Arc<Mutex<State>>,
}

impl MtlsServer {
    async fn start(pki: &Pki) -> Self {
        let issued = pki.issue(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(Arc::new(AnyClientCertificate { provider }))
            .with_single_cert(
                vec![CertificateDer::from(issued.der.clone()), pki.ca_der.clone()],
                PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap(),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let state = shared.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let presented = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|leaf| oauth_layer::tls::thumbprint(leaf));
                    let service = hyper::service::service_fn(move |request| {
                        handle(request, presented.clone(), state.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self {
            base: format!("https://127.0.0.1:{port}"),
            state,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        let state = self.state.lock().unwrap();
        state
            .seen
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }
}

use rustls::pki_types::pem::PemObject;

async fn handle(
    request: Request<hyper::body::Incoming>,
    presented: Option<String>,
    state: Arc<Mutex<State>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let authorization = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body).into_owned();
    let mut state = state.lock().unwrap();
    state.seen.push(Seen {
        path: path.clone(),
        presented: presented.clone(),
        authorization: authorization.clone(),
        body: body.clone(),
    });
    let reply = |status: StatusCode, body: String| {
        Ok(Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap())
    };
    if path.ends_with("/revoke") || path.ends_with("/par") {
        let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let authenticated = presented.is_some()
            && authorization.is_none()
            && !form.contains_key("client_secret")
            && form.get("client_id").map(String::as_str) == Some("mtls-client");
        return match authenticated {
            true if path.ends_with("/par") => reply(
                StatusCode::CREATED,
                r#"{"request_uri":"urn:example:pushed","expires_in":60}"#.into(),
            ),
            true => reply(StatusCode::OK, "{}".into()),
            false => reply(
                StatusCode::UNAUTHORIZED,
                r#"{"error":"invalid_client"}"#.into(),
            ),
        };
    }
    if path == "/bearer/token" {
        // A token endpoint that asks for no client authentication: a bearer token for anyone
        // who completes the TLS handshake.
        return reply(
            StatusCode::OK,
            r#"{"access_token":"bearer","token_type":"Bearer","expires_in":3600}"#.into(),
        );
    }
    if path.ends_with("/token") {
        // RFC 8705 §2: the certificate is the credential, and no other may come.
        let Some(thumbprint) = presented else {
            return reply(
                StatusCode::UNAUTHORIZED,
                r#"{"error":"invalid_client"}"#.into(),
            );
        };
        let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        if authorization.is_some()
            || form.contains_key("client_secret")
            || form.contains_key("client_assertion")
            || form.get("client_id").map(String::as_str) != Some("mtls-client")
        {
            return reply(
                StatusCode::BAD_REQUEST,
                r#"{"error":"invalid_client"}"#.into(),
            );
        }
        let access_token = format!("at-{}", state.bound.len() + 1);
        state.bound.insert(access_token.clone(), thumbprint);
        return reply(
            StatusCode::OK,
            format!(
                r#"{{"access_token":"{access_token}","token_type":"Bearer","expires_in":3600}}"#
            ),
        );
    }
    if path == "/resource" || path.ends_with("/userinfo") {
        // RFC 8705 §3: the token's `cnf.x5t#S256` must be the presented certificate's.
        let token = authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .unwrap_or_default();
        let bound = state.bound.get(token);
        if bound.is_some() && bound == presented.as_ref() {
            return reply(StatusCode::OK, r#"{"sub":"alice"}"#.into());
        }
        return Ok(Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header("www-authenticate", r#"Bearer error="invalid_token""#)
            .body(Full::new(Bytes::new()))
            .unwrap());
    }
    reply(StatusCode::NOT_FOUND, "{}".into())
}

/// Asks for a client certificate and takes any whose key signs the handshake (a self-signed
/// one included), as a server doing `self_signed_tls_client_auth` does before it compares the
/// certificate with the client's registered keys. A connection without one is let through too,
/// so that the resource can answer it (with a 401).
#[derive(Debug)]
struct AnyClientCertificate {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn mtls_client(
    pki: &Pki,
    server: &MtlsServer,
    method: AuthMethod,
    certificate: ClientCertificate,
) -> OAuthClient {
    OAuthClient::builder("mtls-client")
        .auth_method(method)
        .client_certificate(certificate)
        .root_certificate(&pki.ca_pem)
        .token_url(server.url("/token"))
        .build()
        .unwrap()
}

/// A reqwest client trusting the test CA, presenting `certificate` when given.
fn resource_http(pki: &Pki, certificate: Option<&ClientCertificate>) -> reqwest::Client {
    let builder = match certificate {
        Some(c) => c.reqwest_client_builder(),
        None => reqwest::Client::builder(),
    };
    builder
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .redirect(oauth_layer::reqwest::redirect_policy())
        .build()
        .unwrap()
}

fn metadata(value: serde_json::Value) -> Metadata {
    serde_json::from_value(value).unwrap()
}

/// The crate's error inside a middleware error.
fn middleware_error(err: reqwest_middleware::Error) -> Error {
    match err {
        reqwest_middleware::Error::Middleware(e) => e.downcast::<Error>().unwrap(),
        other => panic!("not a middleware error: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Certificates and configuration

#[test]
fn thumbprint_is_the_sha256_of_the_leaf_der_in_base64url() {
    let pki = Pki::new();
    let issued = pki.client("client-a");
    let certificate = issued.certificate();
    assert_eq!(certificate.thumbprint(), issued.thumbprint());
    assert_eq!(certificate.thumbprint().len(), 43);
    assert_eq!(
        oauth_layer::tls::thumbprint(&issued.der),
        issued.thumbprint()
    );
    // The chain's leaf counts, not the CA after it.
    let chain = format!("{}{}", issued.cert_pem, pki.ca_pem);
    let from_chain = ClientCertificate::from_pem(&chain, &issued.key_pem).unwrap();
    assert_eq!(from_chain.thumbprint(), issued.thumbprint());
    assert_eq!(from_chain, certificate);
}

#[test]
fn a_key_that_is_not_the_certificates_is_refused() {
    let pki = Pki::new();
    let a = pki.client("client-a");
    let b = pki.client("client-b");
    let err = ClientCertificate::from_pem(&a.cert_pem, &b.key_pem).unwrap_err();
    assert!(matches!(err, Error::Key(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("the client certificate and key cannot be used together: "),
        "{err}"
    );
    assert!(!err.to_string().contains("PRIVATE KEY"));
    // A key where the certificate should be, garbage, and oversize input.
    assert!(ClientCertificate::from_pem(&a.key_pem, &a.key_pem).is_err());
    assert!(ClientCertificate::from_pem("not a pem", &a.key_pem).is_err());
    assert!(ClientCertificate::from_pem(&a.cert_pem, "not a key").is_err());
    let huge = format!("{}{}", a.cert_pem, " ".repeat(70 * 1024));
    assert!(matches!(
        ClientCertificate::from_pem(&huge, &a.key_pem),
        Err(Error::Key(_))
    ));
}

#[test]
fn debug_shows_the_thumbprint_and_never_the_key() {
    let pki = Pki::new();
    let issued = pki.client("client-a");
    let certificate = issued.certificate();
    let key_body: String = issued
        .key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let client = OAuthClient::builder("mtls-client")
        .auth_method(AuthMethod::TlsClientAuth)
        .client_certificate(certificate.clone())
        .token_url("https://idp.example/token");
    let shown = [
        format!("{certificate:?}"),
        format!("{client:?}"),
        format!("{:?}", client.clone().build().unwrap()),
    ];
    for shown in shown {
        assert!(shown.contains(&issued.thumbprint()), "{shown}");
        assert!(!shown.contains("PRIVATE"), "{shown}");
        for chunk in key_body.as_bytes().chunks(16) {
            assert!(
                !shown.contains(std::str::from_utf8(chunk).unwrap()),
                "{shown}"
            );
        }
    }
}

#[test]
fn tls_client_auth_without_a_certificate_fails_at_build() {
    for method in [
        AuthMethod::TlsClientAuth,
        AuthMethod::SelfSignedTlsClientAuth,
    ] {
        let err = OAuthClient::builder("mtls-client")
            .auth_method(method)
            .token_url("https://idp.example/token")
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        assert!(err.to_string().contains(method.as_str()), "{err}");
        assert!(err.to_string().contains("client_certificate"), "{err}");
    }
    assert_eq!(AuthMethod::TlsClientAuth.as_str(), "tls_client_auth");
    assert_eq!(
        AuthMethod::SelfSignedTlsClientAuth.as_str(),
        "self_signed_tls_client_auth"
    );
}

/// What `build` says of a client given `roots` through `root_certificate`, in order.
fn root_certificate_problem(roots: &[&str]) -> Error {
    roots
        .iter()
        .fold(OAuthClient::builder("id"), |builder, pem| {
            builder.root_certificate(pem)
        })
        .token_url("https://idp.example/token")
        .build()
        .unwrap_err()
}

/// A PEM that is not base64 inside its markers.
const UNREADABLE_PEM: &str = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";

#[test]
fn a_root_certificate_without_a_certificate_is_a_build_problem() {
    let err = root_certificate_problem(&["no certificate here"]);
    assert!(err.to_string().contains("root_certificate"), "{err}");
}

#[test]
fn a_root_certificate_that_cannot_be_read_is_a_build_problem_with_the_same_messages() {
    // Not PEM base64: refused by the setter.
    let err = root_certificate_problem(&[UNREADABLE_PEM]);
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("root_certificate: the PEM cannot be read: invalid certificate encoding"),
        "{err}"
    );
    // Well-formed PEM around bytes that are no certificate: refused when the transport's TLS
    // configuration is made, and named after the setter the user called.
    let not_a_certificate =
        "-----BEGIN CERTIFICATE-----\nAAECAwQFBgc=\n-----END CERTIFICATE-----\n";
    let err = root_certificate_problem(&[not_a_certificate]);
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("root_certificate: the default transport cannot be built: "),
        "{err}"
    );
    // A good root first and an unreadable PEM after it: the second call's problem stays, even
    // though the transport builds with the first root.
    let pki = Pki::new();
    let err = root_certificate_problem(&[&pki.ca_pem, UNREADABLE_PEM]);
    assert!(
        err.to_string()
            .contains("root_certificate: the PEM cannot be read"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// The client's own transport on runtime after runtime

/// A runtime on its own thread for the servers, so that they outlive the runtimes a test makes
/// and drops.
fn server_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// An `OAuthClient` with its own transport makes its TLS configuration when it is built, and
/// the client each tokio runtime gets is made with it. Here a client trusting the test CA
/// (`root_certificate`) and one that presents a certificate as well get tokens on two
/// runtimes made one after the other, the first dropped before the second is made; on each, a
/// server whose certificate another CA issued is still refused as a TLS failure.
#[test]
fn an_own_transport_gets_tokens_on_runtime_after_runtime_and_refuses_another_ca() {
    let servers = server_runtime();
    let pki = Pki::new();
    let server = servers.block_on(MtlsServer::start(&pki));
    let stranger = Pki::new();
    let other = servers.block_on(MtlsServer::start(&stranger));
    let issued = pki.client("client-a");
    let trusting_the_ca = |certificate: Option<ClientCertificate>, url: String| {
        let mut builder = OAuthClient::builder("mtls-client")
            .root_certificate(&pki.ca_pem)
            .token_url(url)
            .timeout(std::time::Duration::from_secs(5));
        if let Some(certificate) = certificate {
            builder = builder
                .auth_method(AuthMethod::TlsClientAuth)
                .client_certificate(certificate);
        }
        builder.build().unwrap()
    };
    let roots_only = trusting_the_ca(None, server.url("/bearer/token"));
    let with_certificate = trusting_the_ca(Some(issued.certificate()), server.url("/token"));
    let refused = [
        trusting_the_ca(None, other.url("/bearer/token")),
        trusting_the_ca(Some(issued.certificate()), other.url("/token")),
    ];

    for round in 1..=2 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            // A new source each time: nothing cached, every token is a request.
            TokenSource::new(roots_only.clone(), ClientCredentials::new())
                .token()
                .await
                .unwrap();
            let token = TokenSource::new(with_certificate.clone(), ClientCredentials::new())
                .token()
                .await
                .unwrap();
            assert_eq!(token.certificate_thumbprint(), Some(&*issued.thumbprint()));
            for client in &refused {
                let err = TokenSource::new(client.clone(), ClientCredentials::new())
                    .token()
                    .await
                    .unwrap_err();
                match err {
                    Error::Transport(e) => {
                        assert_eq!(e.kind, oauth_layer::TransportErrorKind::Tls, "{e}");
                    }
                    other => panic!("expected a TLS failure, got {other:?}"),
                }
            }
        });
        drop(runtime);
        assert_eq!(server.seen("/bearer/token").len(), round);
        let seen = server.seen("/token");
        assert_eq!(seen.len(), round);
        assert_eq!(
            seen[round - 1].presented.as_deref(),
            Some(&*issued.thumbprint())
        );
    }
    assert!(other.seen("/bearer/token").is_empty());
    assert!(other.seen("/token").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Client authentication

#[tokio::test]
async fn tls_client_auth_gets_a_token_bound_to_the_certificate_with_client_id_only() {
    let pki = Pki::new();
    let server = MtlsServer::start(&pki).await;
    let issued = pki.client("client-a");
    let client = mtls_client(
        &pki,
        &server,
        AuthMethod::TlsClientAuth,
        issued.certificate(),
    );
    assert_eq!(
        client
            .client_certificate()
            .map(|c| c.thumbprint().to_owned()),
        Some(issued.thumbprint())
    );

    let source = TokenSource::new(client, ClientCredentials::new().scope("api"));
    let token = source.token().await.unwrap();

    assert_eq!(token.certificate_thumbprint(), Some(&*issued.thumbprint()));
    let seen = server.seen("/token");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].presented.as_deref(), Some(&*issued.thumbprint()));
    assert_eq!(seen[0].authorization, None);
    let mut names: Vec<String> = url::form_urlencoded::parse(seen[0].body.as_bytes())
        .map(|(k, _)| k.into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["client_id", "grant_type", "scope"]);
}

#[tokio::test]
async fn self_signed_tls_client_auth_gets_a_token() {
    let pki = Pki::new();
    let server = MtlsServer::start(&pki).await;
    let issued = self_signed("client-self");
    let client = mtls_client(
        &pki,
        &server,
        AuthMethod::SelfSignedTlsClientAuth,
        issued.certificate(),
    );
    let token = TokenSource::new(client, ClientCredentials::new())
        .token()
        .await
        .unwrap();
    assert_eq!(token.certificate_thumbprint(), Some(&*issued.thumbprint()));
    let seen = server.seen("/token");
    assert_eq!(seen[0].presented.as_deref(), Some(&*issued.thumbprint()));
    assert!(!seen[0].body.contains("client_secret"));
}

#[tokio::test]
async fn without_the_client_certificate_the_server_refuses_the_client() {
    // The same server and CA, but a client that presents nothing: the check in the server is
    // real, so the tests above prove the certificate went out.
    let pki = Pki::new();
    let server = MtlsServer::start(&pki).await;
    let client = OAuthClient::builder("mtls-client")
        .root_certificate(&pki.ca_pem)
        .token_url(server.url("/token"))
        .build()
        .unwrap();
    let err = TokenSource::new(client, ClientCredentials::new())
        .token()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("invalid_client"), "{err}");
    assert_eq!(server.seen("/token")[0].presented, None);
}

// ---------------------------------------------------------------------------------------------
// mtls_endpoint_aliases

#[tokio::test]
async fn mtls_endpoint_aliases_are_used_in_either_order_and_explicit_settings_win() {
    let pki = Pki::new();
    let server = MtlsServer::start(&pki).await;
    let plain = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&plain)
        .await;
    let document = || {
        metadata(serde_json::json!({
            "issuer": "https://idp.example",
            "token_endpoint": format!("{}/token", plain.uri()),
            "revocation_endpoint": format!("{}/revoke", plain.uri()),
            "userinfo_endpoint": format!("{}/userinfo", plain.uri()),
            "tls_client_certificate_bound_access_tokens": true,
            "mtls_endpoint_aliases": {
                "token_endpoint": server.url("/mtls/token"),
                "revocation_endpoint": server.url("/mtls/revoke"),
                "userinfo_endpoint": server.url("/mtls/userinfo"),
            },
        }))
    };
    let parsed = document();
    assert!(parsed.tls_client_certificate_bound_access_tokens);
    assert_eq!(
        parsed
            .mtls_endpoint_aliases
            .as_ref()
            .and_then(|a| a.token_endpoint.as_ref())
            .map(|u| u.as_str()),
        Some(&*server.url("/mtls/token"))
    );

    let issued = pki.client("client-a");
    let base = || {
        OAuthClient::builder("mtls-client")
            .auth_method(AuthMethod::TlsClientAuth)
            .root_certificate(&pki.ca_pem)
    };
    let metadata_first = base()
        .metadata(document())
        .client_certificate(issued.certificate())
        .build()
        .unwrap();
    let certificate_first = base()
        .client_certificate(issued.certificate())
        .metadata(document())
        .build()
        .unwrap();
    let rebuilt = certificate_first.to_builder().build().unwrap();
    assert_eq!(rebuilt.token_url(), certificate_first.token_url());
    assert_eq!(
        rebuilt.client_certificate(),
        certificate_first.client_certificate()
    );
    for client in [metadata_first, certificate_first] {
        assert_eq!(
            client.token_url().map(|u| u.as_str()),
            Some(&*server.url("/mtls/token"))
        );
        assert_eq!(
            client.revocation_url().map(|u| u.as_str()),
            Some(&*server.url("/mtls/revoke"))
        );
        let token = TokenSource::new(client.clone(), ClientCredentials::new())
            .token()
            .await
            .unwrap();
        assert_eq!(token.certificate_thumbprint(), Some(&*issued.thumbprint()));
        let claims = client.userinfo(&token).await.unwrap();
        assert_eq!(claims["sub"], "alice");
        client
            .revoke(
                token.access_token(),
                oauth_layer::TokenTypeHint::AccessToken,
            )
            .await
            .unwrap();
        // The same token through a client without the certificate: refused before sending.
        let without = OAuthClient::builder("other")
            .metadata(document())
            .build()
            .unwrap();
        let err = without.userinfo(&token).await.unwrap_err();
        assert!(matches!(err, Error::CertificateBinding { .. }), "{err:?}");
    }
    assert_eq!(server.seen("/mtls/userinfo").len(), 2);
    assert_eq!(server.seen("/mtls/token").len(), 2);
    let revoked = server.seen("/mtls/revoke");
    assert_eq!(revoked.len(), 2);
    assert!(
        revoked
            .iter()
            .all(|r| r.presented.as_deref() == Some(&*issued.thumbprint()))
    );

    // Without a certificate the usual endpoints stay; an explicit setting wins over an alias.
    let plain_client = OAuthClient::builder("id")
        .metadata(document())
        .build()
        .unwrap();
    assert_eq!(
        plain_client.token_url().map(|u| u.as_str()),
        Some(&*format!("{}/token", plain.uri()))
    );
    let explicit = base()
        .client_certificate(issued.certificate())
        .metadata(document())
        .token_url(server.url("/token"))
        .build()
        .unwrap();
    assert_eq!(
        explicit.token_url().map(|u| u.as_str()),
        Some(&*server.url("/token"))
    );
    plain.verify().await;
}

#[test]
fn an_insecure_alias_is_a_build_problem() {
    let pki = Pki::new();
    let issued = pki.client("client-a");
    let err = OAuthClient::builder("mtls-client")
        .client_certificate(issued.certificate())
        .metadata(metadata(serde_json::json!({
            "issuer": "https://idp.example",
            "token_endpoint": "https://idp.example/token",
            "mtls_endpoint_aliases": { "token_endpoint": "http://mtls.idp.example/token" },
        })))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("token_url"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Certificate-bound tokens on resource requests

async fn bound_middleware(
    pki: &Pki,
    server: &MtlsServer,
    issued: &Issued,
) -> OAuthMiddleware<ClientCredentials> {
    let client = mtls_client(pki, server, AuthMethod::TlsClientAuth, issued.certificate());
    OAuthMiddleware::client_credentials(client)
        .allow_origins([server.base.as_str()])
        .unwrap()
}

#[tokio::test]
async fn the_middleware_sends_a_bound_token_only_with_its_declared_certificate() {
    let pki = Pki::new();
    let server = MtlsServer::start(&pki).await;
    let issued = pki.client("client-a");
    let other = pki.client("client-b");
    let certificate = issued.certificate();

    // No declaration (and a client without the certificate): refused before anything is sent.
    let undeclared = reqwest_middleware::ClientBuilder::new(resource_http(&pki, None))
        .with(bound_middleware(&pki, &server, &issued).await)
        .build();
    let err = middleware_error(
        undeclared
            .get(server.url("/resource"))
            .send()
            .await
            .unwrap_err(),
    );
    assert!(
        matches!(&err, Error::CertificateBinding { bound_to, declared: None } if *bound_to == issued.thumbprint()),
        "{err:?}"
    );
    assert!(err.to_string().contains("client_certificate"), "{err}");

    // Another certificate declared (and presented): refused too.
    let other_certificate = other.certificate();
    let wrong =
        reqwest_middleware::ClientBuilder::new(resource_http(&pki, Some(&other_certificate)))
            .with(
                bound_middleware(&pki, &server, &issued)
                    .await
                    .client_certificate(&other_certificate),
            )
            .build();
    let err = middleware_error(wrong.get(server.url("/resource")).send().await.unwrap_err());
    assert!(
        matches!(&err, Error::CertificateBinding { declared: Some(d), .. } if *d == other.thumbprint()),
        "{err:?}"
    );
    assert!(
        server.seen("/resource").is_empty(),
        "nothing reached the resource"
    );

    // The same certificate, presented and declared: the resource takes the token.
    let right = reqwest_middleware::ClientBuilder::new(resource_http(&pki, Some(&certificate)))
        .with(
            bound_middleware(&pki, &server, &issued)
                .await
                .client_certificate(&certificate),
        )
        .build();
    let response = right.get(server.url("/resource")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = server.seen("/resource");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].presented.as_deref(), Some(&*issued.thumbprint()));
}

/// A tower service that sends requests with a reqwest client.
fn reqwest_service(
    http: reqwest::Client,
) -> impl Service<
    Request<reqwest::Body>,
    Response = Response<reqwest::Body>,
    Error = reqwest::Error,
    Future: Send,
> + Clone
+ Send
+ 'static {
    tower::service_fn(move |request: Request<reqwest::Body>| {
        let http = http.clone();
        async move {
            let request = reqwest::Request::try_from(request)?;
            let response = http.execute(request).await?;
            Ok(Response::from(response))
        }
    })
}

fn get(url: &str) -> Request<reqwest::Body> {
    Request::get(url).body(reqwest::Body::from("")).unwrap()
}

#[tokio::test]
async fn the_layer_sends_a_bound_token_only_with_its_declared_certificate() {
    let pki = Pki::new();
    let server = MtlsServer::start(&pki).await;
    let issued = pki.client("client-a");
    let other = pki.client("client-b");
    let certificate = issued.certificate();
    let client = mtls_client(
        &pki,
        &server,
        AuthMethod::TlsClientAuth,
        certificate.clone(),
    );
    let source = TokenSource::new(client, ClientCredentials::new());
    // The token is cached before the first request, so the layer's fast path is the one checked.
    source.token().await.unwrap();

    let layer = || {
        OAuthLayer::from_source(source.clone())
            .allow_origins([server.base.as_str()])
            .unwrap()
    };
    let refused =
        |svc_err: Box<dyn std::error::Error + Send + Sync>| *svc_err.downcast::<Error>().unwrap();

    let mut undeclared = ServiceBuilder::new()
        .layer(layer())
        .service(reqwest_service(resource_http(&pki, None)));
    for _ in 0..2 {
        let err = undeclared
            .ready()
            .await
            .unwrap()
            .call(get(&server.url("/resource")))
            .await
            .unwrap_err();
        assert!(
            matches!(
                refused(err),
                Error::CertificateBinding { declared: None, .. }
            ),
            "refused on every request"
        );
    }

    let other_certificate = other.certificate();
    let mut wrong = ServiceBuilder::new()
        .layer(layer().client_certificate(&other_certificate))
        .service(reqwest_service(resource_http(
            &pki,
            Some(&other_certificate),
        )));
    let err = wrong
        .ready()
        .await
        .unwrap()
        .call(get(&server.url("/resource")))
        .await
        .unwrap_err();
    assert!(matches!(
        refused(err),
        Error::CertificateBinding {
            declared: Some(_),
            ..
        }
    ));
    assert!(
        server.seen("/resource").is_empty(),
        "nothing reached the resource"
    );

    let mut right = ServiceBuilder::new()
        .layer(layer().client_certificate(&certificate))
        .service(reqwest_service(resource_http(&pki, Some(&certificate))));
    for _ in 0..2 {
        let response = right
            .ready()
            .await
            .unwrap()
            .call(get(&server.url("/resource")))
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(server.seen("/resource").len(), 2);
    assert_eq!(server.seen("/token").len(), 1);
}

#[tokio::test]
async fn a_bearer_token_is_unaffected_by_a_declared_certificate() {
    // A client without a certificate gets plain bearer tokens; a pipeline that declares one
    // still sends them.
    let idp = MockServer::start().await;
    Mock::given(wiremock::matchers::path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "plain", "token_type": "Bearer", "expires_in": 3600,
        })))
        .mount(&idp)
        .await;
    let api = MockServer::start().await;
    Mock::given(wiremock::matchers::header("authorization", "Bearer plain"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&api)
        .await;
    let client = OAuthClient::builder("id")
        .secret("s")
        .token_url(format!("{}/token", idp.uri()))
        .build()
        .unwrap();
    let pki = Pki::new();
    let certificate = pki.client("client-a").certificate();
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OAuthMiddleware::client_credentials(client).client_certificate(&certificate))
        .build();
    let response = http.get(api.uri()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[cfg(feature = "file-store")]
#[tokio::test]
async fn the_binding_survives_a_file_store_and_is_still_enforced() {
    use oauth_layer::store::FileStore;

    let pki = Pki::new();
    let server = MtlsServer::start(&pki).await;
    let issued = pki.client("client-a");
    let dir = std::env::temp_dir().join(format!(
        "oauth-layer-mtls-{}",
        issued.thumbprint().replace(['-', '_'], "")
    ));
    let source = || {
        TokenSource::builder(
            mtls_client(
                &pki,
                &server,
                AuthMethod::TlsClientAuth,
                issued.certificate(),
            ),
            ClientCredentials::new(),
        )
        .store(FileStore::in_dir(&dir))
        .build()
    };
    let first = source().token().await.unwrap();
    // Another process: a new source on the same directory reads the token back.
    let restored_source = source();
    let restored = restored_source.token().await.unwrap();
    assert_eq!(server.seen("/token").len(), 1, "the stored token was used");
    assert_eq!(
        restored.certificate_thumbprint(),
        first.certificate_thumbprint()
    );
    assert_eq!(
        restored.certificate_thumbprint(),
        Some(&*issued.thumbprint())
    );

    let http = reqwest_middleware::ClientBuilder::new(resource_http(&pki, None))
        .with(OAuthMiddleware::from_source(restored_source))
        .build();
    let err = middleware_error(http.get(server.url("/resource")).send().await.unwrap_err());
    assert!(matches!(err, Error::CertificateBinding { .. }), "{err:?}");
    assert!(server.seen("/resource").is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[cfg(feature = "dpop")]
#[tokio::test]
async fn dpop_bound_tokens_of_a_client_with_a_certificate_are_not_certificate_bound() {
    // DPoP binds the token to its key instead: the certificate declaration does not apply.
    let idp = MockServer::start().await;
    Mock::given(wiremock::matchers::path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "dpop-bound", "token_type": "DPoP", "expires_in": 3600,
        })))
        .mount(&idp)
        .await;
    let api = MockServer::start().await;
    Mock::given(wiremock::matchers::header(
        "authorization",
        "DPoP dpop-bound",
    ))
    .and(wiremock::matchers::header_exists("dpop"))
    .respond_with(ResponseTemplate::new(200))
    .expect(1)
    .mount(&api)
    .await;
    let pki = Pki::new();
    let client = OAuthClient::builder("mtls-client")
        .auth_method(AuthMethod::TlsClientAuth)
        .client_certificate(pki.client("client-a").certificate())
        .dpop(oauth_layer::dpop::Dpop::new())
        .token_url(format!("{}/token", idp.uri()))
        .build()
        .unwrap();
    let source = TokenSource::new(client, ClientCredentials::new());
    let token = source.token().await.unwrap();
    assert!(token.dpop_key().is_some());
    assert_eq!(token.certificate_thumbprint(), None);
    let http = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(OAuthMiddleware::from_source(source))
        .build();
    assert_eq!(
        http.get(api.uri()).send().await.unwrap().status(),
        StatusCode::OK
    );
}

#[cfg(feature = "auth-code")]
#[tokio::test]
async fn a_pushed_authorization_request_goes_to_the_alias_with_the_certificate_only() {
    let pki = Pki::new();
    let server = MtlsServer::start(&pki).await;
    let plain = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&plain)
        .await;
    let issued = self_signed("client-self");
    let client = OAuthClient::builder("mtls-client")
        .auth_method(AuthMethod::SelfSignedTlsClientAuth)
        .client_certificate(issued.certificate())
        .root_certificate(&pki.ca_pem)
        .metadata(metadata(serde_json::json!({
            "issuer": "https://idp.example",
            "authorization_endpoint": "https://idp.example/authorize",
            "token_endpoint": format!("{}/token", plain.uri()),
            "pushed_authorization_request_endpoint": format!("{}/par", plain.uri()),
            "mtls_endpoint_aliases": {
                "token_endpoint": server.url("/mtls/token"),
                "pushed_authorization_request_endpoint": server.url("/mtls/par"),
            },
        })))
        .build()
        .unwrap();
    let request = oauth_layer::flow::AuthCode::new()
        .par(true)
        .scope("read")
        .authorization_request_pushed(&client, "http://127.0.0.1:9/callback")
        .await
        .unwrap();
    assert!(request.url().as_str().contains("request_uri=urn"));
    let pushed = server.seen("/mtls/par");
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0].presented.as_deref(), Some(&*issued.thumbprint()));
    let form: Vec<(String, String)> = url::form_urlencoded::parse(pushed[0].body.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(form.iter().filter(|(k, _)| k == "client_id").count(), 1);
    assert!(form.iter().any(|(k, v)| k == "scope" && v == "read"));
    plain.verify().await;
}

#[test]
fn the_certificate_is_part_of_the_cache_key() {
    use oauth_layer::flow::Flow;

    let pki = Pki::new();
    let (a, b) = (pki.client("client-a"), pki.client("client-b"));
    let key = |certificate: Option<ClientCertificate>| {
        let mut builder = OAuthClient::builder("mtls-client").token_url("https://idp.example/t");
        if let Some(certificate) = certificate {
            builder = builder.client_certificate(certificate);
        }
        ClientCredentials::new().cache_key(&builder.build().unwrap())
    };
    assert_eq!(key(Some(a.certificate())), key(Some(a.certificate())));
    assert_ne!(key(Some(a.certificate())), key(Some(b.certificate())));
    assert_ne!(key(Some(a.certificate())), key(None));
}

#[test]
fn the_fapi2_profile_takes_mutual_tls_for_authentication_and_sender_constraint() {
    use oauth_layer::profile::Profile;

    let pki = Pki::new();
    let fapi = |method: AuthMethod| {
        let builder = OAuthClient::builder("bank-app")
            .auth_method(method)
            .issuer("https://bank.example")
            .token_url("https://bank.example/token")
            .par_url("https://bank.example/par")
            .authorization_url("https://bank.example/authorize")
            .profile(Profile::Fapi2);
        (
            builder.clone(),
            builder.client_certificate(pki.client("app").certificate()),
        )
    };
    // tls_client_auth with its certificate: authenticated and sender-constrained, no DPoP.
    let (without, with) = fapi(AuthMethod::TlsClientAuth);
    with.build().unwrap();
    assert!(without.build().is_err());
    fapi(AuthMethod::SelfSignedTlsClientAuth).1.build().unwrap();
    // A certificate does not make a shared secret acceptable.
    let err = fapi(AuthMethod::ClientSecretPost)
        .1
        .secret("s3cret")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("mutual TLS"), "{err}");
}
