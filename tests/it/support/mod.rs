//! Shared test helpers: `spawn_app()` starts the real server on port 0 over a
//! fresh data dir and returns typed helpers. Every test module uses a subset.
#![allow(dead_code)]

pub mod app;
pub mod browser;
pub mod fake_openai;
pub mod flows;
pub mod process;
pub mod redis_cluster;
pub mod redis_server;
pub mod widget;
pub mod ws;
