//! auth (under construction).
