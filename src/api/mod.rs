//! api (under construction).
