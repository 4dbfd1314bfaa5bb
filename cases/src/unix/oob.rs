//! unix.oob: MSG_OOB on AF_UNIX, which the seed says does not exist and
//! Linux 5.15 added.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use kharness::sys::{self, ioctl_int, recv, send};
use kharness::{CaseDef, CaseError, Ctx};
use nix::sys::socket::SockType;

use super::{guarded, outcome, pair};

/// unix.oob
pub static OOB: CaseDef = CaseDef {
    id: "unix.oob",
    variants: &[],
    summary: "MSG_OOB on AF_UNIX: EOPNOTSUPP before 5.15; from 5.15 (CONFIG_AF_UNIX_OOB) one urgent byte, TCP-like",
    drives: "A stream socketpair: send(\"ab\"), then send(\"c\", MSG_OOB); the receiver asks SIOCATMARK, \
        reads normally, asks SIOCATMARK again, reads with MSG_OOB, reads normally once more. MSG_OOB is also \
        sent on a datagram and a seqpacket socketpair.",
    observes: "send()'s result or errno; SIOCATMARK (kharness::sys::ioctl_int); what each recv() returns; \
        the kernel version and, where readable, CONFIG_AF_UNIX_OOB in /boot/config-RELEASE or /proc/config.gz.",
    predicts: "Before 5.15 (or where the build configuration says CONFIG_AF_UNIX_OOB is not set): send(MSG_OOB) \
        on a stream socket is EOPNOTSUPP; where the configuration is not readable the option's default (y) is \
        assumed, so a refusal then fails the case with the missing fact named. \
        From 5.15: it succeeds; SIOCATMARK is 0 while \"ab\" is ahead of the mark; a normal read returns \
        \"ab\" and stops at the mark; SIOCATMARK is then 1; recv(MSG_OOB) returns \"c\"; a further normal read \
        finds nothing (EAGAIN) because the urgent byte is not inline. On datagram and seqpacket sockets \
        MSG_OOB is EOPNOTSUPP on every version.",
    why: "Before 5.15 unix_stream_sendmsg() returned -EOPNOTSUPP for MSG_OOB (seed 004: \"MSG_OOB is not \
        supported at all in Unix domain sockets\"). Linux 5.15 (commit 314001f0bf92, \"af_unix: Add OOB \
        support\") added queue_oob(): the last byte of a MSG_OOB send becomes u->oob_skb; \
        unix_stream_read_generic() stops before it, unix_stream_recv_urg() returns it, and unix_ioctl() \
        answers SIOCATMARK with 1 when the head of the queue is the OOB skb. unix_dgram_sendmsg() and \
        unix_seqpacket_sendmsg() reject MSG_OOB with -EOPNOTSUPP.",
    kernels: "EOPNOTSUPP up to 5.14; supported from 5.15 when CONFIG_AF_UNIX_OOB=y (default y); later \
        releases (6.9 onwards) fixed corner cases (consumed OOB skbs at the head, SIOCATMARK after reading the mark, \
        MSG_PEEK) to match TCP, none of which this sequence depends on.",
    shell: "no shell tool sends MSG_OOB on AF_UNIX; zgrep AF_UNIX_OOB /proc/config.gz",
    source: "seed 004",
    timeout: Duration::from_secs(10),
    run,
};

/// `SIOCATMARK` (linux/sockios.h; the libc crate does not export it).
pub(crate) const SIOCATMARK: libc::c_ulong = 0x8905;

/// What the model predicts for `send(MSG_OOB)` on a stream socket, and why,
/// from the version gate and `CONFIG_AF_UNIX_OOB` (`None`: the build
/// configuration is not readable, and the option's default, y, is assumed —
/// a missing fact is never a reason to expect a refusal).
fn stream_model(version_ok: bool, config: Option<bool>) -> (&'static str, &'static str) {
    match (version_ok, config) {
        (false, _) => (
            "EOPNOTSUPP",
            "before 5.15 unix_stream_sendmsg() rejects MSG_OOB with -EOPNOTSUPP",
        ),
        (true, Some(false)) => ("EOPNOTSUPP", "CONFIG_AF_UNIX_OOB is not set: -EOPNOTSUPP"),
        (true, Some(true)) => ("ok", "5.15+ with CONFIG_AF_UNIX_OOB=y: queue_oob() accepts it"),
        (true, None) => (
            "ok",
            "5.15+: queue_oob() accepts it (CONFIG_AF_UNIX_OOB assumed at its default, y: neither \
             /boot/config-RELEASE nor /proc/config.gz is readable)",
        ),
    }
}

/// A non-blocking receive as text (`"ab"`) or errno.
fn read_text(fd: &OwnedFd, flags: i32) -> String {
    let mut buf = [0u8; 16];
    match recv(fd.as_fd(), &mut buf, flags | libc::MSG_DONTWAIT) {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(e) => outcome::<()>(&Err(e)),
    }
}

fn atmark(fd: &OwnedFd) -> serde_json::Value {
    match ioctl_int(fd.as_fd(), SIOCATMARK) {
        Ok(v) => serde_json::json!(v),
        Err(e) => serde_json::json!(outcome::<()>(&Err(e))),
    }
}

/// What decides whether AF_UNIX has MSG_OOB here, recorded as
/// observations: the version gate (5.15) and CONFIG_AF_UNIX_OOB (`None`
/// where no build configuration is readable). unix.oob and
/// unix.oob_property read the facts the same way.
pub(crate) fn oob_facts(ctx: &mut Ctx) -> (bool, Option<bool>) {
    let version_ok = ctx.kernel.at_least(5, 15);
    let config = ctx.kernel.config_option("CONFIG_AF_UNIX_OOB");
    ctx.observe("kernel.at_least_5_15", version_ok);
    ctx.observe_opt("config.af_unix_oob", config);
    (version_ok, config)
}

fn run(ctx: &mut Ctx) -> Result<(), CaseError> {
    guarded(ctx, |ctx| {
        let (version_ok, config) = oob_facts(ctx);
        let (want, model) = stream_model(version_ok, config);
        let supported = want == "ok";
        ctx.observe(
            "gate.af_unix_oob",
            match (version_ok, config) {
                (false, _) => "before 5.15: no MSG_OOB",
                (true, Some(false)) => "5.15+, CONFIG_AF_UNIX_OOB off: no MSG_OOB",
                (true, Some(true)) => "5.15+, CONFIG_AF_UNIX_OOB=y: MSG_OOB",
                (true, None) => "5.15+: MSG_OOB (config unread)",
            },
        );
        let (a, b) = pair(SockType::Stream)?;
        send(a.as_fd(), b"ab", libc::MSG_DONTWAIT)?;
        let r = send(a.as_fd(), b"c", libc::MSG_OOB | libc::MSG_DONTWAIT);
        ctx.check_eq("stream.send_oob", want, outcome(&r), model);
        // What the kernel says about the mark, whatever the version.
        let mark0 = atmark(&b);
        if supported && r.is_ok() {
            let tcp_like = "unix_ioctl(SIOCATMARK): 1 only when the OOB skb is at the head of the queue";
            ctx.check_eq("stream.atmark_before_read", 0, mark0, tcp_like);
            ctx.check_eq(
                "stream.read_normal",
                "ab",
                read_text(&b, 0),
                "unix_stream_read_generic() stops at the OOB skb",
            );
            ctx.check_eq("stream.atmark_at_mark", 1, atmark(&b), tcp_like);
            ctx.check_eq(
                "stream.read_oob",
                "c",
                read_text(&b, libc::MSG_OOB),
                "unix_stream_recv_urg() returns the last byte of the MSG_OOB send",
            );
            ctx.check_eq(
                "stream.read_after_oob",
                "EAGAIN",
                read_text(&b, 0),
                "without SO_OOBINLINE the urgent byte is not read inline",
            );
        } else {
            ctx.observe("stream.atmark_probe", mark0);
            ctx.check_eq(
                "stream.read_normal",
                "ab",
                read_text(&b, 0),
                "the normal bytes are unaffected",
            );
        }

        for (label, ty) in [("dgram", SockType::Datagram), ("seqpacket", SockType::SeqPacket)] {
            let (x, _y) = pair(ty)?;
            let r: io::Result<usize> = sys::send(x.as_fd(), b"c", libc::MSG_OOB | libc::MSG_DONTWAIT);
            ctx.check_eq(
                format!("{label}.send_oob"),
                "EOPNOTSUPP",
                outcome(&r),
                "unix_dgram_sendmsg()/unix_seqpacket_sendmsg(): MSG_OOB -> -EOPNOTSUPP",
            );
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::stream_model;

    #[test]
    fn a_missing_config_predicts_the_default() {
        assert_eq!(stream_model(false, None).0, "EOPNOTSUPP");
        assert_eq!(stream_model(false, Some(true)).0, "EOPNOTSUPP");
        assert_eq!(stream_model(true, Some(false)).0, "EOPNOTSUPP");
        assert_eq!(stream_model(true, Some(true)).0, "ok");
        let (want, why) = stream_model(true, None);
        assert_eq!(want, "ok");
        assert!(why.contains("/proc/config.gz"), "{why}");
    }
}
