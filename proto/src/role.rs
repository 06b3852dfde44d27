//! Capability constraints with attenuation (digest §5.1), and roles (§5.4):
//! owner-signed RoleObjects that grant capabilities and inherit other roles (a DAG,
//! cycles refused), and RoleAssignments that give a role to a principal, optionally
//! attenuated. Resolution is the union over assigned roles, with each assignment's
//! attenuation applied to inherited grants too.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::cbor;
use crate::id::ZoneId;
use crate::zone::{OwnerSignable, OwnerSigned};

/// Limits on what a capability may touch (\[S\] CapabilityConstraints).
///
/// Empty `resource_allow` means every resource; empty `credential_allow` means no
/// credential. `None` limits mean unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapabilityConstraints {
    /// URI prefixes that may be touched.
    pub resource_allow: Vec<String>,
    /// URI prefixes that may never be touched.
    pub resource_deny: Vec<String>,
    /// Most calls allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_calls: Option<u32>,
    /// Most bytes allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Idempotency scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_scope: Option<String>,
    /// Credentials that may be used.
    pub credential_allow: Vec<String>,
}

/// Which rule an attempted widening breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttenuationError {
    /// A resource prefix outside the parent's.
    #[error("resource prefix {0:?} is outside the granted resources")]
    Resource(String),
    /// A deny prefix of the parent was dropped.
    #[error("deny prefix {0:?} was dropped")]
    DropsDeny(String),
    /// A limit raised or removed.
    #[error("{0} was raised or removed")]
    Limit(&'static str),
    /// A credential not in the parent.
    #[error("credential {0:?} is not granted")]
    Credential(String),
    /// The constraints do not parse.
    #[error("constraints do not parse: {0}")]
    Shape(String),
}

impl CapabilityConstraints {
    /// Reads constraints from a token's −65549 claim value.
    pub fn from_cbor_value(v: &cbor::Value) -> Result<Self, AttenuationError> {
        cbor::from_value(v.clone()).map_err(|e| AttenuationError::Shape(e.to_string()))
    }

    /// Whether `uri` may be touched.
    pub fn permits_resource(&self, uri: &str) -> bool {
        !self.resource_deny.iter().any(|p| uri.starts_with(p.as_str()))
            && (self.resource_allow.is_empty() || self.resource_allow.iter().any(|p| uri.starts_with(p.as_str())))
    }

    /// Whether credential `id` may be used.
    pub fn permits_credential(&self, id: &str) -> bool {
        self.credential_allow.iter().any(|c| c == id)
    }

    /// Checks that `self` only restricts `parent` ("attenuation may only restrict").
    pub fn check_attenuates(&self, parent: &CapabilityConstraints) -> Result<(), AttenuationError> {
        if !parent.resource_allow.is_empty() {
            if self.resource_allow.is_empty() {
                return Err(AttenuationError::Resource("*".into()));
            }
            if let Some(p) =
                self.resource_allow.iter().find(|c| !parent.resource_allow.iter().any(|q| c.starts_with(q.as_str())))
            {
                return Err(AttenuationError::Resource(p.clone()));
            }
        }
        if let Some(d) = parent.resource_deny.iter().find(|d| !self.resource_deny.contains(d)) {
            return Err(AttenuationError::DropsDeny(d.clone()));
        }
        let narrower = |c: Option<u64>, p: Option<u64>| match (c, p) {
            (_, None) => true,
            (Some(c), Some(p)) => c <= p,
            (None, Some(_)) => false,
        };
        if !narrower(self.max_calls.map(u64::from), parent.max_calls.map(u64::from)) {
            return Err(AttenuationError::Limit("max_calls"));
        }
        if !narrower(self.max_bytes, parent.max_bytes) {
            return Err(AttenuationError::Limit("max_bytes"));
        }
        if let Some(c) = self.credential_allow.iter().find(|c| !parent.credential_allow.contains(c)) {
            return Err(AttenuationError::Credential(c.clone()));
        }
        Ok(())
    }

    /// The most permissive constraints that satisfy both (used to apply an
    /// assignment's attenuation to a role's grants).
    pub fn meet(&self, other: &CapabilityConstraints) -> CapabilityConstraints {
        let allow = match (self.resource_allow.is_empty(), other.resource_allow.is_empty()) {
            (true, _) => other.resource_allow.clone(),
            (_, true) => self.resource_allow.clone(),
            _ => {
                let inside = |xs: &[String], ys: &[String]| -> Vec<String> {
                    xs.iter().filter(|x| ys.iter().any(|y| x.starts_with(y.as_str()))).cloned().collect()
                };
                let mut v = inside(&self.resource_allow, &other.resource_allow);
                v.extend(inside(&other.resource_allow, &self.resource_allow));
                v.sort();
                v.dedup();
                if v.is_empty() {
                    // Disjoint: nothing may be touched. A prefix no URI can start with.
                    v.push("\u{0}".into());
                }
                v
            }
        };
        let mut deny: Vec<String> = self.resource_deny.iter().chain(&other.resource_deny).cloned().collect();
        deny.sort();
        deny.dedup();
        let min = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, None) => a,
            (None, b) => b,
        };
        let creds: BTreeSet<&String> = self.credential_allow.iter().collect();
        CapabilityConstraints {
            resource_allow: allow,
            resource_deny: deny,
            max_calls: min(self.max_calls.map(u64::from), other.max_calls.map(u64::from))
                .and_then(|v| u32::try_from(v).ok()),
            max_bytes: min(self.max_bytes, other.max_bytes),
            idempotency_scope: self.idempotency_scope.clone().or_else(|| other.idempotency_scope.clone()),
            credential_allow: other.credential_allow.iter().filter(|c| creds.contains(c)).cloned().collect(),
        }
    }
}

/// One capability a role grants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleGrant {
    /// Capability id.
    pub capability_id: String,
    /// Operations; empty means all of the capability's.
    pub operations: Vec<String>,
    /// Constraints.
    #[serde(default)]
    pub constraints: CapabilityConstraints,
}

/// A role (\[S\] RoleObject, digest §5.4). Owner-signed as `OwnerSigned<RoleObject>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleObject {
    /// Role id.
    pub role_id: String,
    /// Display name.
    pub name: String,
    /// Zone.
    pub zone_id: ZoneId,
    /// What it grants.
    pub grants: Vec<RoleGrant>,
    /// Roles it inherits.
    pub inherits: Vec<String>,
    /// Start of validity.
    pub valid_from: u64,
    /// End of validity (exclusive).
    pub valid_until: u64,
}

impl OwnerSignable for RoleObject {
    const SCHEMA: &'static str = "fcp.core.RoleObject/1.0.0";
}

/// A role given to a principal (\[S\] RoleAssignment). Owner-signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleAssignment {
    /// The role.
    pub role_id: String,
    /// The principal.
    pub principal: String,
    /// Restriction applied to everything the role (and what it inherits) grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attenuation: Option<CapabilityConstraints>,
    /// Start of validity.
    pub valid_from: u64,
    /// End of validity (exclusive).
    pub valid_until: u64,
}

impl OwnerSignable for RoleAssignment {
    const SCHEMA: &'static str = "fcp.core.RoleAssignment/1.0.0";
}

/// Why roles cannot be resolved.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RoleError {
    /// Inheritance loops.
    #[error("role inheritance cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// A role names an unknown role.
    #[error("role {0:?} is unknown")]
    Unknown(String),
    /// A role of another zone.
    #[error("role {0:?} is not in zone {1}")]
    WrongZone(String, ZoneId),
    /// A role or assignment does not verify.
    #[error("role object does not verify: {0}")]
    Signature(String),
}

impl RoleError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            RoleError::Cycle(_) => "role.cycle",
            RoleError::Unknown(_) => "role.unknown",
            RoleError::WrongZone(..) => "role.wrong_zone",
            RoleError::Signature(_) => "role.bad_signature",
        }
    }
}

/// Roles of one zone, by id; each verified against the owner key on insertion.
#[derive(Clone, Debug, Default)]
pub struct RoleBook {
    roles: BTreeMap<String, RoleObject>,
}

impl RoleBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Verifies and adds a role.
    pub fn add(&mut self, owner: &crate::keys::OwnerPublicKey, r: &OwnerSigned<RoleObject>) -> Result<(), RoleError> {
        let body = r.verify(owner).map_err(|e| RoleError::Signature(e.to_string()))?;
        self.roles.insert(body.role_id.clone(), body.clone());
        Ok(())
    }

    /// Resolves what `assignments` (already verified, for one principal) grant in `zone`
    /// at `now`: the union over assigned roles and everything they inherit, each grant
    /// met with its assignment's attenuation. Refuses cycles and unknown roles.
    pub fn resolve(
        &self,
        zone: &ZoneId,
        assignments: &[RoleAssignment],
        now: u64,
    ) -> Result<Vec<RoleGrant>, RoleError> {
        let mut out: Vec<RoleGrant> = Vec::new();
        for a in assignments.iter().filter(|a| a.valid_from <= now && now < a.valid_until) {
            let mut grants = Vec::new();
            self.walk(zone, &a.role_id, now, &mut Vec::new(), &mut BTreeSet::new(), &mut grants)?;
            for mut g in grants {
                if let Some(att) = &a.attenuation {
                    g.constraints = g.constraints.meet(att);
                }
                if !out.contains(&g) {
                    out.push(g);
                }
            }
        }
        Ok(out)
    }

    fn walk(
        &self,
        zone: &ZoneId,
        id: &str,
        now: u64,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        out: &mut Vec<RoleGrant>,
    ) -> Result<(), RoleError> {
        if let Some(i) = path.iter().position(|p| p == id) {
            let mut cycle = path[i..].to_vec();
            cycle.push(id.to_owned());
            return Err(RoleError::Cycle(cycle));
        }
        if done.contains(id) {
            return Ok(());
        }
        let role = self.roles.get(id).ok_or_else(|| RoleError::Unknown(id.to_owned()))?;
        if &role.zone_id != zone {
            return Err(RoleError::WrongZone(id.to_owned(), zone.clone()));
        }
        path.push(id.to_owned());
        if role.valid_from <= now && now < role.valid_until {
            out.extend(role.grants.iter().cloned());
        }
        for parent in &role.inherits {
            self.walk(zone, parent, now, path, done, out)?;
        }
        path.pop();
        done.insert(id.to_owned());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::OwnerKey;
    use proptest::prelude::*;
    use rand_chacha::rand_core::SeedableRng;

    fn c(allow: &[&str], deny: &[&str], calls: Option<u32>) -> CapabilityConstraints {
        CapabilityConstraints {
            resource_allow: allow.iter().map(|s| (*s).to_owned()).collect(),
            resource_deny: deny.iter().map(|s| (*s).to_owned()).collect(),
            max_calls: calls,
            ..CapabilityConstraints::default()
        }
    }

    #[test]
    fn attenuation_only_restricts() {
        let parent =
            c(&["https://api.github.com/repos/acme/"], &["https://api.github.com/repos/acme/secret"], Some(10));
        let ok = c(&["https://api.github.com/repos/acme/web/"], &["https://api.github.com/repos/acme/secret"], Some(5));
        assert_eq!(ok.check_attenuates(&parent), Ok(()));
        assert!(matches!(
            c(&[], &["https://api.github.com/repos/acme/secret"], Some(5)).check_attenuates(&parent),
            Err(AttenuationError::Resource(_))
        ));
        assert!(matches!(
            c(&["https://api.github.com/"], &["https://api.github.com/repos/acme/secret"], Some(5))
                .check_attenuates(&parent),
            Err(AttenuationError::Resource(_))
        ));
        assert!(matches!(
            c(&["https://api.github.com/repos/acme/x"], &[], Some(5)).check_attenuates(&parent),
            Err(AttenuationError::DropsDeny(_))
        ));
        assert_eq!(
            c(&["https://api.github.com/repos/acme/x"], &["https://api.github.com/repos/acme/secret"], None)
                .check_attenuates(&parent),
            Err(AttenuationError::Limit("max_calls"))
        );
        assert!(ok.permits_resource("https://api.github.com/repos/acme/web/issues"));
        assert!(!ok.permits_resource("https://api.github.com/repos/acme/secret/x"));
        assert!(!ok.permits_resource("https://evil.example/"));
    }

    fn signed_role(owner: &OwnerKey, id: &str, cap: &str, inherits: &[&str]) -> OwnerSigned<RoleObject> {
        OwnerSigned::sign(
            owner,
            RoleObject {
                role_id: id.into(),
                name: id.into(),
                zone_id: ZoneId::new("z:work").expect("zone"),
                grants: vec![RoleGrant {
                    capability_id: cap.into(),
                    operations: vec![],
                    constraints: CapabilityConstraints::default(),
                }],
                inherits: inherits.iter().map(|s| (*s).to_owned()).collect(),
                valid_from: 0,
                valid_until: 100,
            },
        )
        .expect("sign")
    }

    #[test]
    fn roles_resolve_as_a_dag_and_refuse_cycles() {
        let owner = OwnerKey::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(1));
        let zone = ZoneId::new("z:work").expect("zone");
        let mut book = RoleBook::new();
        for r in [
            signed_role(&owner, "admin", "github.admin", &["writer", "reader"]),
            signed_role(&owner, "writer", "github.write", &["reader"]),
            signed_role(&owner, "reader", "github.read", &[]),
        ] {
            book.add(&owner.public(), &r).expect("verified");
        }
        let assign = |role: &str, att: Option<CapabilityConstraints>| RoleAssignment {
            role_id: role.into(),
            principal: "agent:alice".into(),
            attenuation: att,
            valid_from: 0,
            valid_until: 100,
        };
        let caps = |gs: Vec<RoleGrant>| gs.into_iter().map(|g| g.capability_id).collect::<BTreeSet<_>>();
        let all = book.resolve(&zone, &[assign("admin", None)], 5).expect("dag");
        assert_eq!(caps(all), ["github.admin", "github.read", "github.write"].map(String::from).into());
        let limited = book.resolve(&zone, &[assign("writer", Some(c(&["repo:acme/"], &[], Some(3))))], 5).expect("dag");
        assert!(limited
            .iter()
            .all(|g| g.constraints.max_calls == Some(3) && g.constraints.resource_allow == ["repo:acme/"]));
        assert_eq!(book.resolve(&zone, &[assign("writer", None)], 100).map(|g| g.len()), Ok(0), "expired assignment");

        book.add(&owner.public(), &signed_role(&owner, "reader", "github.read", &["admin"])).expect("verified");
        assert_eq!(book.resolve(&zone, &[assign("admin", None)], 5).map_err(|e| e.code()), Err("role.cycle"));
        assert_eq!(book.resolve(&zone, &[assign("ghost", None)], 5).map_err(|e| e.code()), Err("role.unknown"));
        let stranger = OwnerKey::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(2));
        assert_eq!(
            book.add(&owner.public(), &signed_role(&stranger, "x", "y", &[])).map_err(|e| e.code()),
            Err("role.bad_signature")
        );
    }

    fn arb() -> impl Strategy<Value = CapabilityConstraints> {
        (
            proptest::collection::vec("[ab]{1,3}", 0..3),
            proptest::collection::vec("[ab]{1,3}", 0..3),
            proptest::option::of(0u32..10),
            proptest::option::of(0u64..10),
        )
            .prop_map(|(allow, deny, calls, bytes)| CapabilityConstraints {
                resource_allow: allow,
                resource_deny: deny,
                max_calls: calls,
                max_bytes: bytes,
                ..CapabilityConstraints::default()
            })
    }

    proptest! {
        #[test]
        fn meet_never_permits_more_than_either(a in arb(), b in arb(), uri in "[ab]{0,5}") {
            let m = a.meet(&b);
            if m.permits_resource(&uri) {
                prop_assert!(a.permits_resource(&uri) && b.permits_resource(&uri));
            }
            let disjoint = m.resource_allow.len() == 1 && m.resource_allow[0] == "\u{0}";
            prop_assert!(m.check_attenuates(&a).is_ok() || disjoint, "meet widened {:?}", a);
        }

        #[test]
        fn attenuation_is_reflexive(a in arb()) {
            prop_assert_eq!(a.check_attenuates(&a), Ok(()));
        }
    }
}
