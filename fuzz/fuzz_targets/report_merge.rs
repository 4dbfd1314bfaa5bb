//! The matrix JSON that `kharness report merge` reads back
//! (`serde_json` → `Matrix`), merged, and rendered in every format the
//! command writes (text, markdown, HTML, JUnit).
#![no_main]
use kharness_matrix::report::{html, junit, markdown, table, text};
use kharness_matrix::results::{case_names, exit_code, merge, Matrix};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Ok(m) = serde_json::from_str::<Matrix>(s) else {
        return;
    };
    let Ok(m) = merge(vec![("a.json".to_string(), m)]) else {
        return;
    };
    let order = vec!["tcp.fill[veth]".to_string(), "tcp.refused".to_string()];
    let _ = case_names(&m, &order);
    let _ = exit_code(&m);
    let _ = table(&m, &order);
    let _ = text(&m, &order, false);
    let _ = text(&m, &order, true);
    let _ = markdown(&m, &order);
    let _ = html(&m, &order);
    let _ = junit(&m);
    // And merged with itself: the same kernels twice must be refused, not panic.
    if !m.kernels.is_empty() {
        assert!(merge(vec![("a".into(), m.clone()), ("b".into(), m)]).is_err());
    }
});
