//! Aborting a connection whose streamed answer failed half way.
//!
//! A streamed download (an export) that fails after its first bytes must not
//! look complete to the client. The HTTP server, though, ends the chunked body
//! cleanly once the body stream has failed (it finishes the connection after
//! the error), so a failed export would arrive as a short, well-formed file.
//! Every accepted connection is therefore wrapped so that a handler can mark
//! it aborted: from then on nothing more is written to it and it is shut, so
//! the terminating chunk never goes out and every client reports an error.

use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, http::uri::Scheme};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A TCP connection's two ends, which no other open connection shares.
type Ends = (SocketAddr, SocketAddr);

/// The open connections of the process, each with its abort flag. (A
/// connection's handler sees only its ends, so the flags are found by them.)
static OPEN: LazyLock<Mutex<HashMap<Ends, Arc<AtomicBool>>>> = LazyLock::new(Mutex::default);

fn ends(local: &LocalAddr, remote: &RemoteAddr) -> Option<Ends> {
    match (&local.0, &remote.0) {
        (Addr::SocketAddr(local), Addr::SocketAddr(remote)) => Some((*local, *remote)),
        _ => None,
    }
}

/// Marks the connection between `local` and `remote` aborted: it writes
/// nothing more and closes.
pub fn abort(local: &LocalAddr, remote: &RemoteAddr) {
    if let Some(ends) = ends(local, remote)
        && let Ok(open) = OPEN.lock()
        && let Some(flag) = open.get(&ends)
    {
        flag.store(true, Ordering::SeqCst);
    }
}

/// An acceptor whose connections can be aborted by [`abort`].
pub struct Abortable<A>(pub A);

impl<A: Acceptor> Acceptor for Abortable<A> {
    type Io = Connection<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.0.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let (io, local, remote, scheme) = self.0.accept().await?;
        let aborted = Arc::new(AtomicBool::new(false));
        let ends = ends(&local, &remote);
        if let Some(ends) = ends
            && let Ok(mut open) = OPEN.lock()
        {
            open.insert(ends, aborted.clone());
        }
        Ok((Connection { io, aborted, ends }, local, remote, scheme))
    }
}

/// An accepted connection that refuses to write once aborted.
pub struct Connection<T> {
    io: T,
    aborted: Arc<AtomicBool>,
    ends: Option<Ends>,
}

impl<T> Connection<T> {
    fn aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }
}

impl<T> Drop for Connection<T> {
    fn drop(&mut self) {
        // Only this connection's own entry: a later one with the same ends replaced it.
        if let Some(ends) = self.ends
            && let Ok(mut open) = OPEN.lock()
            && open.get(&ends).is_some_and(|flag| Arc::ptr_eq(flag, &self.aborted))
        {
            open.remove(&ends);
        }
    }
}

fn aborted_error() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionAborted, "the response failed and its connection was aborted")
}

impl<T: AsyncRead + Unpin> AsyncRead for Connection<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.aborted() {
            return Poll::Ready(Err(aborted_error()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Connection<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.aborted() {
            return Poll::Ready(Err(aborted_error()));
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.aborted() {
            return Poll::Ready(Err(aborted_error()));
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.aborted() {
            return Poll::Ready(Err(aborted_error()));
        }
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
