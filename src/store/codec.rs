//! How persistent stores write a token down and read it back: versioned JSON, optionally sealed
//! with AES-256-GCM under a key the user supplies (bound to the cache key, so a sealed entry
//! cannot be moved to another key).

use std::fmt;
use std::sync::Arc;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::CacheKey;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::token::{Persisted, Token};

/// The format version this crate writes. Entries with a higher version are misses.
pub const FORMAT_VERSION: u32 = 1;

/// The largest entry read (anything larger is corrupt).
pub const MAX_ENTRY: usize = 1024 * 1024;

const FORMAT: &str = "oauth-layer-token";
const NONCE_LEN: usize = 12;

/// Turns tokens into bytes for a persistent store and back.
///
/// ```
/// use oauth_layer::store::Codec;
///
/// let plain = Codec::plain();
/// let sealed = Codec::encrypted([7u8; 32]); // a key from your secret manager, not a constant
/// # let _ = (plain, sealed);
/// ```
#[derive(Clone, Default)]
pub struct Codec {
    cipher: Option<Arc<Aes256Gcm>>,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: String,
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token: Option<Persisted>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<String>,
}

impl Codec {
    /// Tokens written as JSON (protected by file permissions or the store's own access control).
    pub fn plain() -> Self {
        Self { cipher: None }
    }

    /// Tokens sealed with AES-256-GCM under `key`: the stored bytes never contain the tokens.
    pub fn encrypted(key: [u8; 32]) -> Self {
        let key = Zeroizing::new(key);
        Self {
            cipher: Some(Arc::new(Aes256Gcm::new((&*key).into()))),
        }
    }

    /// `true` when entries are sealed.
    pub fn is_encrypted(&self) -> bool {
        self.cipher.is_some()
    }

    /// The bytes to store for `token` under `key`.
    pub fn encode(&self, key: &CacheKey, token: &Token) -> Result<Vec<u8>> {
        let persisted = token.to_persisted();
        let envelope = match &self.cipher {
            None => Envelope {
                format: FORMAT.into(),
                version: FORMAT_VERSION,
                token: Some(persisted),
                sealed: None,
            },
            Some(cipher) => {
                let plain = Zeroizing::new(
                    serde_json::to_vec(&persisted)
                        .map_err(|e| Error::Store(format!("cannot encode a token: {e}")))?,
                );
                let mut nonce = [0u8; NONCE_LEN];
                getrandom::fill(&mut nonce)
                    .map_err(|e| Error::Internal(format!("no system randomness: {e}")))?;
                let aad = key.binding();
                let sealed = cipher
                    .encrypt(
                        Nonce::from_slice(&nonce),
                        Payload {
                            msg: &plain,
                            aad: &aad,
                        },
                    )
                    .map_err(|_| Error::Store("cannot seal a token".into()))?;
                let mut blob = nonce.to_vec();
                blob.extend_from_slice(&sealed);
                Envelope {
                    format: FORMAT.into(),
                    version: FORMAT_VERSION,
                    token: None,
                    sealed: Some(STANDARD.encode(blob)),
                }
            }
        };
        serde_json::to_vec(&envelope)
            .map_err(|e| Error::Store(format!("cannot encode a token: {e}")))
    }

    /// The token stored in `bytes` under `key`. Corrupt, truncated, foreign, future-version or
    /// wrongly sealed entries are errors that say which, never what the entry held.
    pub fn decode(&self, key: &CacheKey, bytes: &[u8], clock: &dyn Clock) -> Result<Token> {
        if bytes.len() > MAX_ENTRY {
            return Err(corrupt("larger than any entry this crate writes"));
        }
        let envelope: Envelope =
            serde_json::from_slice(bytes).map_err(|_| corrupt("not a token entry"))?;
        if envelope.format != FORMAT {
            return Err(corrupt("not a token entry"));
        }
        if envelope.version > FORMAT_VERSION {
            return Err(corrupt("written by a newer version of the crate"));
        }
        let persisted = match (envelope.token, envelope.sealed, &self.cipher) {
            (Some(token), None, None) => token,
            (None, Some(sealed), Some(cipher)) => {
                let blob = STANDARD
                    .decode(sealed)
                    .map_err(|_| corrupt("the sealed entry is not base64"))?;
                if blob.len() <= NONCE_LEN {
                    return Err(corrupt("the sealed entry is truncated"));
                }
                let (nonce, sealed) = blob.split_at(NONCE_LEN);
                let aad = key.binding();
                let plain = Zeroizing::new(
                    cipher
                        .decrypt(
                            Nonce::from_slice(nonce),
                            Payload {
                                msg: sealed,
                                aad: &aad,
                            },
                        )
                        .map_err(|_| corrupt("the sealed entry does not open with this key"))?,
                );
                serde_json::from_slice(&plain)
                    .map_err(|_| corrupt("the sealed entry is corrupt"))?
            }
            (Some(_), None, Some(_)) => {
                return Err(corrupt(
                    "an unsealed entry where sealed entries are expected",
                ));
            }
            (None, Some(_), None) => return Err(corrupt("a sealed entry and no key to open it")),
            _ => return Err(corrupt("not a token entry")),
        };
        Token::from_persisted(persisted, clock)
            .map_err(|_| corrupt("the entry holds no usable token"))
    }
}

fn corrupt(why: &str) -> Error {
    Error::Store(format!("unreadable token entry: {why}"))
}

impl fmt::Debug for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codec")
            .field("encrypted", &self.is_encrypted())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::flow::{ClientCredentials, Flow};
    use std::time::Duration;

    fn key() -> CacheKey {
        ClientCredentials::new()
            .cache_key(&crate::client::OAuthClient::builder("c").build().unwrap())
    }

    fn token(clock: &ManualClock) -> Token {
        Token::builder("AT-SENTINEL-1")
            .expires_in(Duration::from_secs(600))
            .refresh_token("RT-SENTINEL-2")
            .scope("a b")
            .build(clock)
            .unwrap()
    }

    #[test]
    fn tokens_round_trip_plain_and_sealed_with_their_expiry() {
        let clock = ManualClock::new();
        for codec in [Codec::plain(), Codec::encrypted([9; 32])] {
            let bytes = codec.encode(&key(), &token(&clock)).unwrap();
            clock.advance(Duration::from_secs(100));
            let back = codec.decode(&key(), &bytes, &clock).unwrap();
            assert_eq!(back.scope(), Some("a b"));
            assert!(back.refresh_token().is_some());
            let left = back.expires_at() - clock.now();
            assert!(left <= Duration::from_secs(500) && left >= Duration::from_secs(499));
        }
    }

    #[test]
    fn the_renewal_instant_the_server_named_round_trips_and_old_entries_read_without_it() {
        let clock = ManualClock::new();
        let directed = Token::builder("AT-SENTINEL-1")
            .expires_in(Duration::from_secs(3600))
            .refresh_in(Duration::from_secs(1200))
            .build(&clock)
            .unwrap();
        for codec in [Codec::plain(), Codec::encrypted([9; 32])] {
            let bytes = codec.encode(&key(), &directed).unwrap();
            clock.advance(Duration::from_secs(200));
            let back = codec.decode(&key(), &bytes, &clock).unwrap();
            let left = back.renew_at().unwrap() - clock.now();
            let expected = Duration::from_secs(1200) - clock.elapsed();
            assert!(left <= expected && left + Duration::from_secs(1) >= expected);
        }

        // An entry as the crate wrote it before `renew_at_unix` existed.
        let now = clock
            .now_utc()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let old = format!(
            r#"{{"format":"oauth-layer-token","version":1,"token":{{"access_token":"AT-OLD",
            "token_type":"Bearer","lifetime_secs":600,"lifetime_reported":true,
            "expires_at_unix":{}}}}}"#,
            now + 300
        );
        let back = Codec::plain()
            .decode(&key(), old.as_bytes(), &clock)
            .unwrap();
        assert!(back.renew_at().is_none());
        assert!(back.expires_at() > clock.now());
    }

    #[test]
    fn sealed_entries_hide_the_tokens_and_refuse_other_keys() {
        let clock = ManualClock::new();
        let codec = Codec::encrypted([9; 32]);
        let bytes = codec.encode(&key(), &token(&clock)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("SENTINEL"));
        assert!(
            Codec::encrypted([8; 32])
                .decode(&key(), &bytes, &clock)
                .is_err()
        );
        assert!(Codec::plain().decode(&key(), &bytes, &clock).is_err());
        let other = crate::flow::ClientCredentials::new()
            .scope("x")
            .cache_key(&crate::client::OAuthClient::builder("c").build().unwrap());
        assert!(
            codec.decode(&other, &bytes, &clock).is_err(),
            "bound to its key"
        );
    }

    #[test]
    fn garbage_truncated_and_future_entries_are_errors_without_contents() {
        let clock = ManualClock::new();
        let good = Codec::plain().encode(&key(), &token(&clock)).unwrap();
        let future = String::from_utf8(good.clone())
            .unwrap()
            .replace("\"version\":1", "\"version\":99");
        for bytes in [
            &good[..good.len() / 2],
            b"".as_slice(),
            b"\x00\xff garbage",
            br#"{"version":99}"#,
            future.as_bytes(),
        ] {
            let err = Codec::plain().decode(&key(), bytes, &clock).unwrap_err();
            assert!(!err.to_string().contains("SENTINEL"), "{err}");
        }
    }
}
