//! [`RecordingBody`]: a streaming request body that can be sent twice.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::replay::ReplayableBody;
use crate::transport::BoxError;

/// How much of a body [`RecordingBody::new`] keeps for a replay: gRPC's default limit for one
/// message, so every unary call within the defaults can be retried.
pub const DEFAULT_RECORDING_LIMIT: usize = 4 * 1024 * 1024;

/// A request body that records the frames it streams, so that a copy made before sending
/// ([`ReplayableBody::try_clone_body`]) can send them again: the one retry after a rejected
/// token then works for streaming bodies too (tonic's request bodies are streams, even for unary
/// calls).
///
/// Every copy shares one source and one recording. A copy yields the recorded frames first, then
/// pulls the rest from the source itself, so it never waits for the first send to finish. The
/// recording keeps at most `limit` bytes (`DEFAULT_RECORDING_LIMIT`, 4 MiB, unless set with
/// [`with_limit`](Self::with_limit)); a copy that needs frames beyond it fails with an error
/// instead of sending a different body. Memory is held until the last copy is dropped, at the
/// latest when the call (and its one retry) is over.
///
/// [`OAuthLayer::grpc`](crate::OAuthLayer::grpc) wraps tonic's bodies in it; wrap your own
/// streaming bodies the same way to make them replayable under the plain layer.
pub struct RecordingBody<B> {
    shared: Arc<Mutex<Shared<B>>>,
    /// The index of the next frame this copy yields.
    next: usize,
}

struct Shared<B> {
    source: Pin<Box<B>>,
    /// Wakes every copy that waits for the source: two copies may both be polled for a while
    /// (the first send's connection has not dropped its copy yet when the retry starts), and a
    /// source keeps only the last waker it was given.
    waiting: Arc<WakeAll>,
    /// A prefix of every frame the source produced (all of them unless `overflowed`).
    recorded: Vec<Recorded>,
    /// How many frames the source produced.
    produced: usize,
    /// Bytes in `recorded`.
    bytes: usize,
    limit: usize,
    overflowed: bool,
    complete: bool,
    failed: bool,
}

enum Recorded {
    Data(Bytes),
    Trailers(HeaderMap),
}

impl Recorded {
    fn frame(&self) -> Frame<Bytes> {
        match self {
            Recorded::Data(data) => Frame::data(data.clone()),
            Recorded::Trailers(trailers) => Frame::trailers(trailers.clone()),
        }
    }
}

/// Why a copy of a [`RecordingBody`] could not be sent.
#[derive(Debug, thiserror::Error)]
enum ReplayFailed {
    #[error("the request body outgrew its recording limit and cannot be sent again")]
    TooLarge,
    #[error("the request body failed while it was first sent, and cannot be sent again")]
    SourceFailed,
}

impl<B> RecordingBody<B> {
    /// Records up to `DEFAULT_RECORDING_LIMIT` bytes of `body`.
    pub fn new(body: B) -> Self {
        Self::with_limit(body, DEFAULT_RECORDING_LIMIT)
    }

    /// Records up to `limit` bytes of `body`.
    pub fn with_limit(body: B, limit: usize) -> Self {
        Self {
            shared: Arc::new(Mutex::new(Shared {
                source: Box::pin(body),
                waiting: Arc::default(),
                recorded: Vec::new(),
                produced: 0,
                bytes: 0,
                limit,
                overflowed: false,
                complete: false,
                failed: false,
            })),
            next: 0,
        }
    }

    fn shared(&self) -> MutexGuard<'_, Shared<B>> {
        // A panic while holding the lock leaves the recording consistent (every field is updated
        // after the source's poll returns), so a poisoned lock is still usable.
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<B> ReplayableBody for RecordingBody<B> {
    /// A copy that starts from the first frame; `None` once the recording lost frames.
    fn try_clone_body(&self) -> Option<Self> {
        if self.shared().overflowed {
            return None;
        }
        Some(Self {
            shared: self.shared.clone(),
            next: 0,
        })
    }
}

impl<B> Body for RecordingBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let mut shared = this.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(recorded) = shared.recorded.get(this.next) {
            this.next += 1;
            return Poll::Ready(Some(Ok(recorded.frame())));
        }
        if this.next < shared.produced {
            return Poll::Ready(Some(Err(ReplayFailed::TooLarge.into())));
        }
        if shared.complete {
            return Poll::Ready(None);
        }
        if shared.failed {
            return Poll::Ready(Some(Err(ReplayFailed::SourceFailed.into())));
        }
        shared.waiting.register(cx.waker());
        let waker = Waker::from(shared.waiting.clone());
        match shared
            .source
            .as_mut()
            .poll_frame(&mut Context::from_waker(&waker))
        {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                shared.complete = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(error))) => {
                shared.failed = true;
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Ready(Some(Ok(frame))) => {
                shared.produced += 1;
                this.next += 1;
                shared.record(&frame);
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let shared = self.shared();
        self.next >= shared.produced && shared.complete
    }

    fn size_hint(&self) -> SizeHint {
        let shared = self.shared();
        if self.next == 0 && shared.produced == 0 {
            shared.source.size_hint()
        } else {
            SizeHint::default()
        }
    }
}

/// The wakers of the copies waiting for the source.
#[derive(Default)]
struct WakeAll(Mutex<Vec<Waker>>);

impl WakeAll {
    fn register(&self, waker: &Waker) {
        let mut waiting = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !waiting.iter().any(|w| w.will_wake(waker)) {
            waiting.push(waker.clone());
        }
    }
}

impl Wake for WakeAll {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let waiting = std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner));
        for waker in waiting {
            waker.wake();
        }
    }
}

impl<B> Shared<B> {
    /// Keeps `frame` for later copies, unless the recording is already over its limit.
    fn record(&mut self, frame: &Frame<Bytes>) {
        if self.overflowed {
            return;
        }
        let recorded = if let Some(data) = frame.data_ref() {
            Recorded::Data(data.clone())
        } else if let Some(trailers) = frame.trailers_ref() {
            Recorded::Trailers(trailers.clone())
        } else {
            // A frame kind this version of http-body does not know: it cannot be copied.
            self.overflow();
            return;
        };
        let size = match &recorded {
            Recorded::Data(data) => data.len(),
            Recorded::Trailers(trailers) => trailers
                .iter()
                .map(|(name, value)| name.as_str().len() + value.len())
                .sum(),
        };
        if self.bytes.saturating_add(size) > self.limit {
            self.overflow();
            return;
        }
        self.bytes += size;
        self.recorded.push(recorded);
    }

    fn overflow(&mut self) {
        self.overflowed = true;
        self.recorded = Vec::new();
        self.bytes = 0;
    }
}

impl<B> fmt::Debug for RecordingBody<B> {
    // The frames may be secret: only the shape prints.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = self.shared();
        f.debug_struct("RecordingBody")
            .field("next", &self.next)
            .field("produced", &shared.produced)
            .field("recorded_bytes", &shared.bytes)
            .field("limit", &shared.limit)
            .field("complete", &shared.complete)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::VecDeque;

    use http_body_util::BodyExt;

    use super::*;

    /// A body that yields `frames` one by one, then fails if `fail` says so.
    struct Frames {
        frames: VecDeque<Frame<Bytes>>,
        fail: bool,
    }

    impl Body for Frames {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            match self.frames.pop_front() {
                Some(frame) => Poll::Ready(Some(Ok(frame))),
                None if self.fail => Poll::Ready(Some(Err(std::io::Error::other("source broke")))),
                None => Poll::Ready(None),
            }
        }
    }

    fn body(data: &[&'static str], trailer: bool) -> Frames {
        let mut frames: VecDeque<_> = data
            .iter()
            .map(|d| Frame::data(Bytes::from_static(d.as_bytes())))
            .collect();
        if trailer {
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            frames.push_back(Frame::trailers(trailers));
        }
        Frames {
            frames,
            fail: false,
        }
    }

    async fn read<B: Body<Data = Bytes, Error = BoxError> + Unpin>(
        mut body: B,
    ) -> Result<(Vec<u8>, Option<HeaderMap>), BoxError> {
        let mut data = Vec::new();
        let mut trailers = None;
        while let Some(frame) = body.frame().await {
            let frame = frame?;
            if let Some(d) = frame.data_ref() {
                data.extend_from_slice(d);
            } else {
                trailers = frame.into_trailers().ok();
            }
        }
        Ok((data, trailers))
    }

    #[tokio::test]
    async fn a_copy_sends_every_frame_again_after_the_first_send() {
        let first = RecordingBody::new(body(&["he", "llo"], true));
        let copy = first.try_clone_body().unwrap();
        let (data, trailers) = read(first).await.unwrap();
        assert_eq!(data, b"hello");
        assert!(trailers.is_some());

        assert!(!copy.is_end_stream());
        let (data, trailers) = read(copy).await.unwrap();
        assert_eq!(data, b"hello");
        assert_eq!(trailers.unwrap()["grpc-status"], "0");
    }

    #[tokio::test]
    async fn a_copy_pulls_what_the_first_send_left_from_the_source() {
        let mut first = RecordingBody::new(body(&["a", "b", "c"], false));
        let copy = first.try_clone_body().unwrap();
        let frame = first.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "a");
        drop(first); // the first send stopped halfway

        assert_eq!(read(copy).await.unwrap().0, b"abc");
    }

    #[tokio::test]
    async fn a_body_beyond_the_limit_is_never_sent_altered() {
        let first = RecordingBody::with_limit(body(&["1234", "5678"], false), 6);
        let copy = first.try_clone_body().unwrap();
        assert_eq!(read(first).await.unwrap().0, b"12345678");

        // The recording lost frames: the copy fails rather than sending part of the body, and no
        // new copy is offered.
        let error = read(copy).await.unwrap_err();
        assert!(error.to_string().contains("recording limit"), "{error}");
        let again = RecordingBody::with_limit(body(&["1234", "5678"], false), 6);
        let _ = read(again.try_clone_body().unwrap()).await.unwrap();
        assert!(again.try_clone_body().is_none());
    }

    #[tokio::test]
    async fn a_copy_of_a_failed_source_fails() {
        let mut frames = body(&["a"], false);
        frames.fail = true;
        let first = RecordingBody::new(frames);
        let copy = first.try_clone_body().unwrap();
        assert_eq!(read(first).await.unwrap_err().to_string(), "source broke");
        let error = read(copy).await.unwrap_err();
        assert!(
            error.to_string().contains("failed while it was first sent"),
            "{error}"
        );
    }

    /// A source that is pending until `ready`, and like most sources keeps only the last waker.
    #[derive(Default)]
    struct Gate {
        ready: bool,
        waker: Option<Waker>,
    }

    struct Gated(Arc<Mutex<Gate>>);

    impl Body for Gated {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            let mut gate = self.0.lock().unwrap();
            if gate.ready {
                Poll::Ready(None)
            } else {
                gate.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    #[derive(Default)]
    struct Count(std::sync::atomic::AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[test]
    fn every_copy_waiting_for_the_source_is_woken() {
        let gate = Arc::new(Mutex::new(Gate::default()));
        let mut first = RecordingBody::new(Gated(gate.clone()));
        let mut copy = first.try_clone_body().unwrap();
        let (a, b) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let (wa, wb) = (Waker::from(a.clone()), Waker::from(b.clone()));
        assert!(
            Pin::new(&mut first)
                .poll_frame(&mut Context::from_waker(&wa))
                .is_pending()
        );
        assert!(
            Pin::new(&mut copy)
                .poll_frame(&mut Context::from_waker(&wb))
                .is_pending()
        );

        let waker = {
            let mut gate = gate.lock().unwrap();
            gate.ready = true;
            gate.waker.take().unwrap()
        };
        waker.wake();
        assert_eq!(a.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(b.0.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(matches!(
            Pin::new(&mut copy).poll_frame(&mut Context::from_waker(&wb)),
            Poll::Ready(None)
        ));
    }

    #[test]
    fn debug_shows_no_content() {
        let body = RecordingBody::new(body(&["secret-payload"], false));
        let shown = format!("{body:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }
}
