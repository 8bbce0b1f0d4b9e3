//! What the process-level tests share: a `cadenza` child that dies with
//! the test, and free loopback ports.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::process::Child;

/// A running `cadenza` process, killed and reaped when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
