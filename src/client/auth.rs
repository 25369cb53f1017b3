//! Client authentication at the token endpoint (RFC 6749 §2.3, RFC 7523 §2.2).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use secrecy::ExposeSecret;
use url::Url;

use super::OAuthClient;
use crate::error::{Error, Result};
use crate::redact::Secrets;

/// How the client proves its identity to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthMethod {
    /// `client_secret_basic`: HTTP Basic with the id and secret form-urlencoded first, as RFC 6749
    /// §2.3.1 requires (so a secret like `a:b/c+d%e&f=g h~` survives). The default when a secret
    /// is set.
    ClientSecretBasic,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// `none`: a public client; only `client_id` is sent, in the body. The default without a
    /// secret.
    None,
    /// `private_key_jwt` (RFC 7523 §2.2, OpenID Connect Core §9): a JWT signed with the key set
    /// by [`OAuthClientBuilder::signing_key`](crate::OAuthClientBuilder::signing_key), fresh for
    /// every request. The default when a signing key is set.
    #[cfg(feature = "jwt")]
    PrivateKeyJwt,
    /// `client_secret_jwt` (OpenID Connect Core §9): a JWT signed with HS256 over the client
    /// secret, so the secret itself never crosses the wire.
    #[cfg(feature = "jwt")]
    ClientSecretJwt,
    /// `tls_client_auth` (RFC 8705 §2.1): the client certificate, issued by a certificate
    /// authority the server trusts, authenticates the client on the TLS connection; only
    /// `client_id` goes in the body. Needs
    /// [`OAuthClientBuilder::client_certificate`](crate::OAuthClientBuilder::client_certificate).
    TlsClientAuth,
    /// `self_signed_tls_client_auth` (RFC 8705 §2.2): like [`TlsClientAuth`](Self::TlsClientAuth)
    /// with a self-signed certificate the server knows from the client's registered JWKS.
    /// Needs
    /// [`OAuthClientBuilder::client_certificate`](crate::OAuthClientBuilder::client_certificate).
    SelfSignedTlsClientAuth,
}

impl AuthMethod {
    /// The name used in discovery metadata (`token_endpoint_auth_methods_supported`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
            #[cfg(feature = "jwt")]
            Self::PrivateKeyJwt => "private_key_jwt",
            #[cfg(feature = "jwt")]
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    /// Whether the client authenticates with its TLS client certificate (RFC 8705 §2).
    pub fn is_mutual_tls(self) -> bool {
        matches!(self, Self::TlsClientAuth | Self::SelfSignedTlsClientAuth)
    }
}

/// Adds the client's credentials to a request to `endpoint`: an `Authorization` header or form
/// members. A client assertion is made anew on every call (so every attempt carries a fresh
/// one) and added to `secrets`.
pub(crate) fn authenticate(
    client: &OAuthClient,
    endpoint: &Url,
    form: &mut url::form_urlencoded::Serializer<'_, String>,
    secrets: &mut Secrets<'_>,
    assertion: Option<&crate::credential::Credential>,
) -> Result<Option<HeaderValue>> {
    let method = client.auth_method();
    #[cfg(not(feature = "jwt"))]
    let _ = assertion;
    let client_id = client.client_id();
    let secret = client.secret();
    #[cfg(not(feature = "jwt"))]
    let _ = (endpoint, secrets);
    let missing_secret = || {
        Error::config(format!(
            "client authentication {} needs a client secret",
            method.as_str()
        ))
    };
    match method {
        AuthMethod::ClientSecretBasic => {
            let secret = secret.ok_or_else(missing_secret)?;
            Ok(Some(basic_header(client_id, secret.expose_secret())?))
        }
        AuthMethod::ClientSecretPost => {
            let secret = secret.ok_or_else(missing_secret)?;
            form.append_pair("client_id", client_id);
            form.append_pair("client_secret", secret.expose_secret());
            Ok(None)
        }
        // An empty id names no client: a server that authenticates no one (Google's security
        // token service for a credential file without `client_id`) gets no `client_id=`.
        AuthMethod::None => {
            if !client_id.is_empty() {
                form.append_pair("client_id", client_id);
            }
            Ok(None)
        }
        // The certificate on the connection is the credential; the body only names the client.
        AuthMethod::TlsClientAuth | AuthMethod::SelfSignedTlsClientAuth => {
            if !client.has_client_certificate() {
                return Err(Error::config(format!(
                    "client authentication {} needs a client certificate \
                     (OAuthClientBuilder::client_certificate)",
                    method.as_str()
                )));
            }
            form.append_pair("client_id", client_id);
            Ok(None)
        }
        #[cfg(feature = "jwt")]
        AuthMethod::PrivateKeyJwt => {
            // Signed by someone else (a workload identity token), read by the caller.
            if let Some(assertion) = assertion {
                let value = assertion.secret().expose_secret();
                secrets.add_owned(value.to_owned());
                form.append_pair("client_id", client_id);
                form.append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE);
                form.append_pair("client_assertion", value);
                return Ok(None);
            }
            let key = client.inner.signing_key.as_ref().ok_or_else(|| {
                Error::config(
                    "private_key_jwt needs a signing key (OAuthClientBuilder::signing_key) or \
                     an assertion source (OAuthClientBuilder::client_assertion)",
                )
            })?;
            if key.algorithm().is_symmetric() {
                return Err(Error::Key(
                    "private_key_jwt needs an asymmetric key; HS256 is client_secret_jwt".into(),
                ));
            }
            client_assertion(client, key, endpoint, form, secrets)?;
            Ok(None)
        }
        #[cfg(feature = "jwt")]
        AuthMethod::ClientSecretJwt => {
            let secret = secret.ok_or_else(missing_secret)?;
            let key = crate::jwt::SigningKey::hs256(secret.expose_secret())?;
            client_assertion(client, &key, endpoint, form, secrets)?;
            Ok(None)
        }
    }
}

/// The assertion type of RFC 7523 §2.2.
#[cfg(feature = "jwt")]
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Adds `client_id`, `client_assertion_type` and a freshly signed `client_assertion`: `iss` and
/// `sub` are the client id, `aud` the token endpoint (or the issuer, when configured so).
#[cfg(feature = "jwt")]
fn client_assertion(
    client: &OAuthClient,
    key: &crate::jwt::SigningKey,
    endpoint: &Url,
    form: &mut url::form_urlencoded::Serializer<'_, String>,
    secrets: &mut Secrets<'_>,
) -> Result<()> {
    // Under a profile the audience is the issuer identifier alone (FAPI 2.0 §5.3.2.1).
    let audience = if client.assertion_audience_issuer() {
        client.issuer().ok_or_else(|| {
            Error::config(
                "assertion_audience_issuer(true) needs an issuer (OAuthClientBuilder::issuer)",
            )
        })?
    } else {
        // The token endpoint identifies the server even when the form goes elsewhere (the
        // device authorization endpoint).
        client.token_url().unwrap_or(endpoint).as_str()
    };
    let client_id = client.client_id();
    let assertion = key.assertion(&crate::jwt::Claims {
        issuer: client_id,
        subject: Some(client_id),
        audience,
        issued_at: client.clock().now_utc(),
        lifetime: match client.profile() {
            Some(_) => crate::profile::MAX_JWT_LIFETIME,
            None => crate::jwt::MAX_ASSERTION_LIFETIME,
        },
        not_before: false,
        scope: None,
        extra: None,
    })?;
    secrets.add_owned(assertion.expose_secret().to_owned());
    form.append_pair("client_id", client_id);
    form.append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE);
    form.append_pair("client_assertion", assertion.expose_secret());
    Ok(())
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))`, marked sensitive.
fn basic_header(client_id: &str, secret: &str) -> Result<HeaderValue> {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let credentials = STANDARD.encode(format!("{}:{}", encode(client_id), encode(secret)));
    let mut value = HeaderValue::try_from(format!("Basic {credentials}"))
        .map_err(|_| Error::config("client credentials do not fit in a header"))?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded_before_base64() {
        let header = basic_header("my client", "a:b/c+d%e&f=g h~").unwrap();
        let b64 = header.to_str().unwrap().strip_prefix("Basic ").unwrap();
        let decoded = String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap();
        assert_eq!(decoded, "my+client:a%3Ab%2Fc%2Bd%25e%26f%3Dg+h%7E");
        assert!(header.is_sensitive());
    }
}
