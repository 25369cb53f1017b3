//! Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document): the client id
//! is an `https` URL the app controls, and the document served there is its registration.

use serde_json::{Map, Value};
use url::Url;

use super::ClientMetadata;
use crate::client::AuthMethod;
use crate::error::{Error, Result};

/// Members of a private or symmetric JSON Web Key (RFC 7518 §6.2.2, §6.3.2, §6.4.1).
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

impl ClientMetadata {
    /// The JSON document an app serves at its `https` client id URL for the Client ID Metadata
    /// Document scheme (draft-ietf-oauth-client-id-metadata-document): these metadata with
    /// `client_id` set to that URL, exactly as given (the authorization server compares it as a
    /// plain string with the URL it fetched).
    ///
    /// Refused with [`Error::Config`], because an authorization server must refuse them too:
    /// - a client id that is not an `https` URL, carries a user name or password or a fragment,
    ///   has no path (`https://app.example` or just `/`, which the draft advises against, as
    ///   the document would take the site's root) or a `.` or `..` segment (a query is allowed,
    ///   though the draft advises against it);
    /// - metadata that could only work with a shared secret, which no document can establish:
    ///   `client_secret` or `client_secret_expires_at` members, or a `client_secret_basic`,
    ///   `client_secret_post` or `client_secret_jwt` authentication method;
    /// - private key material: a key in `jwks` with a private or symmetric member (`d`, `k`...);
    /// - a `client_id` member (set with [`field`](Self::field)) that is another URL.
    ///
    /// The [initial access token](Self::initial_access_token) belongs to RFC 7591 registration
    /// and is never part of the document.
    ///
    /// ```
    /// use oauth_layer::AuthMethod;
    /// use oauth_layer::registration::ClientMetadata;
    ///
    /// let metadata = ClientMetadata::new()
    ///     .client_name("My CLI")
    ///     .redirect_uri("http://127.0.0.1/callback")
    ///     .token_endpoint_auth_method(AuthMethod::None);
    /// let document = metadata.metadata_document("https://app.example/oauth/client.json")?;
    /// assert_eq!(document["client_id"], "https://app.example/oauth/client.json");
    /// assert_eq!(document["client_name"], "My CLI");
    ///
    /// assert!(metadata.metadata_document("https://app.example").is_err());
    /// let with_secret = metadata.clone().token_endpoint_auth_method(AuthMethod::ClientSecretBasic);
    /// assert!(with_secret.metadata_document("https://app.example/client.json").is_err());
    /// # Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn metadata_document(&self, client_id: &str) -> Result<Value> {
        check_client_id_url(client_id)?;
        let mut map = self.to_map();
        check_no_shared_secret(&map)?;
        if let Some(jwks) = map.get("jwks") {
            check_public_keys(jwks)?;
        }
        match map.get("client_id") {
            Some(Value::String(set)) if set == client_id => {}
            None => {}
            Some(_) => {
                return Err(Error::config(
                    "the metadata carry another client_id than the metadata document's URL",
                ));
            }
        }
        map.insert("client_id".into(), Value::String(client_id.to_owned()));
        Ok(Value::Object(map))
    }
}

/// A Client Identifier URL (draft §2): `https`, no user information, a path without dot
/// segments, no fragment.
fn check_client_id_url(client_id: &str) -> Result<()> {
    let refuse = |why: &str| {
        Err(Error::config(format!(
            "a Client ID Metadata Document's client id {why}"
        )))
    };
    let Ok(url) = Url::parse(client_id) else {
        return refuse("must be an https URL");
    };
    if url.scheme() != "https" || !client_id.starts_with("https://") {
        return refuse("must be an https URL");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("must not carry a user name or password");
    }
    if url.fragment().is_some() || client_id.contains('#') {
        return refuse("must not have a fragment");
    }
    // The path as written: the URL parser resolves dot segments away and adds a `/` to an
    // empty path, and the server compares the text as written.
    let after_scheme = &client_id["https://".len()..];
    let authority_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let rest = &after_scheme[authority_end..];
    let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    if path.is_empty() || path == "/" {
        return refuse("must have a path (not only `/`)");
    }
    let dot_segment = path.split('/').any(|segment| {
        let decoded = percent_decoded(segment);
        decoded == "." || decoded == ".."
    });
    if dot_segment {
        return refuse("must not have `.` or `..` path segments");
    }
    if url.query().is_some() {
        tracing::warn!(
            "a Client ID Metadata Document's client id has a query, which the draft advises \
             against"
        );
    }
    Ok(())
}

/// `%XX` escapes decoded, anything else kept.
fn percent_decoded(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Refuses what only works with a secret shared with the server (draft §4.1).
fn check_no_shared_secret(map: &Map<String, Value>) -> Result<()> {
    for member in ["client_secret", "client_secret_expires_at"] {
        if map.contains_key(member) {
            return Err(Error::config(format!(
                "a Client ID Metadata Document must not carry `{member}`: no secret can be \
                 shared through a public document"
            )));
        }
    }
    let shared = [
        AuthMethod::ClientSecretBasic.as_str(),
        AuthMethod::ClientSecretPost.as_str(),
        "client_secret_jwt",
    ];
    if let Some(method) = map
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .filter(|m| shared.contains(m))
    {
        return Err(Error::config(format!(
            "a Client ID Metadata Document cannot use token_endpoint_auth_method {method}, which \
             needs a shared secret; use none (a public client) or private_key_jwt with jwks or \
             jwks_uri"
        )));
    }
    Ok(())
}

/// Refuses private or symmetric keys in a JWK Set (draft §4.1: public keys only).
fn check_public_keys(jwks: &Value) -> Result<()> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let private = keys.iter().any(|key| {
        key.as_object()
            .is_some_and(|key| PRIVATE_JWK_MEMBERS.iter().any(|m| key.contains_key(*m)))
    });
    if private {
        return Err(Error::config(
            "a Client ID Metadata Document must publish public keys only: a key in jwks has \
             private or symmetric key material",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_urls_follow_the_draft() {
        for good in [
            "https://app.example/client.json",
            "https://app.example:8443/oauth/client",
            "https://app.example:443/client",
            "https://app.example/client?v=1",
            "https://app.example/a.b/..c/client",
        ] {
            assert!(check_client_id_url(good).is_ok(), "{good}");
        }
        for bad in [
            "http://app.example/client.json",
            "HTTPS://app.example/client.json",
            "https://app.example",
            "https://app.example/",
            "https://app.example?x=/y",
            "https://user:pw@app.example/client",
            "https://user@app.example/client",
            "https://app.example/client#frag",
            "https://app.example/client#",
            "https://app.example/a/../client",
            "https://app.example/./client",
            "https://app.example/a/%2e%2E/client",
            "https://app.example/a/.%2E",
            "app.example/client",
            "",
        ] {
            let err = check_client_id_url(bad).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{bad}: {err:?}");
        }
    }
}
