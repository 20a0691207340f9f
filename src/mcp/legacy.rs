//! The legacy HTTP+SSE transport (2024-11-05): the upstream's `endpoint` event
//! names where to POST; the proxy gives the client its own URL instead and
//! remembers, per stream, where those POSTs go and who may send them.

use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use http::Uri;
use tokio::sync::mpsc;

use super::sse;
use super::stream::EventHook;
use crate::oauth::seal;

/// The suffix of a legacy route's message endpoint: `<route path>/message`.
pub const MESSAGE_SUFFIX: &str = "/message";

/// Events the proxy may queue on one client stream that is not being read;
/// one more closes the session (each is one refusal, at most a few hundred
/// bytes per message of a batch: `inspect` bounds names, ids and batches).
pub const INJECT_QUEUE: usize = 16;

#[derive(Debug)]
pub struct Session {
    /// The id the proxy gave the client.
    pub id: String,
    pub route: String,
    /// The upstream's message URL, from its `endpoint` event.
    pub upstream: Uri,
    /// Only the user and client that opened the stream may post to it.
    pub sub: String,
    pub client_id: String,
    /// Events the proxy adds to the client's stream (refusals). The session holds
    /// the only sender: when it is gone, the client's stream ends.
    inject: mpsc::Sender<Bytes>,
}

/// Whether an event reached a session's stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    Queued,
    /// The stream is gone.
    Closed,
    /// The client stopped reading its stream and the queue is full: the session
    /// was ended (no more messages are taken for it; the stream ends when next polled).
    Stalled,
}

#[derive(Default)]
pub struct Sessions {
    map: DashMap<String, Arc<Session>>,
}

impl Sessions {
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.map.get(id).map(|s| s.clone())
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Queues an event for the session's client stream, bounded by [`INJECT_QUEUE`].
    pub fn deliver(&self, session: &Session, event: Bytes) -> Delivery {
        match session.inject.try_send(event) {
            Ok(()) => Delivery::Queued,
            Err(mpsc::error::TrySendError::Closed(_)) => Delivery::Closed,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(route = %session.route, "a legacy client does not read its event stream: session ended");
                self.map.remove(&session.id);
                Delivery::Stalled
            }
        }
    }
}

/// Removes the session when the client's stream ends.
struct Guard {
    sessions: Arc<Sessions>,
    id: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.sessions.map.remove(&self.id);
    }
}

/// Resolves the upstream's endpoint (often relative, e.g. `/message?sessionId=…`) against its SSE URL.
pub fn resolve_endpoint(sse_url: &Uri, endpoint: &str) -> Option<Uri> {
    let base = url::Url::parse(&sse_url.to_string()).ok()?;
    let joined = base.join(endpoint.trim()).ok()?;
    // The endpoint must stay on the upstream's origin: never let it point the proxy elsewhere.
    if joined.origin() != base.origin() {
        return None;
    }
    joined.as_str().parse().ok()
}

/// The hook that rewrites the first `endpoint` event of one client stream and
/// registers its session; the session lives as long as the stream.
pub struct NewSession {
    pub sessions: Arc<Sessions>,
    pub route: String,
    pub route_path: String,
    pub upstream_sse: Uri,
    pub sub: String,
    pub client_id: String,
}

impl NewSession {
    pub fn hook(self) -> (EventHook, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(INJECT_QUEUE);
        let mut tx = Some(tx);
        let mut guard: Option<Guard> = None;
        let hook: EventHook = Box::new(move |raw, fields| {
            if fields.event.as_deref() != Some("endpoint") {
                return raw;
            }
            if guard.is_some() {
                // A second endpoint would name an upstream URL the client must not learn.
                return Bytes::new();
            }
            let Some(upstream) = fields
                .data
                .as_deref()
                .and_then(|d| resolve_endpoint(&self.upstream_sse, d))
            else {
                tracing::warn!(route = %self.route, "the upstream's endpoint event is not a URL on its own origin: dropped");
                return Bytes::new();
            };
            let Some(inject) = tx.take() else {
                return Bytes::new();
            };
            let id = seal::random_token(16);
            self.sessions.map.insert(
                id.clone(),
                Arc::new(Session {
                    id: id.clone(),
                    route: self.route.clone(),
                    upstream,
                    sub: self.sub.clone(),
                    client_id: self.client_id.clone(),
                    inject,
                }),
            );
            guard = Some(Guard {
                sessions: self.sessions.clone(),
                id: id.clone(),
            });
            let endpoint = format!("{}{MESSAGE_SUFFIX}?session={id}", self.route_path);
            sse::encode(Some("endpoint"), fields.id.as_deref(), &endpoint)
        });
        (hook, rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_resolve_on_the_upstream_origin_only() {
        let sse: Uri = "http://127.0.0.1:3001/sse".parse().unwrap();
        assert_eq!(
            resolve_endpoint(&sse, "/message?sessionId=abc")
                .unwrap()
                .to_string(),
            "http://127.0.0.1:3001/message?sessionId=abc"
        );
        assert_eq!(
            resolve_endpoint(&sse, "messages/?session_id=1")
                .unwrap()
                .to_string(),
            "http://127.0.0.1:3001/messages/?session_id=1"
        );
        assert_eq!(
            resolve_endpoint(&sse, "http://127.0.0.1:3001/m")
                .unwrap()
                .to_string(),
            "http://127.0.0.1:3001/m"
        );
        assert!(resolve_endpoint(&sse, "http://169.254.169.254/latest").is_none());
    }

    /// The hook of a stream alice opens on the legacy route.
    fn alices_stream(sessions: &Arc<Sessions>) -> (EventHook, mpsc::Receiver<Bytes>) {
        NewSession {
            sessions: sessions.clone(),
            route: "legacy".into(),
            route_path: "/legacy/sse".into(),
            upstream_sse: "http://127.0.0.1:3001/sse".parse().unwrap(),
            sub: "alice".into(),
            client_id: "c".into(),
        }
        .hook()
    }

    #[test]
    fn the_endpoint_event_is_rewritten_once_and_the_session_ends_with_the_stream() {
        let sessions = Arc::new(Sessions::default());
        let (mut hook, _rx) = alices_stream(&sessions);
        let raw = Bytes::from_static(b"event: endpoint\ndata: /message?sessionId=up1\n\n");
        let out = hook(raw.clone(), &sse::fields(&raw));
        let f = sse::fields(&out);
        let data = f.data.unwrap();
        assert!(data.starts_with("/legacy/sse/message?session="), "{data}");
        let id = data.rsplit('=').next().unwrap();
        let s = sessions.get(id).unwrap();
        assert_eq!(
            s.upstream.to_string(),
            "http://127.0.0.1:3001/message?sessionId=up1"
        );
        let again = hook(raw.clone(), &sse::fields(&raw));
        assert!(
            again.is_empty(),
            "only the first endpoint event counts; later ones are dropped"
        );
        drop(hook);
        assert!(sessions.is_empty());
    }

    #[tokio::test]
    async fn a_stalled_stream_ends_its_session_instead_of_queueing_without_bound() {
        let sessions = Arc::new(Sessions::default());
        let (mut hook, mut rx) = alices_stream(&sessions);
        let raw = Bytes::from_static(b"event: endpoint\ndata: /message?sessionId=up1\n\n");
        let out = hook(raw.clone(), &sse::fields(&raw));
        let id = sse::fields(&out)
            .data
            .unwrap()
            .rsplit('=')
            .next()
            .unwrap()
            .to_string();
        let session = sessions.get(&id).unwrap();
        for _ in 0..INJECT_QUEUE {
            assert_eq!(
                sessions.deliver(&session, Bytes::from_static(b"x")),
                Delivery::Queued
            );
        }
        assert_eq!(
            sessions.deliver(&session, Bytes::from_static(b"x")),
            Delivery::Stalled
        );
        assert!(
            sessions.get(&id).is_none(),
            "no more messages are taken for it"
        );
        drop(session);
        for _ in 0..INJECT_QUEUE {
            assert!(rx.recv().await.is_some());
        }
        assert!(
            rx.recv().await.is_none(),
            "the stream's source of events is closed"
        );
    }
}
