//! The store's Lua scripts, run by their SHA-1 and sent in full only when the server has not
//! cached them.
//!
//! Not `redis::Script`: on `NOSCRIPT` it sends `SCRIPT LOAD`, which a cluster connection sends
//! to every node it knows, replicas included, and waits for all of them. One replica that hangs
//! (or died and is not yet marked failed) then holds up every fenced write, lock extension and
//! release on a primary that has not cached the script yet: after each restart or failover.
//! `EVAL` names the script's keys, so it goes to the one primary owning them, and caches the
//! script there.

use ::redis::aio::ConnectionLike;
use ::redis::{Cmd, FromRedisValue, RedisResult, ToRedisArgs};

/// One Lua script and its SHA-1 (hex).
pub(super) struct StoreScript {
    code: &'static str,
    sha1: String,
}

impl StoreScript {
    pub(super) fn new(code: &'static str) -> Self {
        let sha1 = ::redis::Script::new(code).get_hash().to_owned();
        Self { code, sha1 }
    }

    /// A call of this script, its first key `key`; more keys, then the arguments, follow.
    pub(super) fn key(&self, key: impl ToRedisArgs) -> ScriptCall<'_> {
        let mut call = ScriptCall {
            script: self,
            keys: Vec::new(),
            args: Vec::new(),
        };
        call.key(key);
        call
    }
}

/// A call of a [`StoreScript`]: its keys and arguments.
pub(super) struct ScriptCall<'a> {
    script: &'a StoreScript,
    keys: Vec<Vec<u8>>,
    args: Vec<Vec<u8>>,
}

// Keys and arguments carry fencing values and token bytes: only their counts show.
impl std::fmt::Debug for ScriptCall<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptCall")
            .field("sha1", &self.script.sha1)
            .field("keys", &self.keys.len())
            .field("args", &self.args.len())
            .finish()
    }
}

impl ScriptCall<'_> {
    pub(super) fn key(&mut self, key: impl ToRedisArgs) -> &mut Self {
        key.write_redis_args(&mut self.keys);
        self
    }

    pub(super) fn arg(&mut self, arg: impl ToRedisArgs) -> &mut Self {
        arg.write_redis_args(&mut self.args);
        self
    }

    /// Runs the call: `EVALSHA`, and `EVAL` with the whole script when the server answers
    /// `NOSCRIPT` (both routed by the first key).
    pub(super) async fn run<T: FromRedisValue>(
        &self,
        connection: &mut impl ConnectionLike,
    ) -> RedisResult<T> {
        match self
            .command("EVALSHA", &self.script.sha1)
            .query_async(connection)
            .await
        {
            Err(e) if e.code() == Some("NOSCRIPT") => {
                self.command("EVAL", self.script.code)
                    .query_async(connection)
                    .await
            }
            other => other,
        }
    }

    fn command(&self, name: &str, script: &str) -> Cmd {
        let mut cmd = ::redis::cmd(name);
        cmd.arg(script).arg(self.keys.len());
        for key in &self.keys {
            cmd.arg(key.as_slice());
        }
        for arg in &self.args {
            cmd.arg(arg.as_slice());
        }
        cmd
    }
}
