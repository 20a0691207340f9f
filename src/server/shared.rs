//! What an instance does to stay in step with the others when the store is
//! shared (Redis): it listens for revocations announced by any instance and
//! applies them to its deny list and verified-token cache at once; it reads
//! the stored revocations again every [`RESYNC`] (and after each
//! resubscription) for announcements it missed; and it asks the server every
//! [`PING`] whether it answers, which `/healthz` and `/readyz` report and
//! which notices a restarted server.

use std::sync::Arc;
use std::time::Duration;

use super::{AbortOnDrop, ServeError};
use crate::state::AppState;
use crate::store::redis::revocations::Listening;

/// How often the stored revocations are read again.
pub const RESYNC: Duration = Duration::from_secs(30);
/// How often the server is asked whether it answers.
pub const PING: Duration = Duration::from_secs(1);

/// Stops the listener and the periodic task when dropped.
pub(super) struct InStep {
    _listening: Listening,
    _ticks: AbortOnDrop,
}

/// Applies the revocations this instance has not seen yet.
fn resync(state: &AppState) {
    match state.authority.resync_revocations() {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, "revocations made elsewhere applied at resync"),
        Err(e) => tracing::warn!(error = %e, "cannot read the revocations for a resync"),
    }
}

/// Starts listening and the periodic checks, when the store is shared.
pub(super) fn keep_in_step(state: &Arc<AppState>) -> Result<Option<InStep>, ServeError> {
    let Some(redis) = state.shared.clone() else {
        return Ok(None);
    };
    let (applying, resyncing) = (state.clone(), state.clone());
    let listening = redis
        .listen(
            move |jti, exp| applying.authority.denied_elsewhere(jti, exp),
            move || resync(&resyncing),
        )
        .map_err(ServeError::Listener)?;
    let state = state.clone();
    let ticks = AbortOnDrop(tokio::spawn(async move {
        let mut ping = tokio::time::interval(PING);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let per_resync = (RESYNC.as_secs() / PING.as_secs()).max(1);
        let mut n = 0u64;
        loop {
            ping.tick().await;
            n += 1;
            let (s, r) = (state.clone(), redis.clone());
            let _ = tokio::task::spawn_blocking(move || {
                // A failure is recorded by the pool (and logged once).
                if r.ping().is_ok() && n.is_multiple_of(per_resync) {
                    resync(&s);
                }
            })
            .await;
        }
    }));
    Ok(Some(InStep {
        _listening: listening,
        _ticks: ticks,
    }))
}
