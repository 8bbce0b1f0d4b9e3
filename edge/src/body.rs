//! Response bodies: the bytes of one or more ranges, streamed slice by
//! slice, each slice either whole from the tier or chunk by chunk as its
//! fill receives it.
//!
//! A body is a list of [`Part`]s — fixed bytes (multipart headers) and
//! object ranges. While one slice is being sent, the next one the range
//! needs is already opened, so a fill for it starts one slice ahead.
//! An error mid-body ends the stream with that error; hyper then aborts the
//! response (HTTP/1.1: the connection is closed; HTTP/2: the stream is
//! reset), so a client never sees a padded or silently short body.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::Bytes;
use cadenza_config::ids::FileId;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::Frame;

use crate::cache::{FetchError, SharedCache, SliceRead};
use crate::metrics::Metrics;
use crate::reply::{Body, BodyError};

/// One piece of a response body.
#[derive(Debug)]
pub(crate) enum Part {
    /// Bytes we wrote (multipart boundaries and part headers).
    Fixed(Bytes),
    /// Bytes of the object.
    Range(Range<u64>),
}

/// A body being produced.
#[derive(Debug)]
pub(crate) struct BodyPlan {
    cache: SharedCache,
    metrics: Metrics,
    file: FileId,
    len: u64,
    parts: VecDeque<Part>,
    current: Option<RangeCursor>,
    /// A slice opened before the headers went out (see
    /// [`BodyPlan::with_first`]), handed to the cursor that needs it.
    primed: Option<(u64, SliceRead)>,
    failed: bool,
}

impl BodyPlan {
    pub(crate) fn new(
        cache: SharedCache,
        metrics: Metrics,
        file: FileId,
        len: u64,
        parts: Vec<Part>,
    ) -> Self {
        Self { cache, metrics, file, len, parts: parts.into(), current: None, primed: None, failed: false }
    }

    /// Use `read`, already opened, for slice `index`.
    pub(crate) fn with_first(mut self, index: u64, read: SliceRead) -> Self {
        self.primed = Some((index, read));
        self
    }

    /// The next piece of the body; `None` at its end.
    async fn next(&mut self) -> Option<Result<Bytes, FetchError>> {
        if self.failed {
            return None;
        }
        loop {
            if let Some(cursor) = &mut self.current {
                match cursor.next(&self.cache, self.file, self.len).await {
                    Some(Ok(bytes)) => {
                        self.metrics.response_bytes.inc_by(bytes.len() as u64);
                        return Some(Ok(bytes));
                    }
                    Some(Err(e)) => {
                        self.failed = true;
                        return Some(Err(e));
                    }
                    None => self.current = None,
                }
            }
            match self.parts.pop_front()? {
                Part::Fixed(bytes) => return Some(Ok(bytes)),
                Part::Range(want) => {
                    let mut cursor = RangeCursor::new(want, self.cache.slice_size());
                    if let Some((index, _)) = &self.primed
                        && *index == cursor.next_index
                    {
                        cursor.ahead = self.primed.take();
                    }
                    self.current = Some(cursor);
                }
            }
        }
    }

    /// The hyper body.
    pub(crate) fn into_body(self) -> Body {
        let file = self.file;
        let stream = futures_util::stream::unfold(self, move |mut plan| async move {
            let item = plan.next().await?;
            let frame = item.map(Frame::data).map_err(|e| {
                tracing::warn!(%file, error = %e, "upstream failed mid-response; aborting it");
                BodyError(e)
            });
            Some((frame, plan))
        });
        StreamBody::new(stream).boxed_unsync()
    }
}

/// Walks the slices one range covers.
#[derive(Debug)]
struct RangeCursor {
    want: Range<u64>,
    size: u64,
    next_index: u64,
    last_index: u64,
    /// The slice being sent, with the object offset of its next byte.
    open: Option<(u64, SliceRead)>,
    /// The slice after it, opened early.
    ahead: Option<(u64, SliceRead)>,
}

impl RangeCursor {
    fn new(want: Range<u64>, size: u64) -> Self {
        let next_index = want.start / size;
        let last_index = (want.end - 1) / size;
        Self { want, size, next_index, last_index, open: None, ahead: None }
    }

    async fn next(
        &mut self,
        cache: &SharedCache,
        file: FileId,
        len: u64,
    ) -> Option<Result<Bytes, FetchError>> {
        loop {
            if self.open.is_none() {
                if self.next_index > self.last_index {
                    return None;
                }
                let index = self.next_index;
                let read = match self.ahead.take() {
                    Some((i, read)) if i == index => read,
                    _ => cache.open(file, index, len, &self.want).0,
                };
                self.open = Some((index * self.size, read));
                self.next_index += 1;
                if self.next_index <= self.last_index {
                    self.ahead =
                        Some((self.next_index, cache.open(file, self.next_index, len, &self.want).0));
                }
            }
            let (offset, read) = self.open.as_mut().expect("opened above");
            match read {
                SliceRead::Ready(bytes) => {
                    let piece = cut(bytes, *offset, &self.want);
                    self.open = None;
                    if !piece.is_empty() {
                        return Some(Ok(piece));
                    }
                }
                SliceRead::Part(start, bytes) => {
                    let piece = cut(bytes, *start, &self.want);
                    self.open = None;
                    if !piece.is_empty() {
                        return Some(Ok(piece));
                    }
                }
                SliceRead::Disk(_) => {
                    let (offset, read) = self.open.take().expect("matched above");
                    let index = offset / self.size;
                    let (read, _) = cache.resolve(read, file, index, len, &self.want).await;
                    self.open = Some((offset, read));
                }
                SliceRead::Filling(reader) => {
                    if *offset >= self.want.end {
                        // The rest of this slice is not wanted; its fill
                        // goes on without us.
                        self.open = None;
                        continue;
                    }
                    match reader.next_chunk().await {
                        None => self.open = None,
                        Some(Err(e)) => {
                            self.open = None;
                            self.next_index = u64::MAX;
                            return Some(Err(e));
                        }
                        Some(Ok(chunk)) => {
                            let piece = cut(&chunk, *offset, &self.want);
                            *offset += chunk.len() as u64;
                            if !piece.is_empty() {
                                return Some(Ok(piece));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The part of `bytes` (which start at object offset `at`) inside `want`.
fn cut(bytes: &Bytes, at: u64, want: &Range<u64>) -> Bytes {
    let end = at + bytes.len() as u64;
    let from = want.start.clamp(at, end) - at;
    let to = want.end.clamp(at, end) - at;
    bytes.slice(from as usize..to as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_takes_the_intersection() {
        let b = Bytes::from_static(b"0123456789");
        assert_eq!(&cut(&b, 10, &(12..15))[..], b"234");
        assert_eq!(&cut(&b, 10, &(0..100))[..], b"0123456789");
        assert_eq!(&cut(&b, 10, &(15..100))[..], b"56789");
        assert_eq!(&cut(&b, 10, &(0..11))[..], b"0");
        assert!(cut(&b, 10, &(0..10)).is_empty());
        assert!(cut(&b, 10, &(20..30)).is_empty());
    }
}
