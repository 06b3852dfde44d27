//! Egress decision (`vectors/README.md` §5.18): filled in by its owner.
