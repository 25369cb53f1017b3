//! Where tokens are kept between runs: `--cache` (a file store), `--redis` (a Redis store) or
//! nowhere, and `--identity`.

use oauth_layer::resource::ResourceClient;
use oauth_layer::{TokenSource, TokenSourceBuilder};
#[cfg(feature = "redis-store")]
use reqwest::Url;

#[cfg(any(feature = "file-store", feature = "redis-store"))]
use crate::options::usage;
use crate::options::{Options, Stop};

/// Where tokens are kept between runs: `--cache DIR`, `--redis URL` or nowhere (memory only),
/// and `--identity`.
pub(crate) struct Store {
    #[cfg(feature = "file-store")]
    file: Option<oauth_layer::store::FileStore>,
    #[cfg(feature = "redis-store")]
    redis: Option<oauth_layer::store::RedisStore>,
    identity: Option<String>,
}

impl Store {
    /// The builder with this store and identity.
    pub(crate) fn attach(&self, builder: TokenSourceBuilder) -> TokenSourceBuilder {
        #[cfg(feature = "file-store")]
        let builder = match &self.file {
            Some(store) => builder.store(store.clone()),
            None => builder,
        };
        #[cfg(feature = "redis-store")]
        let builder = match &self.redis {
            Some(store) => builder.store(store.clone()),
            None => builder,
        };
        match &self.identity {
            Some(identity) => builder.identity(identity.clone()),
            None => builder,
        }
    }

    /// `client` with this store, for its tokens and its client registrations.
    pub(crate) fn attach_resources(&self, client: ResourceClient) -> ResourceClient {
        #[cfg(feature = "file-store")]
        let client = match &self.file {
            Some(store) => client.store(store.clone()),
            None => client,
        };
        #[cfg(feature = "redis-store")]
        let client = match &self.redis {
            Some(store) => client.store(store.clone()),
            None => client,
        };
        client
    }

    /// As [`check`](Self::check), before any token source exists (the resource-first mode):
    /// reads an entry no source uses.
    pub(crate) async fn check_dir(&self) -> Result<(), Stop> {
        #[cfg(feature = "file-store")]
        if self.file.is_some() {
            let probe = oauth_layer::OAuthClient::builder("oauth-fetch")
                .build()
                .map_err(|e| usage(e.to_string()))?;
            let key = oauth_layer::store::CacheKey::builder(&probe, "probe").build();
            return self.check_key(&key).await;
        }
        Ok(())
    }

    /// Reads the source's entry once before anything is sent, so that a cache directory the
    /// store refuses (a file, a symbolic link, another user's) is a configuration error rather
    /// than a warning at each request. (The Redis store was reached when it connected.)
    pub(crate) async fn check(&self, tokens: &TokenSource) -> Result<(), Stop> {
        self.check_key(tokens.cache_key()).await
    }

    async fn check_key(&self, key: &oauth_layer::store::CacheKey) -> Result<(), Stop> {
        #[cfg(feature = "file-store")]
        if let Some(store) = &self.file {
            use oauth_layer::store::TokenStore;
            store
                .load(key)
                .await
                .map_err(|e| usage(format!("--cache: {e}")))?;
        }
        let _ = key;
        Ok(())
    }
}

/// The store of `--cache` or `--redis` (checked by [`check_store`]), and `--identity`.
///
/// [`check_store`]: crate::options::check_store
pub(crate) async fn open_store(o: &Options) -> Result<Store, Stop> {
    Ok(Store {
        #[cfg(feature = "file-store")]
        file: open_file_store(o)?,
        #[cfg(feature = "redis-store")]
        redis: open_redis_store(o).await?,
        identity: o.identity.clone(),
    })
}

/// `--cache DIR`: a file store there. DIR must not exist yet (the store creates it, 0700) or be
/// private already: the store never changes the permissions of a directory it did not create,
/// and refuses one that others may enter, which is a usage error here rather than a warning at
/// first use. Nothing is created or read yet.
#[cfg(feature = "file-store")]
fn open_file_store(o: &Options) -> Result<Option<oauth_layer::store::FileStore>, Stop> {
    use std::os::unix::fs::PermissionsExt;
    let Some(dir) = &o.cache else {
        return Ok(None);
    };
    if let Ok(m) = std::fs::metadata(dir)
        && m.is_dir()
        && m.permissions().mode() & 0o077 != 0
    {
        return Err(usage(format!(
            "--cache: {} is open to other users (mode {:o}); give a directory of the tool's own \
             that does not exist yet, or make it private (chmod 700)",
            dir.display(),
            m.permissions().mode() & 0o7777
        )));
    }
    Ok(Some(oauth_layer::store::FileStore::in_dir(dir)))
}

/// `--redis URL`: connected now; failing to is a configuration error whose message holds no
/// password.
#[cfg(feature = "redis-store")]
async fn open_redis_store(o: &Options) -> Result<Option<oauth_layer::store::RedisStore>, Stop> {
    let Some(url) = &o.redis else {
        return Ok(None);
    };
    oauth_layer::store::RedisStore::connect(url)
        .await
        .map(Some)
        .map_err(|e| usage(without_password(format!("--redis: {e}"), url)))
}

/// `text` without the password of the Redis URL `url`, as given or percent-decoded (the
/// crate's messages already leave it out; this makes sure).
#[cfg(feature = "redis-store")]
fn without_password(mut text: String, url: &str) -> String {
    let Some(password) = Url::parse(url)
        .ok()
        .and_then(|u| u.password().map(str::to_owned))
    else {
        return text;
    };
    // Percent-decoded as in a query, but with `+` kept (it is no space in user information).
    let query = format!("p={}", password.replace('+', "%2B"));
    let decoded = url::form_urlencoded::parse(query.as_bytes())
        .next()
        .map(|(_, v)| v.into_owned());
    for secret in [Some(password), decoded].into_iter().flatten() {
        if !secret.is_empty() {
            text = text.replace(&secret, "[redacted]");
        }
    }
    text
}
