//! A JSON object whose member values stay as raw text.
//!
//! Used where the gateway must change one member of an object (a namespaced
//! `name`, a `progressToken`) and pass every other member through byte for
//! byte, in its original order.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// An object as an ordered list of (key, raw value).
#[derive(Clone, Debug, Default)]
pub struct RawObject(pub Vec<(String, Box<RawValue>)>);

impl RawObject {
    /// Parses raw JSON text that must be an object (`None` params give an empty object).
    pub fn parse(raw: Option<&RawValue>) -> Result<Self, serde_json::Error> {
        match raw {
            None => Ok(Self::default()),
            Some(r) => serde_json::from_str(r.get()),
        }
    }

    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| &**v)
    }

    /// Decodes member `key` as `T`; `None` when absent or of another type.
    pub fn get_as<'a, T: Deserialize<'a>>(&'a self, key: &str) -> Option<T> {
        self.get(key).and_then(|v| serde_json::from_str(v.get()).ok())
    }

    /// The member as a string, when it is one.
    pub fn get_str(&self, key: &str) -> Option<String> {
        self.get_as::<String>(key)
    }

    /// Sets member `key`, keeping its position when it exists.
    pub fn set(&mut self, key: &str, value: Box<RawValue>) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Box<RawValue>> {
        let pos = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(pos).1)
    }

    /// Serializes back to raw JSON text.
    pub fn to_raw(&self) -> Box<RawValue> {
        crate::jsonrpc::to_raw(self)
    }
}

impl Serialize for RawObject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some((k, v)) = map.next_entry::<String, Box<RawValue>>()? {
                    out.push((k, v));
                }
                Ok(RawObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_one_member_and_keeps_the_rest_byte_for_byte() {
        let text = r#"{"name":"a__b","arguments":{"x":1.50,"y":"\u00e9"},"_meta":{"k":[1, 2]}}"#;
        let raw = RawValue::from_string(text.into()).unwrap();
        let mut o = RawObject::parse(Some(&raw)).unwrap();
        assert_eq!(o.get_str("name").as_deref(), Some("a__b"));
        o.set("name", crate::jsonrpc::to_raw("b"));
        assert_eq!(o.to_raw().get(), r#"{"name":"b","arguments":{"x":1.50,"y":"\u00e9"},"_meta":{"k":[1, 2]}}"#);
    }

    #[test]
    fn rejects_non_objects() {
        let raw = RawValue::from_string("[1]".into()).unwrap();
        assert!(RawObject::parse(Some(&raw)).is_err());
        assert!(RawObject::parse(None).unwrap().0.is_empty());
    }
}
