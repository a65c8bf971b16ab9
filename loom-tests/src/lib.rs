//! loom models live in tests/; run with RUSTFLAGS="--cfg loom".
