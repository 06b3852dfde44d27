//! Criterion benchmarks (token), filled in by the module owner.
fn main() {}
