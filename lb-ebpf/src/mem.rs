//! Memory helpers for BPF code generation.

/// Zeroes `n` 8-byte words at `p` (8-byte aligned) with volatile stores. `= [0; N]` becomes a
/// call to a byte-at-a-time `memset` on BPF (LLVM's BPF backend expands memcpy inline, not
/// memset); volatile stores are never merged back into one.
///
/// # Safety
/// `p` must be 8-byte aligned and valid for writes of `n` words.
#[inline(always)]
pub unsafe fn zero_words(p: *mut u64, n: usize) {
    for i in 0..n {
        // SAFETY: the caller guarantees `n` aligned, writable words at `p`.
        unsafe { core::ptr::write_volatile(p.add(i), 0) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroes_exactly_n_words() {
        let mut w = [u64::MAX; 4];
        unsafe { zero_words(w.as_mut_ptr(), 3) };
        assert_eq!(w, [0, 0, 0, u64::MAX]);
    }
}
