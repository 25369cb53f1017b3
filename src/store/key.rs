//! Cache keys: what makes two tokens interchangeable (SECURITY.md rule 34).

use std::fmt;

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::client::OAuthClient;

/// What [`CacheKey::get`] and `Debug` show for a secret part.
const REDACTED: &str = "[redacted]";
/// Separates the digests of secret parts from any other use of SHA-256.
const SECRET_DOMAIN: &[u8] = b"oauth-layer cache key secret\0";
/// Starts the encoding of a whole key, so that a change of layout changes every name.
const KEY_DOMAIN: &[u8] = b"oauth-layer cache key v2\0";

/// Identifies tokens that may stand in for each other: the same server, client and credential,
/// grant, subject, scopes, audience, resource and requested token type, and every other secret
/// the flow sends (password, refresh token, subject and actor tokens, signing key).
///
/// Secret parts are kept only as digests that never print: `Debug` and [`get`](Self::get) show
/// `[redacted]` for them. A persistent store never names an entry after a key's text either: it
/// names it with an HMAC of the whole key under its own secret [`KeySalt`](super::KeySalt), so
/// neither a printed key, nor a file name, nor a Redis key lets a weak secret be guessed offline.
///
/// ```
/// use oauth_layer::{OAuthClient, flow::{Flow, Password}};
///
/// let client = OAuthClient::builder("id").secret("client-secret").build()?;
/// let key = Password::new("alice", "password1").cache_key(&client);
/// assert_eq!(key.get("subject"), Some("alice"));
/// assert_eq!(key.get("password"), Some("[redacted]"));
/// assert!(!format!("{key:?}").contains("password1"));
/// assert_ne!(key, Password::new("alice", "password2").cache_key(&client));
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    parts: Vec<(&'static str, Value)>,
}

/// One part's value: plain text, or the digest of a secret.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Value {
    Plain(String),
    Secret(SecretDigest),
}

/// The full SHA-256 of a secret (or of another key), wiped when dropped. It is compared and
/// hashed in memory and fed to a store's HMAC, never printed or stored.
#[derive(Clone, PartialEq, Eq, Hash)]
struct SecretDigest([u8; 32]);

impl SecretDigest {
    fn of(secret: &[u8]) -> Self {
        Self(
            Sha256::new()
                .chain_update(SECRET_DOMAIN)
                .chain_update(secret)
                .finalize()
                .into(),
        )
    }
}

impl Drop for SecretDigest {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl CacheKey {
    /// Starts a key for `client` and `grant`: it already holds the issuer (or token URL), the
    /// client id and, as secret parts, the client secret and signing key.
    pub fn builder(client: &OAuthClient, grant: &str) -> CacheKeyBuilder {
        let server = client
            .issuer()
            .map(str::to_owned)
            .or_else(|| client.token_url().map(|u| u.as_str().to_owned()))
            .unwrap_or_default();
        let mut builder = CacheKeyBuilder { parts: Vec::new() }
            .part("server", server)
            .part("client_id", client.client_id())
            .part("grant", grant);
        if let Some(secret) = client.secret() {
            builder = builder.secret_part("credential", secret.expose_secret());
        }
        // Tokens obtained without a profile's guarantees are never served to a client that
        // follows one.
        if let Some(profile) = client.profile() {
            builder = builder.part("profile", profile.as_str());
        }
        // Tokens for one resource (RFC 8707) are never served for another.
        for resource in client.resources() {
            builder = builder.part("resource_indicator", resource.clone());
        }
        #[cfg(feature = "jwt")]
        if let Some(key) = client.signing_key_fingerprint() {
            builder = builder.secret_part("signing_key", &key);
        }
        // Assertions signed by someone else: the source identifies the client, not its
        // rotating value.
        #[cfg(feature = "jwt")]
        if let Some(source) = client.assertion_source_identity() {
            builder = builder.secret_part("client_assertion_source", &source);
        }
        // Tokens bound to a client certificate (RFC 8705) are never served to a client that
        // presents another one, or none.
        if let Some(thumbprint) = client.certificate_thumbprint() {
            builder = builder.part("client_certificate", thumbprint.to_owned());
        }
        // DPoP-bound tokens are never shared with a bearer client, nor with a client holding
        // another fixed key. A fresh key per source is not part of the key: the key travels
        // with the token (a store keeps it), so processes sharing a store share the token.
        #[cfg(feature = "dpop")]
        if let Some(dpop) = client.dpop() {
            let binding = match dpop.key() {
                Some(key) => format!("jkt:{}", key.thumbprint()),
                None => "per-source".to_owned(),
            };
            builder = builder.part("dpop", binding);
        }
        builder
    }

    /// This key with one more plain part: several identities of one client and grant (httr2's
    /// `cache_key`) are told apart this way.
    #[must_use]
    pub fn with_part(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.parts.push((name, Value::Plain(value.into())));
        self
    }

    /// The value of one part (`"scope"`, `"subject"`, `"audience"`...), if set; `[redacted]`
    /// for a secret part (`"credential"`, `"password"`, `"refresh_token"`, `"subject_token"`...).
    pub fn get(&self, part: &str) -> Option<&str> {
        self.parts
            .iter()
            .find(|(n, _)| *n == part)
            .map(|(_, v)| match v {
                Value::Plain(text) => text.as_str(),
                Value::Secret(_) => REDACTED,
            })
    }

    /// The whole key as unambiguous bytes: every name and value length-prefixed, secret parts
    /// as their digests. Only for keyed digests ([`KeySalt::name`](super::KeySalt::name)) and
    /// in-memory bindings; never printed or stored.
    pub(crate) fn encoded(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut out = zeroize::Zeroizing::new(KEY_DOMAIN.to_vec());
        let mut field = |bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        for (name, value) in &self.parts {
            field(name.as_bytes());
            match value {
                Value::Plain(text) => {
                    field(b"plain");
                    field(text.as_bytes());
                }
                Value::Secret(digest) => {
                    field(b"secret");
                    field(&digest.0);
                }
            }
        }
        out
    }

    /// A digest of the whole key that binds data to it in memory (the associated data of a
    /// sealed entry). Unkeyed, so it must never be printed or stored: it holds the secrets'
    /// digests.
    pub(crate) fn binding(&self) -> [u8; 32] {
        Sha256::digest(&*self.encoded()).into()
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in &self.parts {
            match value {
                // A token URL's query can carry a credential (an API key some servers take
                // there); the key keeps it, its Debug output (logged at debug level) does not.
                Value::Plain(text) if *name == "server" && text.contains('?') => {
                    let without = text.split('?').next().unwrap_or_default();
                    map.entry(name, &format!("{without}?{REDACTED}"));
                }
                _ => {
                    map.entry(name, value);
                }
            }
        }
        map.finish()
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Plain(text) => fmt::Debug::fmt(text, f),
            Value::Secret(_) => f.write_str(REDACTED),
        }
    }
}

/// Builds a [`CacheKey`]. See [`CacheKey::builder`].
#[derive(Debug)]
#[must_use]
pub struct CacheKeyBuilder {
    parts: Vec<(&'static str, Value)>,
}

impl CacheKeyBuilder {
    /// Adds the requested scopes, normalized: split on spaces, sorted, duplicates removed.
    pub fn scopes<'a>(self, scopes: impl IntoIterator<Item = &'a str>) -> Self {
        let mut all: Vec<&str> = scopes
            .into_iter()
            .flat_map(|s| s.split(' '))
            .filter(|s| !s.is_empty())
            .collect();
        all.sort_unstable();
        all.dedup();
        if all.is_empty() {
            return self;
        }
        let joined = all.join(" ");
        self.part("scope", joined)
    }

    /// Adds a plain part (`"subject"`, `"audience"`, `"resource"`, `"token_type"`, or a name of
    /// your own for several identities of one client). Plain parts print: never put a secret
    /// here.
    pub fn part(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.parts.push((name, Value::Plain(value.into())));
        self
    }

    /// Adds a part whose value is secret (a password, a refresh token, a subject token, an
    /// assertion): every credential the flow sends belongs in the key this way, so that two
    /// flows that differ only in it never share a token. Only a digest is kept; it never prints
    /// and a store names entries with a keyed digest of it.
    pub fn secret_part(mut self, name: &'static str, secret: &str) -> Self {
        self.parts
            .push((name, Value::Secret(SecretDigest::of(secret.as_bytes()))));
        self
    }

    /// Adds another key as a part: the key of a [`TokenSource`](crate::TokenSource) this flow
    /// takes its input from (a subject token that is another source's access token). It counts
    /// as secret, since that key binds the other source's credentials.
    pub fn key_part(mut self, name: &'static str, key: &CacheKey) -> Self {
        self.parts
            .push((name, Value::Secret(SecretDigest::of(&key.binding()))));
        self
    }

    /// The key.
    pub fn build(self) -> CacheKey {
        CacheKey { parts: self.parts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CacheKeyBuilder {
        CacheKey::builder(&OAuthClient::builder("c").build().unwrap(), "g")
    }

    #[test]
    fn secret_parts_separate_keys_and_never_print() {
        let a = key().secret_part("password", "password1").build();
        let b = key().secret_part("password", "password2").build();
        assert_ne!(a, b);
        assert_eq!(a, key().secret_part("password", "password1").build());
        assert_eq!(a.get("password"), Some(REDACTED));
        let shown = format!("{a:?} {a:#?}");
        assert!(shown.contains("\"password\": [redacted]"), "{shown}");
        assert!(!shown.contains("password1"), "{shown}");
    }

    #[test]
    fn the_encoding_is_unambiguous() {
        // The same bytes split differently between name and value, or plain against secret.
        let one = key().part("ab", "c").build();
        let two = key().part("a", "bc").build();
        assert_ne!(one.encoded(), two.encoded());
        let plain = key().part("x", "y").build();
        let secret = key().secret_part("x", "y").build();
        assert_ne!(plain.encoded(), secret.encoded());
        let nested = key().key_part("source", &one).build();
        assert_ne!(nested, key().key_part("source", &two).build());
    }
}
