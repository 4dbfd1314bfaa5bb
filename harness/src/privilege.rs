//! Running without root: enter a new user namespace where we are root.
//!
//! As root the harness runs directly. Otherwise, before any thread starts,
//! it calls `unshare(CLONE_NEWUSER)` and writes the uid/gid maps (our own
//! uid and gid mapped to 0), which gives CAP_NET_ADMIN and CAP_SYS_ADMIN over
//! namespaces created afterwards. Where even that is impossible (user
//! namespaces disabled) the caller exits 69 with the reason.

use std::io;

use nix::sched::{unshare, CloneFlags};
use nix::unistd::{getegid, geteuid};

const ENV_OUTSIDE_UID: &str = "KHARNESS_OUTSIDE_UID";

/// Makes sure the process is root in its user namespace. Must be called while
/// the process is single-threaded (first thing in `main`).
pub fn ensure_privileged() -> io::Result<()> {
    if geteuid().is_root() {
        return Ok(());
    }
    let uid = geteuid().as_raw();
    let gid = getegid().as_raw();
    unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| {
        io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "not root, and cannot create a user namespace ({e}); run as root, or allow \
                 unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, \
                 user.max_user_namespaces > 0)"
            ),
        )
    })?;
    std::fs::write("/proc/self/setgroups", "deny")
        .and_then(|_| std::fs::write("/proc/self/uid_map", format!("0 {uid} 1")))
        .and_then(|_| std::fs::write("/proc/self/gid_map", format!("0 {gid} 1")))
        .map_err(|e| io::Error::new(e.kind(), format!("cannot write user namespace id maps: {e}")))?;
    // Children (case processes) inherit the namespace; tell them where we came from.
    std::env::set_var(ENV_OUTSIDE_UID, uid.to_string());
    Ok(())
}

/// Human description for the run header.
pub fn describe() -> String {
    match std::env::var(ENV_OUTSIDE_UID) {
        Ok(uid) => format!("root in a user namespace (uid {uid} outside)"),
        Err(_) if geteuid().is_root() => "root".to_string(),
        Err(_) => format!("uid {}", geteuid().as_raw()),
    }
}

/// True when running in a user namespace the harness made (some cases skip
/// there: module loading, /dev/kmsg, SO_SNDBUFFORCE over the host limits…).
pub fn in_user_namespace() -> bool {
    std::env::var_os(ENV_OUTSIDE_UID).is_some()
}
