//! Finding plugin configurations in a file: a plain configuration, mesh manifests (Istio
//! `WasmPlugin` and `TrafficExtension`, Envoy Gateway `EnvoyExtensionPolicy`, Kuma
//! `MeshProxyPatch`), or Envoy configuration holding the Wasm HTTP filter; JSON or
//! (multi-document) YAML.

use serde::Deserialize;
use serde_json::Value;

/// `@type` of the Envoy Wasm HTTP filter configuration.
pub const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
/// Envoy's dynamic-module HTTP filter: ours when its `filter_name` is [`NATIVE_FILTER_NAME`].
pub const DYNAMIC_MODULE_TYPE: &str =
    "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter";
/// The native module's filter name (README "Native module").
pub const NATIVE_FILTER_NAME: &str = "canary-router";
/// `@type` of a `configuration` holding the plugin configuration as a string.
const STRING_VALUE_TYPE: &str = "type.googleapis.com/google.protobuf.StringValue";

/// One plugin configuration found in a file.
#[derive(Debug)]
pub struct Found {
    /// Where in the file (`WasmPlugin reviews-canary: spec.pluginConfig`); empty when the file
    /// is the configuration itself.
    pub location: String,
    /// The configuration as the filter receives it (JSON), or why it cannot be extracted.
    pub json: Result<Vec<u8>, String>,
}

/// What a file holds.
#[derive(Debug, Default)]
pub struct Contents {
    pub configs: Vec<Found>,
    /// Documents that were skipped (`Service reviews (no plugin configuration)`).
    pub skipped: Vec<String>,
}

/// Parses `bytes` (the file `name`) and finds every plugin configuration in it. `Err`: the file
/// is not JSON or YAML, or holds nothing to validate.
pub fn load(name: &str, bytes: &[u8]) -> Result<Contents, String> {
    let (docs, json) = documents(name, bytes)?;
    let multi = docs.iter().filter(|(_, v)| !v.is_null()).count() > 1;
    let mut out = Contents::default();
    for (number, doc) in &docs {
        if doc.is_null() {
            continue;
        }
        // Where the document is, for documents that have no name of their own.
        let prefix = if multi {
            format!("document {number}: ")
        } else {
            String::new()
        };
        // A plain configuration in a JSON file goes to the core byte for byte, so that error
        // positions (line, column) are the file's own.
        let original = json.then_some(bytes);
        classify(doc, &prefix, original, &mut out);
    }
    if out.configs.is_empty() {
        let mut msg = format!(
            "nothing to validate: no plugin configuration (an object with \"policies\"), \
             Istio WasmPlugin or TrafficExtension, Envoy Gateway EnvoyExtensionPolicy, Kuma \
             MeshProxyPatch or Envoy Wasm filter ({WASM_TYPE}) found"
        );
        if docs.iter().any(|(_, d)| mentions(d, "config_discovery")) {
            msg.push_str(
                "; the filter's configuration is delivered by config_discovery (ECDS): \
                 validate the file that holds the extension config",
            );
        }
        return Err(msg);
    }
    Ok(out)
}

/// The documents of a file, numbered from 1: one for JSON, one or more for YAML; and whether
/// the file is JSON.
type Documents = (Vec<(usize, Value)>, bool);

fn documents(name: &str, bytes: &[u8]) -> Result<Documents, String> {
    let json_name = name.to_ascii_lowercase().ends_with(".json");
    if json_name || is_json(bytes) {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(v) => return Ok((vec![(1, v)], true)),
            Err(e) if json_name => return Err(format!("invalid JSON: {e}")),
            // `{a: 1}` is YAML (flow style); if it is not YAML either, the JSON error is the
            // more useful one.
            Err(e) => {
                return yaml_documents(bytes)
                    .map(|docs| (docs, false))
                    .map_err(|_| format!("invalid JSON: {e}"))
            }
        }
    }
    yaml_documents(bytes).map(|docs| (docs, false))
}

fn yaml_documents(bytes: &[u8]) -> Result<Vec<(usize, Value)>, String> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml::Deserializer::from_slice(bytes).enumerate() {
        match Value::deserialize(de) {
            Ok(v) => docs.push((i + 1, v)),
            Err(e) => return Err(format!("invalid YAML: {e}")),
        }
    }
    Ok(docs)
}

fn is_json(bytes: &[u8]) -> bool {
    let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    matches!(
        text.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

/// Finds the configurations in one document.
fn classify(doc: &Value, prefix: &str, original: Option<&[u8]>, out: &mut Contents) {
    let kind = doc.get("kind").and_then(Value::as_str);
    let api = doc.get("apiVersion").and_then(Value::as_str);
    if let (Some(kind), Some(api)) = (kind, api) {
        // A Kubernetes resource is named by its kind and name.
        let resource = match doc.pointer("/metadata/name").and_then(Value::as_str) {
            Some(name) => format!("{kind} {name}"),
            None => format!("{prefix}{kind} (unnamed)"),
        };
        if kind == "WasmPlugin" && api.starts_with("extensions.istio.io/") {
            // Istio sends the pluginConfig Struct as JSON; none at all is an empty configuration.
            out.configs.push(Found {
                location: format!("{resource}: spec.pluginConfig"),
                json: struct_json(doc.pointer("/spec/pluginConfig")),
            });
            return;
        }
        let before = out.configs.len();
        if kind == "TrafficExtension" && api.starts_with("extensions.istio.io/") {
            // Istio 1.30's successor of WasmPlugin: the same Struct, under spec.wasm (a Lua
            // TrafficExtension has none and is not ours).
            if let Some(wasm) = doc.pointer("/spec/wasm") {
                out.configs.push(Found {
                    location: format!("{resource}: spec.wasm.pluginConfig"),
                    json: struct_json(wasm.get("pluginConfig")),
                });
                return;
            }
            // A WasmPlugin whose kind was changed and nothing else: Kubernetes would prune
            // these fields (the CRD does not know them at spec) and the plugin would never load.
            let misplaced = ["pluginConfig", "url"]
                .into_iter()
                .find(|f| doc.pointer(&format!("/spec/{f}")).is_some());
            if let Some(field) = misplaced {
                out.configs.push(Found {
                    location: format!("{resource}: spec.{field}"),
                    json: Err(format!(
                        "a TrafficExtension holds its Wasm plugin under spec.wasm \
                         (spec.wasm.url, spec.wasm.pluginConfig, …); at spec.{field} it is not \
                         part of the resource and Kubernetes drops it"
                    )),
                });
                return;
            }
        }
        if kind == "EnvoyExtensionPolicy" && api.starts_with("gateway.envoyproxy.io/") {
            // Envoy Gateway passes each spec.wasm[i].config to its filter as JSON.
            let modules = doc.pointer("/spec/wasm").and_then(Value::as_array);
            for (i, wasm) in modules.into_iter().flatten().enumerate() {
                out.configs.push(Found {
                    location: format!("{resource}: spec.wasm[{i}].config"),
                    json: struct_json(wasm.get("config")),
                });
            }
            // And each spec.dynamicModule[i].config of the native module (other modules'
            // configurations are not ours).
            let natives = doc.pointer("/spec/dynamicModule").and_then(Value::as_array);
            for (i, m) in natives.into_iter().flatten().enumerate() {
                if m.get("filterName").and_then(Value::as_str) == Some(NATIVE_FILTER_NAME) {
                    out.configs.push(Found {
                        location: format!("{resource}: spec.dynamicModule[{i}].config"),
                        json: struct_json(m.get("config")),
                    });
                }
            }
        }
        if kind == "MeshProxyPatch" && api.starts_with("kuma.io/") {
            // Kuma's httpFilter modification holds the Envoy filter as a YAML string.
            let mods = doc
                .pointer("/spec/default/appendModifications")
                .and_then(Value::as_array);
            for (i, m) in mods.into_iter().flatten().enumerate() {
                let Some(text) = m.pointer("/httpFilter/value").and_then(Value::as_str) else {
                    continue;
                };
                let at =
                    format!("{resource}: spec.default.appendModifications[{i}].httpFilter.value");
                match yaml_documents(text.as_bytes()) {
                    Ok(filters) => {
                        for (_, filter) in filters {
                            find_wasm(&filter, &format!("{at}: "), out);
                        }
                    }
                    Err(e) => out.configs.push(Found {
                        location: at,
                        json: Err(e),
                    }),
                }
            }
        }
        // Other resources (an EnvoyFilter, say) may still embed the Envoy Wasm filter.
        find_wasm(doc, &format!("{resource}: "), out);
        if out.configs.len() == before {
            out.skipped
                .push(format!("{resource} (no plugin configuration)"));
        }
        return;
    }
    let plain = doc.as_object().is_some_and(|o| {
        ["policies", "variant_header", "expose_variant"]
            .iter()
            .any(|k| o.contains_key(*k))
    });
    if plain {
        let json = match original {
            Some(bytes) => Ok(bytes.to_vec()),
            None => serde_json::to_vec(doc).map_err(|e| e.to_string()),
        };
        out.configs.push(Found {
            location: prefix.trim_end_matches(": ").to_string(),
            json,
        });
        return;
    }
    find_wasm(doc, prefix, out);
}

/// A configuration written as a YAML/JSON object in a manifest, as the mesh hands it to the
/// filter: serialized to JSON; none at all is an empty configuration.
fn struct_json(config: Option<&Value>) -> Result<Vec<u8>, String> {
    match config {
        Some(config) => serde_json::to_vec(config).map_err(|e| e.to_string()),
        None => Ok(Vec::new()),
    }
}

/// Every Envoy Wasm filter configuration in `doc`, located by JSON path after `prefix`.
fn find_wasm(doc: &Value, prefix: &str, out: &mut Contents) {
    let mut found = Vec::new();
    walk(doc, &mut String::new(), &mut found);
    for (path, wasm) in found {
        let native = wasm.get("@type").and_then(Value::as_str) == Some(DYNAMIC_MODULE_TYPE);
        let field = if native {
            "filter_config.value"
        } else {
            "config.configuration.value"
        };
        let location = if path.is_empty() {
            format!("{prefix}{field}")
        } else {
            format!("{prefix}{path}.{field}")
        };
        out.configs.push(Found {
            location,
            json: if native {
                string_value(wasm.get("filter_config"))
            } else {
                wasm_configuration(wasm)
            },
        });
    }
}

fn walk<'a>(v: &'a Value, path: &mut String, found: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(map) => {
            let t = map.get("@type").and_then(Value::as_str);
            let native = t == Some(DYNAMIC_MODULE_TYPE)
                && map.get("filter_name").and_then(Value::as_str) == Some(NATIVE_FILTER_NAME);
            if t == Some(WASM_TYPE) || native {
                found.push((path.clone(), v));
                return;
            }
            for (k, child) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                if k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                {
                    path.push_str(k);
                } else {
                    path.push_str(&Value::from(k.as_str()).to_string());
                }
                walk(child, path, found);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                walk(child, path, found);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// The plugin configuration of an Envoy Wasm filter, as Envoy hands it to the filter: the
/// string in `config.configuration` (a `google.protobuf.StringValue`); none is empty.
fn wasm_configuration(wasm: &Value) -> Result<Vec<u8>, String> {
    string_value(wasm.pointer("/config/configuration"))
}

/// The JSON held by a `google.protobuf.StringValue` (the Wasm filter's `configuration`, the
/// native module's `filter_config`); empty if absent.
fn string_value(configuration: Option<&Value>) -> Result<Vec<u8>, String> {
    let Some(configuration) = configuration else {
        return Ok(Vec::new());
    };
    if let Some(t) = configuration.get("@type").and_then(Value::as_str) {
        if t != STRING_VALUE_TYPE {
            return Err(format!(
                "\"@type\" is {t:?}; the plugin configuration is read from a {STRING_VALUE_TYPE} holding JSON"
            ));
        }
    }
    match configuration.get("value") {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(_) => Err("must be a string holding the JSON plugin configuration".into()),
    }
}

/// Whether an object key `key` occurs anywhere in `v`.
fn mentions(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(map) => map.contains_key(key) || map.values().any(|c| mentions(c, key)),
        Value::Array(items) => items.iter().any(|c| mentions(c, key)),
        _ => false,
    }
}
