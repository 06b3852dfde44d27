//! Criterion benchmarks (frames), filled in by the module owner.
fn main() {}
