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

/// Copies an `N`-byte array in the widest accesses that fit (8, 4, 2, then 1 bytes): an array
/// assignment is `N` byte copies on BPF, whatever the target allows. The accesses are
/// unaligned, single instructions where the object allows misaligned accesses (xtask's
/// `build.rs`); the verifier allows them on packet and map memory, not on the stack, so
/// neither side may be a stack variable at an odd offset (xtask's `stack_align` checks).
#[inline(always)]
pub fn copy<const N: usize>(to: &mut [u8; N], from: &[u8; N]) {
    let (t, f) = (to.as_mut_ptr(), from.as_ptr());
    let mut i = 0;
    // SAFETY (every access): within the `N` bytes of both arrays; unaligned accesses.
    unsafe {
        while i + 8 <= N {
            t.add(i).cast::<u64>().write_unaligned(f.add(i).cast::<u64>().read_unaligned());
            i += 8;
        }
        if i + 4 <= N {
            t.add(i).cast::<u32>().write_unaligned(f.add(i).cast::<u32>().read_unaligned());
            i += 4;
        }
        if i + 2 <= N {
            t.add(i).cast::<u16>().write_unaligned(f.add(i).cast::<u16>().read_unaligned());
            i += 2;
        }
        if i < N {
            *t.add(i) = *f.add(i);
        }
    }
}

/// The first 4 of an address field's 16 bytes: an IPv4 address, as the keys store it.
#[inline(always)]
pub fn ipv4_part(a: &[u8; 16]) -> &[u8; 4] {
    // SAFETY: 4 of the array's 16 bytes, same alignment (1).
    unsafe { &*a.as_ptr().cast::<[u8; 4]>() }
}

/// Whether two 16-byte addresses are equal, in two word comparisons: `==` on arrays is a
/// `bcmp` call, which BPF programs cannot make. The loads are unaligned, as in `copy`.
#[inline(always)]
pub fn same_addr(a: &[u8; 16], b: &[u8; 16]) -> bool {
    let (a, b) = (a.as_ptr().cast::<u64>(), b.as_ptr().cast::<u64>());
    // SAFETY: both are 16 readable bytes; unaligned reads.
    unsafe { a.read_unaligned() == b.read_unaligned() && a.add(1).read_unaligned() == b.add(1).read_unaligned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_addr_compares_all_sixteen_bytes() {
        let a: [u8; 16] = core::array::from_fn(|i| i as u8);
        assert!(same_addr(&a, &a.clone()));
        for i in 0..16 {
            let mut b = a;
            b[i] ^= 0x80;
            assert!(!same_addr(&a, &b), "byte {i}");
        }
    }

    #[repr(C, align(8))]
    struct Plain {
        a: u64,
        b: [u8; 16],
    }

    #[test]
    fn the_ipv4_part_is_the_first_four_bytes() {
        let a: [u8; 16] = core::array::from_fn(|i| i as u8 + 1);
        assert_eq!(ipv4_part(&a), &[1, 2, 3, 4]);
    }

    #[test]
    fn zeroed_is_all_zero() {
        let p: Plain = unsafe { zeroed() };
        assert_eq!((p.a, p.b), (0, [0; 16]));
    }

    #[test]
    fn copy_copies_every_byte_at_every_width() {
        fn check<const N: usize>() {
            let from: [u8; N] = core::array::from_fn(|i| i as u8 + 1);
            let mut to = [0u8; N];
            copy(&mut to, &from);
            assert_eq!(to, from);
        }
        check::<1>();
        check::<2>();
        check::<4>();
        check::<6>();
        check::<7>();
        check::<16>();
        check::<23>();
    }

    #[test]
    fn zeroes_exactly_n_words() {
        let mut w = [u64::MAX; 4];
        unsafe { zero_words(w.as_mut_ptr(), 3) };
        assert_eq!(w, [0, 0, 0, u64::MAX]);
    }
}
