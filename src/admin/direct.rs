//! Acting on the store of a stopped proxy: the embedded store is a file that a
//! running proxy keeps locked, so opening it tells whether one runs.

use std::net::SocketAddr;
use std::sync::Arc;

use super::CommandError;
use crate::authority::Authority;
use crate::authority::admin::{Action, Outcome};
use crate::clock::Clock;
use crate::config::{Config, StateBackend};
use crate::store::{Embedded, Records, StoreError};

/// Does `action` on the configured store. `listener`: the admin address where
/// nothing answered, if there is one (for the message when the store is in use).
pub fn run(
    config: &Config,
    action: &Action,
    listener: Option<SocketAddr>,
) -> Result<Outcome, CommandError> {
    let StateBackend::Dir(dir) = &config.state else {
        return Err(CommandError::NotEmbedded);
    };
    let file = dir.join("state.redb");
    // Opening would create an empty store: a wrong `state.dir` is worth saying.
    if !file.exists() {
        return Err(CommandError::NoStore { path: file });
    }
    let store = match Embedded::open(dir) {
        Ok(s) => s,
        Err(StoreError::InUse(path)) => {
            return Err(match listener {
                Some(addr) => CommandError::InUseNoListener { path, addr },
                None => CommandError::InUseNoAdmin { path },
            });
        }
        Err(e) => return Err(CommandError::State(e.into())),
    };
    // The audit event goes where the proxy writes its own: `audit.path`, or this
    // command's log (stderr).
    let audit = config.audit.as_ref().map(|a| a.path.as_path());
    crate::telemetry::init(&config.log, audit).map_err(CommandError::Audit)?;
    let authority = Authority::new(Records(Arc::new(store)), Clock::system(), &config.tokens)?;
    Ok(authority.admin(config, action, None)?)
}
