//! A [`Registration`] kept in any [`TokenStore`](crate::store::TokenStore), as a [`Token`]: the
//! stores keep tokens only, and keep their secrets the way they keep refresh tokens (sealed
//! when the store encrypts, in private files otherwise; SECURITY.md rule 51).
//!
//! The mapping:
//! - the client secret is the refresh token (so that a Redis entry lives as long as a refresh
//!   token's does, rather than expiring with the access token);
//! - the registration access token is the access token, or [`NO_ACCESS_TOKEN`] without one;
//! - the expiry is the secret's (`client_secret_expires_at`), or as far away as a token can be;
//! - everything else sits in the token's extra members, under [`MEMBER`].

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use url::Url;

use super::Registration;
use crate::clock::{Clock, SystemClock};
use crate::token::{MAX_LIFETIME, Token};

/// The extra member of a stored registration.
#[cfg_attr(not(any(feature = "reqwest", feature = "tower")), allow(dead_code))]
pub(crate) const MEMBER: &str = "oauth_layer_registration";
/// The access token of a stored registration that has no registration access token.
#[cfg_attr(not(any(feature = "reqwest", feature = "tower")), allow(dead_code))]
const NO_ACCESS_TOKEN: &str = "oauth-layer-registration-without-access-token";
/// The layout of [`MEMBER`]; a stored entry of another version is not read.
#[cfg_attr(not(any(feature = "reqwest", feature = "tower")), allow(dead_code))]
const VERSION: u64 = 1;

#[cfg_attr(not(any(feature = "reqwest", feature = "tower")), allow(dead_code))]
impl Registration {
    /// This registration as a [`Token`] any store keeps, on the clock of the client that made
    /// it. [`from_token`](Self::from_token) reads it back.
    pub(crate) fn to_token(&self) -> Token {
        self.to_token_on(&*self.clock)
    }

    /// [`to_token`](Self::to_token), with the expiry placed on `clock`.
    pub(crate) fn to_token_on(&self, clock: &dyn Clock) -> Token {
        let lifetime = match self.client_secret_expires_at {
            Some(expires) => expires
                .duration_since(clock.now_utc())
                .unwrap_or(Duration::ZERO),
            None => MAX_LIFETIME,
        };
        let seconds = |time: Option<SystemTime>| {
            time.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map(|d| d.as_secs())
        };
        let stored = json!({
            "version": VERSION,
            "client_id": self.client_id,
            "has_registration_access_token": self.registration_access_token.is_some(),
            "registration_client_uri": self.registration_client_uri.as_ref().map(Url::as_str),
            "client_secret_expires_at": seconds(self.client_secret_expires_at),
            "client_id_issued_at": seconds(self.client_id_issued_at),
            "metadata": self.metadata,
        });
        let access_token = self
            .registration_access_token
            .as_ref()
            .map_or(NO_ACCESS_TOKEN, |t| t.expose_secret());
        let mut builder = Token::builder(access_token)
            .expires_in(lifetime)
            .extra(MEMBER, stored);
        if let Some(secret) = &self.client_secret {
            builder = builder.refresh_token(secret.expose_secret());
        }
        // Invariant: building fails only for an access token that is not a header value, and
        // both candidates are (a registration access token is checked when it arrives, and
        // when it is read back from a store).
        #[allow(clippy::expect_used)]
        builder
            .build(clock)
            .expect("a registration access token is a valid header value")
    }

    /// The registration [`to_token`](Self::to_token) stored in `token`; `None` when the token
    /// is not one (an ordinary token, another layout, a damaged entry). Its clock is the
    /// system's.
    pub(crate) fn from_token(token: &Token) -> Option<Registration> {
        let stored = token.extra().get(MEMBER)?.as_object()?;
        if stored.get("version")?.as_u64()? != VERSION {
            return None;
        }
        let client_id = stored.get("client_id")?.as_str()?.to_owned();
        let registration_access_token = match stored.get("has_registration_access_token")? {
            Value::Bool(true) => {
                let token = token.access_token().expose_secret();
                super::registered::is_bearer_safe(token)
                    .then(|| SecretString::from(token.to_owned()))
            }
            Value::Bool(false) => None,
            _ => return None,
        };
        let registration_client_uri = match stored.get("registration_client_uri") {
            Some(Value::String(uri)) => Some(Url::parse(uri).ok()?),
            None | Some(Value::Null) => None,
            Some(_) => return None,
        };
        let time = |name: &str| -> Option<Option<SystemTime>> {
            match stored.get(name) {
                Some(Value::Number(n)) => {
                    Some(UNIX_EPOCH.checked_add(Duration::from_secs(n.as_u64()?)))
                }
                None | Some(Value::Null) => Some(None),
                Some(_) => None,
            }
        };
        let metadata: Map<String, Value> = match stored.get("metadata") {
            Some(Value::Object(map)) => map.clone(),
            None => Map::new(),
            Some(_) => return None,
        };
        Some(Registration {
            client_id,
            client_secret: token.refresh_token().cloned(),
            client_secret_expires_at: time("client_secret_expires_at")?,
            client_id_issued_at: time("client_id_issued_at")?,
            registration_access_token,
            registration_client_uri,
            metadata,
            clock: Arc::new(SystemClock),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::OAuthClient;
    use crate::store::{CacheKey, MemoryStore, TokenStore};

    fn registration(secret: Option<&str>, rat: Option<&str>, expires: Option<u64>) -> Registration {
        let mut metadata = Map::new();
        metadata.insert("client_id".into(), json!("client-42"));
        metadata.insert("redirect_uris".into(), json!(["http://127.0.0.1/cb"]));
        metadata.insert(
            "token_endpoint_auth_method".into(),
            json!("client_secret_post"),
        );
        Registration {
            client_id: "client-42".into(),
            client_secret: secret.map(|s| SecretString::from(s.to_owned())),
            client_secret_expires_at: expires.map(|s| UNIX_EPOCH + Duration::from_secs(s)),
            client_id_issued_at: Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            registration_access_token: rat.map(|s| SecretString::from(s.to_owned())),
            registration_client_uri: rat
                .map(|_| Url::parse("https://idp.example/register/client-42").unwrap()),
            metadata,
            clock: Arc::new(SystemClock),
        }
    }

    fn key() -> CacheKey {
        let client = OAuthClient::builder("registrar").build().unwrap();
        CacheKey::builder(&client, "registration")
            .part("issuer", "https://idp.example")
            .build()
    }

    fn assert_same(a: &Registration, b: &Registration) {
        assert_eq!(a.client_id(), b.client_id());
        assert_eq!(
            a.client_secret().map(|s| s.expose_secret()),
            b.client_secret().map(|s| s.expose_secret())
        );
        assert_eq!(a.client_secret_expires_at(), b.client_secret_expires_at());
        assert_eq!(a.client_id_issued_at(), b.client_id_issued_at());
        assert_eq!(
            a.registration_access_token().map(|s| s.expose_secret()),
            b.registration_access_token().map(|s| s.expose_secret())
        );
        assert_eq!(a.registration_client_uri(), b.registration_client_uri());
        assert_eq!(a.metadata(), b.metadata());
        assert_eq!(
            a.token_endpoint_auth_method(),
            b.token_endpoint_auth_method()
        );
    }

    fn kinds() -> Vec<Registration> {
        let far = SystemClock
            .now_utc()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 86_400;
        vec![
            registration(Some("the-client-secret"), Some("the-rat-value"), Some(far)),
            registration(Some("the-client-secret"), None, None),
            registration(None, Some("the-rat-value"), None),
            registration(None, None, None),
        ]
    }

    #[test]
    fn the_mapping_puts_the_secrets_where_stores_keep_secrets() {
        let r = &kinds()[0];
        let token = r.to_token();
        assert_eq!(token.access_token().expose_secret(), "the-rat-value");
        assert_eq!(
            token.refresh_token().map(|s| s.expose_secret()),
            Some("the-client-secret")
        );
        let expires = r.client_secret_expires_at().unwrap();
        let off = token
            .expires_at_utc()
            .duration_since(expires)
            .unwrap_or_else(|e| e.duration());
        assert!(off < Duration::from_secs(1), "{off:?}");
        let extra = serde_json::to_string(token.extra()).unwrap();
        assert!(!extra.contains("the-client-secret") && !extra.contains("the-rat-value"));
        // No secret: as far away as a token goes; no access token: a placeholder.
        let public = kinds()[3].to_token();
        assert!(public.lifetime() >= MAX_LIFETIME - Duration::from_secs(1));
        assert!(public.refresh_token().is_none());
        assert_eq!(public.access_token().expose_secret(), NO_ACCESS_TOKEN);
        assert!(
            Registration::from_token(&public)
                .unwrap()
                .registration_access_token()
                .is_none()
        );
    }

    #[test]
    fn ordinary_tokens_are_not_registrations() {
        let token = Token::builder("at").build(&SystemClock).unwrap();
        assert!(Registration::from_token(&token).is_none());
        let other_version = Token::builder("at")
            .extra(MEMBER, json!({"version": 2, "client_id": "x"}))
            .build(&SystemClock)
            .unwrap();
        assert!(Registration::from_token(&other_version).is_none());
        let damaged = Token::builder("at")
            .extra(MEMBER, json!({"version": 1, "client_id": ["x"]}))
            .build(&SystemClock)
            .unwrap();
        assert!(Registration::from_token(&damaged).is_none());
    }

    #[tokio::test]
    async fn a_registration_survives_a_memory_store() {
        let store = MemoryStore::new();
        for r in kinds() {
            store.save(&key(), &r.to_token()).await.unwrap();
            let loaded = store.load(&key()).await.unwrap().unwrap();
            assert_same(&r, &Registration::from_token(&loaded).unwrap());
        }
    }

    #[cfg(feature = "file-store")]
    #[tokio::test]
    async fn a_registration_survives_a_file_store_and_is_sealed_when_encrypted() {
        use crate::store::FileStore;
        let dir =
            std::env::temp_dir().join(format!("oauth-layer-registration-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, store) in [
            ("plain", FileStore::in_dir(dir.join("plain"))),
            (
                "sealed",
                FileStore::in_dir(dir.join("sealed")).encryption_key([7; 32]),
            ),
        ] {
            for r in kinds() {
                store.save(&key(), &r.to_token()).await.unwrap();
                let loaded = store.load(&key()).await.unwrap().unwrap();
                assert_same(&r, &Registration::from_token(&loaded).unwrap());
                let bytes = std::fs::read(store.path(&key()).unwrap()).unwrap();
                let text = String::from_utf8_lossy(&bytes);
                if name == "sealed" {
                    for secret in ["the-client-secret", "the-rat-value", "client-42"] {
                        assert!(!text.contains(secret), "{name}: {secret} in {text}");
                    }
                } else {
                    assert!(text.contains("client-42"), "{text}");
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
