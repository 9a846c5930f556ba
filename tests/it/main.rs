//! The integration tests: one binary (building one is far cheaper than
//! building nineteen), a module per area. Every test runs the real wiring
//! through `support::app::spawn_app()` or a real backend; the only fake is an
//! OpenAI-compatible model server (`support::fake_openai`).

#[macro_use]
mod store_suite;
mod support;

mod autogen_golden;
mod browser_plumbing;
mod browsers;
mod bus_redis;
mod bus_redis_cluster;
mod bus_redis_outage;
mod bus_redis_partials;
mod cli;
mod cluster;
mod credentials;
mod dashboard;
mod dashboard_start;
mod delete_race;
mod edge_connections;
mod edge_input;
mod edge_protocol;
mod engine_cancel;
mod engine_runs;
mod errors;
mod examples;
mod feed;
mod final_view;
mod flowgen_import;
mod flowgen_import_refusals;
mod idempotency;
mod layers;
mod message_images;
mod metrics;
mod models_e2e;
mod openai_provider;
mod openapi;
mod outbound;
mod rate_limits;
mod redis_cluster;
mod rest_auth;
mod rest_chats;
mod rest_errors;
mod restart;
mod run_bounds;
mod run_caps;
mod sessions;
mod snapshot;
mod store_redis;
mod store_sqlite;
mod tool_answers;
mod tools;
mod widget;
mod widget_resume;
mod widget_tools;
mod ws_delivery;
mod ws_protocol;
