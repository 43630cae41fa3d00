//! First-fit allocator over the `lb_tables` pool: each service's table slices live in it.

use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub struct Pool {
    /// Free ranges (offset → length), non-adjacent.
    free: BTreeMap<u32, u32>,
}

impl Pool {
    pub fn new(size: u32) -> Self {
        Self { free: BTreeMap::from([(0, size)]) }
    }

    pub fn alloc(&mut self, len: u32) -> Option<u32> {
        if len == 0 {
            return Some(0);
        }
        let (&off, &flen) = self.free.iter().find(|(_, l)| **l >= len)?;
        self.free.remove(&off);
        if flen > len {
            self.free.insert(off + len, flen - len);
        }
        Some(off)
    }

    pub fn free(&mut self, off: u32, len: u32) {
        if len == 0 {
            return;
        }
        let (mut off, mut len) = (off, len);
        if let Some((&p, &pl)) = self.free.range(..off).next_back()
            && p + pl == off
        {
            self.free.remove(&p);
            off = p;
            len += pl;
        }
        if let Some(&nl) = self.free.get(&(off + len)) {
            self.free.remove(&(off + len));
            len += nl;
        }
        self.free.insert(off, len);
    }

    /// Marks a range found in adopted maps as used.
    pub fn reserve(&mut self, off: u32, len: u32) {
        if len == 0 {
            return;
        }
        let Some((&f, &fl)) = self.free.range(..=off).next_back() else { return };
        if f + fl < off + len {
            return;
        }
        self.free.remove(&f);
        if off > f {
            self.free.insert(f, off - f);
        }
        if f + fl > off + len {
            self.free.insert(off + len, f + fl - off - len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_allocates_frees_and_merges() {
        let mut p = Pool::new(100);
        let a = p.alloc(30).unwrap();
        let b = p.alloc(30).unwrap();
        let c = p.alloc(30).unwrap();
        assert_eq!((a, b, c), (0, 30, 60));
        assert_eq!(p.alloc(20), None);
        p.free(b, 30);
        p.free(a, 30);
        assert_eq!(p.alloc(60), Some(0), "freed neighbours merge");
        p.free(0, 60);
        p.free(c, 30);
        assert_eq!(p.free, BTreeMap::from([(0, 100)]));
        let mut q = Pool::new(100);
        q.reserve(40, 10);
        assert_eq!(q.free, BTreeMap::from([(0, 40), (50, 50)]));
    }
}
