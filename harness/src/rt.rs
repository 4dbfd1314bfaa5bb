//! rtnetlink handles inside a namespace: an [`rtnetlink::Handle`] whose
//! socket lives in a [`NetNs`], driven by a current-thread tokio runtime
//! owned by the case process.
//!
//! `rtnetlink` is async: its requests are futures that a `Connection` task
//! answers. [`Rtnl::open`] builds that pair without ever moving the calling
//! thread: the runtime is created on the caller's thread (current-thread
//! flavour, no worker threads), the `NETLINK_ROUTE` socket is opened on the
//! short-lived namespace thread of [`NetNs::run`] (a netlink socket keeps the
//! namespace it was created in, whichever thread uses it later), registered
//! with the runtime's I/O driver there, and handed back; the connection task
//! is spawned on the runtime and runs whenever [`Rtnl::block_on`] drives it.
//! No named namespace and no bind mount are involved, and dropping the
//! [`Rtnl`] drops the task and closes the socket.
//!
//! The synchronous [`crate::netlink::NlSocket`] stays for requests that need
//! the raw answer (extended ACK text and offset, deliberately malformed
//! messages); `Rtnl` is for code that reads like `ip route add …`:
//! `rtnl.block_on(rtnl.handle().route().add(msg).execute())`.

use std::future::Future;
use std::io;

use rtnetlink::sys::{protocols::NETLINK_ROUTE, AsyncSocket, TokioSocket};

use crate::netns::NetNs;

/// An rtnetlink handle on a socket inside one namespace, with the runtime
/// that drives it.
pub struct Rtnl {
    // Field order: the handle goes first, then the runtime (which owns the
    // connection task and, through it, the socket).
    handle: rtnetlink::Handle,
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Rtnl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rtnl").finish_non_exhaustive()
    }
}

impl Rtnl {
    /// Opens a `NETLINK_ROUTE` socket inside `ns` and builds an
    /// `rtnetlink::Handle` on it, with a current-thread runtime that
    /// [`Rtnl::block_on`] drives. Equivalent, for what follows, to
    /// `ip netns exec NAME ip …`.
    pub fn open(ns: &NetNs) -> io::Result<Rtnl> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
        let rt = runtime.handle().clone();
        let socket = ns
            .run(move || -> io::Result<TokioSocket> {
                // AsyncFd registration needs the runtime's context; the
                // socket's namespace is this thread's.
                let _guard = rt.enter();
                TokioSocket::new(NETLINK_ROUTE)
            })
            .map_err(io::Error::other)??;
        let handle = {
            let _guard = runtime.enter();
            let (connection, handle, _multicast) = rtnetlink::from_socket(socket);
            runtime.spawn(connection);
            handle
        };
        Ok(Rtnl { handle, runtime })
    }

    /// The handle: `rtnl.handle().route().add(…)`, `.link()`, `.neighbours()`….
    pub fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }

    /// Runs a request future (and the connection task) to completion on
    /// the calling thread.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

/// The positive errno of a failed rtnetlink request, if the kernel
/// refused it (`NLMSG_ERROR` with a negative code).
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}
