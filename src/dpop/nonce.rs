//! The nonces servers hand out with `DPoP-Nonce`, remembered per origin (RFC 9449 §8, §9).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use http::HeaderMap;

use super::DPOP_NONCE_HEADER;

/// How many origins' nonces are remembered; the oldest is forgotten first.
pub(crate) const MAX_ORIGINS: usize = 256;
/// The longest nonce kept. Real nonces are tens of bytes; a longer one is ignored.
const MAX_NONCE_LEN: usize = 1024;

/// The latest nonce of each origin, shared by every clone of a client (and so by its sources,
/// layers and middlewares). Updated from every response that carries `DPoP-Nonce`.
#[derive(Default)]
pub(crate) struct Nonces {
    by_origin: Mutex<VecDeque<(String, Arc<str>)>>,
}

impl Nonces {
    /// The latest nonce `origin` (`scheme://host:port`) gave, if any.
    pub(crate) fn get(&self, origin: &str) -> Option<Arc<str>> {
        let map = self
            .by_origin
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.iter()
            .find(|(o, _)| o == origin)
            .map(|(_, n)| n.clone())
    }

    /// Remembers the nonce in `headers` (if there is one and it is well formed) for `origin`,
    /// and returns it.
    #[cfg(test)]
    pub(crate) fn update(&self, origin: &str, headers: &HeaderMap) -> Option<Arc<str>> {
        Some(self.set(origin, nonce_in(headers)?))
    }

    /// Remembers `nonce` (already checked by [`nonce_in`]) as `origin`'s latest.
    pub(crate) fn set(&self, origin: &str, nonce: &str) -> Arc<str> {
        let mut map = self
            .by_origin
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = map.iter_mut().find(|(o, _)| o == origin) {
            if *entry.1 != *nonce {
                entry.1 = Arc::from(nonce);
            }
            return entry.1.clone();
        }
        if map.len() >= MAX_ORIGINS {
            map.pop_front();
        }
        let nonce: Arc<str> = Arc::from(nonce);
        map.push_back((origin.to_owned(), nonce.clone()));
        nonce
    }
}

/// Whose nonces a key names. RFC 9449 gives the authorization server (§8) and each resource
/// server (§9) nonces of their own, and one origin may serve both with different nonces: kept
/// under one key, each would overwrite the other and every switch would cost a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NonceRole {
    /// The authorization server: its token endpoint, and the userinfo endpoint it serves.
    AuthorizationServer,
    /// A resource server, reached through the tower layer or the middleware.
    #[cfg_attr(not(any(feature = "tower", feature = "reqwest")), allow(dead_code))]
    Resource,
}

/// The key nonces are kept under: `as:` or `rs:` and then `scheme://host:port`, lowercased,
/// the port always written.
pub(crate) fn origin_key(role: NonceRole, scheme: &str, host: &str, port: Option<u16>) -> String {
    let port = port.unwrap_or(if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    });
    let role = match role {
        NonceRole::AuthorizationServer => "as",
        NonceRole::Resource => "rs",
    };
    let mut key = format!("{role}:{scheme}://{host}:{port}");
    key.make_ascii_lowercase();
    key
}

/// [`origin_key`] of a URL.
pub(crate) fn origin_key_of_url(role: NonceRole, url: &url::Url) -> String {
    origin_key(role, url.scheme(), url.host_str().unwrap_or(""), url.port())
}

/// [`origin_key`] of a request URI.
#[cfg(feature = "tower")]
pub(crate) fn origin_key_of_uri(role: NonceRole, uri: &http::Uri) -> String {
    origin_key(
        role,
        uri.scheme_str().unwrap_or(""),
        uri.host().unwrap_or(""),
        uri.port_u16(),
    )
}

/// The `DPoP-Nonce` of a response, when it is one header of visible ASCII characters
/// without `"` and `\` (RFC 9449 §8.1: `1*NQCHAR`) and not absurdly long.
pub(crate) fn nonce_in(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(DPOP_NONCE_HEADER).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let nonce = value.to_str().ok()?;
    well_formed(nonce).then_some(nonce)
}

/// Whether `nonce` is one: visible ASCII characters without `"` and `\\` (RFC 9449 §8.1:
/// `1*NQCHAR`), and not absurdly long.
pub(crate) fn well_formed(nonce: &str) -> bool {
    !nonce.is_empty()
        && nonce.len() <= MAX_NONCE_LEN
        && nonce
            .bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let map = self
            .by_origin
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("Nonces")
            .field("origins", &map.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_nonce(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(DPOP_NONCE_HEADER, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn remembers_the_latest_nonce_per_origin() {
        let n = Nonces::default();
        assert!(n.get("https://a").is_none());
        n.update("https://a", &with_nonce(&["one"]));
        n.update("https://b", &with_nonce(&["two"]));
        n.update("https://a", &with_nonce(&["three"]));
        assert_eq!(n.get("https://a").as_deref(), Some("three"));
        assert_eq!(n.get("https://b").as_deref(), Some("two"));
        // A response without a nonce keeps the last one.
        assert!(n.update("https://a", &HeaderMap::new()).is_none());
        assert_eq!(n.get("https://a").as_deref(), Some("three"));
    }

    #[test]
    fn malformed_repeated_and_huge_nonces_are_ignored() {
        assert!(nonce_in(&with_nonce(&["a", "b"])).is_none());
        assert!(nonce_in(&with_nonce(&["has space"])).is_none());
        assert!(nonce_in(&with_nonce(&["quo\"te"])).is_none());
        assert!(nonce_in(&with_nonce(&[&"x".repeat(MAX_NONCE_LEN + 1)])).is_none());
        assert_eq!(
            nonce_in(&with_nonce(&["eyJ7S_zG.eyJH0-Z"])),
            Some("eyJ7S_zG.eyJH0-Z")
        );
    }

    #[test]
    fn a_token_endpoint_and_a_resource_at_one_origin_keep_their_own_nonces() {
        let url = url::Url::parse("HTTPS://Idp.Example/token?x=1").unwrap();
        let uri: http::Uri = "https://idp.example:443/api".parse().unwrap();
        let token_endpoint = origin_key_of_url(NonceRole::AuthorizationServer, &url);
        let resource = origin_key_of_uri(NonceRole::Resource, &uri);
        assert_eq!(token_endpoint, "as:https://idp.example:443");
        assert_eq!(resource, "rs:https://idp.example:443");
        let n = Nonces::default();
        n.set(&token_endpoint, "for-tokens");
        n.set(&resource, "for-the-api");
        assert_eq!(n.get(&token_endpoint).as_deref(), Some("for-tokens"));
    }

    #[test]
    fn the_number_of_origins_is_bounded() {
        let n = Nonces::default();
        for i in 0..MAX_ORIGINS + 10 {
            n.update(&format!("https://h{i}"), &with_nonce(&["n"]));
        }
        assert!(n.get("https://h0").is_none());
        assert!(n.get(&format!("https://h{}", MAX_ORIGINS + 9)).is_some());
        assert_eq!(n.by_origin.lock().unwrap().len(), MAX_ORIGINS);
    }
}
