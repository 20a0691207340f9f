//! The table of one stdio route: its processes, the sessions on each, and the
//! decisions about them (share, start, refuse, stop). Pure: no I/O, generic
//! over the process handle `P`, the time passed in.
//!
//! Two users never share a process: `per: session` gives every session its
//! own, `per: user` keys processes by the user, and a session is found only
//! with the user and client that opened it. Requests of the 2026-07-28
//! revision have no session: they go to a process of their own per user (and
//! client, with `per: session`), never shared with sessions.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::time::Instant;

use crate::config::Per;

/// Who opened a session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Owner {
    pub user: String,
    pub client: String,
}

/// The key of the process for modern requests of `owner`: per user, and per
/// client too with `per: session` (the nearest thing to a session).
pub fn modern_key(per: Per, owner: &Owner) -> String {
    match per {
        Per::User => serde_json::json!([owner.user]).to_string(),
        Per::Session => serde_json::json!([owner.user, owner.client]).to_string(),
    }
}

/// What to do for a new session.
#[derive(Debug, PartialEq, Eq)]
pub enum Open<P> {
    /// Join this running process (`per: user`).
    Join(P),
    /// Start a process: there is room.
    Start,
    /// `max_processes` reached: refuse (503).
    Full,
}

struct Process<P> {
    handle: P,
    /// The user whose process this is (`per: user`).
    user: Option<String>,
    /// The key of the modern requests it serves ([`Table::open_modern`]).
    modern: Option<String>,
    sessions: usize,
}

struct Session {
    process: u64,
    owner: Owner,
}

/// One route's processes and sessions.
pub struct Table<P> {
    running: HashMap<u64, Process<P>>,
    /// Told to stop but not yet exited: they still count against the limit.
    stopping: HashMap<u64, P>,
    sessions: HashMap<Arc<str>, Session>,
}

impl<P> Default for Table<P> {
    fn default() -> Self {
        Self {
            running: HashMap::new(),
            stopping: HashMap::new(),
            sessions: HashMap::new(),
        }
    }
}

impl<P: Clone> Table<P> {
    /// Processes that exist (running or stopping).
    pub fn processes(&self) -> usize {
        self.running.len() + self.stopping.len()
    }

    /// Where a new session of `user` goes.
    pub fn open(&self, per: Per, user: &str, max: usize) -> Open<P> {
        if per == Per::User
            && let Some(p) = self
                .running
                .values()
                .find(|p| p.user.as_deref() == Some(user))
        {
            return Open::Join(p.handle.clone());
        }
        self.room(max)
    }

    fn room(&self, max: usize) -> Open<P> {
        if self.processes() >= max {
            Open::Full
        } else {
            Open::Start
        }
    }

    /// Records a process just started (for `user` with `per: user`).
    pub fn started(&mut self, id: u64, handle: P, per: Per, user: &str) {
        let user = (per == Per::User).then(|| user.to_string());
        self.running.insert(
            id,
            Process {
                handle,
                user,
                modern: None,
                sessions: 0,
            },
        );
    }

    /// Where a modern request with this key goes.
    pub fn open_modern(&self, key: &str, max: usize) -> Open<P> {
        match self
            .running
            .values()
            .find(|p| p.modern.as_deref() == Some(key))
        {
            Some(p) => Open::Join(p.handle.clone()),
            None => self.room(max),
        }
    }

    /// Records a process just started for the modern requests of `key`.
    pub fn started_modern(&mut self, id: u64, handle: P, key: &str) {
        self.running.insert(
            id,
            Process {
                handle,
                user: None,
                modern: Some(key.to_string()),
                sessions: 0,
            },
        );
    }

    /// Records a session on a running process; false if the process is no longer running.
    pub fn add_session(&mut self, id: Arc<str>, process: u64, owner: Owner) -> bool {
        let Some(p) = self.running.get_mut(&process) else {
            return false;
        };
        p.sessions += 1;
        self.sessions.insert(id, Session { process, owner });
        true
    }

    /// The process of a session, if `owner` opened it.
    pub fn session(&self, id: &str, owner: &Owner) -> Option<(u64, P)> {
        let s = self.sessions.get(id).filter(|s| s.owner == *owner)?;
        let p = self.running.get(&s.process)?;
        Some((s.process, p.handle.clone()))
    }

    /// Ends a session (`DELETE`). Returns the process to stop, if it was the
    /// session's own (`per: session`); a user's process stays for its other
    /// sessions and its idle timeout.
    pub fn end_session(&mut self, id: &str) -> Option<(u64, P)> {
        let s = self.sessions.remove(id)?;
        let p = self.running.get_mut(&s.process)?;
        p.sessions = p.sessions.saturating_sub(1);
        if p.user.is_some() {
            return None;
        }
        self.stop(s.process).map(|h| (s.process, h))
    }

    /// Moves a process to the stopping ones (its sessions end). Returns its handle
    /// if it was running.
    pub fn stop(&mut self, process: u64) -> Option<P> {
        let p = self.running.remove(&process)?;
        self.sessions.retain(|_, s| s.process != process);
        self.stopping.insert(process, p.handle.clone());
        Some(p.handle)
    }

    /// A process exited (by itself or after a stop): forgotten, with its sessions.
    /// Returns the ids of the sessions that ended with it.
    pub fn exited(&mut self, process: u64) -> Vec<Arc<str>> {
        self.running.remove(&process);
        self.stopping.remove(&process);
        let gone: Vec<Arc<str>> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.process == process)
            .map(|(k, _)| k.clone())
            .collect();
        for k in &gone {
            self.sessions.remove(k);
        }
        gone
    }

    /// The running processes idle since before `now - idle_timeout`; `idle_since`
    /// says when a process last had traffic, `None` while a request is pending.
    pub fn idle(
        &self,
        now: Instant,
        idle_timeout: std::time::Duration,
        idle_since: impl Fn(&P) -> Option<Instant>,
    ) -> Vec<u64> {
        self.running
            .iter()
            .filter(|(_, p)| {
                idle_since(&p.handle)
                    .is_some_and(|t| now.saturating_duration_since(t) >= idle_timeout)
            })
            .map(|(k, _)| *k)
            .collect()
    }

    /// Every process, running or stopping (shutdown).
    pub fn all(&self) -> Vec<(u64, P)> {
        self.running
            .iter()
            .map(|(k, p)| (*k, p.handle.clone()))
            .chain(self.stopping.iter().map(|(k, h)| (*k, h.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn owner(user: &str, client: &str) -> Owner {
        Owner {
            user: user.into(),
            client: client.into(),
        }
    }

    #[test]
    fn per_session_every_session_starts_a_process_up_to_the_limit() {
        let mut t: Table<&str> = Table::default();
        assert_eq!(t.open(Per::Session, "alice", 2), Open::Start);
        t.started(1, "p1", Per::Session, "alice");
        assert!(t.add_session("s1".into(), 1, owner("alice", "c")));
        assert_eq!(t.open(Per::Session, "alice", 2), Open::Start);
        t.started(2, "p2", Per::Session, "alice");
        assert_eq!(t.open(Per::Session, "bob", 2), Open::Full);
        // A stopping process still counts until it has exited.
        assert_eq!(t.end_session("s1"), Some((1, "p1")));
        assert_eq!(t.open(Per::Session, "bob", 2), Open::Full);
        assert_eq!(t.exited(1), Vec::<Arc<str>>::new());
        assert_eq!(t.open(Per::Session, "bob", 2), Open::Start);
    }

    #[test]
    fn per_user_a_users_sessions_share_one_process_and_other_users_never_join_it() {
        let mut t: Table<&str> = Table::default();
        t.started(1, "alice's", Per::User, "alice");
        assert!(t.add_session("s1".into(), 1, owner("alice", "c1")));
        assert_eq!(t.open(Per::User, "alice", 10), Open::Join("alice's"));
        assert_eq!(t.open(Per::User, "bob", 10), Open::Start);
        assert_eq!(
            t.open(Per::User, "alice", 1),
            Open::Join("alice's"),
            "joining takes no room"
        );
        assert!(t.add_session("s2".into(), 1, owner("alice", "c2")));
        assert_eq!(t.end_session("s1"), None, "the user's process stays");
        assert_eq!(t.session("s2", &owner("alice", "c2")), Some((1, "alice's")));
    }

    #[test]
    fn modern_requests_have_processes_of_their_own_per_user_and_client() {
        let mut t: Table<&str> = Table::default();
        t.started(1, "alice's sessions", Per::User, "alice");
        let alice = modern_key(Per::User, &owner("alice", "c1"));
        assert_eq!(alice, modern_key(Per::User, &owner("alice", "c2")));
        assert_eq!(
            t.open_modern(&alice, 10),
            Open::Start,
            "not the sessions' process"
        );
        t.started_modern(2, "alice's modern", &alice);
        assert_eq!(t.open_modern(&alice, 10), Open::Join("alice's modern"));
        assert_eq!(
            t.open(Per::User, "alice", 10),
            Open::Join("alice's sessions")
        );
        let bob = modern_key(Per::User, &owner("bob", "c1"));
        assert_eq!(t.open_modern(&bob, 2), Open::Full);
        let per_session = |c| modern_key(Per::Session, &owner("alice", c));
        assert_ne!(per_session("c1"), per_session("c2"));
        assert_ne!(per_session("c1"), alice);
        t.exited(2);
        assert_eq!(t.open_modern(&alice, 2), Open::Start);
    }

    #[test]
    fn a_session_is_found_only_by_its_user_and_client() {
        let mut t: Table<&str> = Table::default();
        t.started(1, "p", Per::Session, "alice");
        t.add_session("s".into(), 1, owner("alice", "c1"));
        assert_eq!(t.session("s", &owner("alice", "c1")), Some((1, "p")));
        assert_eq!(t.session("s", &owner("bob", "c1")), None);
        assert_eq!(t.session("s", &owner("alice", "c2")), None);
        assert_eq!(t.session("nope", &owner("alice", "c1")), None);
    }

    #[test]
    fn an_exited_process_takes_its_sessions_and_the_next_open_starts_a_new_one() {
        let mut t: Table<&str> = Table::default();
        t.started(1, "p", Per::User, "alice");
        t.add_session("s1".into(), 1, owner("alice", "c"));
        t.add_session("s2".into(), 1, owner("alice", "c"));
        let mut gone = t.exited(1);
        gone.sort();
        assert_eq!(gone, vec![Arc::from("s1"), Arc::from("s2")]);
        assert_eq!(t.session("s1", &owner("alice", "c")), None);
        assert_eq!(t.open(Per::User, "alice", 1), Open::Start);
        assert!(
            !t.add_session("s3".into(), 1, owner("alice", "c")),
            "not on a dead process"
        );
    }

    #[test]
    fn idle_processes_are_those_without_traffic_or_pending_requests_for_the_timeout() {
        let mut t: Table<(u8, Option<Instant>)> = Table::default();
        let now = Instant::now();
        let long_ago = now - Duration::from_secs(60);
        t.started(1, (1, Some(long_ago)), Per::Session, "a");
        t.started(2, (2, Some(now)), Per::Session, "a");
        t.started(3, (3, None), Per::Session, "a");
        t.started(4, (4, Some(long_ago)), Per::Session, "a");
        t.stop(4);
        let idle = t.idle(now, Duration::from_secs(30), |p| p.1);
        assert_eq!(idle, vec![1]);
        assert_eq!(t.all().len(), 4);
    }
}
