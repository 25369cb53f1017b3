//! What each renewal came to, for operators: the outcome a
//! [`TokenSourceBuilder::on_renewal`](crate::TokenSourceBuilder::on_renewal) hook sees.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::error::Error;

/// The hook [`TokenSourceBuilder::on_renewal`](crate::TokenSourceBuilder::on_renewal) stores.
pub(crate) type RenewalHook = Arc<dyn Fn(&RenewalOutcome<'_>) + Send + Sync>;

/// How one renewal of a [`TokenSource`](crate::TokenSource) ended. It carries no secret: a
/// success names the new token's expiry, a failure the error (whose text is redacted like every
/// error of this crate).
///
/// ```
/// use oauth_layer::RenewalOutcome;
///
/// fn log(outcome: &RenewalOutcome<'_>) {
///     match outcome {
///         RenewalOutcome::Renewed { lifetime, .. } => println!("renewed for {lifetime:?}"),
///         RenewalOutcome::Failed { error, still_serving, .. } => {
///             println!("renewal failed ({error}); still serving: {still_serving}")
///         }
///         _ => {}
///     }
/// }
/// # let _ = log;
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum RenewalOutcome<'a> {
    /// A new token is cached (from the server, or one another process put in the shared store).
    Renewed {
        /// When the new token expires, in UTC.
        expires_at: SystemTime,
        /// The lifetime the new token was issued with.
        lifetime: Duration,
        /// `true` for a refresh-ahead renewal no caller waited for.
        background: bool,
    },
    /// The renewal failed.
    Failed {
        /// Why.
        error: &'a Error,
        /// `true` for a refresh-ahead renewal no caller waited for.
        background: bool,
        /// `true` when callers keep getting the current, still valid token (a transient
        /// failure); `false` when they get the error.
        still_serving: bool,
    },
}

impl RenewalOutcome<'_> {
    /// `true` for a refresh-ahead renewal no caller waited for.
    pub fn is_background(&self) -> bool {
        match self {
            Self::Renewed { background, .. } | Self::Failed { background, .. } => *background,
        }
    }

    /// `true` when a new token is cached.
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Renewed { .. })
    }
}
