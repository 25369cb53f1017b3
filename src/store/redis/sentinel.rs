//! [`RedisSentinel`]: a [`RedisStore`] behind Sentinels whose data nodes have credentials of
//! their own.

use std::fmt;

use zeroize::Zeroizing;

use super::RedisStore;
use crate::error::Result;

/// The Sentinels a [`RedisStore`] asks for the primary, and the credentials the primary wants
/// when they are not the first Sentinel URL's.
///
/// [`RedisStore::connect_sentinel`] reaches the primary with the user name and password of the
/// first Sentinel URL, which fits a deployment where Sentinels and servers share one password.
/// Often they do not: Sentinels run without a password (or with their own) in front of servers
/// with `requirepass` or an ACL user. Give those with
/// [`primary_credentials`](Self::primary_credentials); the database still comes from the first
/// Sentinel URL's path. The passwords never show in `Debug` or in errors.
///
/// ```no_run
/// use std::time::Duration;
/// use oauth_layer::store::{RedisDurability, RedisSentinel};
///
/// # async fn run(password_from_secret_manager: String) -> oauth_layer::Result<()> {
/// let store = RedisSentinel::new(["redis://sentinel-1:26379", "redis://sentinel-2:26379"], "oauth")
///     .primary_credentials(Some("billing"), password_from_secret_manager)
///     .connect()
///     .await?
///     .durability(RedisDurability::replicas(1, Duration::from_secs(10)));
/// # let _ = store; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisSentinel {
    pub(super) sentinels: Vec<String>,
    pub(super) service: String,
    pub(super) primary: Option<PrimaryCredentials>,
}

/// The data nodes' own user name (`None`: the `default` user) and password.
#[derive(Clone)]
pub(super) struct PrimaryCredentials {
    pub(super) username: Option<String>,
    pub(super) password: Zeroizing<String>,
}

impl RedisSentinel {
    /// The Sentinels at `sentinels` (`redis://[[user]:password@]host:port[/db]` each) watching
    /// `service`.
    pub fn new(
        sentinels: impl IntoIterator<Item = impl AsRef<str>>,
        service: impl AsRef<str>,
    ) -> Self {
        Self {
            sentinels: sentinels
                .into_iter()
                .map(|s| s.as_ref().to_owned())
                .collect(),
            service: service.as_ref().to_owned(),
            primary: None,
        }
    }

    /// Reaches the primary (and every server promoted later) as `username` (`None`: Redis's
    /// `default` user, as with `requirepass`) with `password`, instead of with the first
    /// Sentinel URL's credentials.
    #[must_use]
    pub fn primary_credentials(
        mut self,
        username: Option<&str>,
        password: impl Into<String>,
    ) -> Self {
        self.primary = Some(PrimaryCredentials {
            username: username.map(str::to_owned),
            password: Zeroizing::new(password.into()),
        });
        self
    }

    /// Connects, waiting at most the default operation timeout (2 s), as
    /// [`RedisStore::connect_sentinel`] does. A primary that refuses the credentials is an
    /// [`Error::Store`](crate::Error::Store) that says so, without the password.
    pub async fn connect(self) -> Result<RedisStore> {
        let store = self.lazy()?;
        store.connection().await.map_err(|failure| failure.error)?;
        Ok(store)
    }

    /// Like [`connect`](Self::connect), but without connecting yet, as
    /// [`RedisStore::sentinel_lazy`] does.
    pub fn lazy(self) -> Result<RedisStore> {
        RedisStore::behind_sentinels(self)
    }
}

impl fmt::Debug for RedisSentinel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sentinels: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| match url::Url::parse(s) {
                Ok(url) => super::redacted(&url),
                Err(_) => "[invalid URL]".to_owned(),
            })
            .collect();
        f.debug_struct("RedisSentinel")
            .field("sentinels", &sentinels)
            .field("service", &self.service)
            .field(
                "primary_username",
                &self.primary.as_ref().map(|p| p.username.as_deref()),
            )
            .finish_non_exhaustive()
    }
}
