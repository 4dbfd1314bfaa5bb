//! tcp.sndbuf_setget

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use crate::prop::Property;
use kharness::sys;
use kharness::{CaseDef, CaseError, Ctx, NetNs};
use proptest::prelude::*;

/// `SOCK_MIN_SNDBUF` on x86_64: `2 * (2048 + SKB_DATA_ALIGN(sizeof(struct
/// sk_buff)))`; sizeof(struct sk_buff) is 224–240 bytes on every kernel since
/// 4.x, which SKB_DATA_ALIGN rounds to 256.
const SOCK_MIN_SNDBUF: i64 = 2 * (2048 + 256);
/// `SOCK_MIN_RCVBUF`: `2048 + SKB_DATA_ALIGN(sizeof(struct sk_buff))`.
const SOCK_MIN_RCVBUF: i64 = 2048 + 256;

/// The clamp property: quick and explore counts.
const PROPERTY: Property = Property {
    id: "tcp.sndbuf_setget",
    quick_cases: 256,
    explore_cases: 4096,
    regressions: "tcp_sndbuf_setget.txt",
    max_shrink_iters: 512,
};

/// tcp.sndbuf_setget
pub static SNDBUF_SETGET: CaseDef = CaseDef {
    id: "tcp.sndbuf_setget",
    variants: &[],
    summary: "SO_SNDBUF/SO_RCVBUF get-after-set is twice the request, clamped; SO_SNDBUFFORCE needs CAP_NET_ADMIN",
    drives: "Property test: setsockopt(SO_SNDBUF, x) and setsockopt(SO_RCVBUF, x) on fresh TCP \
        sockets in a namespace, for 256 values of x (`explore`: 4096 per run) drawn from [-1, 2^31) with the edges (0, \
        1, the minimum, wmem_max/rmem_max and around them, INT_MAX) always included; then \
        SO_SNDBUFFORCE above wmem_max with CAP_NET_ADMIN and, on a thread that dropped it \
        from its effective set, without.",
    observes: "getsockopt(SO_SNDBUF / SO_RCVBUF) after each set; net.core.wmem_max and \
        rmem_max (read from the host, where they live: they are not per-namespace); the errno \
        of SO_SNDBUFFORCE without the capability.",
    predicts: "get == max(2 * min(x as u32, wmem_max), SOCK_MIN_SNDBUF) (likewise rcvbuf with \
        rmem_max and SOCK_MIN_RCVBUF, and with x clamped to INT_MAX/2); SO_SNDBUFFORCE with \
        CAP_NET_ADMIN ignores wmem_max (get == 2x); without it, EPERM.",
    why: "sk_setsockopt(): SO_SNDBUF does val = min_t(u32, val, sysctl_wmem_max) then \
        sk_sndbuf = max_t(int, val * 2, SOCK_MIN_SNDBUF); the doubling leaves room for \
        struct sk_buff overhead (socket(7)). SO_RCVBUF goes through __sock_set_rcvbuf() with \
        min_t(int, val, INT_MAX / 2). SO_SNDBUFFORCE checks sockopt_capable(CAP_NET_ADMIN), \
        i.e. capable() in the initial user namespace, and skips the wmem_max clamp. \
        The catalog says 'clamped by the namespace's limits': net.core.wmem_max/rmem_max are \
        global (net_core_table is registered for init_net only), so the host's values apply.",
    kernels: "The min_t(u32) clamp of negative values dates from 5.x; SOCK_MIN_* depend on \
        sizeof(struct sk_buff), 4608/2304 on x86_64 for every kernel in the matrix. In a user \
        namespace SO_SNDBUFFORCE is always EPERM (capable() looks at the initial namespace). \
        net.core.rmem_max and wmem_max default to 4 MiB from a6d4f25888b8 (\"net: increase default rmem_max/wmem_max to 4MB\", in 7.2 and the host's 6.18; 212992 before): the model reads both sysctls, so every clamp moves with them and the probe values are chosen around the maximum read.",
    shell: "python3 -c 'import socket as s; k=s.socket(); k.setsockopt(s.SOL_SOCKET,s.SO_SNDBUF,X); print(k.getsockopt(s.SOL_SOCKET,s.SO_SNDBUF))'",
    source: "seed 000/001 (SO_SNDBUF), seed 004 appendix B",
    timeout: Duration::from_secs(20),
    run,
};

fn host_sysctl(path: &str) -> Result<i64, CaseError> {
    let text = std::fs::read_to_string(path).map_err(|e| CaseError::Harness(format!("{path}: {e}")))?;
    text.trim()
        .parse()
        .map_err(|_| CaseError::Harness(format!("{path}: `{}` is not a number", text.trim())))
}

fn model(x: i32, max: i64, min: i64, int_clamp: bool) -> i64 {
    // min_t(u32, val, max): a negative int is a huge u32.
    let mut v = (x as u32 as i64).min(max);
    if int_clamp {
        v = v.min(i32::MAX as i64 / 2);
    }
    // max_t(int, val * 2, MIN): the product is computed in int.
    let doubled = (v as i32).wrapping_mul(2) as i64;
    doubled.max(min)
}

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    let wmem_max = host_sysctl("/proc/sys/net/core/wmem_max")?;
    let rmem_max = host_sysctl("/proc/sys/net/core/rmem_max")?;
    ctx.observe("net.core.wmem_max", wmem_max);
    ctx.observe("net.core.rmem_max", rmem_max);
    let ns = NetNs::new("sndbuf")?;
    let new_sock = || -> Result<OwnedFd, CaseError> { Ok(ns.socket(libc::AF_INET, libc::SOCK_STREAM, 0)?) };

    let mut edges: Vec<i32> = vec![
        0,
        1,
        -1,
        2304,
        2305,
        4608,
        i32::MAX,
        i32::MAX / 2,
        i32::MAX / 2 + 1,
        i32::MIN,
    ];
    for m in [wmem_max, rmem_max] {
        for d in [-1i64, 0, 1] {
            if let Ok(v) = i32::try_from(m + d) {
                edges.push(v);
            }
        }
    }
    let strategy = prop_oneof![proptest::sample::select(edges.clone()), any::<i32>(), 0i32..1 << 22];
    // One value: set it on a fresh socket for both options; `Err` names the
    // first disagreement, and with `record` every figure is checked in ctx.
    let one = |x: i32, mut record: Option<&mut Ctx>| -> Result<(), String> {
        let s = new_sock().map_err(|e| e.to_string())?;
        let mut first = Ok(());
        for (name, opt, max, min, clamp) in [
            ("so_sndbuf", libc::SO_SNDBUF, wmem_max, SOCK_MIN_SNDBUF, false),
            ("so_rcvbuf", libc::SO_RCVBUF, rmem_max, SOCK_MIN_RCVBUF, true),
        ] {
            sys::setsockopt_int(s.as_fd(), libc::SOL_SOCKET, opt, x).map_err(|e| e.to_string())?;
            let got = sys::getsockopt_int(s.as_fd(), libc::SOL_SOCKET, opt).map_err(|e| e.to_string())? as i64;
            let want = model(x, max, min, clamp);
            if let Some(ctx) = record.as_deref_mut() {
                ctx.check_eq(
                    format!("{name}({x})"),
                    want,
                    got,
                    "sk_setsockopt: max(2 * min(x, net.core.*mem_max), SOCK_MIN_*)",
                );
            }
            if got != want && first.is_ok() {
                first = Err(format!("{name}: set {x}, expected {want}, got {got}"));
            }
        }
        first
    };
    let found = PROPERTY.run(ctx, |_| strategy.clone(), |x| one(x, None));
    let failed = found.result.is_err();
    PROPERTY.report(
        ctx,
        found,
        |x| {
            vec![format!(
                "setsockopt(SO_SNDBUF and SO_RCVBUF, {x}) on a fresh TCP socket, then getsockopt"
            )]
        },
        |ctx, x| one(*x, Some(ctx)),
    )?;
    // Every edge as a recorded check as well, so the report carries the
    // expected and observed values of the interesting inputs.
    if !failed {
        for x in &edges {
            let _ = one(*x, Some(ctx));
        }
        ctx.observe("edge_checks", 2 * edges.len() as u64);
    }

    // SO_SNDBUFFORCE: allowed with CAP_NET_ADMIN in the initial user namespace.
    let big = (wmem_max.min(i32::MAX as i64 / 4) + 4096) as i32;
    let in_userns = kharness::privilege::in_user_namespace();
    let s = new_sock()?;
    let forced = sys::setsockopt_int(s.as_fd(), libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, big);
    if in_userns {
        ctx.check_eq(
            "sndbufforce.userns.errno",
            libc::EPERM,
            forced.err().and_then(|e| e.raw_os_error()).unwrap_or(0),
            "sockopt_capable() checks the initial user namespace",
        );
    } else {
        ctx.check_eq("sndbufforce.root.ok", true, forced.is_ok(), "root holds CAP_NET_ADMIN");
        let got = sys::getsockopt_int(s.as_fd(), libc::SOL_SOCKET, libc::SO_SNDBUF)? as i64;
        ctx.check_eq(
            "sndbufforce.root.so_sndbuf",
            2 * big as i64,
            got,
            "SO_SNDBUFFORCE skips the wmem_max clamp: 2 x request",
        );
    }
    // Without CAP_NET_ADMIN (dropped from this thread's effective set only:
    // capabilities are per thread).
    let s2 = new_sock()?;
    let fd2 = s2.as_fd();
    let unpriv = std::thread::scope(|sc| {
        sc.spawn(|| -> Result<std::io::Result<()>, String> {
            caps::drop(None, caps::CapSet::Effective, caps::Capability::CAP_NET_ADMIN).map_err(|e| e.to_string())?;
            Ok(sys::setsockopt_int(fd2, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, big))
        })
        .join()
        .expect("capability thread")
    })
    .map_err(CaseError::Harness)?;
    ctx.check_eq(
        "sndbufforce.no_cap_net_admin.errno",
        libc::EPERM,
        unpriv.err().and_then(|e| e.raw_os_error()).unwrap_or(0),
        "SO_SNDBUFFORCE without CAP_NET_ADMIN is refused with EPERM",
    );
    Ok(())
}
