//! Finding the object's maps by name, and opening pinned ones, with errors that name them.

use std::path::Path;

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf,
    maps::{Map, MapData, MapError},
};

pub fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut Map> {
    ebpf.map_mut(name).ok_or_else(|| anyhow!("the eBPF object has no map {name}"))
}

pub fn map_ref<'a>(ebpf: &'a Ebpf, name: &str) -> Result<&'a Map> {
    ebpf.map(name).ok_or_else(|| anyhow!("the eBPF object has no map {name}"))
}

/// Whether a map call failed only because its key is not there: a lookup says so as
/// `KeyNotFound`, a deletion as the system call's ENOENT.
pub fn not_found(e: &MapError) -> bool {
    errno(e) == Some(libc::ENOENT) || matches!(e, MapError::KeyNotFound)
}

/// Whether an insert with `BPF_NOEXIST` failed because its key is there (EEXIST).
pub fn already_there(e: &MapError) -> bool {
    errno(e) == Some(libc::EEXIST)
}

fn errno(e: &MapError) -> Option<i32> {
    match e {
        MapError::SyscallError(s) => s.io_error.raw_os_error(),
        _ => None,
    }
}

pub fn pinned(path: &Path) -> Result<Map> {
    let data = MapData::from_pin(path).with_context(|| format!("opening pinned map {}", path.display()))?;
    Ok(Map::from_map_data(data)?)
}

/// The kernel's `bpf_attr` for the `BPF_MAP_*_BATCH` commands.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// Writes `values` into array map `name` from index `first` with `BPF_MAP_UPDATE_BATCH`: one
/// system call where `Array::set` makes one per entry (a 65,537-entry Maglev table took
/// about 150 ms that way, during which the daemon handled nothing else).
pub fn set_array_range<V: aya::Pod>(ebpf: &Ebpf, name: &str, first: u32, values: &[V]) -> Result<()> {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    let Map::Array(data) = map_ref(ebpf, name)? else { anyhow::bail!("map {name} is not an array") };
    let fd = data.info().and_then(|i| i.fd()).with_context(|| format!("a descriptor for map {name}"))?;
    let keys: Vec<u32> = (first..).take(values.len()).collect();
    let (mut done, mut stalls) = (0usize, 0);
    while done < values.len() {
        let mut attr = BatchAttr {
            keys: keys[done..].as_ptr() as u64,
            values: values[done..].as_ptr() as u64,
            count: u32::try_from(values.len() - done).context("batch too large")?,
            map_fd: fd.as_fd().as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` points at `keys` and `values`, both alive and at least `count`
        // entries long; the kernel reads them and writes back only `attr.count`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_BATCH,
                &mut attr as *mut BatchAttr,
                std::mem::size_of::<BatchAttr>() as u32,
            )
        };
        // On an error `count` says how many entries were written; an interrupted call goes on
        // from there.
        let err = std::io::Error::last_os_error();
        done += attr.count as usize;
        if rc < 0 && !matches!(err.raw_os_error(), Some(libc::EINTR | libc::EAGAIN)) {
            return Err(err).with_context(|| format!("writing {} entries of map {name} from {first}", values.len()));
        }
        if attr.count == 0 {
            stalls += 1;
            anyhow::ensure!(stalls < 100, "writing map {name} from {first}: the kernel made no progress");
        }
    }
    Ok(())
}
