//! The body adapter for event streams on MCP routes: events are forwarded as
//! they complete (never the whole stream), tool lists inside them are
//! filtered, idle streams get keep-alive comments between events, and the
//! proxy can add events of its own (legacy endpoint rewriting, refusals).

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use super::filter::{self, Filtered};
use super::policy::ToolPolicy;
use super::sse::{self, Decoder};
use crate::wire::{Body, BoxError};

/// Changes one event on its way (e.g. the legacy `endpoint` event). Returns the bytes to send.
pub type EventHook = Box<dyn FnMut(Bytes, &sse::Fields) -> Bytes + Send>;

const KEEPALIVE: &[u8] = b": keepalive\n\n";

pub struct EventStream {
    // Fields drop in this order: the hook (a legacy session ends) before the upstream
    // body (its connection closes), so that the proxy stops taking messages for the
    // session before the upstream forgets it.
    hook: Option<EventHook>,
    inner: Body,
    decoder: Decoder,
    policy: Option<ToolPolicy>,
    injected: Option<mpsc::Receiver<Bytes>>,
    out: VecDeque<Bytes>,
    keepalive: Duration,
    sleep: Pin<Box<Sleep>>,
    done: bool,
}

impl EventStream {
    /// `policy`: filter tool lists with it (`None` for a route without scopes).
    pub fn new(inner: Body, policy: Option<ToolPolicy>, keepalive: Duration) -> Self {
        Self {
            hook: None,
            inner,
            decoder: Decoder::default(),
            policy: policy.filter(|p| !p.is_unrestricted()),
            injected: None,
            out: VecDeque::new(),
            keepalive,
            sleep: Box::pin(tokio::time::sleep(keepalive)),
            done: false,
        }
    }

    pub fn with_hook(mut self, hook: EventHook) -> Self {
        self.hook = Some(hook);
        self
    }

    /// Events the proxy itself adds, sent between upstream events. When every
    /// sender is gone (the session ended), the stream ends.
    pub fn with_injected(mut self, rx: mpsc::Receiver<Bytes>) -> Self {
        self.injected = Some(rx);
        self
    }

    fn process(&mut self, raw: Bytes) -> Bytes {
        let needs_fields =
            self.hook.is_some() || (self.policy.is_some() && filter::may_carry_tools(&raw));
        if !needs_fields {
            return raw;
        }
        let fields = sse::fields(&raw);
        let raw = match &mut self.hook {
            Some(hook) => hook(raw, &fields),
            None => raw,
        };
        let (Some(policy), Some(data)) = (&self.policy, &fields.data) else {
            return raw;
        };
        match filter::filter(data.as_bytes(), &|name| policy.allows(name)) {
            Filtered::Unchanged => raw,
            Filtered::Rewritten(new) => sse::encode(
                fields.event.as_deref(),
                fields.id.as_deref(),
                &String::from_utf8_lossy(&new),
            ),
        }
    }

    fn reset_keepalive(&mut self) {
        self.sleep.as_mut().reset(Instant::now() + self.keepalive);
    }
}

impl HttpBody for EventStream {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if let Some(b) = this.out.pop_front() {
                this.reset_keepalive();
                return Poll::Ready(Some(Ok(Frame::data(b))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            if this.decoder.at_boundary()
                && let Some(rx) = this.injected.as_mut()
                && let Poll::Ready(event) = rx.poll_recv(cx)
            {
                match event {
                    Some(b) => this.out.push_back(b),
                    None => this.done = true,
                }
                continue;
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    let events = this
                        .decoder
                        .push(&data)
                        .map_err(|_| -> BoxError { "upstream event too large".into() })?;
                    for e in events {
                        let processed = this.process(e);
                        this.out.push_back(processed);
                    }
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => {
                    // An unfinished last event is forwarded unless it might hold a tool list.
                    let rest = this.decoder.finish();
                    if !rest.is_empty()
                        && (this.policy.is_none() || !filter::may_carry_tools(&rest))
                    {
                        this.out.push_back(rest);
                    }
                    this.done = true;
                }
                Poll::Pending => {
                    if this.sleep.as_mut().poll(cx).is_ready() {
                        this.reset_keepalive();
                        if this.decoder.at_boundary() {
                            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
                                KEEPALIVE,
                            )))));
                        }
                        // Mid-event: try again at the next interval (poll registers the timer).
                        let _ = this.sleep.as_mut().poll(cx);
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn body_of(chunks: Vec<&'static [u8]>) -> Body {
        let stream = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, BoxError>(Frame::data(Bytes::from_static(c)))),
        );
        http_body_util::StreamBody::new(stream).boxed_unsync()
    }

    async fn collect(s: EventStream) -> String {
        String::from_utf8(s.collect().await.unwrap().to_bytes().to_vec()).unwrap()
    }

    fn read_only() -> ToolPolicy {
        let scopes = vec![("r".to_string(), vec!["read_*".to_string()])];
        ToolPolicy::new(Some(&scopes), "r")
    }

    #[tokio::test]
    async fn tool_lists_in_events_are_filtered_and_others_pass_byte_for_byte() {
        let body = body_of(vec![
            b"id: 1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n",
            b"id: 2\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"read_a\"},",
            b"{\"name\":\"write_b\"}]}}\r\n\r\n",
        ]);
        let out = collect(EventStream::new(
            body,
            Some(read_only()),
            Duration::from_secs(60),
        ))
        .await;
        assert_eq!(
            out,
            "id: 1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n\
             id: 2\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"read_a\"}]}}\n\n"
        );
    }

    #[tokio::test]
    async fn without_a_policy_bytes_are_untouched() {
        let body = body_of(vec![
            b"data: {\"result\":{\"tools\":[{\"name\":\"write\"}]}}\r",
            b"\n\r\n: c\n\ndata: tail",
        ]);
        let out = collect(EventStream::new(body, None, Duration::from_secs(60))).await;
        assert_eq!(
            out,
            "data: {\"result\":{\"tools\":[{\"name\":\"write\"}]}}\r\n\r\n: c\n\ndata: tail"
        );
    }

    #[tokio::test]
    async fn a_broken_last_event_that_may_hold_tools_is_dropped() {
        let body = body_of(vec![b"data: {\"result\":{\"tools\":[{\"name\":\"wri"]);
        let out = collect(EventStream::new(
            body,
            Some(read_only()),
            Duration::from_secs(60),
        ))
        .await;
        assert_eq!(out, "");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_streams_get_keepalive_comments_between_events() {
        let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let inner = http_body_util::StreamBody::new(tokio_stream_from(rx)).boxed_unsync();
        let mut s = EventStream::new(inner, None, Duration::from_secs(15));
        tx.send(Ok(Frame::data(Bytes::from_static(b"data: a\n\n"))))
            .await
            .unwrap();
        let f = s.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&f[..], b"data: a\n\n");
        // Nothing for 15 s: a comment.
        let f = s.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&f[..], KEEPALIVE);
        // Mid-event, no comment is inserted: the next frame is the rest of the event.
        tx.send(Ok(Frame::data(Bytes::from_static(b"data: b"))))
            .await
            .unwrap();
        let next = tokio::spawn(async move {
            let f = s.frame().await.unwrap().unwrap().into_data().unwrap();
            (f, s)
        });
        tokio::time::sleep(Duration::from_secs(40)).await;
        tx.send(Ok(Frame::data(Bytes::from_static(b"\n\n"))))
            .await
            .unwrap();
        let (f, _s) = next.await.unwrap();
        assert_eq!(&f[..], b"data: b\n\n");
    }

    fn tokio_stream_from(
        mut rx: mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
    ) -> impl futures_util::Stream<Item = Result<Frame<Bytes>, BoxError>> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
