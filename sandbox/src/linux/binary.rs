//! Finds what a connector binary needs to start inside the jail: its dynamic loader
//! (`PT_INTERP`) and, transitively, its libraries (`DT_NEEDED`), resolved against the
//! loader's standard directories ([`Arch::library_dirs`]). RPATH, RUNPATH and
//! `LD_LIBRARY_PATH` are not honoured: a library outside the standard directories fails
//! the spawn.

use std::collections::{BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use fcp_policy::jail::{Arch, Binary, RuntimeFile};
use goblin::elf::header::{EM_AARCH64, EM_X86_64};
use goblin::elf::Elf;

use crate::error::SandboxError;

/// The program's runtime files. `program` is absolute.
pub(crate) fn resolve(program: &Path, arch: Arch) -> Result<Binary, SandboxError> {
    let needs = read_elf(program, arch)?;
    let interpreter = match needs.interpreter {
        Some(interp) => {
            let jail_path = PathBuf::from(&interp);
            let host_path = fs::canonicalize(&jail_path)
                .map_err(|source| SandboxError::ReadBinary { path: jail_path.clone(), source })?;
            Some(RuntimeFile { jail_path, host_path })
        }
        None => None,
    };
    let mut libraries = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut queue: VecDeque<(String, PathBuf)> = needs.needed.into_iter().map(|n| (n, program.to_owned())).collect();
    while let Some((name, needed_by)) = queue.pop_front() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let jail_path = find(&name, arch)
            .ok_or_else(|| SandboxError::MissingLibrary { library: name.clone(), needed_by: needed_by.clone() })?;
        let host_path = fs::canonicalize(&jail_path)
            .map_err(|source| SandboxError::ReadBinary { path: jail_path.clone(), source })?;
        let lib = read_elf(&host_path, arch)?;
        queue.extend(lib.needed.into_iter().map(|n| (n, jail_path.clone())));
        libraries.push(RuntimeFile { jail_path, host_path });
    }
    Ok(Binary { path: program.to_owned(), interpreter, libraries })
}

struct Needs {
    interpreter: Option<String>,
    needed: Vec<String>,
}

fn read_elf(path: &Path, arch: Arch) -> Result<Needs, SandboxError> {
    let bytes = fs::read(path).map_err(|source| SandboxError::ReadBinary { path: path.to_owned(), source })?;
    let bad = |reason: String| SandboxError::ParseElf { path: path.to_owned(), reason };
    let elf = Elf::parse(&bytes).map_err(|e| bad(e.to_string()))?;
    let machine = match arch {
        Arch::X86_64 => EM_X86_64,
        Arch::Aarch64 => EM_AARCH64,
    };
    if elf.header.e_machine != machine || !elf.is_64 {
        return Err(bad(format!("machine {} is not {arch}", elf.header.e_machine)));
    }
    Ok(Needs {
        interpreter: elf.interpreter.map(str::to_owned),
        needed: elf.libraries.iter().map(|s| (*s).to_owned()).collect(),
    })
}

/// Where the loader finds `name`: a path as written, or the first standard directory
/// holding it.
fn find(name: &str, arch: Arch) -> Option<PathBuf> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        return (path.is_absolute() && path.is_file()).then_some(path);
    }
    arch.library_dirs().iter().map(|dir| Path::new(dir).join(name)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_needs_libc_and_a_loader() {
        let Some(arch) = Arch::native() else { return };
        let exe = std::env::current_exe().expect("current exe");
        let binary = resolve(&exe, arch).expect("resolves");
        assert_eq!(binary.path, exe);
        let interp = binary.interpreter.expect("dynamically linked");
        assert!(interp.host_path.is_file(), "{interp:?}");
        assert!(
            binary.libraries.iter().any(|l| l.jail_path.file_name().is_some_and(|n| n == "libc.so.6")),
            "{:?}",
            binary.libraries
        );
        for lib in &binary.libraries {
            assert!(lib.host_path.is_absolute() && lib.host_path.is_file(), "{lib:?}");
        }
    }

    #[test]
    fn a_non_elf_file_is_refused() {
        let Some(arch) = Arch::native() else { return };
        let tmp = tempfile::tempdir().expect("tempdir");
        let script = tmp.path().join("script");
        fs::write(&script, b"#!/bin/sh\nexit 0\n").expect("write");
        match resolve(&script, arch) {
            Err(SandboxError::ParseElf { path, .. }) => assert_eq!(path, script),
            other => panic!("unexpected {other:?}"),
        }
        match resolve(&tmp.path().join("missing"), arch) {
            Err(SandboxError::ReadBinary { source, .. }) => assert_eq!(source.raw_os_error(), Some(libc::ENOENT)),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_wrong_architecture_is_refused() {
        let Some(arch) = Arch::native() else { return };
        let other = if arch == Arch::X86_64 { Arch::Aarch64 } else { Arch::X86_64 };
        let exe = std::env::current_exe().expect("current exe");
        match resolve(&exe, other) {
            Err(SandboxError::ParseElf { reason, .. }) => assert!(reason.contains("machine"), "{reason}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
