//! Flowgate: a WebSocket-first realtime gateway for FlowGen multi-agent chats.
//!
//! The crate is laid out one module per concept (see the README's architecture
//! section): `model` holds the records, `store` keeps them durably, `bus` carries
//! committed events between tasks and nodes, `chats` is the status machine,
//! `engine` runs flows, `auth` decides who is calling, `api` and `realtime`
//! speak HTTP and WebSocket, and `app` wires them together once.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod bus;
pub mod chats;
pub mod config;
pub mod engine;
pub mod flow;
pub mod metrics;
pub mod model;
pub mod realtime;
pub mod store;
