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

/// A `T` with every byte zero, written as 8-byte volatile stores (see `zero_words`): building
/// a value with a zeroed array field otherwise calls `memset`.
///
/// # Safety
/// All-zero bytes must be a valid `T` (plain data).
#[inline(always)]
pub unsafe fn zeroed<T>() -> T {
    const { assert!(core::mem::align_of::<T>() >= 8 && core::mem::size_of::<T>().is_multiple_of(8)) };
    let mut v = core::mem::MaybeUninit::<T>::uninit();
    // SAFETY: `v` is aligned to 8 and a whole number of words long (checked above).
    unsafe {
        zero_words(v.as_mut_ptr().cast(), core::mem::size_of::<T>() / 8);
        v.assume_init()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[repr(C, align(8))]
    struct Plain {
        a: u64,
        b: [u8; 16],
    }

    #[test]
    fn zeroed_is_all_zero() {
        let p: Plain = unsafe { zeroed() };
        assert_eq!((p.a, p.b), (0, [0; 16]));
    }

    #[test]
    fn zeroes_exactly_n_words() {
        let mut w = [u64::MAX; 4];
        unsafe { zero_words(w.as_mut_ptr(), 3) };
        assert_eq!(w, [0, 0, 0, u64::MAX]);
    }
}
