//! The kernel object's symbol hygiene, and a non-executable stack wherever
//! it is linked.

use std::process::Command;

fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e} (apt-get install binutils)"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn names(nm_output: &str) -> Vec<String> {
    nm_output
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(str::to_string)
        .collect()
}

#[test]
fn only_lkl_entry_points_are_global() {
    let defined = names(&tool("nm", &["-g", "--defined-only", lkl::KERNEL_OBJECT]));
    assert!(!defined.is_empty());
    let foreign: Vec<_> = defined.iter().filter(|n| !n.starts_with("lkl_")).collect();
    assert!(
        foreign.is_empty(),
        "global symbols other than lkl_*: {foreign:?}"
    );
    for needed in [
        "lkl_start_kernel",
        "lkl_syscall",
        "lkl_sys_halt",
        "lkl_trigger_irq",
    ] {
        assert!(defined.iter().any(|n| n == needed), "{needed} missing");
    }
}

#[test]
fn only_undefined_symbol_is_the_got() {
    let undefined = names(&tool("nm", &["-u", lkl::KERNEL_OBJECT]));
    assert_eq!(undefined, vec!["_GLOBAL_OFFSET_TABLE_".to_string()]);
}

fn assert_nonexec_stack(file: &str) {
    let headers = tool("readelf", &["-lW", file]);
    let stack = headers
        .lines()
        .find(|l| l.contains("GNU_STACK"))
        .unwrap_or_else(|| panic!("{file}: no GNU_STACK"));
    assert!(
        stack.contains("RW ") && !stack.contains("RWE"),
        "{file}: executable stack: {stack}"
    );
}

#[test]
fn executables_linking_it_have_a_nonexecutable_stack() {
    let exe = std::env::current_exe().unwrap();
    assert_nonexec_stack(exe.to_str().unwrap());
}

#[test]
fn shared_library_links_cleanly_with_nonexecutable_stack() {
    let dir = std::env::temp_dir().join(format!("lkl-symbols-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let so = dir.join("liblkl-test.so");
    let so = so.to_str().unwrap();
    // -z defs: the object must not need anything from outside (no libc).
    tool(
        "gcc",
        &[
            "-shared",
            "-nostdlib",
            "-Wl,-z,defs",
            "-o",
            so,
            lkl::KERNEL_OBJECT,
        ],
    );
    assert_nonexec_stack(so);
    let dynsyms = names(&tool("nm", &["-D", "--defined-only", so]));
    assert!(
        dynsyms.iter().all(|n| n.starts_with("lkl_")),
        "exported: {dynsyms:?}"
    );
    let relocs = tool("readelf", &["-dW", so]);
    assert!(!relocs.contains("TEXTREL"), "text relocations in {so}");
    let _ = std::fs::remove_dir_all(&dir);
}
