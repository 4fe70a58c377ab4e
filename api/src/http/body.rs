//! Reading request bodies within a limit, and taking refused ones off the
//! wire: a server that answers before reading what the client is still
//! sending, then closes, makes the client's TCP stack discard the answer (the
//! close resets the connection), so the client sees a broken connection
//! instead of the refusal. A refused body is therefore read on and thrown
//! away, within a bound of bytes and time, before the connection is closed.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use poem::Body;
use std::sync::Arc;
use std::time::Duration;

/// Most bytes read and thrown away after a refusal.
const LINGER_BYTES: usize = 16 * 1024 * 1024;
/// Longest time spent doing so.
const LINGER: Duration = Duration::from_secs(5);

/// A body's bytes still to come.
pub type Chunks = BoxStream<'static, std::io::Result<Bytes>>;

/// What reading a body up to a limit found.
pub enum Read {
    /// The whole body, within the limit.
    Whole(Bytes),
    /// Longer than the limit; the rest is still to come.
    TooLong(Body),
    /// The client's side broke off.
    Broken,
}

/// Reads `body` whole if it holds at most `limit` bytes, keeping no more than that.
pub async fn read_up_to(body: Body, limit: usize) -> Read {
    let mut chunks: Chunks = body.into_bytes_stream().boxed();
    let mut kept = BytesMut::new();
    while let Some(chunk) = chunks.next().await {
        let Ok(chunk) = chunk else { return Read::Broken };
        if kept.len() + chunk.len() > limit {
            return Read::TooLong(Body::from_bytes_stream(chunks));
        }
        kept.extend_from_slice(&chunk);
    }
    Read::Whole(kept.freeze())
}

/// Reads what is left of a refused body and throws it away, within
/// [`LINGER_BYTES`] and [`LINGER`]; whether it reached the body's end (the
/// connection can then serve another request).
pub async fn drain(rest: Body) -> bool {
    let mut chunks: Chunks = rest.into_bytes_stream().boxed();
    let read = async {
        let mut seen = 0usize;
        while let Some(chunk) = chunks.next().await {
            let Ok(chunk) = chunk else { return false };
            seen += chunk.len();
            if seen > LINGER_BYTES {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(LINGER, read).await.unwrap_or(false)
}

/// A body shared between a reader that may stop part way (the multipart
/// reader) and [`drain`], which takes what that reader left.
#[derive(Clone)]
pub struct Shared(Arc<tokio::sync::Mutex<Chunks>>);

impl Shared {
    pub fn new(body: Body) -> Self {
        Self(Arc::new(tokio::sync::Mutex::new(body.into_bytes_stream().boxed())))
    }

    /// The chunks, for the reader.
    pub fn stream(&self) -> impl futures_util::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
        futures_util::stream::unfold(self.0.clone(), |chunks| async move {
            let next = chunks.lock().await.next().await;
            next.map(|item| (item, chunks))
        })
    }

    /// What the reader left, as a body.
    pub fn rest(&self) -> Body {
        Body::from_bytes_stream(self.stream())
    }
}
