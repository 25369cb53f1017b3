//! Cache keys: what makes two tokens interchangeable (SECURITY.md rule 34).

use std::fmt;

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::client::OAuthClient;

/// Identifies tokens that may stand in for each other: the same server, client (and
/// credential), grant, subject, scopes, audience, resource and requested token type.
///
/// Secrets that distinguish keys (the client secret, a subject token) take part only as digests,
/// so a key can be printed and used as a file name.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    parts: Vec<(&'static str, String)>,
}

impl CacheKey {
    /// Starts a key for `client` and `grant`: it already holds the issuer (or token URL), the
    /// client id and a digest of the client secret.
    pub fn builder(client: &OAuthClient, grant: &str) -> CacheKeyBuilder {
        let server = client
            .issuer_id()
            .map(str::to_owned)
            .or_else(|| client.token_endpoint().map(|u| u.as_str().to_owned()))
            .unwrap_or_default();
        let mut parts = vec![
            ("server", server),
            ("client_id", client.client_id().to_owned()),
            ("grant", grant.to_owned()),
        ];
        if let Some(secret) = client.client_secret() {
            parts.push(("credential", digest(secret.expose_secret())));
        }
        #[cfg(feature = "jwt")]
        if let Some(key) = client.signing_key_fingerprint() {
            parts.push(("signing_key", key));
        }
        CacheKeyBuilder { parts }
    }

    /// A stable hex digest of the whole key, usable as a file or Redis key name.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for (name, value) in &self.parts {
            hasher.update(name.as_bytes());
            hasher.update([0]);
            hasher.update(value.as_bytes());
            hasher.update([0]);
        }
        hex(&hasher.finalize())
    }

    /// This key with one more part: several identities of one client and grant (httr2's
    /// `cache_key`) are told apart this way.
    #[must_use]
    pub fn with_part(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.parts.push((name, value.into()));
        self
    }

    /// The value of one part (`"scope"`, `"subject"`, `"audience"`...), if set.
    pub fn get(&self, part: &str) -> Option<&str> {
        self.parts
            .iter()
            .find(|(n, _)| *n == part)
            .map(|(_, v)| v.as_str())
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in &self.parts {
            map.entry(name, value);
        }
        map.finish()
    }
}

/// Builds a [`CacheKey`]. See [`CacheKey::builder`].
#[derive(Debug)]
#[must_use]
pub struct CacheKeyBuilder {
    parts: Vec<(&'static str, String)>,
}

impl CacheKeyBuilder {
    /// Adds the requested scopes, normalized: split on spaces, sorted, duplicates removed.
    pub fn scopes<'a>(mut self, scopes: impl IntoIterator<Item = &'a str>) -> Self {
        let mut all: Vec<&str> = scopes
            .into_iter()
            .flat_map(|s| s.split(' '))
            .filter(|s| !s.is_empty())
            .collect();
        all.sort_unstable();
        all.dedup();
        if !all.is_empty() {
            self.parts.push(("scope", all.join(" ")));
        }
        self
    }

    /// Adds a plain part (`"subject"`, `"audience"`, `"resource"`, `"token_type"`, or a name of
    /// your own for several identities of one client).
    pub fn part(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.parts.push((name, value.into()));
        self
    }

    /// Adds a part whose value is secret (a subject token, a refresh token): only its digest is
    /// kept.
    pub fn secret_part(mut self, name: &'static str, secret: &str) -> Self {
        self.parts.push((name, digest(secret)));
        self
    }

    /// The key.
    pub fn build(self) -> CacheKey {
        CacheKey { parts: self.parts }
    }
}

/// The first 16 bytes of SHA-256, in hex: enough to tell secrets apart, useless to recover them.
fn digest(secret: &str) -> String {
    let full = Sha256::digest(secret.as_bytes());
    hex(&full[..16])
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
