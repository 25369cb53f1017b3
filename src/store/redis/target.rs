//! Where the store's Redis is: one server named by a URL, the primary a set of Sentinels
//! names (asked again after every failover), or a Redis Cluster.

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::{ClusterClient, ClusterConfig};
use ::redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use ::redis::{Client, IntoConnectionInfo, RedisConnectionInfo, RedisError, RedisResult};

use super::connection::Connection;

/// The Redis a store connects to.
#[derive(Clone)]
pub(super) enum Target {
    /// One server; its connection reconnects to the same address by itself.
    Direct(Client),
    /// The primary that the Sentinels name for a service. Sentinels are asked on every new
    /// connection, so after a promotion the next connection reaches the new primary.
    Sentinel(Arc<tokio::sync::Mutex<SentinelClient>>),
    /// A Redis Cluster, found from its seed nodes; the connection follows the slot map.
    Cluster(Box<ClusterClient>),
}

/// The user name and password the data nodes behind Sentinels want, when they are not the
/// first Sentinel URL's.
pub(super) struct NodeAuth<'a> {
    pub(super) username: Option<&'a str>,
    pub(super) password: Option<&'a str>,
}

impl Target {
    /// The Sentinels at `urls` watching `service`; the primary is reached with the user name,
    /// password and database of the first URL, or with `auth` (and that database) when given.
    pub(super) fn sentinel(
        urls: &[url::Url],
        service: &str,
        auth: Option<NodeAuth<'_>>,
    ) -> RedisResult<Self> {
        let Some(first) = urls.first() else {
            return Err(RedisError::from((
                ::redis::ErrorKind::InvalidClientConfig,
                "no Sentinel address",
            )));
        };
        let mut primary = first
            .as_str()
            .into_connection_info()?
            .redis_settings()
            .clone();
        if let Some(auth) = auth {
            // Only the database is kept from the Sentinel URL; credentials are the nodes' own.
            primary = RedisConnectionInfo::default().set_db(primary.db());
            if let Some(username) = auth.username {
                primary = primary.set_username(username);
            }
            if let Some(password) = auth.password {
                primary = primary.set_password(password);
            }
        }
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

    /// The cluster that the nodes at `urls` belong to; every node is reached with the first
    /// URL's user name and password (the crate refuses URLs with different ones).
    pub(super) fn cluster(urls: &[url::Url]) -> RedisResult<Self> {
        let client = ClusterClient::new(urls.iter().map(url::Url::as_str))?;
        Ok(Self::Cluster(Box::new(client)))
    }

    /// A new connection: to the server, to the primary as the Sentinels name it now, or to
    /// the cluster.
    pub(super) async fn connect(&self, timeout: Duration) -> RedisResult<Connection> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let client = match self {
            Self::Direct(client) => client.clone(),
            Self::Sentinel(sentinels) => sentinels.lock().await.async_get_client().await?,
            Self::Cluster(cluster) => {
                // Half the call's time per node, so one seed that hangs (the others answer)
                // leaves time to read the slot map. No response timeout of its own: every
                // call is bounded by the store, a `WAIT` longer than the others.
                let config = ClusterConfig::new().set_connection_timeout(timeout / 2);
                let connection = cluster.get_async_connection_with_config(config).await?;
                return Ok(Connection::Cluster(connection));
            }
        };
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(Connection::Single(connection))
    }

    /// `true` for a Redis Cluster: every key a script or a pipeline touches must hash to one
    /// slot, so the entry and lock names carry a hash tag.
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// `true` behind Sentinels: a connection that stops answering may be to a primary that
    /// failed, and a new one asks the Sentinels where the primary is now.
    pub(super) fn follows_failover(&self) -> bool {
        matches!(self, Self::Sentinel(_))
    }

    /// `true` when a call that timed out should cost the connection: behind Sentinels (see
    /// [`follows_failover`](Self::follows_failover)), and in a cluster, where a node that hangs
    /// gives the connection no error to refresh its slot map on, and a new connection reads
    /// the map afresh.
    pub(super) fn reconnects_after_timeout(&self) -> bool {
        matches!(self, Self::Sentinel(_) | Self::Cluster(_))
    }

    /// What to add to an error that says a server refused or wants credentials: behind
    /// Sentinels, where they come from (the servers' own are easily forgotten).
    pub(super) fn auth_hint(&self, e: &RedisError) -> &'static str {
        let refused = e.kind() == ::redis::ErrorKind::AuthenticationFailed
            || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"));
        match self {
            Self::Sentinel(_) if refused => {
                " (the primary behind the Sentinels wants other credentials: it is reached \
                 with the first Sentinel URL's unless RedisSentinel::primary_credentials \
                 gives its own)"
            }
            _ => "",
        }
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
