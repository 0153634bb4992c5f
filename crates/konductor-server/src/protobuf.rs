//! Just enough of Kubernetes' protobuf encoding to accept what kubectl's typed clients
//! send: `kubectl create namespace X` and `kubectl create configmap X` post a protobuf
//! `Namespace` or `ConfigMap` (`application/vnd.kubernetes.protobuf`), which this module
//! turns into JSON.
//!
//! The envelope is the magic `k8s\0` followed by a `runtime.Unknown` message
//! (`typeMeta` = 1, `raw` = 2); `raw` holds the object. Only metadata (name,
//! generateName, namespace, labels, annotations, finalizers), a Namespace's
//! `spec.finalizers` and a ConfigMap's `data`, `binaryData` and `immutable` are decoded;
//! other kinds are refused with 415 naming the kind (`kubectl apply -f` sends JSON).

use serde_json::{Map, Value, json};

use crate::error::{ApiError, Result};

/// The Kubernetes protobuf media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

/// One protobuf field: its number and its raw value.
enum Field<'a> {
    /// A varint (a bool, for what is read here).
    Varint(u64),
    /// A fixed-width number (never needed here, so not kept).
    Fixed,
    /// A length-delimited value: a string, bytes or an embedded message.
    Bytes(&'a [u8]),
}

/// Iterates the fields of one protobuf message.
struct Fields<'a> {
    data: &'a [u8],
}

fn malformed() -> ApiError {
    ApiError::BadRequest("the protobuf request body is malformed".into())
}

fn varint(data: &mut &[u8]) -> Result<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = data.split_first().ok_or_else(malformed)?;
        *data = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(malformed())
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Field<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.data.is_empty() {
            return None;
        }
        let mut read = || -> Result<(u64, Field<'a>)> {
            let key = varint(&mut self.data)?;
            let field = match key & 7 {
                0 => Field::Varint(varint(&mut self.data)?),
                1 | 5 => {
                    let width = if key & 7 == 1 { 8 } else { 4 };
                    if self.data.len() < width {
                        return Err(malformed());
                    }
                    self.data = &self.data[width..];
                    Field::Fixed
                }
                2 => {
                    let len = usize::try_from(varint(&mut self.data)?).map_err(|_| malformed())?;
                    if self.data.len() < len {
                        return Err(malformed());
                    }
                    let (bytes, rest) = self.data.split_at(len);
                    self.data = rest;
                    Field::Bytes(bytes)
                }
                _ => return Err(malformed()),
            };
            Ok((key >> 3, field))
        };
        Some(read())
    }
}

fn fields(data: &[u8]) -> Fields<'_> {
    Fields { data }
}

fn string(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed())
}

/// A `map<string, string>` entry message.
fn map_entry(bytes: &[u8]) -> Result<(String, String)> {
    let (key, value) = map_entry_bytes(bytes)?;
    Ok((key, string(value)?))
}

/// A `map<string, bytes>` entry message.
fn map_entry_bytes(bytes: &[u8]) -> Result<(String, &[u8])> {
    let (mut key, mut value) = (String::new(), &[][..]);
    for field in fields(bytes) {
        match field? {
            (1, Field::Bytes(b)) => key = string(b)?,
            (2, Field::Bytes(b)) => value = b,
            _ => {}
        }
    }
    Ok((key, value))
}

fn object_meta(bytes: &[u8]) -> Result<Value> {
    let mut meta = Map::new();
    let mut labels = Map::new();
    let mut annotations = Map::new();
    let mut finalizers = Vec::new();
    for field in fields(bytes) {
        match field? {
            (1, Field::Bytes(b)) if !b.is_empty() => {
                meta.insert("name".into(), string(b)?.into());
            }
            (2, Field::Bytes(b)) if !b.is_empty() => {
                meta.insert("generateName".into(), string(b)?.into());
            }
            (3, Field::Bytes(b)) if !b.is_empty() => {
                meta.insert("namespace".into(), string(b)?.into());
            }
            (11, Field::Bytes(b)) => {
                let (k, v) = map_entry(b)?;
                labels.insert(k, v.into());
            }
            (12, Field::Bytes(b)) => {
                let (k, v) = map_entry(b)?;
                annotations.insert(k, v.into());
            }
            (14, Field::Bytes(b)) => finalizers.push(Value::from(string(b)?)),
            _ => {}
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), Value::Array(finalizers));
    }
    Ok(Value::Object(meta))
}

fn namespace(raw: &[u8]) -> Result<Value> {
    let mut object = json!({"apiVersion": "v1", "kind": "Namespace"});
    for field in fields(raw) {
        match field? {
            (1, Field::Bytes(b)) => object["metadata"] = object_meta(b)?,
            (2, Field::Bytes(spec)) => {
                let mut finalizers = Vec::new();
                for field in fields(spec) {
                    if let (1, Field::Bytes(b)) = field? {
                        finalizers.push(Value::from(string(b)?));
                    }
                }
                object["spec"] = json!({ "finalizers": finalizers });
            }
            _ => {}
        }
    }
    Ok(object)
}

fn config_map(raw: &[u8]) -> Result<Value> {
    use base64::Engine;
    let mut object = json!({"apiVersion": "v1", "kind": "ConfigMap"});
    let (mut data, mut binary) = (Map::new(), Map::new());
    for field in fields(raw) {
        match field? {
            (1, Field::Bytes(b)) => object["metadata"] = object_meta(b)?,
            (2, Field::Bytes(b)) => {
                let (k, v) = map_entry(b)?;
                data.insert(k, v.into());
            }
            (3, Field::Bytes(b)) => {
                let (k, v) = map_entry_bytes(b)?;
                binary.insert(
                    k,
                    base64::engine::general_purpose::STANDARD.encode(v).into(),
                );
            }
            (4, Field::Varint(flag)) => object["immutable"] = (flag != 0).into(),
            _ => {}
        }
    }
    if !data.is_empty() {
        object["data"] = Value::Object(data);
    }
    if !binary.is_empty() {
        object["binaryData"] = Value::Object(binary);
    }
    Ok(object)
}

/// Decodes a protobuf request body into JSON (Namespaces and ConfigMaps; 415 otherwise).
pub fn decode(body: &[u8]) -> Result<Value> {
    let envelope = body.strip_prefix(MAGIC).ok_or_else(malformed)?;
    let (mut kind, mut raw) = (String::new(), &[][..]);
    for field in fields(envelope) {
        match field? {
            (1, Field::Bytes(type_meta)) => {
                for field in fields(type_meta) {
                    if let (2, Field::Bytes(b)) = field? {
                        kind = string(b)?;
                    }
                }
            }
            (2, Field::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    match kind.as_str() {
        "Namespace" => namespace(raw),
        "ConfigMap" => config_map(raw),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "protobuf bodies are accepted only for Namespace and ConfigMap, not {other:?}; send application/json (kubectl apply -f does)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_field(number: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2, u8::try_from(payload.len()).unwrap()];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn decodes_the_namespace_kubectl_create_sends() {
        let mut label = bytes_field(1, b"team");
        label.extend(bytes_field(2, b"etl"));
        let mut meta = bytes_field(1, b"team-x");
        meta.extend(bytes_field(11, &label));
        let raw = bytes_field(1, &meta);
        let mut type_meta = bytes_field(1, b"v1");
        type_meta.extend(bytes_field(2, b"Namespace"));
        let mut body = MAGIC.to_vec();
        body.extend(bytes_field(1, &type_meta));
        body.extend(bytes_field(2, &raw));
        let object = decode(&body).unwrap();
        assert_eq!(object["kind"], "Namespace");
        assert_eq!(object["metadata"]["name"], "team-x");
        assert_eq!(object["metadata"]["labels"]["team"], "etl");
    }

    #[test]
    fn decodes_the_config_map_kubectl_create_sends() {
        let mut entry = bytes_field(1, b"mode");
        entry.extend(bytes_field(2, b"fast"));
        let mut binary = bytes_field(1, b"blob");
        binary.extend(bytes_field(2, &[0, 1]));
        let mut raw = bytes_field(1, &bytes_field(1, b"settings"));
        raw.extend(bytes_field(2, &entry));
        raw.extend(bytes_field(3, &binary));
        raw.extend([4 << 3, 1]);
        let mut type_meta = bytes_field(1, b"v1");
        type_meta.extend(bytes_field(2, b"ConfigMap"));
        let mut body = MAGIC.to_vec();
        body.extend(bytes_field(1, &type_meta));
        body.extend(bytes_field(2, &raw));
        let object = decode(&body).unwrap();
        assert_eq!(object["metadata"]["name"], "settings");
        assert_eq!(object["data"]["mode"], "fast");
        assert_eq!(object["binaryData"]["blob"], "AAE=");
        assert_eq!(object["immutable"], true);
    }

    #[test]
    fn other_kinds_and_garbage_are_refused() {
        let mut type_meta = bytes_field(1, b"v1");
        type_meta.extend(bytes_field(2, b"Pod"));
        let mut body = MAGIC.to_vec();
        body.extend(bytes_field(1, &type_meta));
        assert!(matches!(
            decode(&body),
            Err(ApiError::UnsupportedMediaType(_))
        ));
        assert!(matches!(
            decode(b"k8s\0\xff\xff\xff"),
            Err(ApiError::BadRequest(_))
        ));
        assert!(matches!(decode(b"{}"), Err(ApiError::BadRequest(_))));
    }
}
