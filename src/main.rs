//! The `flowgate` binary.
#![forbid(unsafe_code)]

fn main() {}
