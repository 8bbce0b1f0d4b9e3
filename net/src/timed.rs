//! Idle and write timeouts on a connection's byte stream.
//!
//! hyper has a header-read timeout but nothing for a connection that goes
//! quiet or a client that stops taking bytes. [`TimedIo`] adds both, below
//! the protocol, so they hold for HTTP/1 and HTTP/2 alike:
//!
//! - **idle**: while the connection waits to read, it fails once nothing has
//!   been read or written for the idle timeout (nginx's `keepalive_timeout`
//!   and HTTP/2 idle timeout). A connection busy sending a long response is
//!   never idle, and one whose request waits on the origin is bounded by the
//!   origin deadline instead.
//! - **write**: a write the client does not accept within the write timeout
//!   fails (nginx's `send_timeout`: between two successive writes, not for
//!   the whole response), so a reader that stalls cannot pin a response, its
//!   buffers and its connection slot forever.
//!
//! Either failure is an I/O error (`TimedOut`); hyper then closes the
//! connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

#[derive(Debug)]
pub(crate) struct TimedIo<T> {
    inner: T,
    idle: Duration,
    write: Duration,
    /// Last time bytes moved either way.
    last_activity: Instant,
    idle_timer: Pin<Box<Sleep>>,
    write_timer: Pin<Box<Sleep>>,
    /// Whether `write_timer` runs for a write that is blocked now.
    write_armed: bool,
}

impl<T> TimedIo<T> {
    pub(crate) fn new(inner: T, idle: Duration, write: Duration) -> Self {
        let now = Instant::now();
        Self {
            inner,
            idle,
            write,
            last_activity: now,
            idle_timer: Box::pin(tokio::time::sleep_until(now + idle)),
            write_timer: Box::pin(tokio::time::sleep_until(now + write)),
            write_armed: false,
        }
    }

    /// Poll the idle deadline; `Ready` means the connection has been quiet
    /// for too long.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let deadline = self.last_activity + self.idle;
            if self.idle_timer.deadline() != deadline {
                // Activity since the timer was set: move it, cheaply, only
                // when the connection is about to wait.
                self.idle_timer.as_mut().reset(deadline);
            }
            ready!(self.idle_timer.as_mut().poll(cx));
            if self.last_activity + self.idle <= Instant::now() {
                return Poll::Ready(());
            }
        }
    }

    fn written<R>(&mut self, result: Poll<io::Result<R>>, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        match result {
            Poll::Ready(r) => {
                self.write_armed = false;
                self.last_activity = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => {
                if !self.write_armed {
                    self.write_armed = true;
                    self.write_timer.as_mut().reset(Instant::now() + self.write);
                }
                match self.write_timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "client did not accept bytes within the write timeout",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

use std::future::Future as _;

impl<T: AsyncRead + Unpin> AsyncRead for TimedIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.last_activity = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => match this.poll_idle(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle for longer than the idle timeout",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TimedIo<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.written(result, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.written(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.written(result, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test(start_paused = true)]
    async fn a_quiet_connection_times_out_and_activity_postpones_it() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = TimedIo::new(a, Duration::from_secs(5), Duration::from_secs(5));
        let start = Instant::now();
        b.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 1];
        io.read_exact(&mut buf).await.unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        b.write_all(b"y").await.unwrap();
        io.read_exact(&mut buf).await.unwrap();
        let err = io.read_exact(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        // Last activity at t=3s, so the deadline was t=8s, not t=5s.
        assert_eq!(start.elapsed(), Duration::from_secs(8));
    }

    #[tokio::test(start_paused = true)]
    async fn a_blocked_write_times_out() {
        let (a, _b) = tokio::io::duplex(16);
        let mut io = TimedIo::new(a, Duration::from_secs(60), Duration::from_secs(2));
        let start = Instant::now();
        // The peer never reads: the 16-byte pipe fills and the write blocks.
        let err = io.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_reader_is_not_cut_off() {
        let (a, mut b) = tokio::io::duplex(16);
        let mut io = TimedIo::new(a, Duration::from_secs(60), Duration::from_secs(2));
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 16];
            while got.len() < 256 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let n = b.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            got.len()
        });
        // 16 writes, each blocked ~1 s: far longer in total than the write
        // timeout, never longer per write.
        io.write_all(&[7u8; 256]).await.unwrap();
        assert_eq!(reader.await.unwrap(), 256);
    }
}
