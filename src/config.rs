//! Layered configuration (under construction).
