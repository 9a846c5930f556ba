//! realtime (under construction).
