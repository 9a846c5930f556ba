//! The HTTP server: accepts TCP connections and serves a router on each with
//! hyper's HTTP/1 (WebSocket upgrades included), bounding what one client can
//! hold open: a deadline for every request head (which is also how long an
//! idle kept-alive connection may wait for its next request), a cap on the
//! node's open connections (upgraded sockets included, so the process stays
//! below its file-descriptor limit and `/healthz` keeps answering once a flood
//! ends) and an optional cap per client address.
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
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::model::ErrorCode;

/// How the server bounds its connections.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    /// A request head must arrive within this (also the idle keep-alive bound).
    pub header_read: Duration,
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
        let slot = if limits.trusted_proxies.contains(&peer.ip()) { None } else { Some(peer.ip()) };
        let Some(slot) = PerClient::admit(&clients, slot) else {
            tracing::debug!(%peer, "refused a connection: limits.http_max_connections_per_client reached");
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let io = Held { tcp, _permit: permit, _slot: slot, swap: None };
        tracker.spawn(connection(io, peer, router.clone(), limits.header_read, shutdown.clone()));
    }
    tracker.close();
    if tokio::time::timeout(limits.drain, tracker.wait()).await.is_err() {
        tracing::warn!("requests still in flight at shutdown were cut");
    }
    Ok(())
}

/// Serves one connection until it ends, or ends it gracefully on shutdown.
async fn connection(
    io: Held,
    peer: SocketAddr,
    router: Router,
    header_read: Duration,
    stop: CancellationToken,
) {
    // Frames are batched and flushed on purpose; Nagle (off above) would only
    // add a delayed-ACK wait to the tail of every stream.
    let service = router.map_request(move |mut req: Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        req.map(Body::new)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_read);
    let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service)).with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
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
    _slot: ClientSlot,
    /// An envelope answer being written in place of hyper's bare one.
    swap: Option<Swap>,
}

/// The replacement bytes, how many are written, and how many of the
/// caller's bytes they stand for.
struct Swap {
    bytes: Vec<u8>,
    at: usize,
    stands_for: usize,
}

/// hyper's own answer to a request it could not parse: a bare head with an
/// empty body. Returns the same answer with the JSON error envelope.
fn enveloped(head: &[u8]) -> Option<Vec<u8>> {
    let (code, message) = match head.get(..13)? {
        b"HTTP/1.1 400 " => (ErrorCode::BadRequest, "the request is not valid HTTP"),
        b"HTTP/1.1 414 " => (ErrorCode::UriTooLong, "the request target is too long"),
        b"HTTP/1.1 431 " => (ErrorCode::HeadersTooLarge, "too many or too large request headers"),
        _ => return None,
    };
    let text = std::str::from_utf8(head).ok()?;
    if !text.ends_with("\r\n\r\n") || !text.to_ascii_lowercase().contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    let body = serde_json::json!({"error": {"code": code.as_str(), "message": message, "retryable": false}});
    let body = body.to_string();
    let status_line = &text[..text.find("\r\n")?];
    Some(
        format!(
            "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl Held {
    /// Writes the pending swap, then reports the caller's bytes as written.
    fn poll_swap(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some(swap) = &mut self.swap else { return Poll::Ready(Ok(0)) };
        while swap.at < swap.bytes.len() {
            match Pin::new(&mut self.tcp).poll_write(cx, &swap.bytes[swap.at..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => swap.at += n,
                other => return other,
            }
        }
        let stands_for = swap.stands_for;
        self.swap = None;
        Poll::Ready(Ok(stands_for))
    }
}

impl AsyncRead for Held {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Held {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.swap.is_none()
            && let Some(bytes) = enveloped(buf)
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
