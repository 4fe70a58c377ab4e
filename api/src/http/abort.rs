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

/// The open connections by their peer's address, each with its abort flag.
static OPEN: LazyLock<Mutex<HashMap<SocketAddr, Arc<AtomicBool>>>> = LazyLock::new(Mutex::default);

/// Marks the connection from `peer` aborted: it writes nothing more and closes.
pub fn abort(peer: &RemoteAddr) {
    if let Addr::SocketAddr(addr) = &peer.0
        && let Ok(open) = OPEN.lock()
        && let Some(flag) = open.get(addr)
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
        let peer = match &remote.0 {
            Addr::SocketAddr(addr) => {
                if let Ok(mut open) = OPEN.lock() {
                    open.insert(*addr, aborted.clone());
                }
                Some(*addr)
            }
            _ => None,
        };
        Ok((Connection { io, aborted, peer }, local, remote, scheme))
    }
}

/// An accepted connection that refuses to write once aborted.
pub struct Connection<T> {
    io: T,
    aborted: Arc<AtomicBool>,
    peer: Option<SocketAddr>,
}

impl<T> Connection<T> {
    fn aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }
}

impl<T> Drop for Connection<T> {
    fn drop(&mut self) {
        if let Some(peer) = self.peer
            && let Ok(mut open) = OPEN.lock()
        {
            open.remove(&peer);
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
