//! JSON paths for parse errors, without a path-tracking deserializer.
//!
//! serde_json reports where in the text an error happened (line and column). [`parse`] turns
//! that position into the path of the value being read there (`policies[0].variants[1].weight`)
//! by scanning the text once, on the error path only. This keeps the per-type code that a
//! path-tracking wrapper would generate out of the Wasm module.

use serde::de::DeserializeOwned;

use crate::error::ConfigErrors;

/// Deserializes `json`; an error names the JSON path where it happened, prefixed by `base`
/// (`(config)` for the root when `base` is empty).
pub fn parse<T: DeserializeOwned>(json: &[u8], base: &str) -> Result<T, ConfigErrors> {
    serde_json::from_slice(json).map_err(|e| error_at(json, &e, base))
}

/// Deserializes an already parsed value, naming the path of an error as [`parse`] does.
pub fn from_value<T: DeserializeOwned>(
    value: &serde_json::Value,
    base: &str,
) -> Result<T, ConfigErrors> {
    T::deserialize(value).map_err(|_| {
        // Only on error: write the value out and read it again for a position.
        let text = value.to_string();
        match serde_json::from_str::<T>(&text) {
            Err(e) => error_at(text.as_bytes(), &e, base),
            Ok(_) => ConfigErrors::single(join(base, ""), "invalid value"),
        }
    })
}

fn error_at(json: &[u8], e: &serde_json::Error, base: &str) -> ConfigErrors {
    use serde_json::error::Category;
    let message = e.to_string();
    match e.classify() {
        // Truncated text: nothing inside it is to blame, the document is.
        Category::Eof => ConfigErrors::single(join(base, ""), message),
        // Malformed JSON: the path and the line/column both help.
        Category::Syntax | Category::Io => ConfigErrors::single(
            join(base, &path_at(json, offset(json, e.line(), e.column()))),
            message,
        ),
        // A value of the wrong shape: its path says it all.
        Category::Data => {
            let path = path_at(json, offset(json, e.line(), e.column()));
            let message = match message.rfind(" at line ") {
                Some(i) => message.get(..i).unwrap_or(&message).to_string(),
                None => message,
            };
            ConfigErrors::single(join(base, &path), message)
        }
    }
}

fn join(base: &str, path: &str) -> String {
    match (base.is_empty(), path.is_empty()) {
        (true, true) => "(config)".to_string(),
        (true, false) => path.to_string(),
        (false, true) => base.to_string(),
        (false, false) if path.starts_with('[') => format!("{base}{path}"),
        (false, false) => format!("{base}.{path}"),
    }
}

/// Byte offset of a 1-based line and column (serde_json counts columns in bytes).
fn offset(json: &[u8], line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match json
            .get(start..)
            .and_then(|rest| rest.iter().position(|b| *b == b'\n'))
        {
            Some(nl) => start += nl + 1,
            None => return json.len(),
        }
    }
    (start + column).min(json.len())
}

enum Frame {
    Object { key: Option<String>, in_value: bool },
    Array { index: usize },
}

/// The path of the innermost value open at byte `offset` of `json`.
pub fn path_at(json: &[u8], offset: usize) -> String {
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    let end = offset.min(json.len());
    while i < end {
        let Some(&b) = json.get(i) else { break };
        match b {
            b'{' => stack.push(Frame::Object {
                key: None,
                in_value: false,
            }),
            b'[' => stack.push(Frame::Array { index: 0 }),
            b'}' | b']' => {
                stack.pop();
            }
            b':' => {
                if let Some(Frame::Object { in_value, .. }) = stack.last_mut() {
                    *in_value = true;
                }
            }
            b',' => match stack.last_mut() {
                Some(Frame::Array { index }) => *index += 1,
                Some(Frame::Object { key, in_value }) => {
                    *key = None;
                    *in_value = false;
                }
                None => {}
            },
            b'"' => {
                let (s, next) = read_string(json, i + 1);
                if let Some(Frame::Object {
                    key,
                    in_value: false,
                }) = stack.last_mut()
                {
                    *key = Some(s);
                }
                i = next;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    let mut path = String::new();
    for frame in &stack {
        match frame {
            Frame::Object { key: Some(k), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
            }
            Frame::Object { key: None, .. } => {}
            Frame::Array { index } => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

/// The string starting after an opening quote at `start` (escapes kept simple: `\x` → `x`),
/// and the index after its closing quote.
fn read_string(json: &[u8], start: usize) -> (String, usize) {
    let mut out = Vec::new();
    let mut i = start;
    while let Some(&b) = json.get(i) {
        match b {
            b'"' => return (String::from_utf8_lossy(&out).into_owned(), i + 1),
            b'\\' => {
                if let Some(&next) = json.get(i + 1) {
                    out.push(next);
                }
                i += 2;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), json.len())
}
