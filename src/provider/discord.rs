//! Discord.

use super::profile::{Profile, Trust};
use super::{Base, Spec, preset};
use crate::client::AuthMethod;
use crate::error::Result;

const DISCORD: Spec = Spec {
    name: "discord",
    authorize: "https://discord.com/oauth2/authorize",
    token: "https://discord.com/api/oauth2/token",
    revocation: Some("https://discord.com/api/oauth2/token/revoke"),
    scopes: "identify email",
    secret_method: AuthMethod::ClientSecretBasic,
    api: Some("https://discord.com"),
    profile: Profile {
        trust: Trust::AllTrue(&[&["verified"]]),
        ..Profile::api("https://discord.com/api/users/@me", &["id"], &["email"])
    },
    ..Spec::OAUTH
};

/// Discord: `discord.com/oauth2`, the API at `discord.com/api`.
///
/// Default scopes `identify email` ([`id_email`](super::Preset::id_email) needs both); access tokens
/// live a week and come with a refresh token; client authentication with a secret is
/// `client_secret_basic`, as in Discord's examples.
///
/// [`id_email`](super::Preset::id_email) returns the user's snowflake id and, only when Discord says
/// the address is `verified`, the email of `GET /api/users/@me`.
#[derive(Debug, Clone)]
pub struct Discord {
    base: Base,
}

preset!(Discord);

impl Discord {
    /// A preset for this application (client) id.
    pub fn new(client_id: impl Into<String>) -> Result<Self> {
        Ok(Self {
            base: DISCORD.base(client_id, &[])?,
        })
    }
}
