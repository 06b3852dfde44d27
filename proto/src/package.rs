//! Connector packages (spec/protocol.md §6): a manifest and a connector binary, signed by a
//! publisher key.
//!
//! A package file is one deterministic-CBOR map (digest §1.1):
//!
//! | key | value |
//! |---|---|
//! | `format` | `"fcp-package-v1"` |
//! | `manifest` | the manifest's TOML text |
//! | `binary` | the connector binary (bstr) |
//! | `binary_hash` | BLAKE3-256 of `binary` (32 bytes) |
//! | `platform` | `linux`, `macos` or `windows` |
//! | `arch` | `x86_64` or `aarch64` |
//! | `publisher_key` | the publisher's Ed25519 public key (32 bytes) |
//! | `publisher_kid` | its [`Kid`] (8 bytes) |
//! | `created_at` | seconds since the Unix epoch |
//! | `signature` | Ed25519, 64 bytes |
//!
//! The signature is the publisher's over
//! `FCP2-SIGN-V1 || schema_hash8(PACKAGE_SCHEMA) || det-CBOR(map without signature and binary)`
//! ([`PACKAGE_SCHEMA`]), so the binary is covered through `binary_hash` and a verifier
//! hashes it once.
//!
//! [`Package::from_bytes`] only checks structure (strict canonical CBOR within
//! [`MAX_PACKAGE_BYTES`], exactly these keys, each of its type and size).
//! [`Package::verify`] is the only way to a [`VerifiedPackage`]. Which publishers to trust
//! is owner policy, and whether the manifest is valid is `fcp-policy`'s to judge: the
//! caller does both.

use std::fmt;

use crate::cbor::{self, CanonicalError, Limits, Value};
use crate::id::Kid;
use crate::keys::{KeyError, PublisherKey, PublisherPublicKey};

/// The `format` of every package this module reads and writes.
pub const FORMAT: &str = "fcp-package-v1";
/// Schema id string of package signatures.
pub const PACKAGE_SCHEMA: &str = "fcp.core.ConnectorPackage/1.0.0";
/// Largest package file [`Package::from_bytes`] accepts (256 MiB).
pub const MAX_PACKAGE_BYTES: usize = 256 * 1024 * 1024;
/// Largest manifest text a package may carry (1 MiB).
pub const MAX_MANIFEST_BYTES: usize = 1024 * 1024;

/// A package's map has no nested containers.
const LIMITS: Limits = Limits { max_len: MAX_PACKAGE_BYTES, max_depth: 1 };

/// Why a package is refused. Each variant has a stable [`PackageError::code`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PackageError {
    /// The file is larger than [`MAX_PACKAGE_BYTES`].
    #[error("package of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not strict canonical CBOR.
    #[error("package is not canonical cbor")]
    DecodeCbor(#[source] CanonicalError),
    /// The CBOR is not a package map: a key is missing, unknown or of the wrong type or size.
    #[error("malformed package: {field}: {why}")]
    Malformed {
        /// The field at fault (`package` for the map itself).
        field: &'static str,
        /// What is wrong.
        why: String,
    },
    /// `format` is not [`FORMAT`].
    #[error("unsupported package format {format:?} (this build reads {FORMAT:?})")]
    UnsupportedFormat {
        /// The format the package names.
        format: String,
    },
    /// `publisher_kid` is not the kid of `publisher_key`.
    #[error("publisher kid {named} does not match the publisher key (kid {actual})")]
    KidMismatch {
        /// The kid the package names.
        named: Kid,
        /// The kid of the embedded key.
        actual: Kid,
    },
    /// The publisher key is not among the trusted ones.
    #[error("publisher {kid} is not trusted")]
    UntrustedPublisher {
        /// The publisher's kid.
        kid: Kid,
    },
    /// The embedded publisher key is not a valid Ed25519 point.
    #[error("publisher key is not a valid ed25519 public key")]
    InvalidPublisherKey,
    /// The signature does not verify under the publisher key.
    #[error("publisher signature does not verify")]
    BadSignature,
    /// The binary does not hash to the signed `binary_hash`.
    #[error("binary hashes to {actual}, the signed hash is {signed}")]
    BinaryHashMismatch {
        /// Hex of the signed hash.
        signed: String,
        /// Hex of the binary's hash.
        actual: String,
    },
    /// The package is built for another platform or architecture.
    #[error("package is for {package_platform}/{package_arch}, this host is {host_platform}/{host_arch}")]
    WrongPlatform {
        /// The package's platform.
        package_platform: Platform,
        /// The package's architecture.
        package_arch: Arch,
        /// The host's platform.
        host_platform: Platform,
        /// The host's architecture.
        host_arch: Arch,
    },
    /// The host's OS or architecture has no package platform.
    #[error("no package platform for host os {os:?} arch {arch:?}")]
    UnsupportedHost {
        /// `std::env::consts::OS`.
        os: String,
        /// `std::env::consts::ARCH`.
        arch: String,
    },
}

impl PackageError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            PackageError::TooLarge { .. } => "package.too_large",
            PackageError::DecodeCbor(_) | PackageError::Malformed { .. } => "package.malformed",
            PackageError::UnsupportedFormat { .. } => "package.unsupported_format",
            PackageError::KidMismatch { .. } => "package.kid_mismatch",
            PackageError::UntrustedPublisher { .. } => "package.untrusted_publisher",
            PackageError::InvalidPublisherKey => "package.invalid_publisher_key",
            PackageError::BadSignature => "package.bad_signature",
            PackageError::BinaryHashMismatch { .. } => "package.binary_hash_mismatch",
            PackageError::WrongPlatform { .. } => "package.wrong_platform",
            PackageError::UnsupportedHost { .. } => "package.unsupported_host",
        }
    }
}

/// The operating system a connector binary runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Platform {
    /// `linux`.
    Linux,
    /// `macos`.
    Macos,
    /// `windows`.
    Windows,
}

impl Platform {
    /// Every platform.
    pub const ALL: [Platform; 3] = [Platform::Linux, Platform::Macos, Platform::Windows];

    /// The wire name, which is also `std::env::consts::OS` on that platform.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Linux => "linux",
            Platform::Macos => "macos",
            Platform::Windows => "windows",
        }
    }

    /// Parses a wire name (or a `std::env::consts::OS` value).
    pub fn parse(s: &str) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The CPU architecture a connector binary runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// `x86_64`.
    X86_64,
    /// `aarch64`.
    Aarch64,
}

impl Arch {
    /// Every architecture.
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];

    /// The wire name, which is also `std::env::consts::ARCH` on that architecture.
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// Parses a wire name (or a `std::env::consts::ARCH` value).
    pub fn parse(s: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The package platform and architecture of a host, from its `std::env::consts::OS` and
/// `std::env::consts::ARCH` (passed in, so this stays pure and testable).
pub fn host_target(os: &str, arch: &str) -> Result<(Platform, Arch), PackageError> {
    match (Platform::parse(os), Arch::parse(arch)) {
        (Some(p), Some(a)) => Ok((p, a)),
        _ => Err(PackageError::UnsupportedHost { os: os.to_owned(), arch: arch.to_owned() }),
    }
}

/// BLAKE3-256 of a package file's bytes: the name it is stored and referred to by.
pub fn package_digest(package_bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(package_bytes).as_bytes()
}

/// A package as read or built, not yet verified. Its fields are private: build one with
/// [`Package::build`] or [`Package::from_bytes`], trust it only through [`Package::verify`].
#[derive(Clone, PartialEq, Eq)]
pub struct Package {
    format: String,
    manifest: String,
    binary: Vec<u8>,
    binary_hash: [u8; 32],
    platform: Platform,
    arch: Arch,
    publisher_key: [u8; 32],
    publisher_kid: Kid,
    created_at: u64,
    signature: [u8; 64],
}

impl fmt::Debug for Package {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Package")
            .field("format", &self.format)
            .field("manifest_len", &self.manifest.len())
            .field("binary_len", &self.binary.len())
            .field("binary_hash", &hex::encode(self.binary_hash))
            .field("platform", &self.platform)
            .field("arch", &self.arch)
            .field("publisher_kid", &self.publisher_kid)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

fn text(s: &str) -> Value {
    Value::text(s)
}

/// Encodes a package map. The maps built here hold only text, bytes and a `u64` under
/// distinct constant keys, which always have a canonical encoding.
fn encode_map(entries: Vec<(Value, Value)>) -> Vec<u8> {
    cbor::encode(&Value::Map(entries)).expect("invariant: text, bytes and u64 under distinct constant keys encode")
}

impl Package {
    /// Builds and signs a package. `created_at` is seconds since the Unix epoch.
    pub fn build(
        publisher: &PublisherKey,
        manifest_text: &str,
        binary: &[u8],
        platform: Platform,
        arch: Arch,
        created_at: u64,
    ) -> Package {
        let public = publisher.public();
        let mut package = Package {
            format: FORMAT.to_owned(),
            manifest: manifest_text.to_owned(),
            binary: binary.to_vec(),
            binary_hash: *blake3::hash(binary).as_bytes(),
            platform,
            arch,
            publisher_key: public.to_bytes(),
            publisher_kid: public.kid(),
            created_at,
            signature: [0; 64],
        };
        package.signature = publisher.sign_object(PACKAGE_SCHEMA, &package.signed_cbor());
        package
    }

    /// The map entries every encoding shares: all but `binary` and `signature`.
    fn signed_entries(&self) -> Vec<(Value, Value)> {
        vec![
            (text("format"), text(&self.format)),
            (text("manifest"), text(&self.manifest)),
            (text("binary_hash"), Value::bytes(self.binary_hash)),
            (text("platform"), text(self.platform.as_str())),
            (text("arch"), text(self.arch.as_str())),
            (text("publisher_key"), Value::bytes(self.publisher_key)),
            (text("publisher_kid"), Value::bytes(self.publisher_kid.0)),
            (text("created_at"), Value::Int(i128::from(self.created_at))),
        ]
    }

    /// Deterministic CBOR of the map without `signature` and `binary`: what is signed.
    pub fn signed_cbor(&self) -> Vec<u8> {
        encode_map(self.signed_entries())
    }

    /// The package file: deterministic CBOR of the whole map.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut entries = self.signed_entries();
        entries.push((text("binary"), Value::bytes(self.binary.as_slice())));
        entries.push((text("signature"), Value::bytes(self.signature)));
        encode_map(entries)
    }

    /// Strictly decodes a package file: canonical CBOR of at most [`MAX_PACKAGE_BYTES`], a map
    /// with exactly the package keys, each of its type and size. Checks no signature.
    pub fn from_bytes(bytes: &[u8]) -> Result<Package, PackageError> {
        if bytes.len() > MAX_PACKAGE_BYTES {
            return Err(PackageError::TooLarge { len: bytes.len(), max: MAX_PACKAGE_BYTES });
        }
        let Value::Map(entries) = cbor::decode(bytes, LIMITS).map_err(PackageError::DecodeCbor)? else {
            return Err(malformed("package", "not a map"));
        };
        let mut fields = Fields::default();
        for (key, value) in entries {
            let Value::Text(key) = key else {
                return Err(malformed("package", "a key is not a text string"));
            };
            let slot = match key.as_str() {
                "format" => &mut fields.format,
                "manifest" => &mut fields.manifest,
                "binary" => &mut fields.binary,
                "binary_hash" => &mut fields.binary_hash,
                "platform" => &mut fields.platform,
                "arch" => &mut fields.arch,
                "publisher_key" => &mut fields.publisher_key,
                "publisher_kid" => &mut fields.publisher_kid,
                "created_at" => &mut fields.created_at,
                "signature" => &mut fields.signature,
                other => return Err(malformed("package", format!("unknown key {other:?}"))),
            };
            // The strict decoder has already refused duplicate keys.
            *slot = Some(value);
        }
        // The format decides the layout, so it is judged before any other field.
        let format = take_text(fields.format, "format")?;
        if format != FORMAT {
            return Err(PackageError::UnsupportedFormat { format });
        }
        let manifest = take_text(fields.manifest, "manifest")?;
        if manifest.len() > MAX_MANIFEST_BYTES {
            return Err(malformed(
                "manifest",
                format!("{} bytes exceeds the limit of {MAX_MANIFEST_BYTES}", manifest.len()),
            ));
        }
        let platform = take_text(fields.platform, "platform")?;
        let platform = Platform::parse(&platform)
            .ok_or_else(|| malformed("platform", format!("unknown platform {platform:?}")))?;
        let arch = take_text(fields.arch, "arch")?;
        let arch = Arch::parse(&arch).ok_or_else(|| malformed("arch", format!("unknown architecture {arch:?}")))?;
        Ok(Package {
            format,
            manifest,
            binary: take_bytes(fields.binary, "binary")?,
            binary_hash: take_array(fields.binary_hash, "binary_hash")?,
            platform,
            arch,
            publisher_key: take_array(fields.publisher_key, "publisher_key")?,
            publisher_kid: Kid(take_array(fields.publisher_kid, "publisher_kid")?),
            created_at: take_u64(fields.created_at, "created_at")?,
            signature: take_array(fields.signature, "signature")?,
        })
    }

    /// Verifies the package against the trusted publisher keys. Checks, in order: the
    /// format, that `publisher_kid` is the embedded key's, that the key is trusted, the
    /// signature, and the binary's hash. The first failure is the answer.
    pub fn verify(&self, trusted: &[PublisherPublicKey]) -> Result<VerifiedPackage<'_>, PackageError> {
        if self.format != FORMAT {
            return Err(PackageError::UnsupportedFormat { format: self.format.clone() });
        }
        let actual = Kid::of(&self.publisher_key);
        if actual != self.publisher_kid {
            return Err(PackageError::KidMismatch { named: self.publisher_kid, actual });
        }
        let Some(publisher) = trusted.iter().find(|k| k.to_bytes() == self.publisher_key) else {
            return Err(PackageError::UntrustedPublisher { kid: actual });
        };
        publisher.verify_object(PACKAGE_SCHEMA, &self.signed_cbor(), &self.signature).map_err(|e| match e {
            KeyError::InvalidPublicKey => PackageError::InvalidPublisherKey,
            _ => PackageError::BadSignature,
        })?;
        let hash = *blake3::hash(&self.binary).as_bytes();
        if hash != self.binary_hash {
            return Err(PackageError::BinaryHashMismatch {
                signed: hex::encode(self.binary_hash),
                actual: hex::encode(hash),
            });
        }
        Ok(VerifiedPackage { publisher: *publisher, package: self })
    }

    /// The embedded publisher key, parsed. Trusting it is owner policy: pass it to
    /// [`Package::verify`] only to check that the package is intact, not that it is trusted.
    pub fn publisher_key(&self) -> Result<PublisherPublicKey, PackageError> {
        PublisherPublicKey::from_bytes(&self.publisher_key).map_err(|_| PackageError::InvalidPublisherKey)
    }

    /// The `format` field.
    pub fn format(&self) -> &str {
        &self.format
    }

    /// The manifest's TOML text (not validated here).
    pub fn manifest(&self) -> &str {
        &self.manifest
    }

    /// The connector binary (not yet checked against its hash).
    pub fn binary(&self) -> &[u8] {
        &self.binary
    }

    /// The signed BLAKE3-256 of the binary.
    pub fn binary_hash(&self) -> [u8; 32] {
        self.binary_hash
    }

    /// The platform the binary is for.
    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The architecture the binary is for.
    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// The kid the package names for its publisher.
    pub fn publisher_kid(&self) -> Kid {
        self.publisher_kid
    }

    /// When it was built (seconds since the Unix epoch).
    pub fn created_at(&self) -> u64 {
        self.created_at
    }
}

fn malformed(field: &'static str, why: impl Into<String>) -> PackageError {
    PackageError::Malformed { field, why: why.into() }
}

/// The package map's values, by key, before their types are checked.
#[derive(Default)]
struct Fields {
    format: Option<Value>,
    manifest: Option<Value>,
    binary: Option<Value>,
    binary_hash: Option<Value>,
    platform: Option<Value>,
    arch: Option<Value>,
    publisher_key: Option<Value>,
    publisher_kid: Option<Value>,
    created_at: Option<Value>,
    signature: Option<Value>,
}

fn take_text(v: Option<Value>, field: &'static str) -> Result<String, PackageError> {
    match v {
        Some(Value::Text(t)) => Ok(t),
        Some(_) => Err(malformed(field, "not a text string")),
        None => Err(malformed(field, "missing")),
    }
}

fn take_bytes(v: Option<Value>, field: &'static str) -> Result<Vec<u8>, PackageError> {
    match v {
        Some(Value::Bytes(b)) => Ok(b),
        Some(_) => Err(malformed(field, "not a byte string")),
        None => Err(malformed(field, "missing")),
    }
}

fn take_array<const N: usize>(v: Option<Value>, field: &'static str) -> Result<[u8; N], PackageError> {
    let b = take_bytes(v, field)?;
    <[u8; N]>::try_from(b.as_slice()).map_err(|_| malformed(field, format!("{} bytes, expected {N}", b.len())))
}

fn take_u64(v: Option<Value>, field: &'static str) -> Result<u64, PackageError> {
    match v {
        Some(Value::Int(i)) => u64::try_from(i).map_err(|_| malformed(field, "not an unsigned 64-bit integer")),
        Some(_) => Err(malformed(field, "not an integer")),
        None => Err(malformed(field, "missing")),
    }
}

/// A package whose publisher is trusted, whose signature verifies and whose binary matches
/// its signed hash. Only [`Package::verify`] makes one; it borrows the package, so the
/// binary is never copied.
#[derive(Clone, Copy, Debug)]
pub struct VerifiedPackage<'a> {
    publisher: PublisherPublicKey,
    package: &'a Package,
}

impl<'a> VerifiedPackage<'a> {
    /// Refuses the package unless it is built for this platform and architecture.
    pub fn check_platform(&self, platform: Platform, arch: Arch) -> Result<(), PackageError> {
        if self.package.platform == platform && self.package.arch == arch {
            return Ok(());
        }
        Err(PackageError::WrongPlatform {
            package_platform: self.package.platform,
            package_arch: self.package.arch,
            host_platform: platform,
            host_arch: arch,
        })
    }

    /// The trusted publisher key that signed it.
    pub fn publisher(&self) -> &PublisherPublicKey {
        &self.publisher
    }

    /// The verified package's fields.
    pub fn package(&self) -> &'a Package {
        self.package
    }

    /// The manifest's TOML text (signed, but not validated here).
    pub fn manifest(&self) -> &'a str {
        &self.package.manifest
    }

    /// The connector binary, which matches its signed hash.
    pub fn binary(&self) -> &'a [u8] {
        &self.package.binary
    }

    /// BLAKE3-256 of the binary.
    pub fn binary_hash(&self) -> [u8; 32] {
        self.package.binary_hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    const MANIFEST: &str = "[manifest]\nformat = \"fcp-connector-manifest\"\n";
    const BINARY: &[u8] = b"\x7fELF connector binary";

    fn key(seed: u64) -> PublisherKey {
        PublisherKey::generate(&mut ChaCha20Rng::seed_from_u64(seed))
    }

    fn sample(publisher: &PublisherKey) -> Package {
        Package::build(publisher, MANIFEST, BINARY, Platform::Linux, Arch::X86_64, 1_700_000_000)
    }

    /// Re-encodes a package map after `edit`, so tests can write packages `build` never makes.
    fn edited(bytes: &[u8], edit: impl FnOnce(&mut Vec<(Value, Value)>)) -> Vec<u8> {
        let Ok(Value::Map(mut entries)) = cbor::decode(bytes, LIMITS) else { panic!("a package is a map") };
        edit(&mut entries);
        cbor::encode(&Value::Map(entries)).expect("encodes")
    }

    fn set(entries: &mut [(Value, Value)], key: &str, value: Value) {
        let slot = entries.iter_mut().find(|(k, _)| *k == Value::text(key)).expect("key present");
        slot.1 = value;
    }

    fn code(r: Result<impl fmt::Debug, PackageError>) -> &'static str {
        match r {
            Ok(v) => panic!("expected an error, got {v:?}"),
            Err(e) => e.code(),
        }
    }

    #[test]
    fn round_trip_verifies() {
        let k = key(1);
        let p = sample(&k);
        let bytes = p.to_bytes();
        let back = Package::from_bytes(&bytes).expect("decodes");
        assert_eq!(back, p);
        assert_eq!(back.to_bytes(), bytes);
        let v = back.verify(&[key(2).public(), k.public()]).expect("verifies");
        assert_eq!(v.publisher(), &k.public());
        assert_eq!(v.manifest(), MANIFEST);
        assert_eq!(v.binary(), BINARY);
        assert_eq!(v.binary_hash(), *blake3::hash(BINARY).as_bytes());
        assert_eq!(v.package().publisher_kid(), k.kid());
        assert_eq!(v.package().created_at(), 1_700_000_000);
        assert_eq!(v.check_platform(Platform::Linux, Arch::X86_64), Ok(()));
    }

    #[test]
    fn the_signature_is_over_the_map_without_binary_and_signature() {
        let k = key(1);
        let p = sample(&k);
        let Value::Map(entries) = cbor::decode(&p.signed_cbor(), LIMITS).expect("canonical") else { panic!("a map") };
        let mut keys: Vec<String> = entries
            .iter()
            .map(|(key, _)| match key {
                Value::Text(t) => t.clone(),
                other => format!("{other:?}"),
            })
            .collect();
        keys.sort();
        assert_eq!(
            keys,
            ["arch", "binary_hash", "created_at", "format", "manifest", "platform", "publisher_key", "publisher_kid"]
        );
        let preimage =
            [b"FCP2-SIGN-V1".as_slice(), &crate::schema::schema_hash8(PACKAGE_SCHEMA), &p.signed_cbor()].concat();
        assert_eq!(k.public().verify_raw(&preimage, &p.signature), Ok(()));
    }

    #[test]
    fn debug_shows_no_binary_or_manifest_text() {
        let p = sample(&key(1));
        let dbg = format!("{p:?}");
        assert!(dbg.contains("binary_len: 21"), "{dbg}");
        assert!(!dbg.contains("fcp-connector-manifest"), "{dbg}");
    }

    #[test]
    fn each_verify_error_has_its_code() {
        let k = key(1);
        let good = sample(&k).to_bytes();
        let verify = |bytes: &[u8], trusted: &[PublisherPublicKey]| {
            Package::from_bytes(bytes).and_then(|p| p.verify(trusted).map(|v| v.binary_hash()))
        };
        let trusted = [k.public()];

        assert_eq!(code(verify(&good, &[key(2).public()])), "package.untrusted_publisher");
        assert_eq!(code(verify(&good, &[])), "package.untrusted_publisher");

        let other_kid = edited(&good, |e| set(e, "publisher_kid", Value::bytes([0u8; 8])));
        assert_eq!(code(verify(&other_kid, &trusted)), "package.kid_mismatch");

        let later = edited(&good, |e| set(e, "created_at", Value::Int(1_700_000_001)));
        assert_eq!(code(verify(&later, &trusted)), "package.bad_signature");

        let bad_sig = edited(&good, |e| set(e, "signature", Value::bytes([7u8; 64])));
        assert_eq!(code(verify(&bad_sig, &trusted)), "package.bad_signature");

        // The binary is covered through its hash: swapping it leaves the signature valid.
        let swapped = edited(&good, |e| set(e, "binary", Value::bytes(b"evil".as_slice())));
        assert_eq!(code(verify(&swapped, &trusted)), "package.binary_hash_mismatch");

        // A validly signed package for another platform verifies, then fails the host check.
        let mac = Package::build(&k, MANIFEST, BINARY, Platform::Macos, Arch::Aarch64, 1);
        let v = mac.verify(&trusted).expect("verifies");
        let err = v.check_platform(Platform::Linux, Arch::Aarch64).expect_err("wrong platform");
        assert_eq!(err.code(), "package.wrong_platform");
        assert_eq!(err.to_string(), "package is for macos/aarch64, this host is linux/aarch64");
        assert_eq!(code(v.check_platform(Platform::Macos, Arch::X86_64)), "package.wrong_platform");
    }

    #[test]
    fn verify_checks_format_before_anything_else() {
        let mut p = sample(&key(1));
        p.format = "fcp-package-v2".into();
        p.publisher_kid = Kid([0; 8]);
        assert_eq!(code(p.verify(&[])), "package.unsupported_format");
    }

    #[test]
    fn the_embedded_key_checks_integrity_only() {
        let k = key(3);
        let p = sample(&k);
        let embedded = p.publisher_key().expect("valid point");
        assert_eq!(embedded, k.public());
        assert_eq!(p.verify(&[embedded]).map(|v| v.binary_hash()), Ok(*blake3::hash(BINARY).as_bytes()));

        // Not a point on the curve (y = 2 has no x).
        let mut bad = sample(&k);
        bad.publisher_key = [0; 32];
        bad.publisher_key[0] = 2;
        bad.publisher_kid = Kid::of(&bad.publisher_key);
        assert_eq!(code(bad.publisher_key()), "package.invalid_publisher_key");
    }

    #[test]
    fn each_decode_error_has_its_code() {
        let good = sample(&key(1)).to_bytes();
        assert_eq!(code(Package::from_bytes(&[])), "package.malformed");
        assert_eq!(code(Package::from_bytes(&[good.as_slice(), &[0]].concat())), "package.malformed");
        assert_eq!(code(Package::from_bytes(&cbor::encode(&Value::Int(1)).expect("enc"))), "package.malformed");
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (edited(&good, |e| set(e, "format", Value::text("fcp-package-v9"))), "package.unsupported_format"),
            (edited(&good, |e| set(e, "format", Value::Int(1))), "package.malformed"),
            (edited(&good, |e| e.retain(|(k, _)| *k != Value::text("signature"))), "package.malformed"),
            (edited(&good, |e| e.push((Value::text("extra"), Value::Null))), "package.malformed"),
            (edited(&good, |e| e.push((Value::Int(1), Value::Null))), "package.malformed"),
            (edited(&good, |e| set(e, "platform", Value::text("freebsd"))), "package.malformed"),
            (edited(&good, |e| set(e, "arch", Value::text("riscv64"))), "package.malformed"),
            (edited(&good, |e| set(e, "publisher_key", Value::bytes([1u8; 31]))), "package.malformed"),
            (edited(&good, |e| set(e, "signature", Value::text("sig"))), "package.malformed"),
            (edited(&good, |e| set(e, "created_at", Value::Int(-1))), "package.malformed"),
            (edited(&good, |e| set(e, "created_at", Value::Float(1.5))), "package.malformed"),
            (edited(&good, |e| set(e, "binary", Value::Array(vec![]))), "package.malformed"),
            (
                edited(&good, |e| set(e, "manifest", Value::text("x".repeat(MAX_MANIFEST_BYTES + 1)))),
                "package.malformed",
            ),
        ];
        for (i, (bytes, want)) in cases.iter().enumerate() {
            assert_eq!(code(Package::from_bytes(bytes)), *want, "case {i}");
        }
        let too_big = vec![0u8; MAX_PACKAGE_BYTES + 1];
        assert_eq!(code(Package::from_bytes(&too_big)), "package.too_large");
    }

    #[test]
    fn non_canonical_encodings_are_refused() {
        let good = sample(&key(1)).to_bytes();
        // 0xbf opens an indefinite-length map: same content, not canonical.
        let mut indefinite = vec![0xbf];
        indefinite.extend_from_slice(&good[1..]);
        indefinite.push(0xff);
        assert_eq!(code(Package::from_bytes(&indefinite)), "package.malformed");
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        let k = key(4);
        let p = Package::build(&k, "m = 1\n", b"bin", Platform::Windows, Arch::Aarch64, 5);
        let good = p.to_bytes();
        let trusted = [k.public()];
        for i in 0..good.len() * 8 {
            let mut bytes = good.clone();
            bytes[i / 8] ^= 1 << (i % 8);
            let outcome = Package::from_bytes(&bytes).and_then(|p| p.verify(&trusted).map(|v| v.binary_hash()));
            assert!(outcome.is_err(), "bit {i} flipped and the package still verifies");
        }
    }

    #[test]
    fn host_target_maps_std_consts() {
        assert_eq!(host_target("linux", "x86_64"), Ok((Platform::Linux, Arch::X86_64)));
        assert_eq!(host_target("macos", "aarch64"), Ok((Platform::Macos, Arch::Aarch64)));
        assert_eq!(host_target("windows", "x86_64"), Ok((Platform::Windows, Arch::X86_64)));
        assert_eq!(code(host_target("freebsd", "x86_64")), "package.unsupported_host");
        assert_eq!(code(host_target("linux", "riscv64")), "package.unsupported_host");
        // The running host maps whenever it is one of the supported pairs.
        let host = host_target(std::env::consts::OS, std::env::consts::ARCH);
        assert_eq!(
            host.is_ok(),
            Platform::parse(std::env::consts::OS).is_some() && Arch::parse(std::env::consts::ARCH).is_some()
        );
    }

    #[test]
    fn digest_is_blake3_of_the_file() {
        let bytes = sample(&key(1)).to_bytes();
        assert_eq!(package_digest(&bytes), *blake3::hash(&bytes).as_bytes());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(p) = Package::from_bytes(&bytes) {
                prop_assert_eq!(p.to_bytes(), bytes);
                let _ = p.verify(&[]);
            }
        }

        #[test]
        fn built_packages_round_trip(
            manifest in "[ -~\n]{0,64}",
            binary in proptest::collection::vec(any::<u8>(), 0..256),
            created_at in any::<u64>(),
            p in 0usize..3,
            a in 0usize..2,
        ) {
            let k = key(9);
            let pkg = Package::build(&k, &manifest, &binary, Platform::ALL[p], Arch::ALL[a], created_at);
            let back = Package::from_bytes(&pkg.to_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&back, &pkg);
            let v = back.verify(&[k.public()]).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(v.check_platform(Platform::ALL[p], Arch::ALL[a]), Ok(()));
        }
    }
}
