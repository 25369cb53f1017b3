//! Which hosts a Google credential may send a workload's token to.
//!
//! An `external_account` file may come from someone else (a ticket attachment, a shared
//! repository, a compromised configuration map). Its `token_url` and
//! `service_account_impersonation_url` receive the workload's platform token and the token
//! traded for it, so a file pointing them at a host of the attacker's would hand over a token
//! the attacker can replay at Google. They must therefore be `https` URLs on Google's own
//! domain (`googleapis.com` or a subdomain, private service connect endpoints such as
//! `sts-xyz.p.googleapis.com` included), or on the universe domain the caller (never the file)
//! names; plain `http` and any host are accepted on loopback addresses only, for local fakes.

use url::Url;

use crate::error::{Error, Result};
use crate::transport::is_loopback_host;

/// Google's default universe domain.
pub(super) const GOOGLE_UNIVERSE: &str = "googleapis.com";

/// `url`, when it is https (or http to loopback) on `universe` or one of its subdomains, or on a
/// loopback address.
pub(super) fn check(name: &str, url: &str, universe: &str) -> Result<Url> {
    let url = crate::client::endpoint(name, url)?;
    let host = url.host_str().unwrap_or_default();
    if is_loopback_host(host) {
        return Ok(url);
    }
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let universe = universe.trim_end_matches('.').to_ascii_lowercase();
    let on_universe = host == universe
        || host
            .strip_suffix(universe.as_str())
            .is_some_and(|prefix| prefix.ends_with('.'));
    if !on_universe || !url.username().is_empty() || url.password().is_some() {
        return Err(Error::config(format!(
            "external_account credentials: the {name} host {host:?} is not on {universe:?}: a \
             credential file naming another host would hand it the workload's token"
        )));
    }
    Ok(url)
}
