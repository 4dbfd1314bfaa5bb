//! rtnetlink handles inside a namespace: an [`rtnetlink::Handle`] whose
//! socket lives in a [`NetNs`], driven by a current-thread tokio runtime
//! owned by the case process.
//!
//! `rtnetlink` is async: its requests are futures that a `Connection`
//! answers. [`Rtnl::open_here`] builds that pair on a thread that is inside
//! the namespace — [`NetNs::new`]'s own thread right after its `unshare`, or
//! for [`Rtnl::open`] the short-lived namespace thread of [`NetNs::run`] (a
//! netlink socket keeps the namespace it was created in, whichever thread
//! uses it later) — and registers the socket with a current-thread runtime
//! (no worker threads) made there; the calling thread never moves. The
//! connection is driven inside [`Rtnl::block_on`], together with the
//! request. No named namespace and no bind mount are involved, and dropping
//! the [`Rtnl`] closes the socket.
//!
//! The synchronous [`crate::netlink::NlSocket`] stays for requests that need
//! the raw answer (extended ACK text and offset, deliberately malformed
//! messages); `Rtnl` is for code that reads like `ip route add …`:
//! `rtnl.block_on(rtnl.handle().route().add(msg).execute())`.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::stream::{Stream, StreamExt, TryStreamExt};
use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{protocols::NETLINK_ROUTE, AsyncSocket, TokioSocket};

use crate::netlink::NlError;
use crate::netns::NetNs;

/// An rtnetlink handle on a socket inside one namespace, with the runtime
/// that drives it.
pub struct Rtnl {
    // Field order: the handle goes first, then the connection (which owns
    // the socket), then the runtime whose I/O driver the socket is
    // registered with.
    handle: rtnetlink::Handle,
    connection: Mutex<Connection>,
    pass: Arc<PassWaker>,
    pass_waker: Waker,
    runtime: tokio::runtime::Runtime,
}

/// The half of an rtnetlink pair that owns the socket: sends what the
/// handle queues, routes each answer to its request.
type Connection = rtnetlink::proto::Connection<RouteNetlinkMessage, TokioSocket>;

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
    ///
    /// Every [`NetNs`] already carries one ([`NetNs::rt`]); `open` makes a
    /// second, independent socket (its own sequence numbers, its own
    /// receive queue).
    pub fn open(ns: &NetNs) -> io::Result<Rtnl> {
        ns.run(Rtnl::open_here).map_err(io::Error::other)?
    }

    /// Builds the runtime and opens the `NETLINK_ROUTE` socket on the
    /// calling thread, so in the calling thread's namespace. [`NetNs::new`]
    /// calls it on its namespace thread right after `unshare`, which makes
    /// the handle without another thread; the runtime (current-thread
    /// flavour) starts no thread of its own, and later runs on whichever
    /// thread calls [`Rtnl::block_on`].
    pub fn open_here() -> io::Result<Rtnl> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
        let (connection, handle) = {
            // AsyncFd registration needs the runtime's context.
            let _guard = runtime.enter();
            let socket = TokioSocket::new(NETLINK_ROUTE)?;
            let (connection, handle, _multicast) = rtnetlink::from_socket(socket);
            (connection, handle)
        };
        let pass = Arc::new(PassWaker::default());
        Ok(Rtnl {
            handle,
            connection: Mutex::new(connection),
            pass_waker: Waker::from(Arc::clone(&pass)),
            pass,
            runtime,
        })
    }

    /// The handle: `rtnl.handle().route().add(…)`, `.link()`, `.neighbours()`….
    pub fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }

    /// Runs a request future to completion on the calling thread, driving
    /// the connection alongside it in the same future.
    ///
    /// The connection is not a spawned task: polled together with the
    /// request, an answer reaches its request without a task wake-up
    /// through the scheduler (which, measured on a debug build, cost an
    /// eventfd write and a third of each request's time), and dropping the
    /// [`Rtnl`] closes the socket at once, whether or not the runtime ever
    /// runs again. One `block_on` at a time per handle: concurrent callers
    /// take turns.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        let mut connection = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        self.runtime.block_on(async {
            let mut f = std::pin::pin!(f);
            let mut connection_ended = false;
            std::future::poll_fn(|cx| {
                // The request and the connection wake each other within one
                // pass (the request queues its message, the connection hands
                // the answer over, which a netlink socket has ready as soon
                // as `sendto` returns). Those wakes only mark the pass to be
                // run again here; through tokio's waker each would write the
                // runtime's eventfd and cost an `epoll_wait` to read it back
                // (measured on neigh.state_machine's 2033 requests: 4067
                // `epoll_wait`s before, 2034 after). A wake
                // after the pass (the socket becoming readable, seen by the
                // runtime's I/O driver) goes to tokio's waker as usual.
                let local = &self.pass;
                {
                    let mut outer = local.outer.lock().unwrap_or_else(|p| p.into_inner());
                    if !outer.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                        *outer = Some(cx.waker().clone());
                    }
                }
                let mut pass = Context::from_waker(&self.pass_waker);
                loop {
                    local.in_pass.store(true, Ordering::SeqCst);
                    if let Poll::Ready(out) = f.as_mut().poll(&mut pass) {
                        local.in_pass.store(false, Ordering::SeqCst);
                        return Poll::Ready(out);
                    }
                    // The connection only ends when its socket fails; the
                    // request then ends with the closed channel's error.
                    if !connection_ended && poll_connection(&mut connection, &mut pass).is_ready() {
                        connection_ended = true;
                        local.woken.store(true, Ordering::SeqCst);
                    }
                    local.in_pass.store(false, Ordering::SeqCst);
                    if !local.woken.swap(false, Ordering::SeqCst) {
                        return Poll::Pending;
                    }
                }
            })
            .await
        })
    }
}

/// The waker of the passes of [`Rtnl::block_on`], one per handle (the
/// channels and the socket keep the last waker they were polled with, so a
/// request of the next `block_on` wakes this one too): during a pass a wake
/// only asks for another pass; outside one, it is passed on to the waker of
/// the runtime's current `block_on`.
#[derive(Default)]
struct PassWaker {
    in_pass: AtomicBool,
    woken: AtomicBool,
    outer: Mutex<Option<Waker>>,
}

impl Wake for PassWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.in_pass.load(Ordering::SeqCst) {
            self.woken.store(true, Ordering::SeqCst);
        } else if let Some(w) = self.outer.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            w.wake_by_ref();
        }
    }
}

impl From<rtnetlink::Error> for NlError {
    /// A refusal keeps its errno (rtnetlink 0.24 does not pass on the
    /// extended ACK: requests whose case reads the extack text stay on
    /// [`crate::netlink::NlSocket`]); anything else becomes a decode error
    /// naming what went wrong.
    fn from(e: rtnetlink::Error) -> NlError {
        match errno(&e) {
            Some(errno) => NlError::Kernel {
                errno,
                extack: None,
                offset: None,
            },
            None => NlError::Decode(e.to_string()),
        }
    }
}

/// One poll of the connection. Not generic, so the connection's code is
/// instantiated here, in kharness, and built with kharness's optimisation
/// level, not that of whichever crate calls the generic [`Rtnl::block_on`].
///
/// netlink-proto 0.14's `Connection::poll` sends at most one queued request
/// per poll (`poll_send_messages` pops one), then waits to be woken by the
/// socket becoming readable with that request's answer: pipelined requests
/// ([`Rtnl::pipeline`]) would go out one per runtime turn, with a
/// `recvfrom`, an `EAGAIN` and an `epoll_wait` each. So after the poll the
/// rest of the queue is sent here, up to [`SEND_BURST`] requests; with the
/// queue empty, `poll_send_messages` only finds the sink flushed and
/// returns. The answers are read at the next poll, all at once.
fn poll_connection(connection: &mut Connection, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
    let ready = std::pin::Pin::new(&mut *connection).poll(cx);
    if ready.is_pending() {
        for _ in 1..SEND_BURST {
            connection.poll_send_messages(cx);
        }
    }
    ready
}

/// Most requests sent per poll of the connection: their ACKs wait in the
/// socket's receive queue until the next poll reads them, and a full queue
/// would drop some (ENOBUFS); 64 small ACKs take well under the default
/// 208 KiB `rmem`.
const SEND_BURST: usize = 64;

/// The positive errno of a failed rtnetlink request, if the kernel
/// refused it (`NLMSG_ERROR` with a negative code).
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

impl Rtnl {
    /// Sends one rtnetlink request with exactly `NLM_F_REQUEST | NLM_F_ACK
    /// | flags` through the handle and waits for its ACK. For the flag sets
    /// that no request builder of `rtnetlink` offers (its route add sends
    /// `NLM_F_CREATE|NLM_F_EXCL`, or `NLM_F_CREATE|NLM_F_REPLACE` with
    /// `.replace()`): `ip route append` (`NLM_F_CREATE|NLM_F_APPEND`),
    /// `ip route prepend` (`NLM_F_CREATE`), `ip route change`
    /// (`NLM_F_REPLACE`).
    pub fn request(&self, msg: RouteNetlinkMessage, flags: u16) -> Result<(), rtnetlink::Error> {
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        let mut handle = self.handle.clone();
        self.block_on(async move {
            let mut answers = handle.request(req)?;
            while let Some(m) = answers.next().await {
                if let NetlinkPayload::Error(e) = m.payload {
                    if e.code.is_some() {
                        return Err(rtnetlink::Error::NetlinkError(e));
                    }
                }
            }
            Ok(())
        })
    }

    /// Runs many requests (futures of the handle's builders: `….execute()`)
    /// with up to `window` of them in flight at once, sent in order, and
    /// returns each one's result in that order. One drive of the runtime
    /// for the lot instead of one per request; the window bounds the ACKs
    /// the kernel queues on the socket before they are read (an
    /// overflowing receive queue would drop them: ENOBUFS).
    pub fn pipeline<T, F>(
        &self,
        requests: impl IntoIterator<Item = F>,
        window: usize,
    ) -> Vec<Result<T, rtnetlink::Error>>
    where
        F: Future<Output = Result<T, rtnetlink::Error>>,
    {
        self.block_on(
            futures_util::stream::iter(requests)
                .buffered(window.max(1))
                .collect::<Vec<_>>(),
        )
    }

    /// Drives a request stream (a dump: `handle.route().get(…).execute()`)
    /// to its end and collects it; the first error ends it.
    pub fn collect<T>(
        &self,
        stream: impl Stream<Item = Result<T, rtnetlink::Error>>,
    ) -> Result<Vec<T>, rtnetlink::Error> {
        self.block_on(stream.try_collect())
    }
}
