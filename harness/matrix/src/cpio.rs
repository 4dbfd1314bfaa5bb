//! A cpio "newc" writer (and reader, for tests and checks): the format the
//! kernel unpacks as an initramfs (`Documentation/driver-api/early-userspace/buffer-format.rst`).
//!
//! ```text
//! "070701" ino mode uid gid nlink mtime filesize devmajor devminor
//!          rdevmajor rdevminor namesize check    (8 hex digits each)
//! name\0 padded to 4 · data padded to 4 · … · "TRAILER!!!"
//! ```

use std::io::{self, Write};

/// File type bits for [`CpioWriter::entry`].
pub const S_IFDIR: u32 = 0o040000;
/// Regular file.
pub const S_IFREG: u32 = 0o100000;
/// Character device.
pub const S_IFCHR: u32 = 0o020000;

/// Writes a newc archive.
pub struct CpioWriter<W: Write> {
    out: W,
    ino: u32,
    written: u64,
}

impl<W: Write> CpioWriter<W> {
    /// Starts an archive on `out`.
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            ino: 1,
            written: 0,
        }
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..n])
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    /// Writes one entry (`mode` includes the type bits).
    pub fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) -> io::Result<()> {
        self.header(name, mode, rdev, data.len() as u64)?;
        self.put(data)?;
        self.pad()
    }

    /// A regular file of `len` bytes read from `data`, streamed: a large
    /// file (the guest's /init) is never held in memory.
    pub fn file_from(&mut self, name: &str, perm: u32, len: u64, data: &mut impl io::Read) -> io::Result<()> {
        self.header(name, S_IFREG | perm, (0, 0), len)?;
        let n = io::copy(&mut io::Read::take(data, len), &mut self.out)?;
        self.written += n;
        if n != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{name}: {n} of {len} bytes"),
            ));
        }
        self.pad()
    }

    fn header(&mut self, name: &str, mode: u32, rdev: (u32, u32), size: u64) -> io::Result<()> {
        let name = name.trim_start_matches('/');
        let size = u32::try_from(size)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("{name}: too large for cpio")))?;
        let header = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            self.ino,
            mode,
            0,
            0,
            if mode & S_IFDIR == S_IFDIR { 2 } else { 1 },
            0,
            size,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() + 1,
            0
        );
        self.ino += 1;
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()
    }

    /// A directory.
    pub fn dir(&mut self, name: &str) -> io::Result<()> {
        self.entry(name, S_IFDIR | 0o755, (0, 0), &[])
    }

    /// A regular file.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(name, S_IFREG | perm, (0, 0), data)
    }

    /// A character device node.
    pub fn char_device(&mut self, name: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(name, S_IFCHR | perm, (major, minor), &[])
    }

    /// Writes the trailer and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.entry("TRAILER!!!", 0, (0, 0), &[])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One entry read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpioEntry {
    /// Path.
    pub name: String,
    /// Mode with type bits.
    pub mode: u32,
    /// (rdevmajor, rdevminor).
    pub rdev: (u32, u32),
    /// Contents.
    pub data: Vec<u8>,
}

/// Reads a newc archive up to its trailer.
pub fn read(mut b: &[u8]) -> Result<Vec<CpioEntry>, String> {
    let total = b.len();
    let mut out = Vec::new();
    let align = |rest: &[u8]| -> usize { (4 - ((total - rest.len()) % 4)) % 4 };
    loop {
        if b.len() < 110 || &b[..6] != b"070701" {
            return Err(format!("bad header at offset {}", total - b.len()));
        }
        let field = |i: usize| u32::from_str_radix(std::str::from_utf8(&b[6 + i * 8..14 + i * 8]).unwrap_or("x"), 16);
        let f = |i: usize| field(i).map_err(|_| format!("bad field {i}"));
        let (mode, size, rmaj, rmin, namesize) = (f(1)?, f(6)? as usize, f(9)?, f(10)?, f(11)? as usize);
        b = &b[110..];
        if b.len() < namesize || namesize == 0 {
            return Err("truncated name".into());
        }
        let name = String::from_utf8_lossy(&b[..namesize - 1]).into_owned();
        b = &b[namesize..];
        b = &b[align(b).min(b.len())..];
        if b.len() < size {
            return Err(format!("truncated data of {name}"));
        }
        let data = b[..size].to_vec();
        b = &b[size..];
        b = &b[align(b).min(b.len())..];
        if name == "TRAILER!!!" {
            return Ok(out);
        }
        out.push(CpioEntry {
            name,
            mode,
            rdev: (rmaj, rmin),
            data,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut w = CpioWriter::new(Vec::new());
        w.dir("dev").unwrap();
        w.char_device("dev/console", 0o600, 5, 1).unwrap();
        w.file("/init", 0o755, b"\x7fELF binary").unwrap();
        w.file("lib/modules/a.ko", 0o644, b"").unwrap();
        w.file("odd", 0o644, b"abcde").unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let e = read(&bytes).unwrap();
        let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["dev", "dev/console", "init", "lib/modules/a.ko", "odd"]);
        assert_eq!(e[0].mode, S_IFDIR | 0o755);
        assert_eq!((e[1].mode & 0o170000, e[1].rdev), (S_IFCHR, (5, 1)));
        assert_eq!(e[2].data, b"\x7fELF binary");
        assert_eq!(e[2].mode, S_IFREG | 0o755);
        assert_eq!(e[4].data, b"abcde");
        assert!(read(&bytes[..bytes.len() - 20]).is_err());
    }
}
