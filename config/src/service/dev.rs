use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::load::{ConfigError, ServiceConfig, ensure};

/// `cadenza dev`: the whole system in one process on loopback.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevConfig {
    /// Everything the stack keeps: SQLite file, object store, keys,
    /// `stack.json`. Default `./cadenza-data`.
    pub data_dir: PathBuf,
    /// Address every listener binds. Default `127.0.0.1`.
    pub host: IpAddr,
    /// First port: control = base, origin = base+1, the shield (if any)
    /// base+2 (admin +1), edge *i* = base+10+2*i* (admin +1). `0` picks free ports. Default `8400`.
    pub base_port: u16,
    /// Number of edge POPs. Default `2`, so selection and failover can be
    /// seen locally.
    pub edges: u16,
    /// Also run a shield edge (`shield`, ports base+2 and base+3) that the
    /// edges fill from instead of the origin, as a region's POPs do behind
    /// a parent tier. Default `false`.
    pub shield: bool,
    /// Serve the edges over TLS with a self-signed certificate the stack
    /// makes (and keeps) in `<data_dir>/tls/`. Default `false`.
    pub tls: bool,
    pub demo: DemoConfig,
}

/// The synthesised demo album (`[demo]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    /// Number of tracks. Default `3`.
    pub tracks: u8,
    /// Length of the first track in seconds; each next one is longer by
    /// `step_seconds`. Default `24`.
    pub first_seconds: u32,
    /// Default `8`.
    pub step_seconds: u32,
}

impl Default for DevConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("cadenza-data"),
            host: [127, 0, 0, 1].into(),
            base_port: 8400,
            edges: 2,
            shield: false,
            tls: false,
            demo: DemoConfig::default(),
        }
    }
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self { tracks: 3, first_seconds: 24, step_seconds: 8 }
    }
}

impl ServiceConfig for DevConfig {
    const ENV_PREFIX: &'static str = "CADENZA_DEV";

    fn validate(&self) -> Result<(), ConfigError> {
        ensure(self.host.is_loopback(), "host", self.host, "the dev stack binds loopback only")?;
        ensure((1..=16).contains(&self.edges), "edges", self.edges, "must be between 1 and 16")?;
        ensure(
            self.base_port == 0 || self.base_port <= u16::MAX - 10 - 2 * self.edges,
            "base_port",
            self.base_port,
            "leaves no room for the edge ports",
        )?;
        ensure(
            (1..=20).contains(&self.demo.tracks),
            "demo.tracks",
            self.demo.tracks,
            "must be between 1 and 20",
        )?;
        ensure(
            (1..=600).contains(&self.demo.first_seconds),
            "demo.first_seconds",
            self.demo.first_seconds,
            "must be between 1 and 600",
        )?;
        ensure(
            self.demo.step_seconds <= 60,
            "demo.step_seconds",
            self.demo.step_seconds,
            "must be at most 60",
        )
    }
}
