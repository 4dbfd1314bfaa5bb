//! unix.scm_rights, unix.scm_max, unix.ctrunc: what SCM_RIGHTS delivers,
//! how many it accepts, and what a short control buffer does to the rest.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::Duration;

use kharness::sys::{self, kcmp_file, kcmp_file_in, recvmsg_scm};
use kharness::{CaseDef, CaseError, Ctx, Expect};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::socket::{self, ControlMessage, MsgFlags, SockType};
use nix::unistd::{lseek, Whence};

use super::{
    cmsg_len, cmsg_space, ensure_nofile, errno_name, guarded, outcome, pair, scm_max_fds, send_fds, sock_type, FdTable,
    SCM_MAX_FD,
};

/// unix.scm_rights
pub static SCM_RIGHTS: CaseDef = CaseDef {
    id: "unix.scm_rights",
    variants: &["stream", "dgram", "seqpacket"],
    summary: "SCM_RIGHTS delivers 1…253 descriptors: the same open file descriptions, in order, all of them",
    drives: "For every n from 1 to 253: one sendmsg() on a socketpair of the variant's type with one byte and \
        one SCM_RIGHTS message of n descriptors, then one recvmsg() on the peer with a control buffer of \
        CMSG_SPACE(4n). The descriptors are 253 separate open() calls on one memfd (one inode, 253 open file \
        descriptions, each with its own offset), sent in a different permutation each round.",
    observes: "The descriptors recvmsg() installed and msg_flags; kcmp(KCMP_FILE) of each received descriptor \
        against the one sent in its position; the file offset of each received descriptor (lseek SEEK_CUR), \
        set to a distinct value on each sent one beforehand; /proc/self/fd before and after.",
    predicts: "Every round delivers exactly n descriptors and no MSG_CTRUNC; the i-th received descriptor is \
        the i-th sent open file description (kcmp 0 and the same offset) although all share one inode; after \
        the case the fd table is what it was.",
    why: "scm_fp_copy() (net/core/scm.c) takes a reference on each struct file in cmsg order, \
        unix_attach_fds() hangs the scm_fp_list on the skb, and scm_detach_fds() installs each file with \
        receive_fd() into a new descriptor in the same order. A new descriptor of the same struct file shares \
        f_pos, because the offset lives in the open file description (open(2)); kcmp(2) KCMP_FILE compares \
        exactly that struct file.",
    kernels: "Order and count unchanged since 2.6. SCM_MAX_FD is 253 since 2.6.37 (255 before). \
        receive_fd()/scm_detach_fds() were reworked around 5.9–5.10 without changing the result. kcmp needs \
        CONFIG_KCMP (Linux 3.5+, selected by CHECKPOINT_RESTORE); without it the shared offsets alone carry \
        the identity check.",
    shell: "ls -l /proc/PID/fd  (before and after; no shell tool passes descriptors)",
    source: "seed 004",
    timeout: Duration::from_secs(20),
    run: run_scm_rights,
};

/// unix.scm_max
pub static SCM_MAX: CaseDef = CaseDef {
    id: "unix.scm_max",
    variants: &[],
    summary: "one message carries at most SCM_MAX_FD = 253 descriptors; 254 is EINVAL, even split over two cmsgs",
    drives: "On a stream socketpair: sendmsg() with one SCM_RIGHTS of 253 descriptors, then of 254; then two \
        SCM_RIGHTS control messages in one sendmsg() carrying 126 + 127 and 127 + 127 descriptors.",
    observes: "sendmsg()'s result or errno; what recvmsg() delivers (count, number of SCM_RIGHTS messages, \
        MSG_CTRUNC); SIOCINQ and a non-blocking recv() after each refused send; /proc/self/fd.",
    predicts: "253 → sent, delivered whole; 254 → EINVAL and nothing queued; 126 + 127 → sent and delivered as \
        one SCM_RIGHTS message of 253; 127 + 127 → EINVAL and nothing queued; no descriptor leaks.",
    why: "include/net/scm.h: SCM_MAX_FD 253. scm_fp_copy() (net/core/scm.c) allocates one scm_fp_list with \
        max = SCM_MAX_FD for the whole message and fails with -EINVAL when count + num > max, so the limit is \
        per sendmsg(), not per control message; scm_detach_fds() hands the list back as one SCM_RIGHTS.",
    kernels: "253 since 2.6.37 (scm: lower SCM_MAX_FD, so scm_fp_list fits 2 KiB); 255 before.",
    shell: "ls -l /proc/PID/fd",
    source: "seed 004",
    timeout: Duration::from_secs(10),
    run: run_scm_max,
};

/// unix.ctrunc
pub static CTRUNC: CaseDef = CaseDef {
    id: "unix.ctrunc",
    variants: &[],
    summary: "a control buffer too small for the descriptors: MSG_CTRUNC, the ones that fit are installed, the rest are closed",
    drives: "For control buffers of 0 (none), 16, 20, 28, 32, 44 and 48 bytes: eight pipes are made, their \
        write ends sent in one SCM_RIGHTS message over a stream socketpair and closed by the sender, and the \
        peer receives once with that control buffer.",
    observes: "msg_flags (MSG_CTRUNC), msg_controllen, the descriptors installed and the change of /proc/self/fd; \
        for each pipe, whether its read end sees EOF (no writer left anywhere) or EAGAIN (a writer is open); a \
        byte written through each received descriptor, read back from the pipe it is predicted to be.",
    predicts: "fit = min(8, (cap − sizeof(struct cmsghdr)) / sizeof(int)) (0 for cap ≤ 16 or no buffer); the \
        first `fit` write ends arrive, in order, and their pipes stay open; MSG_CTRUNC exactly when fit < 8; \
        the other pipes read EOF at once, i.e. the kernel closed the descriptors that did not fit; \
        msg_controllen = min(CMSG_SPACE(4·fit), cap); the fd table grows by exactly `fit` and is back to its \
        start at the end.",
    why: "scm_detach_fds() (net/core/scm.c) installs min(scm_max_fds(msg), count) files, sets MSG_CTRUNC when \
        fewer than count fit, and drops its references to the rest in __scm_destroy(); with no control \
        buffer at all scm_recv() sets MSG_CTRUNC and destroys the list. unix(7): \"If the buffer … is too \
        small … the file descriptors which did not fit are closed.\" A pipe reads EOF only when no write end \
        is open anywhere (pipe(7)).",
    kernels: "Unchanged in effect across the matrix (5.10+): scm_detach_fds() was reworked around 5.9–5.10 \
        (receive_fd_user(), later receive_fd()) and kept both the truncation rule and the msg_controllen \
        accounting.",
    shell: "ls -l /proc/PID/fd",
    source: "seed 004",
    timeout: Duration::from_secs(10),
    run: run_ctrunc,
};

/// Offset given to the `k`-th description of the pool (all distinct).
fn pool_offset(k: usize) -> i64 {
    1000 + 7 * k as i64
}

/// `n` distinct open file descriptions of one memfd inode, each at
/// [`pool_offset`].
fn description_pool(n: usize) -> io::Result<(OwnedFd, Vec<File>)> {
    let memfd = memfd_create("kharness-scm", MFdFlags::MFD_CLOEXEC)?;
    let path = format!("/proc/self/fd/{}", memfd.as_raw_fd());
    let mut pool = Vec::with_capacity(n);
    for k in 0..n {
        let f = OpenOptions::new().read(true).write(true).open(&path)?;
        lseek(&f, pool_offset(k), Whence::SeekSet)?;
        pool.push(f);
    }
    Ok((memfd, pool))
}

fn run_scm_rights(ctx: &mut Ctx) -> Result<(), CaseError> {
    ensure_nofile(ctx, (2 * SCM_MAX_FD + 64) as u64)?;
    guarded(ctx, |ctx| {
        let ty = sock_type(ctx.variant);
        let (_memfd, pool) = description_pool(SCM_MAX_FD)?;
        // The pool: one inode, 253 different open file descriptions.
        let inodes: std::collections::BTreeSet<u64> = pool
            .iter()
            .map(|f| nix::sys::stat::fstat(f).map(|s| s.st_ino))
            .collect::<Result<_, _>>()?;
        ctx.check_eq(
            "pool.inodes",
            1,
            inodes.len() as u64,
            "every pool entry is an open() of the same memfd",
        );
        let kcmp_ok = match kcmp_file(pool[0].as_fd(), pool[0].as_fd()) {
            Ok(0) => true,
            Ok(v) => {
                return Err(CaseError::Harness(format!(
                    "kcmp of a descriptor with itself returned {v}"
                )))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => false,
            Err(e) => return Err(e.into()),
        };
        ctx.observe("kcmp.available", kcmp_ok);
        if kcmp_ok {
            let mut distinct = 0u64;
            for w in pool.windows(2) {
                if kcmp_file(w[0].as_fd(), w[1].as_fd())? != 0 {
                    distinct += 1;
                }
            }
            ctx.check_eq(
                "pool.kcmp_distinct_neighbours",
                (SCM_MAX_FD - 1) as u64,
                distinct,
                "separate open() calls make separate open file descriptions (kcmp != 0)",
            );
        } else {
            ctx.note("kcmp(2) is not available (no CONFIG_KCMP): identity rests on shared file offsets");
        }

        let (a, b) = pair(ty)?;
        let me = std::process::id();
        let mut delivered = 0u64;
        let mut exact_rounds = 0u64;
        let mut ctrunc_rounds = 0u64;
        let mut same_description = 0u64;
        let mut same_offset = 0u64;
        let mut first_bad: Option<String> = None;
        for n in 1..=SCM_MAX_FD {
            // A different permutation each round (2 is coprime with 253).
            let order: Vec<usize> = (0..n).map(|j| (2 * j + n) % SCM_MAX_FD).collect();
            let raw: Vec<RawFd> = order.iter().map(|&k| pool[k].as_raw_fd()).collect();
            let sent = send_fds(&a, &[n as u8], &raw, MsgFlags::MSG_DONTWAIT)?;
            if sent != 1 {
                return Err(CaseError::Harness(format!("round {n}: sendmsg sent {sent} bytes")));
            }
            let mut buf = [0u8; 1];
            let got = recvmsg_scm(b.as_fd(), &mut buf, cmsg_space(4 * n), libc::MSG_DONTWAIT)?;
            delivered += got.fds.len() as u64;
            if got.fds.len() == n {
                exact_rounds += 1;
            }
            if got.flags & libc::MSG_CTRUNC != 0 {
                ctrunc_rounds += 1;
            }
            for (i, fd) in got.fds.iter().enumerate() {
                let Some(&k) = order.get(i) else { break };
                let same = if kcmp_ok {
                    kcmp_file_in(me, fd.as_fd(), pool[k].as_fd())? == 0
                } else {
                    false
                };
                let off = lseek(fd, 0, Whence::SeekCur)?;
                same_description += u64::from(same);
                same_offset += u64::from(off == pool_offset(k));
                if (kcmp_ok && !same) || off != pool_offset(k) {
                    first_bad.get_or_insert_with(|| {
                        format!(
                            "round {n}, position {i}: expected pool[{k}] (offset {}), kcmp {same}, offset {off}",
                            pool_offset(k)
                        )
                    });
                }
            }
            if got.fds.len() != n && first_bad.is_none() {
                first_bad = Some(format!("round {n}: {} descriptors delivered", got.fds.len()));
            }
        }
        let total: u64 = (1..=SCM_MAX_FD as u64).sum();
        let src = "scm_fp_copy() / scm_detach_fds(): every descriptor, in cmsg order";
        ctx.check_eq("rounds.exact_count", SCM_MAX_FD as u64, exact_rounds, src);
        ctx.check_eq(
            "rounds.ctrunc",
            0,
            ctrunc_rounds,
            "CMSG_SPACE(4n) holds n descriptors: no MSG_CTRUNC",
        );
        ctx.check_eq("delivered.descriptors", total, delivered, src);
        ctx.check_eq(
            "delivered.same_offset",
            total,
            same_offset,
            "a passed descriptor shares the open file description, hence its offset (open(2))",
        );
        if kcmp_ok {
            ctx.check_eq(
                "delivered.kcmp_same",
                total,
                same_description,
                "kcmp(KCMP_FILE) == 0: same struct file",
            );
        }
        ctx.check("first_mismatch", Expect::Absent, serde_json::json!(first_bad), src);
        Ok(())
    })
}

/// A non-blocking receive of whatever is queued: `"EAGAIN"` when nothing is.
fn queued_after_refusal(sock: &OwnedFd) -> io::Result<(i32, String)> {
    let inq = sys::ioctl_int(sock.as_fd(), sys::SIOCINQ)?;
    let mut buf = [0u8; 8];
    let r = recvmsg_scm(sock.as_fd(), &mut buf, cmsg_space(4 * SCM_MAX_FD), libc::MSG_DONTWAIT);
    Ok((inq, outcome(&r)))
}

fn run_scm_max(ctx: &mut Ctx) -> Result<(), CaseError> {
    ensure_nofile(ctx, (2 * SCM_MAX_FD + 64) as u64)?;
    guarded(ctx, |ctx| {
        let file = File::open("/dev/null")?;
        let raw = file.as_raw_fd();
        let (a, b) = pair(SockType::Stream)?;
        let src_max = "scm_fp_copy(): count + num > SCM_MAX_FD (253) is -EINVAL";

        // One SCM_RIGHTS of 253, then of 254 (the same descriptor repeated:
        // the limit counts entries, not distinct files).
        for (n, expect_ok) in [(SCM_MAX_FD, true), (SCM_MAX_FD + 1, false)] {
            let r = send_fds(&a, b"x", &vec![raw; n], MsgFlags::MSG_DONTWAIT);
            ctx.check_eq(
                format!("single{n}.sendmsg"),
                if expect_ok { "ok" } else { "EINVAL" },
                outcome(&r),
                src_max,
            );
            if expect_ok {
                let mut buf = [0u8; 8];
                let got = recvmsg_scm(b.as_fd(), &mut buf, cmsg_space(4 * SCM_MAX_FD), libc::MSG_DONTWAIT)?;
                ctx.check_eq(
                    format!("single{n}.delivered"),
                    n as u64,
                    got.fds.len() as u64,
                    "scm_detach_fds(): all of them",
                );
                ctx.check_eq(
                    format!("single{n}.ctrunc"),
                    false,
                    got.flags & libc::MSG_CTRUNC != 0,
                    "the buffer holds 253",
                );
            } else {
                let (inq, next) = queued_after_refusal(&b)?;
                ctx.check_eq(
                    format!("single{n}.siocinq_after"),
                    0,
                    inq,
                    "a refused sendmsg queues nothing",
                );
                ctx.check_eq(
                    format!("single{n}.recv_after"),
                    "EAGAIN",
                    next,
                    "a refused sendmsg queues nothing",
                );
            }
        }

        // Two SCM_RIGHTS messages in one sendmsg: the limit is per message.
        for (x, y, expect_ok) in [(126usize, 127usize, true), (127, 127, false)] {
            let (fx, fy) = (vec![raw; x], vec![raw; y]);
            let cmsgs = [ControlMessage::ScmRights(&fx), ControlMessage::ScmRights(&fy)];
            let iov = [io::IoSlice::new(b"y")];
            let r: io::Result<usize> = socket::sendmsg::<()>(a.as_raw_fd(), &iov, &cmsgs, MsgFlags::MSG_DONTWAIT, None)
                .map_err(io::Error::from);
            let label = format!("two_cmsgs_{x}_{y}");
            ctx.check_eq(
                format!("{label}.sendmsg"),
                if expect_ok { "ok" } else { "EINVAL" },
                outcome(&r),
                src_max,
            );
            if expect_ok {
                let mut buf = [0u8; 8];
                let got = recvmsg_scm(b.as_fd(), &mut buf, cmsg_space(4 * SCM_MAX_FD), libc::MSG_DONTWAIT)?;
                let rights: Vec<usize> = got
                    .cmsgs
                    .iter()
                    .filter(|(l, t, _)| *l == libc::SOL_SOCKET && *t == libc::SCM_RIGHTS)
                    .map(|(_, _, len)| len.saturating_sub(cmsg_len(0)) / 4)
                    .collect();
                ctx.check_eq(
                    format!("{label}.delivered"),
                    (x + y) as u64,
                    got.fds.len() as u64,
                    "scm_fp_copy() appends both cmsgs to one scm_fp_list",
                );
                ctx.check_eq(
                    format!("{label}.scm_rights_messages"),
                    serde_json::json!([x + y]),
                    serde_json::json!(rights),
                    "scm_detach_fds() returns the one list as one SCM_RIGHTS message",
                );
            } else {
                let (inq, next) = queued_after_refusal(&b)?;
                ctx.check_eq(
                    format!("{label}.siocinq_after"),
                    0,
                    inq,
                    "a refused sendmsg queues nothing",
                );
                ctx.check_eq(
                    format!("{label}.recv_after"),
                    "EAGAIN",
                    next,
                    "a refused sendmsg queues nothing",
                );
            }
        }
        Ok(())
    })
}

/// Pipes whose write ends are sent: 8, as the catalog's "too many" side.
const CTRUNC_FDS: usize = 8;

/// Whether a pipe's read end sees EOF (`"eof"`), data, or no data yet with a
/// writer open (`"EAGAIN"`).
fn pipe_state(r: &mut File) -> String {
    let mut b = [0u8; 1];
    match r.read(&mut b) {
        Ok(0) => "eof".into(),
        Ok(_) => "data".into(),
        Err(e) => errno_name(&e),
    }
}

fn run_ctrunc(ctx: &mut Ctx) -> Result<(), CaseError> {
    guarded(ctx, |ctx| {
        let caps = [0usize, 16, 20, 28, 32, 44, cmsg_space(4 * CTRUNC_FDS)];
        for cap in caps {
            let label = format!("cap{cap}");
            let (a, b) = pair(SockType::Stream)?;
            let mut reads = Vec::new();
            let mut writes = Vec::new();
            for _ in 0..CTRUNC_FDS {
                let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
                reads.push(File::from(r));
                writes.push(w);
            }
            let raw: Vec<RawFd> = writes.iter().map(|w| w.as_raw_fd()).collect();
            send_fds(&a, b"z", &raw, MsgFlags::MSG_DONTWAIT)?;
            drop(writes); // the only write ends left are the ones in flight
            let before = FdTable::snapshot()?;
            let mut buf = [0u8; 1];
            let got = recvmsg_scm(b.as_fd(), &mut buf, cap, libc::MSG_DONTWAIT)?;
            let after = FdTable::snapshot()?;

            let fit = scm_max_fds(cap).min(CTRUNC_FDS);
            let src = "scm_detach_fds(): min(scm_max_fds, count) installed, MSG_CTRUNC if fewer, rest released";
            ctx.check_eq(format!("{label}.installed"), fit as u64, got.fds.len() as u64, src);
            ctx.check_eq(
                format!("{label}.fd_table_growth"),
                fit as u64,
                before.added_in(&after).len() as u64,
                src,
            );
            ctx.check_eq(
                format!("{label}.ctrunc"),
                fit < CTRUNC_FDS,
                got.flags & libc::MSG_CTRUNC != 0,
                src,
            );
            let want_len = if fit == 0 { 0 } else { cmsg_space(4 * fit).min(cap) };
            ctx.check_eq(
                format!("{label}.msg_controllen"),
                want_len as u64,
                got.control_len as u64,
                "scm_detach_fds(): msg_controllen advances by min(CMSG_SPACE(4·fit), room)",
            );
            let rights: Vec<u64> = got
                .cmsgs
                .iter()
                .filter(|(l, t, _)| *l == libc::SOL_SOCKET && *t == libc::SCM_RIGHTS)
                .map(|(_, _, len)| *len as u64)
                .collect();
            ctx.check_eq(
                format!("{label}.scm_rights_cmsg_len"),
                serde_json::json!(if fit == 0 {
                    vec![]
                } else {
                    vec![cmsg_len(4 * fit) as u64]
                }),
                serde_json::json!(rights),
                "scm_detach_fds(): one SCM_RIGHTS of CMSG_LEN(4·fit), none when nothing fits",
            );
            // The pipes past `fit` have no writer left anywhere: EOF now.
            let states: Vec<String> = reads.iter_mut().map(pipe_state).collect();
            let want: Vec<&str> = (0..CTRUNC_FDS)
                .map(|i| if i < fit { "EAGAIN" } else { "eof" })
                .collect();
            ctx.check_eq(
                format!("{label}.pipe_read_ends"),
                serde_json::json!(want),
                serde_json::json!(states),
                "the descriptors that did not fit were closed by the kernel (EOF); the installed ones keep theirs open",
            );
            // Identity: a byte through received descriptor i comes out of pipe i.
            let mut through = Vec::new();
            for (i, fd) in got.fds.into_iter().enumerate() {
                let mut w = File::from(fd);
                w.write_all(&[i as u8])?;
                drop(w);
                let mut b1 = [0u8; 2];
                let n = reads[i].read(&mut b1)?;
                through.push(n == 1 && b1[0] == i as u8);
            }
            ctx.check_eq(
                format!("{label}.identity_in_order"),
                serde_json::json!(vec![true; fit]),
                serde_json::json!(through),
                "the i-th installed descriptor is the i-th sent write end",
            );
        }
        Ok(())
    })
}
