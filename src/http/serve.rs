//! The HTTP server: accepts TCP connections and serves a router on each with
//! hyper's HTTP/1 (WebSocket upgrades included), bounding what one client can
//! hold open: how long a connection may sit idle between requests and how
//! long one request head may take (see `phases`), a cap on the node's open
//! connections (upgraded sockets included, so the process stays below its
//! file-descriptor limit and `/healthz` keeps answering once a flood ends) and
//! an optional cap per client address. A client behind a trusted proxy is
//! the address that proxy forwards (`X-Forwarded-For`), read from the first
//! request of the proxy's connection. An upgraded connection's stream keeps
//! only its places under the caps (its HTTP state is let go at its next read).
//!
//! A request hyper itself refuses (not valid HTTP: 400, a too-long target:
//! 414, too many or too large headers: 431) would get hyper's bare answer;
//! the connection's writer swaps it for the contract's error envelope.
//!
//! Touches only its listener and the connections it accepts; every connection
//! task ends with the shutdown token.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::HeaderMap;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

mod envelope;
mod phases;

use envelope::Swap;
use phases::{Phases, Tracked};

/// How the server bounds its connections.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// A request head must arrive within this of its first byte.
    pub header_read: Duration,
    /// A connection may wait this long for a request's first byte (after it
    /// opens, or after its last response).
    pub idle: Duration,
    /// Open connections on this node.
    pub max_connections: usize,
    /// Open connections per client address (`None`: no cap).
    pub max_per_client: Option<usize>,
    /// Peers exempt from the per-client cap (they carry many clients).
    pub trusted_proxies: Vec<IpAddr>,
    /// How long shutdown waits for requests in flight.
    pub drain: Duration,
}

/// Serves `router` on `listener` until `shutdown` fires, then lets requests in
/// flight finish (for at most `limits.drain`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let node = Arc::new(Semaphore::new(limits.max_connections));
    let clients = Arc::new(PerClient { cap: limits.max_per_client, open: Mutex::default() });
    let tracker = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a peer that reset early: pause
                    // briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = node.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "refused a connection: limits.http_max_connections reached");
            continue;
        };
        let proxied = limits.trusted_proxies.contains(&peer.ip());
        let Some(slot) = PerClient::admit(&clients, (!proxied).then_some(peer.ip())) else {
            tracing::debug!(%peer, "refused a connection: limits.http_max_connections_per_client reached");
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let conn = Arc::new(Conn {
            phases: Phases::new(limits.idle, limits.header_read),
            forwarded: proxied.then(|| Forwarded { clients: clients.clone(), slot: Mutex::new(None) }),
            trusted: limits.trusted_proxies.clone(),
        });
        let io = Held { tcp, _permit: permit, _slot: slot, conn: Some(conn.clone()), swap: None };
        let backstop = limits.idle + limits.header_read;
        tracker.spawn(connection(io, conn, peer, router.clone(), backstop, shutdown.clone()));
    }
    tracker.close();
    if tokio::time::timeout(limits.drain, tracker.wait()).await.is_err() {
        tracing::warn!("requests still in flight at shutdown were cut");
    }
    Ok(())
}

/// What one connection's parts share: its phases (timeouts) and, behind a
/// trusted proxy, the forwarded client's slot under the per-client cap.
struct Conn {
    phases: Arc<Phases>,
    forwarded: Option<Forwarded>,
    trusted: Vec<IpAddr>,
}

/// A trusted proxy's connection: counted under the client it forwards for.
struct Forwarded {
    clients: Arc<PerClient>,
    /// Set by the first request (an uncounted slot when it names no client).
    slot: Mutex<Option<ClientSlot>>,
}

impl Conn {
    /// On a trusted proxy's first request, counts the connection under the
    /// forwarded client; `Err` when that client is at its cap.
    fn admit_forwarded(&self, headers: &HeaderMap) -> io::Result<()> {
        let Some(forwarded) = &self.forwarded else { return Ok(()) };
        let mut slot = forwarded.slot.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return Ok(());
        }
        let client = forwarded_client(headers, &self.trusted);
        match PerClient::admit(&forwarded.clients, client) {
            Some(admitted) => {
                *slot = Some(admitted);
                Ok(())
            }
            None => {
                tracing::debug!(
                    ?client,
                    "refused a proxied connection: limits.http_max_connections_per_client reached"
                );
                Err(io::Error::other("the forwarded client is at limits.http_max_connections_per_client"))
            }
        }
    }
}

/// The client a trusted proxy forwards for: walking `X-Forwarded-For` from
/// the right (the entries proxies appended), the first address that is not a
/// trusted proxy; `None` when there is none or it does not parse.
fn forwarded_client(headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let values: Vec<&str> =
        headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
    for entry in values.iter().rev().flat_map(|v| v.rsplit(',')) {
        match entry.trim().parse::<IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return Some(ip),
            Err(_) => return None,
        }
    }
    None
}

/// Serves one connection until it ends, times out (`phases`), or ends it
/// gracefully on shutdown. hyper's own header-read timer (which also runs
/// while idle) is only a backstop at `backstop`.
async fn connection(
    io: Held,
    shared: Arc<Conn>,
    peer: SocketAddr,
    router: Router,
    backstop: Duration,
    stop: CancellationToken,
) {
    // Frames are batched and flushed on purpose; Nagle (off above) would only
    // add a delayed-ACK wait to the tail of every stream.
    let conn_state = shared.clone();
    let service = tower::service_fn(move |mut req: Request<hyper::body::Incoming>| {
        let router = router.clone();
        let shared = conn_state.clone();
        async move {
            shared.admit_forwarded(req.headers())?;
            let in_flight = Phases::request_started(&shared.phases);
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
            let response = router.oneshot(req.map(Body::new)).await.unwrap_or_else(|never| match never {});
            Ok::<_, io::Error>(response.map(|body| Body::new(Tracked { body, _in_flight: in_flight })))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(backstop);
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service)).with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            return;
        }
        setting = shared.phases.expired() => {
            tracing::debug!(%peer, setting, "closed a connection at its timeout");
            return;
        }
        _ = stop.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "connection ended at shutdown");
    }
}

/// Open connections per client address.
struct PerClient {
    cap: Option<usize>,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl PerClient {
    /// A slot for `addr` (`None` addr: not counted), or `None` at the cap.
    fn admit(this: &Arc<Self>, addr: Option<IpAddr>) -> Option<ClientSlot> {
        let (Some(cap), Some(addr)) = (this.cap, addr) else {
            return Some(ClientSlot(None));
        };
        let mut open = this.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(addr).or_default();
        if *count >= cap {
            return None;
        }
        *count += 1;
        Some(ClientSlot(Some((this.clone(), addr))))
    }
}

/// One counted connection of a client address; uncounted on drop.
struct ClientSlot(Option<(Arc<PerClient>, IpAddr)>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        if let Some((clients, addr)) = self.0.take() {
            let mut open = clients.open.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(count) = open.get_mut(&addr) {
                *count -= 1;
                if *count == 0 {
                    open.remove(&addr);
                }
            }
        }
    }
}

/// A TCP stream holding its place under the caps for as long as it lives,
/// through a WebSocket upgrade too.
struct Held {
    tcp: TcpStream,
    _permit: OwnedSemaphorePermit,
    /// The client's slot (behind a trusted proxy: the forwarded client's,
    /// once the connection was upgraded).
    _slot: ClientSlot,
    /// Its phases (every read may start a head) and a forwarded client's
    /// slot, while the connection serves HTTP: see [`Held::upgraded`].
    conn: Option<Arc<Conn>>,
    /// An envelope answer being written in place of hyper's bare one.
    swap: Option<Swap>,
}

impl AsyncRead for Held {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.upgraded();
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.tcp).poll_read(cx, buf);
        if buf.filled().len() > before
            && let Some(conn) = &self.conn
        {
            conn.phases.read_some();
        }
        polled
    }
}

impl Held {
    /// Lets go of the connection's shared state once nothing else holds it:
    /// the HTTP connection's task has ended, so the stream lives on upgraded
    /// (a WebSocket), where phases no longer apply. A forwarded client's slot
    /// moves into the stream, counted as long as it lives; the rest (about
    /// 0.2 KiB) is freed rather than kept for the socket's life.
    fn upgraded(&mut self) {
        let Some(conn) = self.conn.take_if(|c| Arc::strong_count(c) == 1) else { return };
        // Only this stream held it, and nothing can clone it from here.
        let conn = match Arc::try_unwrap(conn) {
            Ok(conn) => conn,
            Err(conn) => {
                self.conn = Some(conn);
                return;
            }
        };
        if let Some(slot) =
            conn.forwarded.and_then(|f| f.slot.into_inner().unwrap_or_else(|p| p.into_inner()))
        {
            self._slot = slot;
        }
    }
}

impl AsyncWrite for Held {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.swap.is_none()
            && let Some(bytes) = envelope::enveloped(buf)
        {
            self.swap = Some(Swap { bytes, at: 0, stands_for: buf.len() });
        }
        if self.swap.is_some() {
            return self.poll_swap(cx);
        }
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper's bare error head is small and starts a write; only then is
        // it worth joining the slices to look.
        let first = bufs.iter().find(|b| !b.is_empty());
        if self.swap.is_some() || first.is_some_and(|b| b.starts_with(b"HTTP/1.1 4")) {
            let joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            return self.poll_write(cx, &joined);
        }
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// The open-connection cap when none is configured: the process's soft
/// file-descriptor limit less `reserve` (for the store, the bus, logs), read
/// from `/proc/self/limits`; 10 000 where that cannot be read.
pub fn default_max_connections(reserve: usize) -> usize {
    let soft = std::fs::read_to_string("/proc/self/limits").ok().and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse::<usize>().ok()
    });
    match soft {
        Some(soft) => soft.saturating_sub(reserve).max(16),
        None => 10_000,
    }
}
