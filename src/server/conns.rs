//! What keeps one host from holding every connection slot: the per-address
//! connection count ([`PerIp`]) and the open streams of an HTTP/2 connection
//! ([`Streams`]), which tell when a connection has been idle long enough to close
//! ([`UntilClosed`]).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::watch;

/// Open connections per client address. An entry exists only while its address
/// has a connection open, so the map holds at most `server.max_connections` entries.
#[derive(Default)]
pub struct PerIp(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl PerIp {
    /// A slot for a connection from `peer`, or `None` when its address already has
    /// `cap` connections open. The slot is given back when dropped.
    pub fn try_acquire(&self, peer: IpAddr, cap: usize) -> Option<IpSlot> {
        let key = address_key(peer);
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(key).or_insert(0);
        if *count >= cap {
            // Only an address with connections open reaches the cap (cap ≥ 1): the entry
            // was there before, so nothing is left behind at zero.
            return None;
        }
        *count += 1;
        Some(IpSlot {
            counts: self.0.clone(),
            key,
        })
    }

    #[cfg(test)]
    fn addresses(&self) -> usize {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

/// One open connection counted against its address; removes the address's entry
/// when its last connection closes.
pub struct IpSlot {
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
    key: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// What connections are counted under: an IPv4 address (also when it arrives
/// IPv4-mapped on a dual-stack socket), or an IPv6 address's /64, which one
/// host or subscriber usually has whole.
fn address_key(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & u128::MAX << 64)),
    }
}

/// The streams open on one HTTP/2 connection: a request being handled, or a
/// response body (an SSE stream, say) still being sent.
#[derive(Clone)]
pub struct Streams(Arc<watch::Sender<usize>>);

impl Default for Streams {
    fn default() -> Self {
        Self(Arc::new(watch::channel(0).0))
    }
}

impl Streams {
    /// Counts a stream as open until the returned guard is dropped.
    pub fn open(&self) -> StreamGuard {
        self.0.send_modify(|n| *n += 1);
        StreamGuard(self.0.clone())
    }

    /// Completes once no stream has been open for `timeout` (counted from when
    /// the last one ended, or from now); never while a stream is open.
    pub async fn idle(&self, timeout: Duration) {
        let mut open = self.0.subscribe();
        loop {
            // Errors only without a sender, and `self` holds it.
            let _ = open.wait_for(|n| *n == 0).await;
            // Any change (a stream opened, or opened and already ended) restarts the wait.
            if tokio::time::timeout(timeout, open.changed()).await.is_err() {
                return;
            }
        }
    }
}

/// One open stream of [`Streams`].
pub struct StreamGuard(Arc<watch::Sender<usize>>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

pin_project_lite::pin_project! {
    /// Serves `connection` to its end; once `stop` completes, the connection finishes
    /// the requests and streams in flight, takes no new ones and closes.
    pub struct UntilClosed<C, S> {
        #[pin]
        connection: C,
        #[pin]
        stop: S,
        stopped: bool,
    }
}

impl<C, S> UntilClosed<C, S> {
    pub fn new(connection: C, stop: S) -> Self {
        Self {
            connection,
            stop,
            stopped: false,
        }
    }
}

impl<C: GracefulConnection, S: Future<Output = ()>> Future for UntilClosed<C, S> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if !*this.stopped && this.stop.poll(cx).is_ready() {
            *this.stopped = true;
            this.connection.as_mut().graceful_shutdown();
        }
        this.connection.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn an_address_gets_at_most_cap_slots_and_other_addresses_are_not_affected() {
        let per_ip = PerIp::default();
        let first = per_ip.try_acquire(ip("192.0.2.1"), 2);
        let second = per_ip.try_acquire(ip("192.0.2.1"), 2);
        assert!(first.is_some() && second.is_some());
        assert!(per_ip.try_acquire(ip("192.0.2.1"), 2).is_none());
        assert!(per_ip.try_acquire(ip("192.0.2.2"), 2).is_some());
    }

    #[test]
    fn a_dropped_slot_frees_its_place_and_the_last_one_removes_the_entry() {
        let per_ip = PerIp::default();
        let first = per_ip.try_acquire(ip("192.0.2.1"), 2);
        let second = per_ip.try_acquire(ip("192.0.2.1"), 2);
        drop(first);
        let third = per_ip.try_acquire(ip("192.0.2.1"), 2);
        assert!(third.is_some());
        assert!(per_ip.try_acquire(ip("192.0.2.1"), 2).is_none());
        assert_eq!(per_ip.addresses(), 1);
        drop((second, third));
        assert_eq!(per_ip.addresses(), 0, "no entry is left at zero");
    }

    #[test]
    fn a_refused_address_leaves_no_entry_behind() {
        let per_ip = PerIp::default();
        let slot = per_ip.try_acquire(ip("192.0.2.1"), 1);
        assert!(per_ip.try_acquire(ip("192.0.2.1"), 1).is_none());
        drop(slot);
        assert_eq!(per_ip.addresses(), 0);
    }

    #[test]
    fn ipv6_addresses_in_one_64_share_a_count_and_mapped_ipv4_counts_as_ipv4() {
        let per_ip = PerIp::default();
        let _a = per_ip.try_acquire(ip("2001:db8:1:2::1"), 2);
        let _b = per_ip.try_acquire(ip("2001:db8:1:2:ffff::9"), 2);
        assert!(per_ip.try_acquire(ip("2001:db8:1:2::3"), 2).is_none());
        assert!(per_ip.try_acquire(ip("2001:db8:1:3::1"), 2).is_some());

        let _c = per_ip.try_acquire(ip("192.0.2.7"), 1);
        assert!(per_ip.try_acquire(ip("::ffff:192.0.2.7"), 1).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_streams_is_idle_after_the_timeout() {
        let streams = Streams::default();
        let started = tokio::time::Instant::now();
        streams.idle(Duration::from_secs(10)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_stream_is_never_idle() {
        let streams = Streams::default();
        let _sse = streams.open();
        let idle = tokio::time::timeout(
            Duration::from_secs(3600),
            streams.idle(Duration::from_secs(10)),
        );
        assert!(idle.await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_time_counts_from_when_the_last_stream_ended() {
        let streams = Streams::default();
        let request = streams.open();
        let idle = streams.clone();
        let waiting = tokio::spawn(async move {
            idle.idle(Duration::from_secs(10)).await;
            tokio::time::Instant::now()
        });
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(request);
        tokio::time::sleep(Duration::from_secs(5)).await;
        // A request that starts and ends before the timer looks still restarts the wait.
        drop(streams.open());
        let last = tokio::time::Instant::now();
        let idle_at = waiting.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(idle_at - last, Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_tracked_body_counts_its_stream_until_dropped() {
        let streams = Streams::default();
        let body =
            crate::wire::Holding::new(http_body_util::Empty::<bytes::Bytes>::new(), streams.open());
        assert_eq!(*streams.0.borrow(), 1);
        drop(body);
        assert_eq!(*streams.0.borrow(), 0);
    }
}
