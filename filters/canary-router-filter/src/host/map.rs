//! Header maps (and map-valued properties) in the host's serialization: `count: u32`,
//! `count × (key_len: u32, value_len: u32)`, then each `key \0 value \0`; all little-endian.
//! Read in place, never copied pair by pair.

use super::HeaderPairs;

/// All pairs of a header map, kept in the host's serialization.
pub struct HeaderMap {
    buf: Vec<u8>,
}

impl HeaderPairs for HeaderMap {
    type At = PairAt;

    fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        HeaderMap::pairs(self)
    }

    fn index(&self) -> Vec<PairAt> {
        HeaderMap::index(self)
    }

    fn name_len(&self, at: &PairAt) -> usize {
        at.name_len
    }

    fn name(&self, at: &PairAt) -> &[u8] {
        HeaderMap::name(self, at)
    }

    fn value(&self, at: &PairAt) -> &[u8] {
        HeaderMap::value(self, at)
    }
}

impl HeaderMap {
    /// A map in the host's serialization (from `proxy_get_header_map_pairs` or a property).
    pub fn from_bytes(buf: Vec<u8>) -> HeaderMap {
        HeaderMap { buf }
    }

    /// The `(name, value)` pairs; stops early (safely) if the buffer is malformed.
    pub fn pairs(&self) -> Pairs<'_> {
        let count = read_u32(&self.buf, 0).unwrap_or(0);
        // Data starts after the count and the size table; a count too large for the buffer
        // makes `data` fail on first use and ends the iteration.
        let data = (count as usize).saturating_mul(8).saturating_add(4);
        Pairs {
            buf: &self.buf,
            count,
            n: 0,
            data,
        }
    }

    /// The position of every pair, for repeated lookups.
    pub fn index(&self) -> Vec<PairAt> {
        let mut out = Vec::with_capacity(read_u32(&self.buf, 0).unwrap_or(0).min(256) as usize);
        let mut pairs = self.pairs();
        loop {
            let data = pairs.data;
            let Some((name, value)) = pairs.next() else {
                break;
            };
            out.push(PairAt {
                name_len: name.len(),
                name_start: data,
                value_start: data + name.len() + 1,
                value_len: value.len(),
            });
        }
        out
    }

    pub fn name(&self, at: &PairAt) -> &[u8] {
        self.buf
            .get(at.name_start..at.name_start + at.name_len)
            .unwrap_or_default()
    }

    pub fn value(&self, at: &PairAt) -> &[u8] {
        self.buf
            .get(at.value_start..at.value_start + at.value_len)
            .unwrap_or_default()
    }
}

/// Where one pair of a [`HeaderMap`] lies in its buffer.
#[derive(Clone, Copy)]
pub struct PairAt {
    pub name_len: usize,
    name_start: usize,
    value_start: usize,
    value_len: usize,
}

pub struct Pairs<'a> {
    buf: &'a [u8],
    count: u32,
    n: u32,
    data: usize,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.n >= self.count {
            return None;
        }
        let entry = 4 + 8 * self.n as usize;
        let key_len = read_u32(self.buf, entry)? as usize;
        let value_len = read_u32(self.buf, entry + 4)? as usize;
        let key_end = self.data.checked_add(key_len)?;
        let key = self.buf.get(self.data..key_end)?;
        let value_start = key_end + 1;
        let value_end = value_start.checked_add(value_len)?;
        let value = self.buf.get(value_start..value_end)?;
        self.data = value_end + 1;
        self.n += 1;
        Some((key, value))
    }
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// Serializes pairs in the host's map encoding (the inverse of [`HeaderMap`]).
pub fn serialize<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&len(pairs.len()));
    for (k, v) in pairs {
        out.extend_from_slice(&len(k.as_ref().len()));
        out.extend_from_slice(&len(v.as_ref().len()));
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}
