//! The offline demo flow (`demo`), registered at start so a newcomer can follow
//! the README's walkthrough with no model server: a scripted writer and critic,
//! and a user proxy that asks the human when the critic says TERMINATE.

use super::Flow;

/// The id the demo flow is registered under.
pub const DEMO_FLOW_ID: &str = "demo";

/// The demo's definition as JSON text.
pub const DEMO_FLOW_JSON: &str = include_str!("demo.json");

/// The demo flow.
pub fn demo_flow() -> Flow {
    serde_json::from_str(DEMO_FLOW_JSON).expect("the bundled demo flow parses")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_flow_parses_and_validates() {
        demo_flow().validate(&Default::default()).unwrap();
    }
}
