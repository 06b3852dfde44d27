//! Connector manifests (digest §11): filled in by its owner.
