//! TLS interception for credential injection (being built).
