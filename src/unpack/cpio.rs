//! The cpio "newc" (SVR4, `070701`/`070702`) stream inside RPM payloads.
//!
//! Contract: [`Reader`] reads entries one at a time from any `Read`; it never allocates more
//! than an entry declares, and refuses declared sizes above `max_file` so that a hostile header
//! cannot make it allocate gigabytes.

use std::io::{self, Read};

#[derive(Debug, thiserror::Error)]
pub enum CpioError {
    #[error("cpio: reading the payload")]
    Io(#[from] io::Error),
    #[error("cpio: bad magic {0:?} at entry {1} (not a newc archive)")]
    Magic(String, usize),
    #[error("cpio: header field {field} is not hexadecimal at entry {index}")]
    Field { field: &'static str, index: usize },
    #[error("cpio: entry {index} declares {size} bytes, more than the limit of {limit}")]
    TooLarge { index: usize, size: u64, limit: u64 },
    #[error("cpio: entry {0} has a name that is not valid")]
    Name(usize),
}

#[derive(Clone, Debug)]
pub struct Header {
    pub ino: u32,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    pub size: u64,
    pub rdev_major: u32,
    pub rdev_minor: u32,
    pub name: String,
}

pub struct Reader<R> {
    inner: R,
    index: usize,
    max_file: u64,
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R, max_file: u64) -> Reader<R> {
        Reader {
            inner,
            index: 0,
            max_file,
        }
    }

    /// The next entry and its data, or `None` at the `TRAILER!!!` entry.
    pub fn next_entry(&mut self) -> Result<Option<(Header, Vec<u8>)>, CpioError> {
        let mut h = [0u8; 110];
        self.inner.read_exact(&mut h)?;
        let index = self.index;
        self.index += 1;
        if &h[..5] != b"07070" || !(h[5] == b'1' || h[5] == b'2') {
            return Err(CpioError::Magic(
                String::from_utf8_lossy(&h[..6]).into_owned(),
                index,
            ));
        }
        let field = |i: usize, name: &'static str| -> Result<u32, CpioError> {
            let s = std::str::from_utf8(&h[6 + i * 8..14 + i * 8])
                .map_err(|_| CpioError::Field { field: name, index })?;
            u32::from_str_radix(s, 16).map_err(|_| CpioError::Field { field: name, index })
        };
        let ino = field(0, "ino")?;
        let mode = field(1, "mode")?;
        let uid = field(2, "uid")?;
        let gid = field(3, "gid")?;
        let nlink = field(4, "nlink")?;
        let mtime = field(5, "mtime")?;
        let size = field(6, "filesize")? as u64;
        let rdev_major = field(9, "rdevmajor")?;
        let rdev_minor = field(10, "rdevminor")?;
        let namesize = field(11, "namesize")? as usize;
        if namesize == 0 || namesize > 65536 {
            return Err(CpioError::Name(index));
        }
        let mut name = vec![0u8; namesize];
        self.inner.read_exact(&mut name)?;
        self.skip_pad(110 + namesize)?;
        if name.pop() != Some(0) {
            return Err(CpioError::Name(index));
        }
        let name = String::from_utf8(name).map_err(|_| CpioError::Name(index))?;
        if name == "TRAILER!!!" {
            return Ok(None);
        }
        if size > self.max_file {
            return Err(CpioError::TooLarge {
                index,
                size,
                limit: self.max_file,
            });
        }
        let mut data = Vec::with_capacity(size as usize);
        (&mut self.inner).take(size).read_to_end(&mut data)?;
        if (data.len() as u64) < size {
            return Err(CpioError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "payload ends inside a file",
            )));
        }
        self.skip_pad(size as usize)?;
        Ok(Some((
            Header {
                ino,
                mode,
                uid,
                gid,
                nlink,
                mtime,
                size,
                rdev_major,
                rdev_minor,
                name,
            },
            data,
        )))
    }

    fn skip_pad(&mut self, len: usize) -> io::Result<()> {
        let pad = (4 - len % 4) % 4;
        let mut b = [0u8; 3];
        self.inner.read_exact(&mut b[..pad])
    }
}
