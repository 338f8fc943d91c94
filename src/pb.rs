//! A minimal protobuf reader for route metadata.
//!
//! Envoy hands a route's metadata to Wasm as a serialized `envoy.config.core.v3.Metadata`
//! (property `xds.route_metadata`). Only `filter_metadata` (a map of `google.protobuf.Struct`)
//! is read; everything else is skipped. Decoding is bounded: malformed input is an error,
//! never a panic, and nesting is limited to [`MAX_DEPTH`].

use serde_json::{Map, Number, Value};

/// Deepest nesting of structs and lists accepted (the namespace's own struct is level 1).
pub const MAX_DEPTH: usize = 32;

/// `metadata.filter_metadata[namespace]` as JSON, `None` if the namespace is absent.
pub fn filter_metadata(metadata: &[u8], namespace: &str) -> Result<Option<Value>, String> {
    let mut r = Reader::new(metadata);
    let mut found = None;
    while let Some((field, wire)) = r.field()? {
        // Metadata.filter_metadata = 1: map<string, Struct>, entries {key = 1, value = 2}.
        if let (1, Wire::Bytes(entry)) = (field, wire) {
            let mut key = None;
            let mut value = None;
            let mut e = Reader::new(entry);
            while let Some((f, w)) = e.field()? {
                match (f, w) {
                    (1, Wire::Bytes(k)) => key = Some(k),
                    (2, Wire::Bytes(v)) => value = Some(v),
                    _ => {}
                }
            }
            if key == Some(namespace.as_bytes()) {
                found = Some(decode_struct(value.unwrap_or_default(), 0)?);
            }
        }
    }
    Ok(found)
}

#[derive(Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        let bytes = self.buf.get(self.pos..end).ok_or("truncated field")?;
        self.pos = end;
        Ok(bytes)
    }

    /// The next field number and value, `None` at the end.
    fn field(&mut self) -> Result<Option<(u64, Wire<'a>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let wire = match tag & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => {
                let b = self.take(8)?;
                Wire::Fixed64(u64::from_le_bytes(b.try_into().map_err(|_| "fixed64")?))
            }
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| "length overflow")?;
                Wire::Bytes(self.take(n)?)
            }
            5 => {
                self.take(4)?;
                Wire::Fixed32
            }
            t => return Err(format!("unsupported wire type {t}")),
        };
        Ok(Some((tag >> 3, wire)))
    }
}

/// google.protobuf.Struct: fields = 1, map<string, Value>.
/// `depth`: the number of structs and lists around this one.
fn decode_struct(bytes: &[u8], depth: usize) -> Result<Value, String> {
    if depth + 1 > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH}"));
    }
    let mut map = Map::new();
    let mut r = Reader::new(bytes);
    while let Some((field, wire)) = r.field()? {
        if let (1, Wire::Bytes(entry)) = (field, wire) {
            let mut key = String::new();
            let mut value = Value::Null;
            let mut e = Reader::new(entry);
            while let Some((f, w)) = e.field()? {
                match (f, w) {
                    (1, Wire::Bytes(k)) => {
                        key = String::from_utf8(k.to_vec()).map_err(|_| "key is not UTF-8")?
                    }
                    (2, Wire::Bytes(v)) => value = decode_value(v, depth + 1)?,
                    _ => {}
                }
            }
            map.insert(key, value);
        }
    }
    Ok(Value::Object(map))
}

/// google.protobuf.Value: null = 1, number = 2, string = 3, bool = 4, struct = 5, list = 6.
/// `depth`: the number of structs and lists around this value.
fn decode_value(bytes: &[u8], depth: usize) -> Result<Value, String> {
    let mut value = Value::Null;
    let mut r = Reader::new(bytes);
    while let Some((field, wire)) = r.field()? {
        value = match (field, wire) {
            (1, _) => Value::Null,
            (2, Wire::Fixed64(bits)) => Number::from_f64(f64::from_bits(bits))
                .map(Value::Number)
                .ok_or("number is not finite")?,
            (3, Wire::Bytes(s)) => {
                Value::String(String::from_utf8(s.to_vec()).map_err(|_| "string is not UTF-8")?)
            }
            (4, Wire::Varint(b)) => Value::Bool(b != 0),
            (5, Wire::Bytes(s)) => decode_struct(s, depth)?,
            (6, Wire::Bytes(list)) => {
                if depth + 1 > MAX_DEPTH {
                    return Err(format!("nested deeper than {MAX_DEPTH}"));
                }
                let mut items = Vec::new();
                let mut l = Reader::new(list);
                while let Some((f, w)) = l.field()? {
                    if let (1, Wire::Bytes(item)) = (f, w) {
                        items.push(decode_value(item, depth + 1)?);
                    }
                }
                Value::Array(items)
            }
            _ => value,
        };
    }
    Ok(value)
}
