//! Wires the parts together once (under construction).
