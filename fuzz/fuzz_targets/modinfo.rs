//! A kernel module's `.modinfo` ELF section and its `depends=` list (the
//! dependency source for Debian's packages, which ship no `modules.dep`),
//! plus the module-name mapping of file names.
#![no_main]
use kharness_matrix::modules::{depends, modinfo, module_name};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let info = modinfo(data);
    let deps = depends(data);
    assert_eq!(info.is_ok(), deps.is_ok());
    if let Ok(deps) = deps {
        assert!(deps
            .iter()
            .all(|d| !d.is_empty() && !d.contains(',') && !d.contains('-')));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = module_name(s);
    }
});
