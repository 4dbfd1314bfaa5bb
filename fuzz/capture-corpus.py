#!/usr/bin/env python3
"""Captures the fuzzers' seed corpora from a real kernel and real files.

    sudo python3 fuzz/capture-corpus.py            # writes fixtures/fuzz-corpus/<target>/

Run as root on Linux (it enters fresh network namespaces with `unshare -n`
for the per-namespace captures). Every seed is the kernel's or a tool's own
output, captured here; a few are the same bytes cut to an older kernel's
length (a `tcp_info` of 232 bytes is what 5.4–6.1 return). Files are named by
what they are, so a re-run on another kernel adds its own next to these.
The ones that need files of a kharness matrix run (a guest's results stream,
matrix JSON, cached kernel modules) are taken when present and skipped
otherwise.
"""

import glob
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "fuzz-corpus")
RELEASE = os.uname().release
TAG = RELEASE.split("-")[0]

NETLINK_ROUTE = 0
NETLINK_SOCK_DIAG = 4
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLM_F_DUMP = 0x300
NLM_F_CREATE = 0x400
NLM_F_EXCL = 0x200
NLMSG_ERROR = 2
NLMSG_DONE = 3
SOL_NETLINK = 270
NETLINK_EXT_ACK = 11
NETLINK_CAP_ACK = 10
SOCK_DIAG_BY_FAMILY = 20
RTM_NEWLINK = 16
RTM_GETLINK = 18
RTM_GETADDR = 22


def save(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)
    print(f"{target}/{name}: {len(data)} bytes")


def nlmsg(ty, flags, seq, payload):
    return struct.pack("=IHHII", 16 + len(payload), ty, flags, seq, 0) + payload


def nl_frames(buf):
    off = 0
    while off + 16 <= len(buf):
        ln, ty, flags, seq, pid = struct.unpack_from("=IHHII", buf, off)
        if ln < 16 or off + ln > len(buf):
            break
        yield ty, flags, buf[off + 16 : off + ln]
        off += (ln + 3) & ~3


def nl_request(proto, ty, flags, payload):
    """One request; every datagram of the answer until DONE or the ACK."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, proto)
    s.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
    s.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
    s.bind((0, 0))
    s.send(nlmsg(ty, NLM_F_REQUEST | flags, 1, payload))
    grams = []
    while True:
        g = s.recv(1 << 16)
        grams.append(g)
        if any(t in (NLMSG_DONE, NLMSG_ERROR) for t, _, _ in nl_frames(g)):
            break
    s.close()
    return grams


# ---- inside a fresh network namespace (python3 capture-corpus.py --in-netns)


def in_netns():
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # procfs of a namespace that has seen a little traffic.
    for f in ["snmp", "netstat", "snmp6"]:
        txt = open(f"/proc/thread-self/net/{f}").read()
        save("procfs_snmp6" if f == "snmp6" else "procfs_paired", f"{f}-netns-{TAG}", txt)

    # rtnetlink multicast: subscribe to links and addresses, then change them.
    groups = (1 << 0) | (1 << 4) | (1 << 8)  # RTNLGRP_LINK, IPV4_IFADDR, IPV6_IFADDR
    mc = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    mc.bind((0, groups))
    subprocess.run(["ip", "link", "add", "kh0", "type", "veth", "peer", "name", "kh1"], check=True)
    subprocess.run(["ip", "addr", "add", "198.18.0.1/24", "dev", "kh0"], check=True)
    subprocess.run(["ip", "link", "set", "kh0", "up"], check=True)
    mc.settimeout(0.5)
    n = 0
    try:
        while n < 6:
            g = mc.recv(1 << 16)
            save("netlink_frames", f"multicast-{n}-{TAG}", g)
            n += 1
    except socket.timeout:
        pass
    # A dump answer (several frames in one datagram), and an address dump.
    ifinfo = struct.pack("=BxHiII", 0, 0, 0, 0, 0)
    for i, g in enumerate(nl_request(NETLINK_ROUTE, RTM_GETLINK, NLM_F_DUMP, ifinfo)[:2]):
        save("netlink_frames", f"getlink-dump-{i}-{TAG}", g)
    ifaddr = struct.pack("=BBBBI", 0, 0, 0, 0, 0)
    for i, g in enumerate(nl_request(NETLINK_ROUTE, RTM_GETADDR, NLM_F_DUMP, ifaddr)[:2]):
        save("netlink_frames", f"getaddr-dump-{i}-{TAG}", g)

    # Extended ACK: a link of an unknown kind, and a duplicate veth.
    def link_with_kind(name, kind):
        ifname = name.encode() + b"\0"
        a_name = struct.pack("=HH", 4 + len(ifname), 3) + ifname  # IFLA_IFNAME
        a_name += b"\0" * (-len(a_name) % 4)
        kindb = kind.encode() + b"\0"
        a_kind = struct.pack("=HH", 4 + len(kindb), 1) + kindb  # IFLA_INFO_KIND
        a_kind += b"\0" * (-len(a_kind) % 4)
        a_info = struct.pack("=HH", 4 + len(a_kind), 18) + a_kind  # IFLA_LINKINFO
        return ifinfo + a_name + a_info

    for tag, payload in [("unknown-kind", link_with_kind("kh2", "nosuchkind")), ("exists", link_with_kind("kh0", "veth"))]:
        for g in nl_request(NETLINK_ROUTE, RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, payload):
            for ty, flags, body in nl_frames(g):
                if ty == NLMSG_ERROR:
                    save("netlink_frames", f"nlmsg-error-{tag}-{TAG}", g)
                    # code (4) + echoed header (16, capped); the rest is the TLVs.
                    save("netlink_extack", f"{tag}-{TAG}", body[20:])

    # TCP in the namespace: a connected pair, some data, tcp_info both ways.
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("198.18.0.1", 0))
    srv.listen(1)
    cli = socket.create_connection(srv.getsockname())
    acc, _ = srv.accept()
    cli.sendall(b"x" * 100000)
    acc.recv(50000)
    info = cli.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512)
    save("tcp_info", f"established-client-{len(info)}-{TAG}", info)
    save("tcp_info", f"established-server-{TAG}", acc.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512))
    save("tcp_info", f"listener-{TAG}", srv.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 512))
    # The same bytes as older kernels return them (the struct only grows).
    for ln in (104, 160, 192, 232, 248):
        if ln < len(info):
            save("tcp_info", f"established-client-cut-{ln}", info[:ln])
    # AF_UNIX sockets to dump: a listener with an abstract name, a pathname
    # socket, a connected pair with data queued.
    tmp = tempfile.mkdtemp()
    ul = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ul.bind("\0kharness.fuzz.abstract")
    ul.listen(1)
    up = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    up.bind(os.path.join(tmp, "s"))
    a, b = socket.socketpair()
    a.send(b"hello")

    # INET_DIAG: the four sockets above with INET_DIAG_INFO.
    req = struct.pack("=BBBxI", socket.AF_INET, socket.IPPROTO_TCP, 1 << 1, 0xFFFFFFFF) + b"\0" * 48
    n = 0
    for g in nl_request(NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, req):
        for ty, _, body in nl_frames(g):
            if ty == SOCK_DIAG_BY_FAMILY:
                save("inet_diag", f"tcp4-{n}-{TAG}", body)
                n += 1
    # UNIX_DIAG with name, vfs, peer, rqlen and shutdown.
    show = 0x01 | 0x02 | 0x04 | 0x10 | 0x40  # NAME VFS PEER RQLEN UID(0x40)
    req = struct.pack("=BBHIIIQ", socket.AF_UNIX, 0, 0, 0xFFFFFFFF, 0, show, 0)
    b.shutdown(socket.SHUT_WR)
    n = 0
    for g in nl_request(NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, req):
        for ty, _, body in nl_frames(g):
            if ty == SOCK_DIAG_BY_FAMILY:
                save("unix_diag", f"unix-{n}-{TAG}", body)
                n += 1
    # /proc/net/unix and sockstat of this namespace.
    save("proc_net_unix", f"unix-netns-{TAG}", open("/proc/thread-self/net/unix").read())
    save("proc_net_unix", f"sockstat-netns-{TAG}", open("/proc/thread-self/net/sockstat").read())

    # A raw ICMP socket's view of an echo request and its reply on lo.
    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    r.settimeout(1)
    body = struct.pack("!BBHHH", 8, 0, 0, 0x4242, 1) + b"\xa5" * 56
    csum = sum(struct.unpack("!%dH" % (len(body) // 2), body))
    while csum >> 16:
        csum = (csum & 0xFFFF) + (csum >> 16)
    body = body[:2] + struct.pack("!H", ~csum & 0xFFFF) + body[4:]
    r.sendto(body, ("127.0.0.1", 0))
    for i in range(2):
        save("icmp", f"echo-{i}-{TAG}", r.recv(2048))
    shutil.rmtree(tmp)


# ---- on the host


def host():
    if os.path.isdir(OUT):
        print(f"adding to {OUT}")
    # procfs of the host's namespace.
    for f in ["snmp", "netstat", "snmp6"]:
        txt = open(f"/proc/thread-self/net/{f}").read()
        save("procfs_snmp6" if f == "snmp6" else "procfs_paired", f"{f}-host-{TAG}", txt)
    # A fresh namespace's, before and after traffic (see in_netns).
    fresh = subprocess.run(
        ["unshare", "-n", "sh", "-c", "cat /proc/thread-self/net/snmp; echo ===; cat /proc/thread-self/net/netstat; echo ===; cat /proc/thread-self/net/snmp6"],
        check=True, capture_output=True, text=True,
    ).stdout.split("===\n")
    save("procfs_paired", f"snmp-fresh-{TAG}", fresh[0])
    save("procfs_paired", f"netstat-fresh-{TAG}", fresh[1])
    save("procfs_snmp6", f"snmp6-fresh-{TAG}", fresh[2])
    subprocess.run(["unshare", "-n", sys.executable, os.path.abspath(__file__), "--in-netns"], check=True)

    # Before/after pairs as the cases read them (the procfs targets split an
    # input at its NUL): a fresh namespace, then the same after traffic.
    for f, target in [("snmp", "procfs_paired"), ("netstat", "procfs_paired"), ("snmp6", "procfs_snmp6")]:
        d = os.path.join(OUT, target)
        before, after = os.path.join(d, f"{f}-fresh-{TAG}"), os.path.join(d, f"{f}-netns-{TAG}")
        save(target, f"{f}-before-after-{TAG}", open(before, "rb").read() + b"\0" + open(after, "rb").read())

    # /proc/net/unix of the host, cut to its first 40 lines.
    lines = open("/proc/thread-self/net/unix").read().splitlines(True)[:40]
    save("proc_net_unix", f"unix-host-{TAG}", "".join(lines))

    save("kernel_release", "uname-r", RELEASE)
    for d in sorted(glob.glob(os.path.expanduser("~/.cache/kharness/kernels/*/modules/*"))):
        save("kernel_release", "debian-" + os.path.basename(d).split("-")[0], os.path.basename(d))

    # Files.
    save("kernels_toml", "kernels.toml", open(os.path.join(ROOT, "fixtures", "kernels.toml")).read())
    for p in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.sources")) + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        if os.path.isfile(p) and os.path.getsize(p) < 20000:
            save("apt_sources", os.path.basename(p), open(p, "rb").read())
    mad = subprocess.run(["apt-cache", "madison", "hostname", "linux-image-amd64", "linux-image-cloud-amd64"], capture_output=True, text=True)
    if mad.returncode == 0 and mad.stdout:
        save("apt_sources", "madison", mad.stdout)

    # A small real .deb, and real kernel-layout .debs built by dpkg-deb with
    # each compression extract_kernel reads.
    with tempfile.TemporaryDirectory() as t:
        if subprocess.run(["apt-get", "download", "hostname"], cwd=t, capture_output=True).returncode == 0:
            deb = glob.glob(os.path.join(t, "*.deb"))[0]
            data = open(deb, "rb").read()
            if len(data) < 200000:
                save("deb_ar", "hostname.deb", data)
                save("deb_extract", "hostname.deb", data)
        pkg = os.path.join(t, "pkg")
        rel = "9.9.9-1-cloud-amd64"
        os.makedirs(os.path.join(pkg, "DEBIAN"))
        os.makedirs(os.path.join(pkg, "boot"))
        os.makedirs(os.path.join(pkg, "lib", "modules", rel, "kernel", "net", "ipv4"))
        open(os.path.join(pkg, "DEBIAN", "control"), "w").write(
            "Package: linux-image-fuzz\nVersion: 1\nArchitecture: amd64\nMaintainer: kharness\nDescription: seed\n"
        )
        open(os.path.join(pkg, "boot", f"vmlinuz-{rel}"), "wb").write(b"MZ" + b"\0" * 62 + b"HdrS")
        open(os.path.join(pkg, "lib", "modules", rel, "kernel", "net", "ipv4", "tcp_diag.ko"), "wb").write(b"\x7fELF")
        open(os.path.join(pkg, "lib", "modules", rel, "modules.builtin"), "w").write("kernel/drivers/net/veth.ko\n")
        for z in ["xz", "zstd", "gzip"]:
            out = os.path.join(t, f"k-{z}.deb")
            if subprocess.run(["dpkg-deb", "--root-owner-group", f"-Z{z}", "--build", pkg, out], capture_output=True).returncode == 0:
                data = open(out, "rb").read()
                save("deb_extract", f"kernel-layout-{z}.deb", data)
                save("deb_ar", f"kernel-layout-{z}.deb", data)

    # Kernel modules from the matrix's cache: small ones with depends=.
    cache = os.path.expanduser("~/.cache/kharness/kernels")
    for name in ["tcp_diag", "unix_diag", "vsock_diag"]:
        for ko in sorted(glob.glob(f"{cache}/*/modules/*/kernel/net/**/{name}.ko*", recursive=True)):
            data = open(ko, "rb").read()
            if ko.endswith(".xz"):
                import lzma
                data = lzma.decompress(data)
            elif ko.endswith(".zst"):
                data = subprocess.run(["zstd", "-dc", ko], capture_output=True).stdout
            ver = ko.split("/modules/")[1].split("-")[0]
            if 0 < len(data) < 200000:
                save("modinfo", f"{name}-{ver}.ko", data)
    # modules.dep as depmod writes it, for a few modules of one cached tree.
    trees = sorted(glob.glob(f"{cache}/*/modules/*"))
    if trees and shutil.which("depmod"):
        tree = trees[0]
        rel = os.path.basename(tree)
        with tempfile.TemporaryDirectory() as t:
            base = os.path.join(t, "lib", "modules", rel)
            for sub in ["kernel/net/ipv4", "kernel/net/unix", "kernel/net/sctp", "kernel/lib", "kernel/net/ipv6", "kernel/drivers/net"]:
                src = os.path.join(tree, sub)
                if os.path.isdir(src):
                    shutil.copytree(src, os.path.join(base, sub))
            subprocess.run(["depmod", "-b", t, rel], capture_output=True)
            dep = os.path.join(base, "modules.dep")
            if os.path.isfile(dep):
                save("modules_dep", f"modules.dep-{rel.split('-')[0]}", open(dep).read())
    for tree in trees:
        b = os.path.join(tree, "modules.builtin")
        if os.path.isfile(b):
            lines = open(b).read().splitlines(True)
            save("modules_dep", f"modules.builtin-{os.path.basename(tree).split('-')[0]}", "".join(lines[:60]))
            break

    # The results protocol as a guest wrote it (a kharness matrix run).
    runs = [r for r in sorted(glob.glob(os.path.expanduser("~/.cache/kharness/runs/*/*/results.jsonl"))) if 0 < os.path.getsize(r) < 200000]
    if runs:
        lines = open(runs[-1]).read().splitlines(True)
        save("results_protocol", "guest-head.jsonl", "".join(lines[:14] + lines[-2:]))
        save("results_protocol", "guest-full.jsonl", "".join(lines))
        seen = set()
        for r in reversed(runs):
            d = os.path.dirname(r)
            con = os.path.join(d, "console.log")
            if os.path.basename(d) not in seen and os.path.isfile(con) and os.path.getsize(con) > 0:
                seen.add(os.path.basename(d))
                save("results_protocol", "console-" + os.path.basename(d), open(con, "rb").read())

    # Matrix JSON as `kharness matrix --format json` wrote it, cut to a few
    # results per kernel to stay small, and one kernel whole.
    for mj in [os.path.join(ROOT, "target", "matrix", "matrix.json"), "/work/wt/target/matrix/matrix.json"]:
        if os.path.isfile(mj):
            m = json.load(open(mj))
            small = dict(m)
            small["kernels"] = []
            for k in m["kernels"]:
                k = dict(k)
                k["results"] = k["results"][:3]
                small["kernels"].append(k)
            save("report_merge", "matrix-3-results.json", json.dumps(small))
            one = dict(m)
            one["kernels"] = m["kernels"][:1]
            one["kernels"][0] = dict(one["kernels"][0], results=one["kernels"][0]["results"][:20])
            save("report_merge", "matrix-1-kernel.json", json.dumps(one, indent=1))
            shard = dict(small, shard=[1, 2], kernels=small["kernels"][:2])
            save("report_merge", "matrix-shard-1-of-2.json", json.dumps(shard))
            break


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("run as root (it enters network namespaces)")
    if "--in-netns" in sys.argv:
        in_netns()
    else:
        host()
