//! `modules.dep` (`kernel/a.ko: kernel/b.ko …`) of a modules tree and
//! `modules.builtin` names.
#![no_main]
use kharness_matrix::modules::{module_name, parse_modules_dep};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let dep = parse_modules_dep(text);
    assert!(dep.len() <= text.lines().count());
    for l in text.lines() {
        let _ = l.rsplit('/').next().and_then(module_name);
    }
});
