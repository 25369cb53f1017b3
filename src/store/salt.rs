//! A store's salt: the secret HMAC key that names a cache key's entry (SECURITY.md rule 34).

use std::fmt;

use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::CacheKey;
use crate::error::{Error, Result};

/// The number of bytes in a salt (and in its HMAC-SHA256 names).
const LEN: usize = 32;
/// SHA-256 works on blocks of this many bytes; HMAC pads its key to one block.
const BLOCK: usize = 64;

/// A persistent store's secret salt: an HMAC-SHA256 key that turns a [`CacheKey`] into the name
/// of its entry (a file name, a Redis key).
///
/// A name is the HMAC of the whole key, secrets included, so it tells keys apart but reveals
/// nothing that can be checked offline: without the salt, a name cannot be matched against a
/// guessed password, client secret or token, however weak. Every process that shares a store
/// must use the same salt, so a store keeps it with its entries:
/// [`FileStore`](super::FileStore) in a private file of its directory,
/// [`RedisStore`](super::RedisStore) under its prefix. A store of your own does the same:
/// generate a salt once, keep it where only the store's users can read it, and name entries
/// with [`name`](Self::name).
///
/// The salt never prints:
///
/// ```
/// use oauth_layer::{OAuthClient, flow::Password, flow::Flow, store::KeySalt};
///
/// let salt = KeySalt::from_bytes([7; 32]);
/// let client = OAuthClient::builder("id").build()?;
/// let name = salt.name(&Password::new("alice", "password1").cache_key(&client));
/// assert_eq!(name.len(), 64);
/// assert_ne!(name, salt.name(&Password::new("alice", "password2").cache_key(&client)));
/// assert_eq!(format!("{salt:?}"), "KeySalt([redacted])");
/// # Ok::<(), oauth_layer::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KeySalt([u8; LEN]);

impl KeySalt {
    /// A new random salt, from the operating system's generator.
    ///
    /// ```
    /// use oauth_layer::store::KeySalt;
    ///
    /// assert_ne!(KeySalt::generate()?, KeySalt::generate()?);
    /// # Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; LEN];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::Internal(format!("no system randomness: {e}")))?;
        Ok(Self(bytes))
    }

    /// The salt made of `bytes` (for a store of your own that keeps its salt elsewhere).
    ///
    /// ```
    /// let salt = oauth_layer::store::KeySalt::from_bytes([42; 32]);
    /// # let _ = salt;
    /// ```
    pub fn from_bytes(bytes: [u8; LEN]) -> Self {
        Self(bytes)
    }

    /// The name of `key`'s entry: HMAC-SHA256 under this salt of the whole key, in 64 lowercase
    /// hex digits. The same key and salt always give the same name.
    ///
    /// ```
    /// use oauth_layer::{OAuthClient, flow::ClientCredentials, flow::Flow, store::KeySalt};
    ///
    /// let key = ClientCredentials::new().cache_key(&OAuthClient::builder("id").build()?);
    /// let salt = KeySalt::from_bytes([1; 32]);
    /// assert_eq!(salt.name(&key), salt.name(&key.clone()));
    /// assert_ne!(salt.name(&key), KeySalt::from_bytes([2; 32]).name(&key));
    /// # Ok::<(), oauth_layer::Error>(())
    /// ```
    pub fn name(&self, key: &CacheKey) -> String {
        hex(&hmac_sha256(&self.0, &key.encoded()))
    }

    /// The salt as 64 lowercase hex digits, the form the stores keep it in.
    #[cfg(any(
        feature = "file-store",
        feature = "redis-store",
        feature = "keyring-store"
    ))]
    pub(crate) fn to_hex(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(hex(&self.0))
    }

    /// A salt from its hex form; `None` unless `text` is exactly 64 hex digits.
    #[cfg(any(
        feature = "file-store",
        feature = "redis-store",
        feature = "keyring-store"
    ))]
    pub(crate) fn from_hex(text: &[u8]) -> Option<Self> {
        if text.len() != 2 * LEN {
            return None;
        }
        let mut bytes = [0u8; LEN];
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            let digit = |c: u8| char::from(c).to_digit(16);
            let (high, low) = (digit(pair[0])?, digit(pair[1])?);
            // Both digits are below 16, so the byte fits.
            *byte = u8::try_from(high * 16 + low).ok()?;
        }
        Some(Self(bytes))
    }
}

impl Drop for KeySalt {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for KeySalt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeySalt([redacted])")
    }
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key` (at most one block long, as every key here
/// is).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut padded = zeroize::Zeroizing::new([0u8; BLOCK]);
    let key_len = key.len().min(BLOCK);
    padded[..key_len].copy_from_slice(&key[..key_len]);
    let mut pad = zeroize::Zeroizing::new([0u8; BLOCK]);

    pad.iter_mut()
        .zip(padded.iter())
        .for_each(|(p, k)| *p = k ^ 0x36);
    let inner = Sha256::new()
        .chain_update(&pad[..])
        .chain_update(message)
        .finalize();

    pad.iter_mut()
        .zip(padded.iter())
        .for_each(|(p, k)| *p = k ^ 0x5c);
    Sha256::new()
        .chain_update(&pad[..])
        .chain_update(inner)
        .finalize()
        .into()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 1: a 20-byte key.
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn the_hex_form_round_trips_and_rejects_anything_else() {
        let salt = KeySalt::generate().unwrap();
        assert_eq!(KeySalt::from_hex(salt.to_hex().as_bytes()).unwrap(), salt);
        assert!(KeySalt::from_hex(b"").is_none());
        assert!(KeySalt::from_hex(&[b'0'; 63]).is_none());
        assert!(KeySalt::from_hex(&[b'g'; 64]).is_none());
        assert!(KeySalt::from_hex(&[b'0'; 65]).is_none());
    }
}
