//! Flowgate: a WebSocket-first realtime gateway for FlowGen multi-agent chats.
//!
//! The crate is laid out one module per concept, in layers; each module may
//! use only those below it (a test reads the `use crate::` edges and holds the
//! code to this table; the README's architecture section explains it):
//!
//! | layer | modules |
//! |---|---|
//! | records | `model`, `flow`, `config`, `metrics` |
//! | backends | `store`, `bus` |
//! | ledger | `ledger` (status machine + journal) |
//! | engine | `engine` |
//! | domain | `auth`, `backends` (the one factory), `service` (chats, flows, keys: where access is decided) |
//! | edge | `http` (error envelope, extractors, CORS) |
//! | transports | `api`, `realtime` (never importing each other) |
//! | wiring | `app` |
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod backends;
pub mod bus;
pub mod config;
pub mod engine;
pub mod flow;
pub mod http;
pub mod ledger;
pub mod metrics;
pub mod model;
pub mod realtime;
pub mod service;
pub mod store;
