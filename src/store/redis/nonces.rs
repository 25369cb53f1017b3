//! [`RedisStore`] as the fleet's [`NonceStore`]: DPoP nonces shared by every process using the
//! same Redis and key prefix.

use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use super::{RedisStore, millis};
use crate::dpop::NonceStore;
use crate::error::Result;

/// How long Redis keeps a shared nonce after it was last written. Servers rotate nonces within
/// minutes; a stale one costs a process one challenge, and a nonce still in use is written
/// again every five minutes.
const NONCE_TTL: Duration = Duration::from_secs(10 * 60);
/// The longest value read back as a nonce (real ones are tens of bytes; anything longer is
/// not one, and is not even read whole into a `String`).
const MAX_NONCE_LEN: usize = 1024;

impl RedisStore {
    /// The Redis key of the shared nonce under `key`: `<prefix>dpop-nonce:<hex SHA-256 of key>`,
    /// bounded whatever the server's name.
    fn nonce_key(&self, key: &str) -> String {
        let digest = Sha256::digest(key.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("{}dpop-nonce:{hex}", self.prefix)
    }
}

/// Nonces are kept under `<prefix>dpop-nonce:<hex SHA-256 of the server's key>` (no salt: a
/// nonce is public, and so is the server it is for), each for ten minutes after it was last
/// written, as plain text. Nothing else is read or written: the token entries, their salt and
/// their encryption are untouched. A value that is not a string, too long or not UTF-8 is no
/// nonce (and [`Dpop`](crate::dpop::Dpop) checks the rest).
#[async_trait]
impl NonceStore for RedisStore {
    async fn load(&self, key: &str) -> Result<Option<String>> {
        let name = self.nonce_key(key);
        let mut cmd = ::redis::cmd("GET");
        cmd.arg(&name);
        let bytes: Option<Vec<u8>> = match self.run("nonce read", &cmd).await {
            Ok(bytes) => bytes,
            Err(f) if f.wrong_type => return Ok(None),
            Err(f) => return Err(f.error),
        };
        Ok(bytes
            .filter(|b| b.len() <= MAX_NONCE_LEN)
            .and_then(|b| String::from_utf8(b).ok()))
    }

    async fn save(&self, key: &str, nonce: &str) -> Result<()> {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.nonce_key(key))
            .arg(nonce)
            .arg("PX")
            .arg(millis(NONCE_TTL));
        let _: () = self.run("nonce write", &cmd).await.map_err(|f| f.error)?;
        Ok(())
    }
}
