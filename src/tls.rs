//! Mutual TLS (RFC 8705): a client certificate that authenticates the client
//! (`tls_client_auth`, `self_signed_tls_client_auth`) and binds its access tokens.
//!
//! Give a [`ClientCertificate`] to
//! [`OAuthClientBuilder::client_certificate`](crate::OAuthClientBuilder::client_certificate):
//! every back-channel request then goes out on a connection that presents it, to the server's
//! `mtls_endpoint_aliases` when its metadata names them. The tokens the client gets are bound
//! to the certificate ([`Token::certificate_thumbprint`](crate::Token::certificate_thumbprint)):
//! a resource that checks the binding (RFC 8705 §3) accepts them only on a connection presenting
//! the same certificate. So the pipeline that sends them must present it too
//! ([`reqwest_client_builder`](ClientCertificate::reqwest_client_builder)) and say so
//! (`OAuthMiddleware::client_certificate`, `OAuthLayer::client_certificate`); a bound token is
//! never attached to a request of a pipeline that did not.
//!
//! ```no_run
//! use oauth_layer::{AuthMethod, OAuthClient, OAuthMiddleware, tls::ClientCertificate};
//!
//! # fn build() -> Result<(), Box<dyn std::error::Error>> {
//! let certificate = ClientCertificate::from_pem(
//!     std::fs::read("client.pem")?,
//!     std::fs::read("client.key")?,
//! )?;
//! let client = OAuthClient::builder("my-client-id")
//!     .auth_method(AuthMethod::TlsClientAuth)
//!     .client_certificate(certificate.clone())
//!     .token_url("https://idp.example/oauth/token")
//!     .build()?;
//! let http = certificate
//!     .reqwest_client_builder()
//!     .redirect(oauth_layer::reqwest::redirect_policy())
//!     .build()?;
//! let http = reqwest_middleware::ClientBuilder::new(http)
//!     .with(OAuthMiddleware::client_credentials(client).client_certificate(&certificate))
//!     .build();
//! # let _ = http; Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The largest certificate chain or private key PEM taken (64 KiB each): far more than any
/// real chain, and little enough that a wrong file (a log, a binary) is refused outright.
pub const MAX_PEM_SIZE: usize = 64 * 1024;

/// A client certificate with its private key, for mutual TLS (RFC 8705).
///
/// Cheap to clone; clones share the key. Its `Debug` shows only the certificate's
/// [`thumbprint`](Self::thumbprint), never the key:
///
/// ```no_run
/// # fn run(cert_pem: &[u8], key_pem: &[u8]) -> oauth_layer::Result<()> {
/// let certificate = oauth_layer::tls::ClientCertificate::from_pem(cert_pem, key_pem)?;
/// println!("{certificate:?}"); // ClientCertificate { thumbprint: "…" }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ClientCertificate {
    inner: Arc<Inner>,
}

struct Inner {
    /// The chain and key as reqwest takes them, for [`ClientCertificate::reqwest_client_builder`].
    identity: reqwest::Identity,
    /// The chain (leaf first) and the key as rustls takes them, for the client's own transport.
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    thumbprint: String,
}

impl Drop for Inner {
    /// The key's bytes are overwritten before they are freed. (The copies handed to rustls, and
    /// the one inside `identity`, are freed by those crates.)
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

impl ClientCertificate {
    /// The certificate chain (leaf first, PEM `CERTIFICATE` blocks) and its private key (one
    /// PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` block).
    ///
    /// # Errors
    ///
    /// [`Error::Key`] when either is larger than [`MAX_PEM_SIZE`], the chain holds no
    /// certificate (or holds a private key), the key PEM holds no usable key, or the key is not
    /// the certificate's (checked by building a TLS client configuration with them, as every
    /// connection will). The message never contains the key.
    pub fn from_pem(
        cert_chain_pem: impl AsRef<[u8]>,
        private_key_pem: impl AsRef<[u8]>,
    ) -> Result<Self> {
        let (chain, key) = (cert_chain_pem.as_ref(), private_key_pem.as_ref());
        if chain.len() > MAX_PEM_SIZE || key.len() > MAX_PEM_SIZE {
            return Err(Error::Key(format!(
                "a client certificate chain or key PEM is larger than {MAX_PEM_SIZE} bytes"
            )));
        }
        let certificates = CertificateDer::pem_slice_iter(chain)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| Error::Key("the client certificate PEM is malformed".into()))?;
        let Some(leaf) = certificates.first() else {
            return Err(Error::Key(
                "the client certificate PEM holds no certificate".into(),
            ));
        };
        if PrivateKeyDer::from_pem_slice(chain).is_ok() {
            return Err(Error::Key(
                "the client certificate PEM holds a private key; give the key separately".into(),
            ));
        }
        let Ok(private_key) = PrivateKeyDer::from_pem_slice(key) else {
            return Err(Error::Key(
                "the client private key PEM holds no usable private key".into(),
            ));
        };
        let mut both = Zeroizing::new(Vec::with_capacity(chain.len() + key.len() + 1));
        both.extend_from_slice(chain);
        both.push(b'\n');
        both.extend_from_slice(key);
        let identity = reqwest::Identity::from_pem(&both)
            .map_err(|_| Error::Key("the client certificate or key cannot be read".into()))?;
        // rustls checks here that the key is the certificate's, and that it can sign. No
        // server is verified with this configuration, so it needs no root certificate.
        rustls::ClientConfig::builder_with_provider(crate::transport::tls_provider())
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .and_then(|config| {
                config
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_client_auth_cert(certificates.clone(), private_key.clone_key())
            })
            .map_err(|e| {
                Error::Key(format!(
                    "the client certificate and key cannot be used together: {}",
                    crate::transport::deepest(&e)
                ))
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                identity,
                thumbprint: thumbprint(leaf),
                chain: certificates,
                key: private_key,
            }),
        })
    }

    /// The certificate's thumbprint as RFC 8705 §3.1 defines it (`x5t#S256`): the SHA-256 of
    /// the leaf certificate's DER, base64url without padding. A resource checks a bound token's
    /// `cnf` against it.
    pub fn thumbprint(&self) -> &str {
        &self.inner.thumbprint
    }

    /// A `reqwest::ClientBuilder` that presents this certificate on every TLS connection: the
    /// client to send this certificate's bound tokens through, so that resource requests
    /// present the same certificate as token requests. Add what else it needs (a
    /// [redirect policy](crate::reqwest::redirect_policy), a private root certificate).
    pub fn reqwest_client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder().identity(self.identity())
    }

    /// The certificate and key as reqwest presents them.
    fn identity(&self) -> reqwest::Identity {
        self.inner.identity.clone()
    }

    /// The certificate chain (leaf first) and a copy of the key, as rustls takes them for a
    /// TLS client configuration that presents the certificate.
    pub(crate) fn chain_and_key(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        (self.inner.chain.clone(), self.inner.key.clone_key())
    }
}

impl PartialEq for ClientCertificate {
    /// The same certificate (the same thumbprint).
    fn eq(&self, other: &Self) -> bool {
        self.inner.thumbprint == other.inner.thumbprint
    }
}

impl Eq for ClientCertificate {}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("thumbprint", &self.inner.thumbprint)
            .finish()
    }
}

/// The RFC 8705 §3.1 thumbprint (`x5t#S256`) of a DER certificate: base64url (no padding) of
/// its SHA-256. What a resource compares with a bound token's `cnf` member.
pub fn thumbprint(certificate_der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(certificate_der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_is_base64url_of_sha256() {
        // SHA-256 of the empty string, base64url without padding.
        assert_eq!(
            thumbprint(b""),
            "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU"
        );
    }

    #[test]
    fn oversize_and_empty_pems_are_refused() {
        let big = vec![b'a'; MAX_PEM_SIZE + 1];
        assert!(matches!(
            ClientCertificate::from_pem(&big, b""),
            Err(Error::Key(_))
        ));
        assert!(matches!(
            ClientCertificate::from_pem(b"", b""),
            Err(Error::Key(_))
        ));
    }
}
