//! The JSON config (LKL-compatible keys). Being written.
