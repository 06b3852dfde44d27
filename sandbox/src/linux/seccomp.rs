//! The plan's seccomp policy compiled into BPF with `seccompiler` (its JSON frontend
//! resolves syscall names for the plan's architecture).
//!
//! One filter per deny action (a match takes the action, anything else passes) and the
//! allowlist last (a match passes, anything else takes the default action). The kernel
//! runs every filter and keeps the strictest verdict, so a denied syscall is denied even
//! if an allow rule matched it. The allowlist passes the syscalls the deny list answers
//! with an errno, so `clone3` answers ENOSYS instead of being killed.

use std::collections::BTreeMap;

use fcp_policy::jail::{Arch, ArgOp, ArgValue, SeccompAction, SeccompPlan, SyscallRule};
use seccompiler::{BpfProgram, TargetArch};
use serde_json::{json, Value};

use crate::error::SandboxError;

/// The programs of `plan` in install order, with [`ArgValue::ExecPathPointer`] set to
/// `exec_path` (the address the backend passes to its own `execve`).
pub(crate) fn compile(plan: &SeccompPlan, exec_path: u64) -> Result<Vec<BpfProgram>, SandboxError> {
    let mut by_action: BTreeMap<String, (SeccompAction, Vec<&SyscallRule>)> = BTreeMap::new();
    for denied in &plan.deny {
        let key = format!("{:?}", denied.action);
        by_action.entry(key).or_insert_with(|| (denied.action, Vec::new())).1.push(&denied.rule);
    }
    let mut filters: Vec<Value> = by_action
        .into_values()
        .map(|(action, rules)| filter(rules, action_json(action), json!("allow"), exec_path))
        .collect();
    // The allowlist passes the syscalls that answer an errno, so that the errno filter's
    // answer is the one the connector sees rather than the default kill.
    let answered: Vec<&SyscallRule> =
        plan.deny.iter().filter(|d| matches!(d.action, SeccompAction::Errno(_))).map(|d| &d.rule).collect();
    let allowed = plan.allow.iter().chain(answered).collect();
    filters.push(filter(allowed, json!("allow"), action_json(plan.default_action), exec_path));

    let arch = match plan.arch {
        Arch::X86_64 => TargetArch::x86_64,
        Arch::Aarch64 => TargetArch::aarch64,
    };
    let mut programs = Vec::with_capacity(filters.len());
    for filter in filters {
        let text = json!({ "jail": filter }).to_string();
        let mut map = seccompiler::compile_from_json(text.as_bytes(), arch)
            .map_err(|source| SandboxError::CompileSeccomp { source })?;
        let program = map.remove("jail").ok_or(SandboxError::UnsupportedArch)?;
        programs.push(program);
    }
    Ok(programs)
}

fn action_json(action: SeccompAction) -> Value {
    match action {
        SeccompAction::Allow => json!("allow"),
        SeccompAction::KillProcess => json!("kill_process"),
        SeccompAction::Errno(errno) => json!({ "errno": errno }),
    }
}

fn filter(rules: Vec<&SyscallRule>, match_action: Value, mismatch_action: Value, exec_path: u64) -> Value {
    let mut entries = Vec::new();
    for rule in rules {
        if rule.when.is_empty() {
            entries.push(json!({ "syscall": rule.syscall }));
        }
        for alternative in &rule.when {
            let args: Vec<Value> = alternative
                .iter()
                .map(|c| {
                    let value = match c.value {
                        ArgValue::Const(v) => v,
                        ArgValue::ExecPathPointer => exec_path,
                    };
                    let op = match c.op {
                        ArgOp::Eq => json!("eq"),
                        ArgOp::Ne => json!("ne"),
                        ArgOp::MaskedEq(mask) => json!({ "masked_eq": mask }),
                    };
                    json!({ "index": c.arg, "type": if c.wide { "qword" } else { "dword" }, "op": op, "val": value })
                })
                .collect();
            entries.push(json!({ "syscall": rule.syscall, "args": args }));
        }
    }
    json!({ "mismatch_action": mismatch_action, "match_action": match_action, "filter": entries })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;

    use fcp_policy::jail::{compile_section, Binary, JailInputs};
    use fcp_policy::manifest::Manifest;

    use super::*;

    pub(crate) fn plan(arch: Arch, deny_exec: bool) -> SeccompPlan {
        let manifest = Manifest::parse(include_str!("../../tests/data/manifest_minimal.toml")).expect("manifest");
        let section = fcp_policy::manifest::SandboxSection { deny_exec, ..manifest.sandbox };
        let inputs = JailInputs {
            tcp_connect: None,
            network_files: Vec::new(),
            binary: Binary { path: PathBuf::from("/opt/c"), interpreter: None, libraries: Vec::new() },
            state_dir: PathBuf::from("/var/lib/c"),
            arch,
        };
        compile_section(&section, &inputs).expect("plan").seccomp
    }

    /// Every syscall name of the plan exists in the tables of both architectures, and
    /// every filter compiles (this is the check that a renamed or arch-specific syscall
    /// did not slip into the wrong list).
    #[test]
    fn the_plan_compiles_for_both_architectures() {
        for arch in [Arch::X86_64, Arch::Aarch64] {
            for deny_exec in [true, false] {
                let programs = compile(&plan(arch, deny_exec), 0x7fff_0000_1000).expect("compiles");
                // kill filter, ENOSYS filter, allowlist
                assert_eq!(programs.len(), 3, "{arch} deny_exec={deny_exec}");
                assert!(programs.iter().all(|p| !p.is_empty()));
            }
        }
    }

    #[test]
    fn an_unknown_syscall_name_is_an_error() {
        let mut plan = plan(Arch::Aarch64, true);
        plan.allow.push(SyscallRule { syscall: "open".into(), when: Vec::new() });
        match compile(&plan, 0) {
            Err(SandboxError::CompileSeccomp { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}
