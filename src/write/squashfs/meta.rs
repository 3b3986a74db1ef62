//! Metadata blocks: up to 8 KiB of records, compressed when that makes them smaller, each behind
//! a 2-byte header (its stored length, with [`UNCOMPRESSED`] set when stored as is). Records are
//! addressed by (start of their block relative to the table, offset in the uncompressed block).

use super::{Compression, Out, WriteError};
use std::io::Write;

pub const BLOCK: usize = 8192;
pub const UNCOMPRESSED: u16 = 1 << 15;

pub struct Meta {
    c: Compression,
    /// Finished blocks, headers included.
    out: Vec<u8>,
    /// The block being filled (always shorter than [`BLOCK`] between calls).
    buf: Vec<u8>,
    /// Where each finished block starts in `out`.
    starts: Vec<u64>,
}

impl Meta {
    pub fn new(c: Compression) -> Meta {
        Meta {
            c,
            out: Vec::new(),
            buf: Vec::with_capacity(2 * BLOCK),
            starts: Vec::new(),
        }
    }

    /// Where the next byte pushed will be: (block start, offset in the block).
    pub fn pos(&self) -> (u64, u16) {
        (self.out.len() as u64, self.buf.len() as u16)
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= BLOCK {
            let mut done = 0;
            while self.buf.len() - done >= BLOCK {
                let block = self.buf[done..done + BLOCK].to_vec();
                self.seal(&block);
                done += BLOCK;
            }
            self.buf.drain(..done);
        }
    }

    fn seal(&mut self, block: &[u8]) {
        self.starts.push(self.out.len() as u64);
        match self.c.compress(block, BLOCK as u32) {
            Some(z) => {
                self.out.extend_from_slice(&(z.len() as u16).to_le_bytes());
                self.out.extend_from_slice(&z);
            }
            None => {
                self.out
                    .extend_from_slice(&(block.len() as u16 | UNCOMPRESSED).to_le_bytes());
                self.out.extend_from_slice(block);
            }
        }
    }

    /// Seals the last block and hands over the table's bytes.
    pub fn finish(&mut self) -> Vec<u8> {
        if !self.buf.is_empty() {
            let block = std::mem::take(&mut self.buf);
            self.seal(&block);
        }
        std::mem::take(&mut self.out)
    }

    /// Block starts relative to the table (complete after [`Meta::finish`]).
    pub fn block_starts(&self) -> &[u64] {
        &self.starts
    }
}

/// Writes a lookup table (fragments, exports, ids): its records in metadata blocks, then the
/// index of those blocks' absolute positions, which is where the superblock points.
pub fn write_table<W: Write>(
    out: &mut Out<W>,
    c: Compression,
    records: &[u8],
) -> Result<u64, WriteError> {
    let mut m = Meta::new(c);
    m.push(records);
    let bytes = m.finish();
    let base = out.pos;
    out.put(&bytes)?;
    let index = out.pos;
    for s in m.block_starts() {
        out.put(&(base + s).to_le_bytes())?;
    }
    Ok(index)
}
