//! Hardening layers, sets of them, and the owner's policy on which may be missing
//! (house style §3.2 point 9: fail closed, degrade only by an explicit enum value).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One hardening layer a backend may put in force around a connector.
///
/// The first six need no privilege and [`PlainProcess`](crate::PlainProcess) applies them
/// on Linux; the rest are the full jail of a later backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    /// The environment is exactly the spec's; nothing is inherited.
    CleanEnvironment,
    /// Only fds 0, 1 and 2 survive exec.
    FdHygiene,
    /// The child gets SIGKILL when the thread that spawned it dies.
    ParentDeathSignal,
    /// The child leads its own session and process group, so the group can be killed.
    ProcessGroup,
    /// rlimits: core dumps off, open files, processes, file size, address space.
    ResourceLimits,
    /// `PR_SET_NO_NEW_PRIVS`: exec cannot gain privileges (setuid bits, file caps).
    NoNewPrivs,
    /// User, pid, mount, ipc, uts and network namespaces.
    Namespaces,
    /// A private root (`pivot_root`) with only the declared paths.
    PivotRoot,
    /// Landlock filesystem rules in hard-requirement mode.
    Landlock,
    /// The seccomp syscall filter.
    Seccomp,
    /// A cgroup with memory, cpu and pids limits (the real enforcement of memory_mb and cpu_percent).
    Cgroups,
    /// All capabilities dropped from every set.
    CapabilityDrop,
}

impl Layer {
    /// Every layer, in declaration order.
    pub const ALL: [Layer; 12] = [
        Layer::CleanEnvironment,
        Layer::FdHygiene,
        Layer::ParentDeathSignal,
        Layer::ProcessGroup,
        Layer::ResourceLimits,
        Layer::NoNewPrivs,
        Layer::Namespaces,
        Layer::PivotRoot,
        Layer::Landlock,
        Layer::Seccomp,
        Layer::Cgroups,
        Layer::CapabilityDrop,
    ];

    /// The layer's name as it appears in configuration (snake_case).
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::CleanEnvironment => "clean_environment",
            Layer::FdHygiene => "fd_hygiene",
            Layer::ParentDeathSignal => "parent_death_signal",
            Layer::ProcessGroup => "process_group",
            Layer::ResourceLimits => "resource_limits",
            Layer::NoNewPrivs => "no_new_privs",
            Layer::Namespaces => "namespaces",
            Layer::PivotRoot => "pivot_root",
            Layer::Landlock => "landlock",
            Layer::Seccomp => "seccomp",
            Layer::Cgroups => "cgroups",
            Layer::CapabilityDrop => "capability_drop",
        }
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of [`Layer`]s. Serialized as a list of layer names.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Layers(u16);

impl Layers {
    /// No layer.
    pub const EMPTY: Layers = Layers(0);

    /// Every layer: what a connector gets when nothing is degraded.
    pub const ALL: Layers = Layers::of(&Layer::ALL);

    /// The set holding exactly `layers`.
    pub const fn of(layers: &[Layer]) -> Layers {
        let mut bits = 0;
        let mut i = 0;
        while i < layers.len() {
            bits |= layers[i].bit();
            i += 1;
        }
        Layers(bits)
    }

    /// Whether `layer` is in the set.
    pub const fn contains(self, layer: Layer) -> bool {
        self.0 & layer.bit() != 0
    }

    /// The set with `layer` added.
    #[must_use]
    pub const fn with(self, layer: Layer) -> Layers {
        Layers(self.0 | layer.bit())
    }

    /// The layers in `self` or in `other`.
    #[must_use]
    pub const fn union(self, other: Layers) -> Layers {
        Layers(self.0 | other.0)
    }

    /// The layers in `self` but not in `other`.
    #[must_use]
    pub const fn difference(self, other: Layers) -> Layers {
        Layers(self.0 & !other.0)
    }

    /// Whether every layer of `self` is in `other`.
    pub const fn is_subset(self, other: Layers) -> bool {
        self.0 & !other.0 == 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The layers of the set, in [`Layer::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Layer> {
        Layer::ALL.into_iter().filter(move |l| self.contains(*l))
    }
}

impl FromIterator<Layer> for Layers {
    fn from_iter<I: IntoIterator<Item = Layer>>(iter: I) -> Self {
        iter.into_iter().fold(Layers::EMPTY, Layers::with)
    }
}

impl fmt::Debug for Layers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl fmt::Display for Layers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, layer) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(layer.as_str())?;
        }
        Ok(())
    }
}

impl Serialize for Layers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Layers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Vec::<Layer>::deserialize(deserializer)?.into_iter().collect())
    }
}

/// The owner's policy on spawning with layers missing.
///
/// The default, [`Degradation::Refuse`], fails closed: a backend that cannot put every
/// layer in force refuses to spawn ([`SandboxError::LayersMissing`](crate::SandboxError::LayersMissing)).
/// Anything else must be written in the owner's configuration, listing the layers by
/// name, e.g. `degradation = { allow_missing = ["namespaces", "seccomp"] }`. The caller
/// writes an audit record for each layer in [`Jailed::missing_layers`](crate::Jailed::missing_layers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Degradation {
    /// Every layer must be in force, or the spawn fails.
    #[default]
    Refuse,
    /// The listed layers may be missing; any other missing layer fails the spawn.
    AllowMissing(Layers),
}

impl Degradation {
    /// The policy that lets [`PlainProcess`](crate::PlainProcess) run on this platform:
    /// every layer it does not apply may be missing.
    pub fn allow_plain_process() -> Degradation {
        Degradation::AllowMissing(Layers::ALL.difference(crate::PlainProcess::LAYERS))
    }

    /// The layers this policy lets be missing.
    pub fn allowed_missing(self) -> Layers {
        match self {
            Degradation::Refuse => Layers::EMPTY,
            Degradation::AllowMissing(layers) => layers,
        }
    }

    /// Checks a backend that puts `in_force` in force against this policy. Returns the
    /// layers that will be missing (each needs an audit record), or
    /// [`SandboxError::LayersMissing`](crate::SandboxError::LayersMissing) naming the ones not allowed.
    pub fn check(self, backend: &'static str, in_force: Layers) -> Result<Layers, crate::SandboxError> {
        let missing = Layers::ALL.difference(in_force);
        let refused = missing.difference(self.allowed_missing());
        if refused.is_empty() {
            Ok(missing)
        } else {
            Err(crate::SandboxError::LayersMissing { backend, refused })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SandboxError;

    #[test]
    fn set_operations() {
        let a = Layers::of(&[Layer::FdHygiene, Layer::Seccomp]);
        assert!(a.contains(Layer::Seccomp));
        assert!(!a.contains(Layer::Landlock));
        assert_eq!(a.union(Layers::of(&[Layer::Landlock])).iter().count(), 3);
        assert_eq!(a.difference(Layers::of(&[Layer::Seccomp])), Layers::of(&[Layer::FdHygiene]));
        assert!(a.is_subset(Layers::ALL));
        assert!(!Layers::ALL.is_subset(a));
        assert_eq!(Layers::ALL.iter().collect::<Vec<_>>(), Layer::ALL.to_vec());
        assert_eq!(a.to_string(), "fd_hygiene, seccomp");
        assert_eq!(Layers::EMPTY.to_string(), "none");
    }

    #[test]
    fn layer_names_match_serde() {
        for layer in Layer::ALL {
            let json = serde_json::to_string(&layer).expect("serializes");
            assert_eq!(json, format!("\"{}\"", layer.as_str()));
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct OwnerConfig {
        degradation: Degradation,
    }

    #[test]
    fn degradation_parses_from_owner_config() {
        let refuse: OwnerConfig = toml::from_str("degradation = \"refuse\"").expect("parses");
        assert_eq!(refuse.degradation, Degradation::Refuse);
        let allow: OwnerConfig =
            toml::from_str("degradation = { allow_missing = [\"seccomp\", \"landlock\"] }").expect("parses");
        assert_eq!(allow.degradation, Degradation::AllowMissing(Layers::of(&[Layer::Landlock, Layer::Seccomp])));
    }

    #[test]
    fn degradation_rejects_unknown_values() {
        for text in [
            "degradation = \"best_effort\"",
            "degradation = \"Refuse\"",
            "degradation = { allow_missing = [\"seccomp\", \"selinux\"] }",
            "degradation = { allow_missing = [\"seccomp\"], reason = \"x\" }",
            "degradation = { allow_all = true }",
        ] {
            let err = toml::from_str::<OwnerConfig>(text).expect_err(text);
            assert!(!err.to_string().is_empty(), "{text}");
        }
    }

    #[test]
    fn refuse_fails_closed() {
        let err = Degradation::Refuse.check("plain", Layers::of(&[Layer::FdHygiene])).expect_err("refused");
        match err {
            SandboxError::LayersMissing { backend, refused } => {
                assert_eq!(backend, "plain");
                assert_eq!(refused, Layers::ALL.difference(Layers::of(&[Layer::FdHygiene])));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(Degradation::Refuse.check("full", Layers::ALL).expect("all in force"), Layers::EMPTY);
    }

    #[test]
    fn allow_missing_reports_what_is_missing_and_refuses_the_rest() {
        let policy = Degradation::AllowMissing(Layers::of(&[Layer::Seccomp]));
        let in_force = Layers::ALL.difference(Layers::of(&[Layer::Seccomp]));
        assert_eq!(policy.check("b", in_force).expect("allowed"), Layers::of(&[Layer::Seccomp]));
        let in_force = in_force.difference(Layers::of(&[Layer::Landlock]));
        match policy.check("b", in_force) {
            Err(SandboxError::LayersMissing { refused, .. }) => assert_eq!(refused, Layers::of(&[Layer::Landlock])),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn allow_plain_process_admits_exactly_the_plain_backend() {
        let policy = Degradation::allow_plain_process();
        let missing = policy.check("plain", crate::PlainProcess::LAYERS).expect("allowed");
        assert_eq!(missing.union(crate::PlainProcess::LAYERS), Layers::ALL);
        let less = crate::PlainProcess::LAYERS.difference(Layers::of(&[Layer::FdHygiene]));
        match policy.check("less", less) {
            Err(SandboxError::LayersMissing { refused, .. }) => assert_eq!(refused, Layers::of(&[Layer::FdHygiene])),
            other => panic!("unexpected {other:?}"),
        }
    }
}
