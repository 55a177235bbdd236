//! `Taken`: a socket's outgoing byte stream, counting the bytes as the connection takes them,
//! for its session (`ConnectionLink`): the count moves whenever actix-http pulls bytes, the
//! actor's own buffer notwithstanding, so the session sees how far its client has really read.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use actix_web::{Error, web};
use futures_util::Stream;

/// The stream, and the count shared with the session.
pub struct Taken {
    inner: Pin<Box<dyn Stream<Item = Result<web::Bytes, Error>>>>,
    taken: Arc<AtomicU64>,
}

impl Taken {
    /// Counts what `inner` yields on `taken`.
    pub fn new(
        inner: Pin<Box<dyn Stream<Item = Result<web::Bytes, Error>>>>,
        taken: Arc<AtomicU64>,
    ) -> Self {
        Self { inner, taken }
    }
}

impl Stream for Taken {
    type Item = Result<web::Bytes, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let next = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(bytes))) = &next {
            self.taken.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        next
    }
}
