//! Owner-signed identity and policy objects arriving from peers: strict decoding
//! never panics.
#![no_main]
use fcp_proto::cbor::{from_slice, Limits};
use fcp_proto::keys::{DeviceEnrollment, NodeKeyAttestation};
use fcp_proto::revocation::{RevocationObject, ZoneCheckpoint};
use fcp_proto::zone::{OwnerSigned, ZonePolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::with_max_len(64 * 1024);
    let _ = from_slice::<NodeKeyAttestation>(data, limits);
    let _ = from_slice::<DeviceEnrollment>(data, limits);
    let _ = from_slice::<RevocationObject>(data, limits);
    let _ = from_slice::<ZoneCheckpoint>(data, limits);
    let _ = from_slice::<OwnerSigned<ZonePolicy>>(data, limits);
});
