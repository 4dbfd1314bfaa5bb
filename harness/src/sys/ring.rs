//! Memory shared with the kernel through `mmap(2)` on a packet socket: the
//! `PACKET_RX_RING` / `PACKET_TX_RING` rings of `packet(7)`.
//!
//! [`MmapRing`] is the guard: [`MmapRing::map`] maps the ring the socket's
//! `setsockopt(PACKET_RX_RING / PACKET_TX_RING)` allocated, and `Drop` unmaps
//! it, so an early return in a case never leaves the mapping behind. (The
//! mapping holds its own reference to the socket's file, so dropping it after
//! the socket is closed is fine too.)
//!
//! The kernel writes the ring while we read it, so no Rust reference to its
//! bytes is ever handed out. Every access is a bounds-checked copy:
//! - the status words that hand a frame or block between kernel and user
//!   (`tp_status`, `block_status`) are read with [`MmapRing::load_status`]
//!   (an acquire load: everything the kernel wrote before it published the
//!   status is visible after) and written with [`MmapRing::store_status`]
//!   (a release store: everything we wrote before giving a frame back is
//!   visible to the kernel);
//! - everything else is read with volatile loads ([`MmapRing::read_u16`],
//!   [`MmapRing::read_u32`], [`MmapRing::read`]) and written with
//!   [`MmapRing::write`].
//!
//! Offsets out of range are programming errors and panic with the offset.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// A `MAP_SHARED` mapping of a packet socket's ring; `Drop` unmaps it.
#[derive(Debug)]
pub struct MmapRing {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; it has no
// thread affinity, and every access goes through `&self` methods that use
// atomic or volatile operations, never Rust references into the memory.
unsafe impl Send for MmapRing {}

impl MmapRing {
    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0)`: maps the
    /// ring(s) set up on packet socket `fd`. `len` must be the total size
    /// the kernel allocated (`tp_block_size * tp_block_nr`, RX ring first then
    /// TX ring when both exist), else the kernel answers `EINVAL`.
    pub fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<MmapRing> {
        if len == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "cannot map an empty ring"));
        }
        // SAFETY: a fresh mapping at an address the kernel chooses (NULL
        // hint, no MAP_FIXED) cannot alias any memory Rust knows about; `fd`
        // is live for the borrow; the result is checked for MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned NULL"))?;
        Ok(MmapRing { ptr, len })
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true (a ring of zero bytes cannot be mapped); for clippy.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Start address of the mapping (to find it in `/proc/self/maps`).
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    fn check(&self, off: usize, n: usize) {
        assert!(
            off.checked_add(n).is_some_and(|end| end <= self.len),
            "ring access of {n} bytes at offset {off} is outside the {}-byte mapping",
            self.len
        );
    }

    /// Acquire load of the `u32` status word at `off` (4-byte aligned).
    pub fn load_status(&self, off: usize) -> u32 {
        self.check(off, 4);
        assert!(off % 4 == 0, "status word at unaligned offset {off}");
        // SAFETY: in bounds (checked) and 4-byte aligned (the mapping is
        // page aligned and `off` is a multiple of 4); the memory lives as long
        // as `self`; the kernel updates it concurrently, which an atomic load
        // tolerates.
        let a = unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(off).cast::<u32>()) };
        a.load(Ordering::Acquire)
    }

    /// Release store of the `u32` status word at `off` (4-byte aligned).
    pub fn store_status(&self, off: usize, value: u32) {
        self.check(off, 4);
        assert!(off % 4 == 0, "status word at unaligned offset {off}");
        // SAFETY: as in `load_status`; the word belongs to a frame or block
        // the user side owns at this point of the ring protocol.
        let a = unsafe { AtomicU32::from_ptr(self.ptr.as_ptr().add(off).cast::<u32>()) };
        a.store(value, Ordering::Release);
    }

    /// Copies `n` bytes at `off` out of the ring.
    pub fn read(&self, off: usize, n: usize) -> Vec<u8> {
        self.check(off, n);
        (0..n)
            .map(|i| {
                // SAFETY: `off + i < off + n <= len` (checked above); a
                // volatile byte load of mapped memory has no alignment need.
                unsafe { std::ptr::read_volatile(self.ptr.as_ptr().add(off + i)) }
            })
            .collect()
    }

    /// Native-endian `u16` at `off`.
    pub fn read_u16(&self, off: usize) -> u16 {
        let b = self.read(off, 2);
        u16::from_ne_bytes([b[0], b[1]])
    }

    /// Native-endian `u32` at `off`.
    pub fn read_u32(&self, off: usize) -> u32 {
        let b = self.read(off, 4);
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Copies `data` into the ring at `off`.
    pub fn write(&self, off: usize, data: &[u8]) {
        self.check(off, data.len());
        for (i, b) in data.iter().enumerate() {
            // SAFETY: in bounds (checked above); byte stores need no
            // alignment; the caller owns this part of the ring (a TX slot it
            // has not yet handed to the kernel).
            unsafe { std::ptr::write_volatile(self.ptr.as_ptr().add(off + i), *b) };
        }
    }
}

impl Drop for MmapRing {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what mmap returned; nothing
        // references the memory after this (no reference was ever handed
        // out). An error cannot be reported from Drop and is ignored.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// Whether `/proc/self/maps` lists a mapping starting at `addr` (to show a
/// ring guard really unmapped its memory).
pub fn is_mapped(addr: usize) -> io::Result<bool> {
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    Ok(maps
        .lines()
        .any(|l| l.split('-').next().and_then(|s| usize::from_str_radix(s, 16).ok()) == Some(addr)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn map_access_unmap() {
        let fd = nix::sys::memfd::memfd_create("kharness-ring-test", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .expect("memfd_create");
        nix::unistd::ftruncate(&fd, 8192).expect("ftruncate");
        let ring = MmapRing::map(fd.as_fd(), 8192).expect("mmap");
        assert_eq!(ring.len(), 8192);
        assert!(is_mapped(ring.addr()).unwrap());
        ring.store_status(4096, 0xdead_beef);
        assert_eq!(ring.load_status(4096), 0xdead_beef);
        assert_eq!(ring.read_u32(4096), 0xdead_beef);
        ring.write(10, &[1, 2, 3]);
        assert_eq!(ring.read(9, 5), vec![0, 1, 2, 3, 0]);
        assert_eq!(ring.read_u16(11), u16::from_ne_bytes([2, 3]));
        let addr = ring.addr();
        drop(ring);
        assert!(!is_mapped(addr).unwrap(), "the guard unmapped the ring");
    }

    #[test]
    #[should_panic(expected = "outside the 4096-byte mapping")]
    fn out_of_range_panics() {
        let fd = nix::sys::memfd::memfd_create("kharness-ring-test", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .expect("memfd_create");
        nix::unistd::ftruncate(&fd, 4096).expect("ftruncate");
        let ring = MmapRing::map(fd.as_fd(), 4096).expect("mmap");
        ring.read(4090, 8);
    }
}
