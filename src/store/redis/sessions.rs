//! The owners of Streamable HTTP sessions (`Mcp-Session-Id`), so that a
//! session opened through one instance can be continued through another, by
//! its owner only. Each instance keeps the owners it has seen in memory and
//! asks Redis only for a session it does not know.

use super::{PREFIX, Redis};
use crate::store::StoreError;

fn key(session: &str) -> String {
    format!("{PREFIX}session:{session}")
}

impl Redis {
    /// Who opened the session: (user, client).
    pub fn session_owner(&self, session: &str) -> Result<Option<(String, String)>, StoreError> {
        let found: Option<Vec<u8>> = self.with(|c| redis::cmd("GET").arg(key(session)).query(c))?;
        match found {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| StoreError::Corrupt(e.to_string())),
        }
    }

    /// Records who opened the session, for `ttl_secs` (kept if already recorded).
    pub fn record_session(
        &self,
        session: &str,
        user: &str,
        client: &str,
        ttl_secs: u64,
    ) -> Result<(), StoreError> {
        let value =
            serde_json::to_vec(&(user, client)).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.with(|c| {
            redis::cmd("SET")
                .arg(key(session))
                .arg(&value)
                .arg("NX")
                .arg("EX")
                .arg(ttl_secs.max(1))
                .query::<Option<String>>(c)
        })
        .map(drop)
    }

    /// Keeps a session's owner for another `ttl_secs` (it is in use).
    pub fn touch_session(&self, session: &str, ttl_secs: u64) -> Result<(), StoreError> {
        self.with(|c| {
            redis::cmd("EXPIRE")
                .arg(key(session))
                .arg(ttl_secs.max(1))
                .query::<i64>(c)
        })
        .map(drop)
    }

    pub fn forget_session(&self, session: &str) -> Result<(), StoreError> {
        self.with(|c| redis::cmd("DEL").arg(key(session)).query::<i64>(c))
            .map(drop)
    }
}
