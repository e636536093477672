//! CRC-32 (IEEE 802.3, reflected polynomial `0xEDB88320`, init and final XOR `0xFFFFFFFF`),
//! the checksum in the image header. On a microcontroller: a nibble table, 64 bytes of flash. On a
//! host (`std`): `crc32fast` (carry-less multiply where the CPU has it, slicing tables
//! otherwise), the same function ~50x faster, so validating a 1 MB image costs well under a
//! millisecond of start-up. The tests check the two agree.

const TABLE: [u32; 16] = {
    let mut t = [0u32; 16];
    let mut i = 0;
    while i < 16 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 4 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

/// A running CRC-32 over several byte slices.
#[derive(Debug, Clone, Copy)]
pub struct Crc32(u32);

impl Default for Crc32 {
    fn default() -> Self {
        Self::new()
    }
}

impl Crc32 {
    /// Starts a new checksum.
    pub const fn new() -> Self {
        Crc32(0xFFFF_FFFF)
    }

    /// Feeds bytes.
    #[cfg_attr(target_os = "linux", link_section = ".text.hot.edgeloop")]
    pub fn update(&mut self, bytes: &[u8]) {
        #[cfg(feature = "std")]
        {
            // crc32fast's state is the finished checksum so far; ours the raw register.
            let mut h = crc32fast::Hasher::new_with_initial(!self.0);
            h.update(bytes);
            self.0 = !h.finalize();
        }
        #[cfg(not(feature = "std"))]
        self.update_nibbles(bytes);
    }

    /// Feeds bytes through the nibble table (the microcontroller's implementation).
    #[cfg_attr(feature = "std", allow(dead_code))]
    fn update_nibbles(&mut self, bytes: &[u8]) {
        let mut c = self.0;
        for &b in bytes {
            c ^= b as u32;
            c = (c >> 4) ^ TABLE[(c & 0xF) as usize];
            c = (c >> 4) ^ TABLE[(c & 0xF) as usize];
        }
        self.0 = c;
    }

    /// The checksum of everything fed so far.
    pub const fn finish(self) -> u32 {
        !self.0
    }
}

/// CRC-32 of one slice.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut c = Crc32::new();
    c.update(bytes);
    c.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_check_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn streaming_equals_one_shot() {
        let data: [u8; 100] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        let mut c = Crc32::new();
        c.update(&data[..33]);
        c.update(&data[33..]);
        assert_eq!(c.finish(), crc32(&data));
    }

    #[test]
    fn host_and_microcontroller_implementations_agree() {
        // Pseudo-random lengths (0..5000, odd splits) and bytes: the nibble table against
        // whatever `update` uses on this build.
        let mut x = 0x9E37_79B9u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..200 {
            let len = (next() % 5000) as usize;
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let split = if len == 0 { 0 } else { next() as usize % len };
            let mut fast = Crc32::new();
            fast.update(&data[..split]);
            fast.update(&data[split..]);
            let mut table = Crc32::new();
            table.update_nibbles(&data[..split]);
            table.update_nibbles(&data[split..]);
            assert_eq!(fast.finish(), table.finish(), "len {len} split {split}");
        }
    }
}
