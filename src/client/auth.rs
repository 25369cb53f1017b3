//! Client authentication at the token endpoint (RFC 6749 §2.3).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};

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
}

impl AuthMethod {
    /// The name used in discovery metadata (`token_endpoint_auth_methods_supported`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
        }
    }
}

/// Adds the client's credentials to a token request: an `Authorization` header or form members.
pub(crate) fn authenticate(
    method: AuthMethod,
    client_id: &str,
    secret: Option<&SecretString>,
    form: &mut url::form_urlencoded::Serializer<'_, String>,
) -> Result<Option<HeaderValue>> {
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
        AuthMethod::None => {
            form.append_pair("client_id", client_id);
            Ok(None)
        }
    }
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
