//! A check of the built eBPF objects: no load or store through the frame pointer (r10) at an
//! offset that is not a multiple of its width.
//!
//! The objects are compiled with `allows-misaligned-mem-access` (`build.rs`), so LLVM loads
//! and stores packet headers and map values in whole words instead of byte by byte: the
//! kernel allows misaligned packet and map-value accesses wherever the JIT handles them
//! (x86-64, arm64). Stack accesses it always checks strictly, and LLVM, now free to, may merge
//! two adjacent 4-byte stack stores at a 4-byte boundary into one 8-byte store the verifier
//! refuses at load time. This finds those at build time, with the function to fix. (Stack
//! accesses through a copy of r10 are left to the verifier, which every test that loads the
//! objects runs.)

use anyhow::{Context as _, Result};
use object::{
    Object as _, ObjectSection as _, ObjectSymbol as _, SectionFlags, SectionKind, SymbolKind, elf::SHF_EXECINSTR,
};

const FRAME_POINTER: u8 = 10;
/// `BPF_LD | BPF_IMM | BPF_DW`: the one instruction two slots long.
const LD_IMM64: u8 = 0x18;

/// One misaligned stack access: the function, the instruction's index in its section, and
/// what it does.
#[derive(Debug, PartialEq, Eq)]
pub struct Misaligned {
    pub function: String,
    pub insn: usize,
    pub what: String,
}

/// Every misaligned frame-pointer access in the ELF object `elf`.
pub fn misaligned(elf: &[u8]) -> Result<Vec<Misaligned>> {
    let obj = object::File::parse(elf).context("parsing the eBPF object")?;
    let mut found = Vec::new();
    for section in obj.sections() {
        let exec =
            matches!(section.flags(), SectionFlags::Elf { sh_flags } if sh_flags & u64::from(SHF_EXECINSTR) != 0);
        if section.kind() != SectionKind::Text && !exec {
            continue;
        }
        let code = section.data().context("reading a code section")?;
        let mut names: Vec<(u64, String)> = obj
            .symbols()
            .filter(|s| s.section_index() == Some(section.index()) && s.kind() == SymbolKind::Text)
            .filter_map(|s| Some((s.address(), s.name().ok()?.to_string())))
            .collect();
        names.sort();
        for (insn, what) in in_code(code) {
            let at = (insn * 8) as u64;
            let function = names
                .iter()
                .rev()
                .find(|(start, _)| *start <= at)
                .map_or_else(|| section.name().unwrap_or("?").to_string(), |(_, n)| n.clone());
            found.push(Misaligned { function, insn, what });
        }
    }
    Ok(found)
}

/// The misaligned frame-pointer accesses in one section's instructions: (index, description).
fn in_code(code: &[u8]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while (i + 1) * 8 <= code.len() {
        let insn = &code[i * 8..i * 8 + 8];
        let (op, regs) = (insn[0], insn[1]);
        let (dst, src) = (regs & 0x0f, regs >> 4);
        let off = i16::from_le_bytes([insn[2], insn[3]]);
        let width = match op & 0x18 {
            0x00 => 4,
            0x08 => 2,
            0x10 => 1,
            _ => 8,
        };
        // Class (low 3 bits) and mode (high 3 bits): LDX MEM / MEMSX through src; ST and STX
        // MEM (and STX ATOMIC) through dst.
        let (class, mode) = (op & 0x07, op & 0xe0);
        let through = match (class, mode) {
            (0x01, 0x60 | 0x80) => Some(src),
            (0x02, 0x60) | (0x03, 0x60 | 0xc0) => Some(dst),
            _ => None,
        };
        if through == Some(FRAME_POINTER) && i32::from(off) % width != 0 {
            let kind = if class == 0x01 { "load" } else { "store" };
            out.push((i, format!("{width}-byte {kind} at r10{off:+}")));
        }
        i += if op == LD_IMM64 { 2 } else { 1 };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insn(op: u8, dst: u8, src: u8, off: i16) -> [u8; 8] {
        let o = off.to_le_bytes();
        [op, (src << 4) | dst, o[0], o[1], 0, 0, 0, 0]
    }

    #[test]
    fn finds_only_misaligned_frame_pointer_accesses() {
        let code: Vec<u8> = [
            insn(0x7b, 10, 3, -108), // *(u64 *)(r10 - 108) = r3: misaligned
            insn(0x7b, 10, 3, -112), // *(u64 *)(r10 - 112) = r3
            insn(0x79, 1, 10, -9),   // r1 = *(u64 *)(r10 - 9): misaligned
            insn(0x61, 1, 10, -12),  // r1 = *(u32 *)(r10 - 12)
            insn(0x69, 1, 10, -3),   // r1 = *(u16 *)(r10 - 3): misaligned
            insn(0x71, 1, 10, -3),   // r1 = *(u8 *)(r10 - 3)
            insn(0x7b, 1, 3, -108),  // *(u64 *)(r1 - 108) = r3: not the frame pointer
            insn(0x62, 10, 0, -6),   // *(u32 *)(r10 - 6) = imm: misaligned
            insn(0x18, 10, 0, 0),    // r10 = imm64 (two slots: the next is its upper half)
            insn(0x7b, 10, 3, -108), // the upper half, not an instruction
        ]
        .concat();
        let got: Vec<usize> = in_code(&code).into_iter().map(|(i, _)| i).collect();
        assert_eq!(got, [0, 2, 4, 7]);
        assert_eq!(in_code(&code)[0].1, "8-byte store at r10-108");
    }
}
