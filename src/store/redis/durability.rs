//! How sure a [`RedisStore`](super::RedisStore) is that what it wrote survives a failover.

use std::time::Duration;

/// How many Redis replicas must hold a written entry before the store calls the write done.
///
/// Redis replicates asynchronously: a write the primary acknowledged can be lost when a replica
/// that had not yet received it is promoted (by Sentinel, by an operator, by a managed
/// service). For most entries that costs one token request. For a rotated refresh token it
/// costs the grant: the fleet reads the previous refresh token from the new primary, sends it,
/// and a rotating authorization server treats the replay as theft and revokes the whole grant.
///
/// With [`replicas`](Self::replicas) the store sends `WAIT` after writing a token and after
/// taking a renewal lock, and a token write is done only once that many replicas confirm it.
/// A write that is not confirmed is written again (to the new primary, when Sentinels name
/// another meanwhile) until it is, for at most the given time; the source hands the new token
/// out only after that (SECURITY.md rule 21). A renewal lock that a failover lost (the promoted
/// replica never had it, or it expired there during a failover slower than the lock's lifetime)
/// is taken back by the next write or extension, unless another holder took it meanwhile. In a
/// Redis Cluster the `WAIT` goes to the primary that owns the entry's slot.
///
/// A write still not confirmed in time fails; the source then keeps its token in memory, never
/// sends the refresh token it spent again, and writes its newest token back until the store
/// takes it.
///
/// ```
/// use std::time::Duration;
/// use oauth_layer::store::RedisDurability;
///
/// let durable = RedisDurability::replicas(1, Duration::from_secs(5));
/// assert_ne!(durable, RedisDurability::default());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisDurability {
    /// A write is done when the primary has it (Redis's own default; no `WAIT`).
    #[default]
    Primary,
    /// A token write is done when `count` replicas confirm it; it is retried for at most
    /// `within`, and then fails with [`Error::Store`](crate::Error::Store).
    Replicas {
        /// How many replicas must confirm.
        count: u32,
        /// The longest a token write may take, retries and a failover included.
        within: Duration,
    },
}

impl RedisDurability {
    /// Writes wait until `count` replicas confirm them, for at most `within` in all. Give
    /// `within` longer than your failover takes (Sentinel's `down-after-milliseconds` plus the
    /// election), so a write made just before the primary fails lands on the new one.
    pub fn replicas(count: u32, within: Duration) -> Self {
        Self::Replicas { count, within }
    }
}
