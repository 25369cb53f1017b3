//! Where the store's Redis is: one server named by a URL, or the primary a set of Sentinels
//! names, asked again after every failover.

use std::sync::Arc;

use ::redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use ::redis::{Client, IntoConnectionInfo, RedisError, RedisResult};

/// The Redis a store connects to.
#[derive(Clone)]
pub(super) enum Target {
    /// One server; its connection reconnects to the same address by itself.
    Direct(Client),
    /// The primary that the Sentinels name for a service. Sentinels are asked on every new
    /// connection, so after a promotion the next connection reaches the new primary.
    Sentinel(Arc<tokio::sync::Mutex<SentinelClient>>),
}

impl Target {
    /// The Sentinels at `urls` watching `service`; the primary is reached with the user name,
    /// password and database of the first URL.
    pub(super) fn sentinel(urls: &[url::Url], service: &str) -> RedisResult<Self> {
        let primary = match urls.first() {
            Some(first) => first
                .as_str()
                .into_connection_info()?
                .redis_settings()
                .clone(),
            None => {
                return Err(RedisError::from((
                    ::redis::ErrorKind::InvalidClientConfig,
                    "no Sentinel address",
                )));
            }
        };
        let node = SentinelNodeConnectionInfo::default().set_redis_connection_info(primary);
        let sentinels = urls.iter().map(url::Url::as_str).collect::<Vec<_>>();
        let client = SentinelClient::build(
            sentinels,
            service.to_owned(),
            Some(node),
            SentinelServerType::Master,
        )?;
        Ok(Self::Sentinel(Arc::new(tokio::sync::Mutex::new(client))))
    }

    /// A client for the primary as it is now.
    pub(super) async fn client(&self) -> RedisResult<Client> {
        match self {
            Self::Direct(client) => Ok(client.clone()),
            Self::Sentinel(sentinels) => sentinels.lock().await.async_get_client().await,
        }
    }

    /// `true` behind Sentinels: a connection that stops answering may be to a primary that
    /// failed, and a new one asks the Sentinels where the primary is now.
    pub(super) fn follows_failover(&self) -> bool {
        matches!(self, Self::Sentinel(_))
    }

    /// `true` when `e` means the connection should be dropped and the primary looked up again:
    /// behind Sentinels, a server that went away or was demoted (`READONLY`) may no longer be
    /// the primary.
    pub(super) fn lost_primary(&self, e: &RedisError) -> bool {
        self.follows_failover()
            && (e.is_io_error()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_unrecoverable_error()
                || e.code() == Some("READONLY"))
    }
}
