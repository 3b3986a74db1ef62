//! MicroLZMA with a fixed output size, as EROFS stores lzma pclusters. The safe `liblzma` crate
//! does not wrap `lzma_microlzma_encoder`, so this is the one place the writer calls C directly.
//!
//! MicroLZMA is raw LZMA whose first byte (always 0 in plain LZMA) carries the inverted
//! properties byte instead, so a stream never starts with 0 and readers can skip zero padding in
//! front of it.

use liblzma_sys as sys;

/// The dictionary the encoder may use and readers must provide (the kernel allocates it per
/// decompression stream); extents are rarely longer, so larger buys nothing.
pub const DICT_SIZE: u32 = 64 * 1024;

/// Compresses as much of `src` as fits into `dst` at preset `level` (0 to 9): (bytes read,
/// bytes written), `None` if liblzma fails.
pub fn compress_fill(src: &[u8], dst: &mut [u8], level: u32) -> Option<(usize, usize)> {
    // SAFETY: all-zero bytes are a valid value of both plain C structs (LZMA_STREAM_INIT is all
    // zeros); lzma_lzma_preset only writes into `opts`.
    let mut opts: sys::lzma_options_lzma = unsafe { std::mem::zeroed() };
    if unsafe { sys::lzma_lzma_preset(&mut opts, level) } != 0 {
        return None; // lzma_bool true: unsupported preset
    }
    opts.dict_size = DICT_SIZE;
    let mut strm: sys::lzma_stream = unsafe { std::mem::zeroed() };
    // SAFETY: `strm` is initialised as LZMA_STREAM_INIT and `opts` outlives the call (the
    // encoder copies what it needs). The buffers handed to lzma_code live until it returns,
    // and lzma_end frees what the encoder allocated whatever happened.
    unsafe {
        if sys::lzma_microlzma_encoder(&mut strm, &opts) != sys::LZMA_OK {
            sys::lzma_end(&mut strm);
            return None;
        }
        strm.next_in = src.as_ptr();
        strm.avail_in = src.len();
        strm.next_out = dst.as_mut_ptr();
        strm.avail_out = dst.len();
        let ret = sys::lzma_code(&mut strm, sys::LZMA_FINISH);
        let done = (strm.total_in as usize, strm.total_out as usize);
        sys::lzma_end(&mut strm);
        (ret == sys::LZMA_STREAM_END && done.0 > 0).then_some(done)
    }
}

/// Decodes one MicroLZMA stream into exactly `dst.len()` bytes.
pub fn decode(src: &[u8], dst: &mut [u8]) -> bool {
    // SAFETY: the stream starts as LZMA_STREAM_INIT (all zeros); the decoder reads at most
    // `avail_in` bytes from `src` and writes at most `avail_out` into `dst`, both alive until
    // lzma_code returns, and lzma_end frees what it allocated whatever happened.
    unsafe {
        let mut strm: sys::lzma_stream = std::mem::zeroed();
        if sys::lzma_microlzma_decoder(&mut strm, src.len() as u64, dst.len() as u64, 1, DICT_SIZE)
            != sys::LZMA_OK
        {
            sys::lzma_end(&mut strm);
            return false;
        }
        strm.next_in = src.as_ptr();
        strm.avail_in = src.len();
        strm.next_out = dst.as_mut_ptr();
        strm.avail_out = dst.len();
        let ret = sys::lzma_code(&mut strm, sys::LZMA_FINISH);
        let wrote = strm.total_out;
        sys::lzma_end(&mut strm);
        ret == sys::LZMA_STREAM_END && wrote == dst.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_the_block_and_decodes_back() {
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| (i % 251) as u8 ^ (i / 977) as u8)
            .collect();
        let mut dst = vec![0u8; 4096];
        let (read, wrote) = compress_fill(&data, &mut dst, 6).unwrap();
        assert!(read > 4096 && wrote <= 4096, "{read} {wrote}");
        assert_ne!(dst[0], 0, "MicroLZMA never starts with a zero byte");

        let mut out = vec![0u8; read];
        assert!(decode(&dst[..wrote], &mut out));
        assert_eq!(out, data[..read]);
    }
}
